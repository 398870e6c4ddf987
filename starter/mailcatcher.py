"""The local mail catcher of ``cartkeeper dev``: an SMTP server (aiosmtpd) on the current
event loop that accepts every message and keeps it on disk (``starter.mailbox``).

It relays nothing: what the worker sends in development lands here, and
``cartkeeper mail list|show|open`` reads it back.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Self

from aiosmtpd.smtp import SMTP, Envelope, Session

from starter.mailbox import Mailbox


class _Keep:
    """aiosmtpd handler: store every message."""

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        peer = session.peer
        number = self.mailbox.store(
            content,
            envelope.mail_from or "",
            list(envelope.rcpt_tos),
            peer=f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer or ""),
        )
        return f"250 OK: kept as message {number}"


class SmtpServer:
    """An aiosmtpd server for ``handler`` on the running loop: ``await start()``, then
    ``port`` is the port it listens on (``0`` picks a free one)."""

    def __init__(self, handler: object, host: str, port: int, hostname: str) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.hostname = hostname
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()

        def protocol() -> Any:
            return SMTP(self.handler, hostname=self.hostname, loop=loop, enable_SMTPUTF8=True)

        self._server = await loop.create_server(protocol, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()


class MailCatcher(SmtpServer):
    """Keeps every message in ``directory`` (``mailbox``)."""

    def __init__(self, directory: Path, host: str = "127.0.0.1", port: int = 1025) -> None:
        self.mailbox = Mailbox(directory)
        super().__init__(_Keep(self.mailbox), host, port, "cartkeeper-mail-catcher")
