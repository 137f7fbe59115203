"""A real SMTP server on loopback (aiosmtpd) that records what it receives and can be told to
answer with temporary (4xx) or permanent (5xx) failures."""
import asyncio
import email
import email.policy
import socket

from aiosmtpd.controller import Controller


class Recorder:
    def __init__(self):
        self.messages = []
        self.raw = []              # the bytes of each message as received (DKIM is checked on these)
        self.fail_next_data = []   # answers for the next DATA commands, e.g. ["451 4.3.0 try later"]
        self.refuse = {}           # recipient → answer to its RCPT command
        self.stall = 0.0           # seconds to sit on each DATA before answering (a hung server)
        self.generation = 0        # bumped by SmtpServer.reset()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.stall:
            generation = self.generation
            await asyncio.sleep(self.stall)
            if generation != self.generation:  # reset meanwhile: this belongs to an earlier test
                return "451 4.3.0 dropped"
        if self.fail_next_data:
            return self.fail_next_data.pop(0)
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        self.raw.append(envelope.original_content or envelope.content)
        return "250 Message accepted"


class SmtpServer:
    """Start with `with SmtpServer() as smtp:`; `smtp.url` is the WINBACK_SMTP_URL to use."""

    def __init__(self):
        self.recorder = Recorder()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=port)

    def __enter__(self):
        self.controller.start()
        self.url = f"smtp://127.0.0.1:{self.controller.port}"
        return self

    def __exit__(self, *exc):
        self.controller.stop()

    def reset(self):
        """Forget what was received and any failures still planned."""
        self.recorder.messages.clear()
        self.recorder.raw.clear()
        self.recorder.fail_next_data.clear()
        self.recorder.refuse.clear()
        self.recorder.stall = 0.0
        self.recorder.generation += 1

    @property
    def messages(self):
        return self.recorder.messages
