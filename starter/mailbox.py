"""The local mail catcher's store: every message it received, on disk, and how to read it
back (``cartkeeper mail list|show|open``).

A message is two files in the mail directory (``data/mail`` by default): ``000007.eml``,
the message exactly as received, and ``000007.json``, its envelope (sender, recipients,
time received). Numbers grow from 1; nothing is ever rewritten.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path


class MailNotFound(LookupError):
    pass


@dataclass(frozen=True)
class StoredMail:
    id: int
    received_at: datetime
    envelope_from: str
    envelope_to: tuple[str, ...]
    subject: str
    sender: str
    path: Path

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "received_at": self.received_at.isoformat(),
            "envelope_from": self.envelope_from,
            "envelope_to": list(self.envelope_to),
            "from": self.sender,
            "subject": self.subject,
            "path": str(self.path),
        }


class Mailbox:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    # ------------------------------------------------------------------ writing

    def store(
        self, content: bytes, envelope_from: str, envelope_to: list[str], peer: str = ""
    ) -> int:
        """Keep one received message; its number. (One writer: the catcher's loop.)"""
        self.directory.mkdir(parents=True, exist_ok=True)
        number = max(self._numbers(), default=0) + 1
        stem = self.directory / f"{number:06d}"
        envelope = {
            "envelope_from": envelope_from,
            "envelope_to": envelope_to,
            "received_at": datetime.now(UTC).isoformat(),
            "peer": peer,
        }
        _write_atomically(stem.with_suffix(".eml"), content)
        _write_atomically(stem.with_suffix(".json"), json.dumps(envelope).encode())
        return number

    # ------------------------------------------------------------------ reading

    def _numbers(self) -> list[int]:
        if not self.directory.is_dir():
            return []
        return sorted(
            int(path.stem) for path in self.directory.glob("*.eml") if path.stem.isdigit()
        )

    def messages(self) -> list[StoredMail]:
        """Every stored message, oldest first."""
        return [self.get(number) for number in self._numbers()]

    def get(self, number: int) -> StoredMail:
        return self.load(number)[0]

    def load(self, number: int) -> tuple[StoredMail, EmailMessage]:
        """Message ``number``: what ``messages`` lists of it, and the message itself."""
        path = self.directory / f"{number:06d}.eml"
        message = self.message(number)
        envelope = self._envelope(number)
        try:
            received_at = datetime.fromisoformat(str(envelope["received_at"]))
        except (KeyError, ValueError):
            received_at = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        stored = StoredMail(
            id=number,
            received_at=received_at,
            envelope_from=str(envelope.get("envelope_from", "")),
            envelope_to=_strings(envelope.get("envelope_to")),
            subject=str(message.get("Subject", "")),
            sender=str(message.get("From", "")),
            path=path,
        )
        return stored, message

    def message(self, number: int) -> EmailMessage:
        path = self.directory / f"{number:06d}.eml"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise MailNotFound(f"no message {number} in {self.directory}") from None
        parsed = BytesParser(policy=policy.default).parsebytes(data)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def _envelope(self, number: int) -> dict[str, object]:
        try:
            loaded = json.loads((self.directory / f"{number:06d}.json").read_text())
        except (OSError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}


def body(message: EmailMessage, subtype: str) -> str | None:
    """The message's ``text/<subtype>`` body, decoded, if it has one."""
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_type() != f"text/{subtype}":
        return None
    content = part.get_content()
    return content if isinstance(content, str) else None


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(item) for item in value) if isinstance(value, list) else ()


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
