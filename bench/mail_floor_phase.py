"""The reminders part's floor run (``bench.mail_floor``): the floor workflows started
beforehand, due at the carts' rate, on the reminders part's worker and relay."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from temporalio.client import Client

from bench.mail_floor import start_floor
from bench.mailsink import MailSink, wait_for_mail
from bench.measure import CpuMeter, percentile, rounded

#: calibration: how many floor workflows are started to measure the start rate
CALIBRATION = 250


async def mail_floor_phase(
    client: Client,
    task_queue: str,
    run_id: str,
    n: int,
    rate: float,
    meter: CpuMeter,
    sink: MailSink,
    rss_mb: Callable[[], float],
    say: Callable[[str], None],
    *,
    concurrency: int = 20,
    lead_s: float = 10.0,
    wait_s: float = 1200.0,
    stall_s: float = 60.0,
) -> dict[str, Any]:
    """``n`` floor workflows due at ``rate`` per second (as the carts' reminders are),
    started beforehand; e-mails/s, lateness (received minus due) and CPU per e-mail.
    Leaves the sink empty."""
    # the start rate, from workflows that send at once (their e-mails are not counted)
    calibration = [f"{run_id}-fc{i:04d}" for i in range(min(CALIBRATION, n))]
    now = time.time()
    seconds, _ = await start_floor(
        client, task_queue, calibration, [now] * len(calibration), concurrency
    )
    start_rate = len(calibration) / max(seconds, 0.01)
    await wait_for_mail(sink, len(calibration), time.time(), 120.0, 30.0, rss_mb, say)
    sink.clear()

    keys = [f"{run_id}-f{i:05d}" for i in range(n)]
    first_slot = time.time() + n / start_rate * 1.5 + lead_s
    dues = [first_slot + i / rate for i in range(n)]
    say(
        f"reminders floor: {n} workflows (started at ~{start_rate:.0f}/s), the first due in"
        f" {first_slot - time.time():.0f} s"
    )
    seconds, errors = await start_floor(client, task_queue, keys, dues, concurrency)
    out: dict[str, Any] = {
        "workflows": n,
        "start_s": round(seconds, 1),
        "start_errors": errors,
        "spare_before_first_due_s": round(first_slot - time.time(), 1),
    }
    await asyncio.sleep(max(first_slot - time.time(), 0))
    cpu0, t0 = meter.snapshot(), time.perf_counter()
    out["wait"] = await wait_for_mail(sink, n, dues[-1], wait_s, stall_s, rss_mb, say)
    elapsed = time.perf_counter() - t0
    cpu = CpuMeter.delta(cpu0, meter.snapshot())

    due_of = dict(zip(keys, dues, strict=True))
    first_copy: dict[str, float] = {}
    copies = 0
    for message in sink.received:
        for rcpt in message.recipients:
            key = rcpt.rpartition("@")[0]
            if key in due_of:  # (a late calibration e-mail is not the floor's)
                copies += 1
                first_copy[key] = min(first_copy.get(key, message.at), message.at)
    # as the carts' figures (``bench.reminders.tally``): messages over the span from the
    # first to the last message received; lateness of each first copy
    times = sorted(
        m.at for m in sink.received if any(r.rpartition("@")[0] in due_of for r in m.recipients)
    )
    lateness = [at - due_of[key] for key, at in first_copy.items()]
    span = times[-1] - times[0] if len(times) >= 2 else 0.0
    emails = max(len(times), 1)
    out.update(
        emails=len(first_copy),
        duplicates=copies - len(first_copy),
        lost=n - len(first_copy),
        emails_per_s=round(len(times) / span, 2) if span > 0 else None,
        lateness_s={
            "p50": rounded(percentile(lateness, 50), 3),
            "p99": rounded(percentile(lateness, 99), 3),
            "max": rounded(max(lateness) if lateness else None, 3),
        },
        cpu_ms_per_email={k: round(v * 1000 / emails, 1) for k, v in cpu.items()},
        cpu_utilisation={k: round(v / elapsed, 2) for k, v in cpu.items()},
    )
    say(
        f"  floor: {out['emails']} e-mails ({out['emails_per_s']}/s), lateness p50"
        f" {out['lateness_s']['p50']} s p99 {out['lateness_s']['p99']} s; cpu ms/e-mail"
        f" {out['cpu_ms_per_email']}"
    )
    sink.clear()
    return out
