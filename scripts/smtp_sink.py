#!/usr/bin/python3
"""A real SMTP server (aiosmtpd) for the tests and for local runs.

Every accepted message is written to MAILDIR/<recipient>/<n>.eml (without
--maildir it is accepted and discarded, for benchmarks), so a test
finds the mail of its own (uniquely named) recipients and tests run in
parallel. Recipients can script failures through their local part:

  tempfail<N>.<anything>@...  answered 451 (try again later) the first N times
  permfail.<anything>@...     answered 550 (no such mailbox) every time

Prints "listening on <port>" once it accepts connections.
"""

import argparse
import asyncio
import itertools
import os
import re
import signal

from aiosmtpd.smtp import SMTP

TEMPFAIL = re.compile(r"^tempfail(\d+)\.", re.IGNORECASE)
PERMFAIL = re.compile(r"^permfail\.", re.IGNORECASE)


class Sink:
    def __init__(self, maildir):
        self.maildir = maildir
        self.refusals = {}
        self.sequence = itertools.count(1)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0]
        if PERMFAIL.match(local):
            return "550 5.1.1 mailbox unavailable"
        tempfail = TEMPFAIL.match(local)
        if tempfail:
            refused = self.refusals.get(address.lower(), 0)
            if refused < int(tempfail.group(1)):
                self.refusals[address.lower()] = refused + 1
                return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.maildir is None:
            return "250 Message accepted for delivery"
        for recipient in envelope.rcpt_tos:
            folder = os.path.join(self.maildir, recipient.lower())
            os.makedirs(folder, exist_ok=True)
            number = next(self.sequence)
            temporary = os.path.join(folder, f".{number}.tmp")
            with open(temporary, "wb") as file:
                file.write(envelope.original_content or envelope.content)
            # Readers never see a half-written message.
            os.rename(temporary, os.path.join(folder, f"{number}.eml"))
        return "250 Message accepted for delivery"


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--maildir", help="keep each message here (default: discard)")
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop when the process that started the sink ends",
    )
    args = parser.parse_args()
    if args.maildir:
        os.makedirs(args.maildir, exist_ok=True)

    handler = Sink(args.maildir)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="sink.local", data_size_limit=10 * 1024 * 1024),
        host=args.host,
        port=args.port,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"listening on {port}", flush=True)

    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if args.exit_with_parent:
        parent = os.getppid()

        async def watch_parent():
            while os.getppid() == parent:
                await asyncio.sleep(1)
            stop.set()

        loop.create_task(watch_parent())
    await stop.wait()
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
