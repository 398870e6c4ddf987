"""The reminders part's SMTP server: an aiosmtpd server on this process's event loop that
accepts every message and keeps, in memory, what the benchmark counts: its Message-ID,
recipients, size and the wall-clock time it was received (``time.time()``, the clock the
workflows' due times are on: same machine).

Why not ``starter.mailcatcher.MailCatcher`` (``cartkeeper dev``'s catcher): it writes two
files per message and numbers them by listing its directory, so every message costs a
directory scan that grows with the messages already kept. ``smtp_probe`` measures both
(``details.reminders.smtp_probe``); the sink is the relay a benchmark wants, one whose
cost does not grow during the run, and which is not the thing being measured.

``smtp_probe`` also measures what one SMTP conversation of the product's sender
(``activities.smtp.send_message``: connect, EHLO, MAIL, RCPT, DATA, QUIT) costs in wall
time and CPU, both ends in this process: the SMTP share of a reminder's cost.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from typing import Any

import psutil
from aiosmtpd.smtp import SMTP, Envelope, Session

from activities.mail_render import MailRenderer, build_message
from activities.smtp import SmtpConfig, send_message
from starter.mailcatcher import MailCatcher, SmtpServer


@dataclass(frozen=True)
class Received:
    message_id: str | None
    recipients: tuple[str, ...]
    at: float  # time.time()
    size: int


@dataclass
class _Count:
    """aiosmtpd handler: remember every message, keep nothing on disk."""

    received: list[Received] = field(default_factory=list)
    parser: BytesHeaderParser = field(default_factory=lambda: BytesHeaderParser(policy=compat32))

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        headers = self.parser.parsebytes(content)
        message_id = headers.get("Message-ID")
        self.received.append(
            Received(
                message_id=str(message_id).strip() if message_id else None,
                recipients=tuple(envelope.rcpt_tos),
                at=time.time(),
                size=len(content),
            )
        )
        return "250 OK"


class MailSink(SmtpServer):
    """``await start()``; then ``port`` is where it listens and ``received`` grows."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._counter = _Count()
        super().__init__(self._counter, host, port, "cartkeeper-bench-sink")

    @property
    def received(self) -> list[Received]:
        return self._counter.received

    def clear(self) -> None:
        self._counter.received.clear()


def worker_env(sink: MailSink) -> dict[str, str]:
    """A worker's settings that make the sink its SMTP relay."""
    return {"CARTKEEPER_SMTP_HOST": sink.host, "CARTKEEPER_SMTP_PORT": str(sink.port)}


# --------------------------------------------------------------------------- the probe


def _probe_message(n: int) -> Any:
    """A reminder-sized message, rendered by the product's templates."""
    from datetime import UTC, datetime

    from activities.mail_render import MailContent, MailLine

    content = MailContent(
        shop_name="Bench Shop",
        customer_name="Bench Shopper",
        locale="en",
        currency="EUR",
        lines=(MailLine("Blue mug", 2, 2500), MailLine("Green tea, 100 g", 2, 1380)),
        total=3880,
        recovery_url="http://127.0.0.1:8080/r/" + "x" * 120,
        unsubscribe_url="http://127.0.0.1:8080/u/" + "y" * 120,
    )
    return build_message(
        MailRenderer().render("reminder", content),
        sender=("Bench Shop", "shop@bench.example.com"),
        recipient=("Bench Shopper", f"probe-{n}@customers.example.com"),
        shop_id="probe",
        cart_id=f"probe-{n}",
        key="probe",
        unsubscribe_url=content.unsubscribe_url,
        domain="bench.example.com",
        date=datetime.now(UTC),
    )


async def _send_many(port: int, messages: list[Any]) -> dict[str, float]:
    """Send ``messages`` one after the other (one connection each, as ``send_reminder``
    does): wall ms and CPU ms (this process: client and server) per message."""
    config = SmtpConfig(host="127.0.0.1", port=port)
    me = psutil.Process()
    cpu0, t0 = me.cpu_times(), time.perf_counter()
    for message in messages:
        await send_message(config, message)
    elapsed = time.perf_counter() - t0
    cpu1 = me.cpu_times()
    cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    return {
        "messages": len(messages),
        "wall_ms_per_message": round(elapsed * 1000 / len(messages), 2),
        "cpu_ms_per_message": round(cpu * 1000 / len(messages), 2),
    }


async def smtp_probe(sink: MailSink, messages: int) -> dict[str, Any]:
    """The cost of one SMTP conversation against the sink and against ``MailCatcher``
    (which keeps messages on disk), ``messages`` each, sequentially. The sink's received
    list is cleared afterwards."""
    batch = [_probe_message(n) for n in range(messages)]
    out: dict[str, Any] = {"note": "both ends in the bench process; one connection per message"}
    out["memory_sink"] = await _send_many(sink.port, batch)
    sink.clear()
    with tempfile.TemporaryDirectory(prefix="bench-mail-") as directory:
        catcher = MailCatcher(Path(directory), port=0)
        await catcher.start()
        try:
            first = await _send_many(catcher.port, batch)
            # the same again with ``messages`` already kept: the directory scan grows
            again = await _send_many(catcher.port, batch)
        finally:
            await catcher.stop()
    out["disk_catcher"] = first
    out["disk_catcher_after"] = {**again, "already_kept": messages}
    return out


# --------------------------------------------------------------------------- waiting


async def wait_for_mail(
    sink: MailSink,
    expected: int,
    last_slot: float,
    wait_s: float,
    stall_s: float,
    rss_mb: Callable[[], float],
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Until ``expected`` distinct recipients (by local part) have their e-mail, or none
    came for ``stall_s`` after ``last_slot`` (``time.time()``), or ``wait_s`` after it.
    The peak of ``rss_mb()`` (the worker's RSS) meanwhile."""
    peak = 0.0
    seen, changed = 0, time.time()
    next_report = time.time() + 10
    reason = "timeout"
    recipients: set[str] = set()
    while True:
        now = time.time()
        peak = max(peak, rss_mb())
        count = len(sink.received)
        if count != seen:
            for message in sink.received[seen:count]:
                recipients.update(r.rpartition("@")[0] for r in message.recipients)
            seen, changed = count, now
        if len(recipients) >= expected:
            reason = "complete"
            break
        if now > last_slot and now - changed > stall_s:
            reason = f"no e-mail for {stall_s:.0f} s"
            break
        if now > last_slot + wait_s:
            break
        if now >= next_report:
            say(f"  {count} e-mails received, {len(recipients)}/{expected} recipients")
            next_report = now + 10
        await asyncio.sleep(0.25)
    return {"ended": reason, "worker_rss_mb_peak": round(peak, 1)}
