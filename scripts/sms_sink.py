#!/usr/bin/python3
"""A development SMS provider, for local runs: it speaks the provider API
Sportello's adapter speaks (workers/service/src/notifications/sms.rs) and
keeps every message as a file instead of sending it.

  POST /messages, HTTP basic credentials (--user, --password), a JSON body
  {"sender", "recipient", "text", "encoding", "reference"}; 202 {"id": ...}.

Each accepted message is written to DIR/<recipient>/<n>.json (n zero-padded,
so a shell lists them in order; without --dir it is accepted and
discarded). A repeated reference is accepted once, and answered the same id,
also after a restart: the references already kept are read back from DIR.
Bad credentials get 401, anything else malformed 400 (what the adapter
treats as a configuration problem and as our own bug).

Prints "listening on <port>" once it accepts connections.
"""

import argparse
import base64
import hmac
import json
import os
import re
import signal
import sys
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# E.164, as Sportello sends it; it also keeps the folder name inside DIR.
RECIPIENT = re.compile(r"^\+[1-9][0-9]{6,14}$")
ENCODINGS = ("GSM7", "UCS2")
FIELDS = ("sender", "recipient", "text", "encoding", "reference")
MAX_BODY = 64 * 1024


def problem(submission):
    """Why a parsed body is not a submission, or None."""
    if not isinstance(submission, dict):
        return "the body is not a JSON object"
    for field in FIELDS:
        if not isinstance(submission.get(field), str) or not submission[field]:
            return f"{field} must be a non-empty string"
    if not RECIPIENT.match(submission["recipient"]):
        return "recipient must be E.164 (+ and 7 to 15 digits)"
    if submission["encoding"] not in ENCODINGS:
        return f"encoding must be one of {', '.join(ENCODINGS)}"
    return None


class Book:
    """What the sink kept: the next file number and the id of each reference."""

    def __init__(self, folder):
        self.folder = folder
        self.lock = threading.Lock()
        self.ids = {}
        self.last = 0
        if folder:
            for recipient in os.listdir(folder):
                if not os.path.isdir(os.path.join(folder, recipient)):
                    continue
                for name in os.listdir(os.path.join(folder, recipient)):
                    if not re.fullmatch(r"[0-9]+\.json", name):
                        continue
                    self.last = max(self.last, int(name.split(".")[0]))
                    with open(os.path.join(folder, recipient, name), encoding="utf-8") as file:
                        kept = json.load(file)
                    self.ids[kept["reference"]] = kept["id"]

    def accept(self, submission):
        """The provider's id for the submission, keeping it if it is new."""
        with self.lock:
            known = self.ids.get(submission["reference"])
            if known:
                return known
            self.last += 1
            number = f"{self.last:06d}"
            kept = {
                "id": f"sink-{number}",
                "received_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                **{field: submission[field] for field in FIELDS},
            }
            if self.folder:
                folder = os.path.join(self.folder, submission["recipient"])
                os.makedirs(folder, exist_ok=True)
                temporary = os.path.join(folder, f".{number}.tmp")
                with open(temporary, "w", encoding="utf-8") as file:
                    json.dump(kept, file, ensure_ascii=False, indent=2)
                    file.write("\n")
                # Readers never see a half-written message.
                os.rename(temporary, os.path.join(folder, f"{number}.json"))
            self.ids[submission["reference"]] = kept["id"]
            return kept["id"]


def handler(book, user, password):
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    class Provider(BaseHTTPRequestHandler):
        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            if self.path != "/messages":
                return self.answer(404, {"error": "not found"})
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return self.answer(401, {"error": "bad credentials"})
            length = self.headers.get("Content-Length", "")
            length = int(length) if length.isdigit() else 0
            if not 0 < length <= MAX_BODY:
                return self.answer(400, {"error": f"a body of 1 to {MAX_BODY} bytes"})
            try:
                submission = json.loads(self.rfile.read(length))
            except ValueError:
                return self.answer(400, {"error": "the body is not JSON"})
            reason = problem(submission)
            if reason:
                return self.answer(400, {"error": reason})
            self.answer(202, {"id": book.accept(submission)})

        def log_message(self, format, *args):
            # Quiet: the messages are in the files, and their codes stay out of logs.
            pass

    return Provider


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2526)
    parser.add_argument("--dir", help="keep each message here (default: discard)")
    parser.add_argument("--user", default="sportello")
    parser.add_argument("--password", default="sms-sink-dev")
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop when the process that started the sink ends",
    )
    args = parser.parse_args()
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)

    server = ThreadingHTTPServer(
        (args.host, args.port), handler(Book(args.dir), args.user, args.password)
    )
    print(f"listening on {server.server_address[1]}", flush=True)

    def stop(*_):
        # shutdown() waits for serve_forever, so it runs on another thread.
        threading.Thread(target=server.shutdown).start()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    if args.exit_with_parent:
        parent = os.getppid()

        def watch_parent():
            while os.getppid() == parent:
                threading.Event().wait(1)
            stop()

        threading.Thread(target=watch_parent, daemon=True).start()
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
