"""The test suite's SMTP server (aiosmtpd, from PyPI).

Listens on 127.0.0.1:$SMTP_PORT and stores every message it accepts, as received, in
$SMTP_MAILDIR/<recipient>/<time>-<random>.eml (written to a temporary name, then renamed, so
a reader never sees half a message). Tests use their own recipient addresses and read their
own directory.

Refusals, to stand in for a server that is up but will not take mail:
  $SMTP_CONTROL/refuse/<recipient>   exists: that recipient gets 451 at RCPT TO;
  $SMTP_CONTROL/refuse-all           exists: every recipient gets 451.

The greeting names this code's version, so the start script can tell this server (and this
version of it) from anything else on the port.
"""

import asyncio
import os
import re
import signal
import time
import uuid

from aiosmtpd.controller import Controller

PORT = int(os.environ["SMTP_PORT"])
MAILDIR = os.environ["SMTP_MAILDIR"]
CONTROL = os.environ["SMTP_CONTROL"]
IDENT = os.environ.get("SMTP_IDENT", "medport-test-smtp")

SAFE = re.compile(r"[^a-z0-9@._+-]")


def folder(address: str) -> str:
    return SAFE.sub("_", address.strip().lower())


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        name = folder(address)
        if os.path.exists(os.path.join(CONTROL, "refuse-all")) or os.path.exists(
            os.path.join(CONTROL, "refuse", name)
        ):
            return "451 4.3.0 Mailbox temporarily unavailable (test refusal)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8")
        for rcpt in envelope.rcpt_tos:
            box = os.path.join(MAILDIR, folder(rcpt))
            os.makedirs(box, exist_ok=True)
            name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml"
            tmp = os.path.join(box, "." + name + ".tmp")
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, os.path.join(box, name))
        return "250 Message accepted for delivery"


def main() -> None:
    os.makedirs(MAILDIR, exist_ok=True)
    os.makedirs(os.path.join(CONTROL, "refuse"), exist_ok=True)
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=PORT,
        server_hostname="medport-test-smtp",
        ident=IDENT,
        decode_data=False,
    )
    controller.start()
    stop = asyncio.new_event_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        stop.add_signal_handler(sig, stop.stop)
    try:
        stop.run_forever()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
