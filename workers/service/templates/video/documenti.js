// Sportello telematico: the documents panel ("Inviati", "Ricevuti",
// "Protocollati", upload, registration), shared by the room (stanza.js
// starts and stops it as the operator enables documents) and by the 72-hour
// window's page (data-window="true": it starts at once). Plain JS, and
// nothing here touches the camera or the microphone.
(function () {
  "use strict";
  var panel = document.getElementById("documenti");
  if (!panel) { return; }
  var base = panel.dataset.base, role = panel.dataset.role;
  var $ = function (id) { return document.getElementById(id); };
  var timer = null, windowMode = false;

  function say(text) { $("esito-documenti").textContent = text; }

  function item(d) {
    var li = document.createElement("li");
    li.dataset.id = d.id;
    if (role === "operator" && d.direction === "from_citizen" && d.state === "uploaded") {
      var box = document.createElement("input"); box.type = "checkbox"; box.value = d.id;
      box.className = "da-protocollare"; box.setAttribute("aria-label", "Seleziona " + d.file_name);
      li.appendChild(box);
    }
    var a = document.createElement("a");
    a.href = base + "/documenti/" + d.id; a.textContent = d.file_name;
    li.appendChild(a);
    li.appendChild(document.createTextNode(" " + (d.size_bytes / 1024).toFixed(1) + " KB "));
    if (d.label) {
      var label = document.createElement("span");
      label.className = "etichetta label-" + ({ green: "green", orange: "orange", red: "red" }[d.label.colour] || "none");
      label.textContent = d.label.text; li.appendChild(label);
    }
    var mine = (role === "citizen") === (d.direction === "from_citizen");
    if (mine && d.state === "uploaded") {
      var del = document.createElement("button"); del.type = "button"; del.className = "secondary";
      del.textContent = "Elimina"; del.setAttribute("aria-label", "Elimina " + d.file_name);
      del.addEventListener("click", function () {
        fetch(base + "/documenti/" + d.id, { method: "DELETE" }).then(refresh);
      });
      li.appendChild(del);
    }
    return li;
  }
  function refresh() {
    fetch(base + "/documenti").then(function (r) {
      // During the window only its end makes the link gone: reloading
      // shows the page saying when it closed.
      if (r.status === 410 && windowMode) { location.reload(); return null; }
      return r.ok ? r.json() : null;
    }).then(function (data) {
      if (!data) { return; }
      var sent = $("inviati"), got = $("ricevuti"), reg = $("protocollati");
      var checked = {};
      Array.prototype.forEach.call(document.querySelectorAll(".da-protocollare:checked"), function (b) { checked[b.value] = true; });
      sent.textContent = ""; got.textContent = ""; reg.textContent = "";
      data.documents.forEach(function (d) {
        var li = item(d);
        var box = li.querySelector(".da-protocollare"); if (box && checked[d.id]) { box.checked = true; }
        (d.direction === "from_citizen" ? sent : got).appendChild(li);
      });
      data.registrations.forEach(function (r) {
        var li = document.createElement("li"), a = document.createElement("a");
        a.href = base + "/ricevute/" + r.id; a.textContent = r.signature;
        li.appendChild(a); li.appendChild(document.createTextNode(" " + r.files.join(", ")));
        reg.appendChild(li);
      });
      panel.dataset.loaded = "true";
    });
  }
  $("modulo-documenti").addEventListener("submit", function (e) {
    e.preventDefault();
    var files = $("file").files, body = new FormData();
    if (!files.length) { say("Seleziona almeno un file."); return; }
    for (var i = 0; i < files.length; i++) { body.append("file", files[i], files[i].name); }
    var box = $("conformita");
    if (box) {
      if (!box.checked) { say("Dichiara che i documenti sono conformi all'originale."); return; }
      body.append("conformity", "true");
    }
    fetch(base + "/documenti", { method: "POST", body: body }).then(function (r) {
      return r.json().then(function (j) {
        // The gateway words refusals in Italian; the code is for the contact centre.
        say(r.ok ? "File inviati." : "File non inviati: " + (j.message || r.status) + (j.error ? " (codice: " + j.error + ")" : ""));
        $("file").value = ""; refresh();
      });
    });
  });
  var register = $("protocolla");
  if (register) {
    register.addEventListener("click", function () {
      var ids = Array.prototype.map.call(document.querySelectorAll(".da-protocollare:checked"), function (b) { return b.value; });
      if (!ids.length) { say("Seleziona i documenti da protocollare."); return; }
      fetch(base + "/protocollazione", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ document_ids: ids }) })
        .then(function (r) {
          if (r.ok) { say("Protocollazione in corso."); refresh(); return; }
          r.json().then(function (j) { say("Protocollazione non avviata: " + j.message + " (codice: " + j.error + ")"); }, function () { say("Protocollazione non avviata."); });
          refresh();
        });
    });
  }

  // Shown and refreshed every 2 s while on (labels turn green when the
  // registration worker is done); `inWindow`: the call is over.
  function start(inWindow) {
    windowMode = !!inWindow;
    panel.hidden = false;
    if (!timer) { refresh(); timer = setInterval(refresh, 2000); }
  }
  function stop() {
    panel.hidden = true;
    if (timer) { clearInterval(timer); timer = null; }
  }
  window.sportelloDocumenti = { start: start, stop: stop };
  if (panel.dataset.window === "true") { start(true); }
})();
