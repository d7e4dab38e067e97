// Sportello telematico: the room page. Plain JS, no framework.
// Device check -> "Entra nella stanza" -> WebSocket signalling -> WebRTC.
// The operator makes the offer once the citizen is admitted and present.
// The documents panel is documenti.js (window.sportelloDocumenti). Only
// the room loads this script: after the call the link lands on the window's
// page, which never asks for the devices.
(function () {
  "use strict";
  var root = document.getElementById("stanza");
  if (!root) { return; }
  var token = root.dataset.token, room = root.dataset.room, role = root.dataset.role;
  var base = "/stanza/" + token;
  var $ = function (id) { return document.getElementById(id); };
  var show = function (id, visible) { $(id).hidden = !visible; };
  var local = null, pc = null, ws = null, iceServers = [], state = null, peerPresent = false;
  var pendingIce = [], documents = window.sportelloDocumenti;

  function say(id, text) { $(id).textContent = text; }

  // 1. Device check
  function deviceError(error) {
    switch (error && error.name) {
      case "NotFoundError": case "OverconstrainedError":
        return "Non troviamo una videocamera o un microfono: collegali e premi \"Verifica di nuovo\".";
      case "NotReadableError": case "AbortError":
        return "La videocamera o il microfono sono usati da un'altra applicazione: chiudila e premi \"Verifica di nuovo\".";
      case "NotAllowedError": case "SecurityError":
        return "Hai negato il permesso di usare videocamera e microfono: consentilo dalle impostazioni del browser.";
      default:
        return "I dispositivi audio e video non sono disponibili (" + (error && error.name || "errore") + ").";
    }
  }
  function checkDevices() {
    say("esito-dispositivi", "Verifica dei dispositivi in corso…");
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      say("esito-dispositivi", "Questo browser non supporta le videochiamate: usa Chrome, Edge o Safari.");
      return;
    }
    navigator.mediaDevices.getUserMedia({ audio: true, video: true }).then(function (stream) {
      local = stream;
      $("anteprima").srcObject = stream;
      return navigator.mediaDevices.enumerateDevices();
    }).then(function (devices) {
      var list = $("dispositivi"); list.textContent = "";
      var kinds = { audioinput: "Microfono", videoinput: "Videocamera", audiooutput: "Altoparlanti" };
      devices.forEach(function (d) {
        if (!kinds[d.kind]) { return; }
        var li = document.createElement("li");
        li.textContent = kinds[d.kind] + ": " + (d.label || "predefinito");
        list.appendChild(li);
      });
      say("esito-dispositivi", "Videocamera e microfono funzionano.");
      root.dataset.devices = "ok";
    }).catch(function (error) {
      say("esito-dispositivi", deviceError(error));
      root.dataset.devices = "error";
    });
  }
  $("riprova-dispositivi").addEventListener("click", checkDevices);
  $("entra").addEventListener("click", function () { connect(false); });
  $("sostituisci").addEventListener("click", function () { connect(true); });
  checkDevices();

  // 2. Signalling
  function send(message) {
    message.room = room;
    if (ws && ws.readyState === 1) { ws.send(JSON.stringify(message)); }
  }
  function connect(replace) {
    show("verifica", false); show("occupata", false);
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    ws = new WebSocket(scheme + location.host + base + "/ws" + (replace ? "?replace=true" : ""));
    ws.onmessage = function (event) { receive(JSON.parse(event.data)); };
    ws.onclose = function () { root.dataset.socket = "closed"; };
    root.dataset.socket = "open";
  }
  function receive(m) {
    switch (m.type) {
      case "welcome":
        iceServers = m.ice_servers || []; peerPresent = m.peer_present;
        (m.chat || []).forEach(addChat);
        apply(m.state); break;
      case "state": apply(m); break;
      case "peer":
        peerPresent = m.present;
        if (!m.present) { hangUp(); }
        maybeCall(); break;
      case "offer": onOffer(m.sdp); break;
      case "answer": if (pc) { pc.setRemoteDescription({ type: "answer", sdp: m.sdp }).then(flushIce); } break;
      case "ice":
        if (pc && pc.remoteDescription) { pc.addIceCandidate(m.candidate).catch(function () {}); }
        else { pendingIce.push(m.candidate); }
        break;
      case "chat": addChat(m); break;
      case "replaced":
        hangUp(); show("chiamata", false); show("attesa", false); show("occupata", true);
        say("messaggio-occupata", "La stanza è stata aperta in un'altra finestra."); break;
      case "error":
        if (m.code === "occupied") {
          show("attesa", false); show("chiamata", false); show("occupata", true);
        } else {
          root.dataset.lastError = m.code;
        }
        break;
    }
  }
  function apply(s) {
    state = s; root.dataset.phase = s.phase;
    var ended = s.phase === "ended" || s.phase === "window_open" || s.phase === "expired";
    if (s.phase === "expired") { location.reload(); return; }
    show("attesa", role === "citizen" && s.phase === "waiting");
    show("chiamata", !ended && (role === "operator" || s.phase === "admitted"));
    show("terminata", ended);
    show("finestra", s.phase === "window_open");
    show("chat", !ended && (role === "operator" || s.chat_enabled));
    var docs = s.phase === "window_open" || (!ended && (role === "operator" || s.documents_enabled));
    if (docs) { documents.start(s.phase === "window_open"); } else { documents.stop(); }
    // The call is over: the camera and the microphone are let go at once.
    if (ended) { hangUp(); releaseDevices(); }
    maybeCall();
  }

  // 3. WebRTC: the operator offers when the admitted citizen is present.
  function newPeer() {
    pc = new RTCPeerConnection({ iceServers: iceServers });
    if (local) { local.getTracks().forEach(function (t) { pc.addTrack(t, local); }); }
    $("locale").srcObject = local;
    pc.onicecandidate = function (e) { if (e.candidate) { send({ type: "ice", candidate: e.candidate.toJSON() }); } };
    pc.ontrack = function (e) { $("remoto").srcObject = e.streams[0]; };
    pc.onconnectionstatechange = function () {
      var el = $("stato-connessione");
      el.dataset.state = pc.connectionState;
      el.textContent = { connected: "Connesso", connecting: "Connessione in corso…", failed: "Connessione non riuscita", disconnected: "Connessione interrotta" }[pc.connectionState] || pc.connectionState;
    };
    return pc;
  }
  function flushIce() {
    pendingIce.splice(0).forEach(function (c) { pc.addIceCandidate(c).catch(function () {}); });
  }
  function maybeCall() {
    if (role !== "operator" || pc || !state || state.phase !== "admitted" || !peerPresent) { return; }
    newPeer();
    pc.createOffer().then(function (offer) { return pc.setLocalDescription(offer); })
      .then(function () { send({ type: "offer", sdp: pc.localDescription.sdp }); });
  }
  function onOffer(sdp) {
    if (pc) { pc.close(); }
    newPeer();
    pc.setRemoteDescription({ type: "offer", sdp: sdp }).then(flushIce)
      .then(function () { return pc.createAnswer(); })
      .then(function (answer) { return pc.setLocalDescription(answer); })
      .then(function () { send({ type: "answer", sdp: pc.localDescription.sdp }); });
  }
  function hangUp() { if (pc) { pc.close(); pc = null; } pendingIce = []; }
  function releaseDevices() {
    if (local) { local.getTracks().forEach(function (t) { t.stop(); }); local = null; }
    $("anteprima").srcObject = null; $("locale").srcObject = null;
  }

  // 4. Chat
  function addChat(m) {
    var li = document.createElement("li");
    li.textContent = (m.author_role === "operator" ? "Operatore " + m.author_id : "Tu") .replace("Tu", role === "citizen" ? "Tu" : "Cittadino") + ": " + m.body;
    if (m.author_role === role) { li.textContent = "Tu: " + m.body; }
    li.className = "messaggio-" + m.author_role;
    $("messaggi").appendChild(li);
  }
  $("modulo-chat").addEventListener("submit", function (e) {
    e.preventDefault();
    var text = $("testo-chat").value.trim();
    if (text) { send({ type: "chat", text: text }); $("testo-chat").value = ""; }
  });

  // 5. Operator's controls
  Array.prototype.forEach.call(document.querySelectorAll("[data-control]"), function (button) {
    button.addEventListener("click", function () { send({ type: "control", action: button.dataset.control }); });
  });

  // 6. Documents: the shared panel (documenti.js, loaded first).
})();
