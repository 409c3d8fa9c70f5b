"""A real SMTP server (aiosmtpd) for hookd's email tests.

Usage: python3 server.py --port PORT --dir DIR [--refuse N] [--delay SECONDS]

Listens on 127.0.0.1:PORT and writes every message it accepts to DIR as
<n>.eml (the bytes received after DATA), with the envelope in <n>.json. The
first N messages are refused with "451 4.3.0 try again later" (a transient
failure, so a sender retries). With --delay, a message is kept at once but
answered "250" only SECONDS later (a sender that dies meanwhile never learns
it was accepted). Prints "ready" once listening; stops on SIGTERM.
"""

import argparse
import asyncio
import json
import os
import signal

from aiosmtpd.controller import Controller


class Handler:
    def __init__(self, directory, refuse, delay):
        self.directory = directory
        self.refuse = refuse
        self.delay = delay
        self.seen = 0

    async def handle_DATA(self, server, session, envelope):
        self.seen += 1
        if self.seen <= self.refuse:
            return "451 4.3.0 try again later"
        n = len([f for f in os.listdir(self.directory) if f.endswith(".eml")]) + 1
        with open(os.path.join(self.directory, f"{n}.eml"), "wb") as f:
            f.write(envelope.original_content or envelope.content)
        with open(os.path.join(self.directory, f"{n}.json"), "w") as f:
            json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos}, f)
        if self.delay:
            await asyncio.sleep(self.delay)
        return "250 2.0.0 OK"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--refuse", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0)
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    controller = Controller(
        Handler(args.dir, args.refuse, args.delay), hostname="127.0.0.1", port=args.port
    )
    controller.start()
    print("ready", flush=True)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.run_until_complete(stop.wait())
    controller.stop()


if __name__ == "__main__":
    main()
