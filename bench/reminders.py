"""The reminders part (issue 6, point 12): many carts abandoned within one minute, each
with a first reminder due 1 s after its abandonment, delivered to a local SMTP server.

1. The shop's campaign (``activities.campaigns.create_campaign``, checked like any edit):
   a first reminder and a second one a day later with a coupon (never due during the
   run), no quiet hours. The store refuses delays under 60 s; the first reminder's delay
   is then set to 1 s in its row directly (see ``setup_campaign``).
2. Calibration: carts of another shop (no campaign, default policy: never abandoned during
   the run) are created for a few seconds, to measure how fast carts are created.
3. The carts: ``update_cart`` (update-with-start) and ``identify_customer`` (a customer
   address, one per cart), ``reminder_concurrency`` at a time. Every cart gets the
   ``abandon_after_seconds`` that makes it abandoned at its own slot: the slots start once
   every cart is created (as calibrated, with a margin, plus a lead) and are spread
   evenly at ``abandon_rate`` carts/s (5,000 carts: 40 s). With one fixed abandonment
   delay for every cart the abandonment would be spread over the whole creation (minutes
   on two cores), not over one minute: creation is far slower than the sending to
   measure.
4. From the first abandonment until every cart's e-mail arrived (or no e-mail came for a
   minute, or ``reminder_wait_s`` passed): CPU per process, the worker's RSS; then a full
   ``gc.collect()`` and the worker's RSS.
5. The figures, from the SMTP server (``bench.mailsink``: Message-ID and receive time of
   every message) and the ledger (``reminder_sends``: status, Message-ID, due time):
   e-mails/s, duplicates, lateness (received minus due), carts lost; and where the time
   goes (``bench.reminder_timing``: histories of sample carts, the SMTP and database
   probes).
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from temporalio.client import Client

from activities.campaigns import (
    CampaignConfig,
    CouponOffer,
    ReminderDefinition,
    ReminderVariant,
    create_campaign,
)
from activities.db import SessionFactory, make_engine, make_session_factory, write_session
from activities.models import CampaignReminder, ReminderSend
from activities.settings import Settings
from bench.kinds import LINE_A, LINE_B
from bench.mail_floor_phase import mail_floor_phase
from bench.mailsink import MailSink, Received, smtp_probe, wait_for_mail
from bench.measure import CpuMeter, percentile, rounded
from bench.plan import REMINDERS_CALIBRATION_SHOP, REMINDERS_SHOP, TASK_QUEUE, Plan
from bench.reminder_timing import db_probe, history_breakdown, replay_probe, send_probe
from starter.client import CartkeeperClient
from starter.workerprocess import WorkerProcess
from workflows.contract import CartPolicy, CustomerInfo

Say = Callable[[str], None]

FIRST, SECOND = "first", "second"
#: the first reminder's delay after the abandonment (written to its row directly)
FIRST_DELAY_S = 1
CUSTOMER_DOMAIN = "customers.example.com"
#: after every cart has its e-mail, wait this long for late duplicates
LINGER_S = 5.0
#: stop waiting when no e-mail came for this long
STALL_S = 60.0
#: the creation is given this many times the calibrated time before the abandonment
CREATE_MARGIN = 1.4
#: the SMTP probe's messages (per server), the in-process sends and replayed histories
PROBE_MESSAGES = 200
PROBE_SENDS = 50
PROBE_REPLAYS = 20

#: the cart being created: when it is to be abandoned (``time.time()``); unset for the
#: calibration carts (default policy)
_ABANDON_AT: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "bench_abandon_at", default=None
)


async def setup_campaign(sessions: SessionFactory) -> dict[str, Any]:
    now = datetime.now(UTC)
    config = CampaignConfig(
        shop_id=REMINDERS_SHOP,
        shop_name="Bench Shop",
        sender="shop@bench.example.com",
        restore_url="https://bench.example.com/cart/{cart_id}?coupon={coupon}",
        # no quiet hours: the benchmark runs at any hour (the check itself still runs)
        quiet_start_minute=0,
        quiet_end_minute=0,
        reminders=(
            ReminderDefinition(
                reminder_id=FIRST,
                position=1,
                name="First reminder",
                delay_seconds=60,  # set to FIRST_DELAY_S below
                automatic=True,
                a=ReminderVariant(subject="You left something in your cart", template="reminder"),
            ),
            ReminderDefinition(
                reminder_id=SECOND,
                position=2,
                name="Second reminder",
                delay_seconds=86_400,
                automatic=True,
                a=ReminderVariant(
                    subject="10 % off what you left in your cart",
                    template="reminder",
                    coupon=CouponOffer(kind="percent", amount=10, expiry_days=7),
                ),
            ),
        ),
    )
    version = await create_campaign(sessions, config, now, by="bench")
    if version is None:
        raise RuntimeError(f"the read model already has a campaign for {REMINDERS_SHOP}")
    # The store refuses delays under 60 s (``invalid_delay``): the benchmark wants the first
    # reminder due right after the abandonment, so it writes the delay into the row
    # directly (only ``plan_reminders`` reads it).
    async with write_session(sessions) as session:
        await session.execute(
            update(CampaignReminder)
            .where(
                CampaignReminder.shop_id == REMINDERS_SHOP, CampaignReminder.reminder_id == FIRST
            )
            .values(delay_seconds=FIRST_DELAY_S)
        )
    return {
        "version": version,
        "reminders": {FIRST: f"{FIRST_DELAY_S} s", SECOND: "1 day, 10 % coupon"},
        "quiet_hours": None,
        "cap": f"{config.cap_count} per {config.cap_period_days} days",
    }


def _policy_for(_shop: str) -> CartPolicy:
    """The cart's policy: abandoned at its slot (``_ABANDON_AT``), counted from now; its
    last activity (``identify_customer``) follows at once."""
    abandon_at = _ABANDON_AT.get()
    if abandon_at is None:
        return CartPolicy()
    return CartPolicy(abandon_after_seconds=max(1, round(abandon_at - time.time())))


class Creator:
    """Creates carts ``concurrency`` at a time: ``update_cart`` then ``identify_customer``,
    each cart retried up to 3 times like a storefront would."""

    def __init__(self, client: Client, concurrency: int) -> None:
        self.carts = CartkeeperClient(client, task_queue=TASK_QUEUE, policy_for=_policy_for)
        self.concurrency = concurrency
        self.errors: Counter[str] = Counter()
        self.failed: list[str] = []
        #: carts whose slot was less than 1 s away when they were created
        self.late = 0
        #: when each cart was created (``time.perf_counter()``)
        self.times: list[float] = []

    async def one(self, shop: str, cart_id: str, abandon_at: float | None) -> bool:
        _ABANDON_AT.set(abandon_at)
        if abandon_at is not None and abandon_at - time.time() < 1:
            self.late += 1
        customer = CustomerInfo(
            email=f"{cart_id}@{CUSTOMER_DOMAIN}", name="Bench Shopper", locale="en"
        )
        for _attempt in range(3):
            try:
                await self.carts.update_cart(shop, cart_id, [LINE_A, LINE_B], "EUR")
                await self.carts.identify_customer(shop, cart_id, customer)
                return True
            except Exception as error:
                self.errors[f"{type(error).__name__}: {error}"[:160]] += 1
        self.failed.append(cart_id)
        return False

    async def many(
        self,
        shop: str,
        name: Callable[[int], str],
        count: int | None,
        slots: list[float] | None = None,
        until: float | None = None,
    ) -> list[str]:
        """Create carts ``name(0)``, ``name(1)`` ... (the i-th abandoned at ``slots[i]``):
        ``count`` of them, or as many as fit before ``until`` (``time.perf_counter()``).
        The carts created."""
        numbers = iter(range(count) if count is not None else itertools.count())
        created: list[str] = []

        async def worker() -> None:
            for n in numbers:
                if until is not None and time.perf_counter() >= until:
                    return
                slot = slots[n] if slots is not None else None
                if await self.one(shop, name(n), slot):
                    created.append(name(n))
                    self.times.append(time.perf_counter())

        # each creator task has its own context: ``_ABANDON_AT`` is per cart
        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        return created


def _per_second(times: list[float], start: float) -> list[int]:
    counts = Counter(int(t - start) for t in times)
    return [counts.get(s, 0) for s in range(max(counts, default=-1) + 1)]


def _stats(values: list[float], digits: int = 3) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": rounded(percentile(values, 50), digits),
        "p90": rounded(percentile(values, 90), digits),
        "p99": rounded(percentile(values, 99), digits),
        "max": rounded(max(values) if values else None, digits),
    }


async def _ledger(sessions: SessionFactory) -> list[ReminderSend]:
    async with sessions() as session:
        result = await session.execute(
            select(ReminderSend).where(ReminderSend.shop_id == REMINDERS_SHOP)
        )
        return list(result.scalars())


def tally(
    cart_ids: list[str], received: list[Received], ledger: list[ReminderSend]
) -> dict[str, Any]:
    """Every figure that the SMTP server and the ledger give."""
    out: dict[str, Any] = {}
    by_id: dict[str | None, list[Received]] = defaultdict(list)
    by_cart: Counter[str] = Counter()
    for message in received:
        by_id[message.message_id].append(message)
        for rcpt in message.recipients:
            by_cart[rcpt.rpartition("@")[0]] += 1
    expected = set(cart_ids)
    first_rows = {row.cart_id: row for row in ledger if row.reminder_id == FIRST}
    sent_rows = {row.message_id: row for row in first_rows.values() if row.status == "sent"}

    out["messages"] = len(received)
    out["distinct_message_ids"] = len([k for k in by_id if k is not None])
    out["messages_without_message_id"] = len(by_id.get(None, []))
    extra_copies = sum(len(v) - 1 for k, v in by_id.items() if k is not None and len(v) > 1)
    out["duplicate_copies"] = extra_copies  # the same Message-ID received again
    more = sorted(cart for cart, n in by_cart.items() if n > 1)
    out["carts_with_more_than_one"] = len(more)
    one = [cart for cart in expected if by_cart.get(cart) == 1]
    lost = sorted(cart for cart in expected if not by_cart.get(cart))
    out["carts_exactly_one"] = len(one)
    out["carts_lost"] = len(lost)
    out["carts_lost_examples"] = lost[:10]
    out["unexpected_recipients"] = len(set(by_cart) - expected)
    # a second e-mail of a cart under another Message-ID is a duplicate too
    distinct_per_cart: dict[str, set[str | None]] = defaultdict(set)
    for message in received:
        for rcpt in message.recipients:
            distinct_per_cart[rcpt.rpartition("@")[0]].add(message.message_id)
    other_ids = sum(len(ids) - 1 for ids in distinct_per_cart.values() if len(ids) > 1)
    out["duplicates"] = extra_copies + other_ids

    statuses = Counter(row.status for row in first_rows.values())
    out["ledger"] = {
        "rows_first_reminder": len(first_rows),
        "by_status": dict(statuses),
        "skipped_by_reason": dict(
            Counter(row.reason for row in first_rows.values() if row.status == "skipped")
        ),
        "second_reminder_rows": sum(1 for row in ledger if row.reminder_id == SECOND),
        "sent_without_message": sum(1 for mid in sent_rows if mid not in by_id),
        "messages_without_sent_row": sum(
            1 for mid in by_id if mid is not None and mid not in sent_rows
        ),
        "carts_without_row": len(expected - set(first_rows)),
    }

    # lateness: the first copy of each message, received minus its due time
    lateness: list[float] = []
    for mid, copies in by_id.items():
        row = sent_rows.get(mid) if mid is not None else None
        if row is None or row.due_at is None:
            continue
        lateness.append(min(m.at for m in copies) - row.due_at.timestamp())
    out["lateness_s"] = _stats(lateness)

    dues = sorted(row.due_at.timestamp() for row in first_rows.values() if row.due_at)
    times = sorted(m.at for m in received)
    if dues:
        first_abandon, last_abandon = dues[0] - FIRST_DELAY_S, dues[-1] - FIRST_DELAY_S
        span = last_abandon - first_abandon
        out["abandonment"] = {
            "first": datetime.fromtimestamp(first_abandon, UTC).isoformat(),
            "window_s": round(span, 2),
            "carts_per_s": round(len(dues) / span, 1) if span > 0 else None,
        }
    if len(times) >= 2:
        span = times[-1] - times[0]
        out["received_span_s"] = round(span, 2)
        out["emails_per_s"] = round(len(times) / span, 2) if span > 0 else None
        if dues:
            end_to_end = times[-1] - (dues[0] - FIRST_DELAY_S)
            out["carts_per_s"] = round(len(one) / end_to_end, 2)
            out["first_abandonment_to_last_email_s"] = round(end_to_end, 2)
    # e-mails received per second of the run (from the first abandonment)
    if dues and times:
        start = dues[0] - FIRST_DELAY_S
        per_second: Counter[int] = Counter(int(t - start) for t in times)
        out["received_per_second"] = [per_second.get(s, 0) for s in range(max(per_second) + 1)]
    return out


async def reminders_phase(
    plan: Plan,
    client: Client,
    run_id: str,
    worker: WorkerProcess,
    meter: CpuMeter,
    sink: MailSink,
    database_url: str,
    state_dir: Path,
    say: Say,
) -> dict[str, Any]:
    """``database_url`` and ``state_dir``: the worker's read model and data directory."""
    n = plan.reminder_carts
    out: dict[str, Any] = {
        "carts": n,
        "abandon_rate": plan.abandon_rate,
        "first_delay_s": FIRST_DELAY_S,
        "mail_server": "bench.mailsink.MailSink (aiosmtpd, in memory, in the bench process)",
    }
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    try:
        out["campaign"] = await setup_campaign(sessions)
        say(f"reminders: SMTP probe ({PROBE_MESSAGES} messages to the sink and to MailCatcher)")
        out["smtp_probe"] = await smtp_probe(sink, PROBE_MESSAGES)
        out["floor"] = await mail_floor_phase(
            client, TASK_QUEUE, run_id, n, plan.abandon_rate, meter, sink, worker.rss_mb, say
        )
        await worker.collect_garbage()
        out["worker_rss_mb_empty"] = round(worker.rss_mb(), 1)

        creator = Creator(client, plan.reminder_concurrency)
        t0 = time.perf_counter()
        calibration_ids = await creator.many(
            REMINDERS_CALIBRATION_SHOP,
            lambda i: f"{run_id}-rc{i:05d}",
            None,
            until=t0 + plan.reminder_calibration_s,
        )
        calibrated = len(calibration_ids)
        # the rate once the first carts' projections run too (5 s after their change)
        since = t0 + min(
            CartPolicy().projection_interval_seconds + 1, plan.reminder_calibration_s / 2
        )
        steady = [t for t in creator.times if t >= since]
        rate = len(steady) / max(time.perf_counter() - since, 0.1)
        estimate = n / max(rate, 1.0)
        # a margin: the server slows down as it holds more carts, and the machine is shared
        first_slot = time.time() + estimate * CREATE_MARGIN + plan.reminder_lead_s
        slots = [first_slot + i / plan.abandon_rate for i in range(n)]
        out["calibration"] = {
            "carts": calibrated,
            "carts_per_s": round(rate, 1),
            "estimated_create_s": round(estimate, 1),
            "created_per_second": _per_second(creator.times, t0),
        }
        say(
            f"  calibration: {calibrated} carts at {rate:.1f}/s; creating {n} carts, the"
            f" first abandoned in {first_slot - time.time():.0f} s, the last"
            f" {slots[-1] - first_slot:.1f} s later"
        )

        cpu0, t0 = meter.snapshot(), time.perf_counter()
        created_ids = await creator.many(REMINDERS_SHOP, lambda i: f"{run_id}-r{i:05d}", n, slots)
        created = len(created_ids)
        create_s = time.perf_counter() - t0
        cpu = CpuMeter.delta(cpu0, meter.snapshot())
        out["create"] = {
            "created_per_second": _per_second(creator.times[calibrated:], t0),
            "created": created,
            "seconds": round(create_s, 1),
            "carts_per_s": round(created / create_s, 1),
            "cpu_ms_per_cart": {k: round(v * 1000 / max(created, 1), 1) for k, v in cpu.items()},
            "created_less_than_1s_before_its_slot": creator.late,
            "spare_before_first_abandonment_s": round(first_slot - time.time(), 1),
            "errors": dict(creator.errors),
            "failed": creator.failed[:20],
        }
        say(
            f"  {created} created in {create_s:.1f} s ({created / create_s:.1f}/s);"
            f" {first_slot - time.time():.1f} s until the first abandonment"
            + (f"; {creator.late} created late" if creator.late else "")
            + (f"  ERRORS {dict(creator.errors)}" if creator.errors else "")
        )

        await asyncio.sleep(max(first_slot - time.time(), 0))
        cpu0, t0 = meter.snapshot(), time.perf_counter()
        waited = await wait_for_mail(
            sink, created, slots[-1], plan.reminder_wait_s, STALL_S, worker.rss_mb, say
        )
        elapsed = time.perf_counter() - t0
        cpu = CpuMeter.delta(cpu0, meter.snapshot())
        out["wait"] = {**waited, "seconds": round(elapsed, 1)}
        if waited["ended"] == "complete":
            await asyncio.sleep(LINGER_S)  # late duplicates
        await worker.collect_garbage()
        await asyncio.sleep(1)
        out["worker_rss_mb"] = round(worker.rss_mb(), 1)

        received = list(sink.received)
        ledger = await _ledger(sessions)
        figures = tally(created_ids, received, ledger)
        out.update(figures)
        emails = max(figures["messages"], 1)
        out["cpu_s"] = cpu
        out["cpu_ms_per_email"] = {k: round(v * 1000 / emails, 1) for k, v in cpu.items()}
        out["cpu_utilisation"] = {k: round(v / elapsed, 2) for k, v in cpu.items()}
        late = figures["lateness_s"]
        say(
            f"  {figures['messages']} e-mails ({figures.get('emails_per_s')}/s), duplicates"
            f" {figures['duplicates']}, lost {figures['carts_lost']}; lateness p50"
            f" {late['p50']} s p99 {late['p99']} s max {late['max']} s; worker RSS"
            f" {out['worker_rss_mb']} MB; cpu ms/e-mail server"
            f" {out['cpu_ms_per_email']['server']} worker {out['cpu_ms_per_email']['worker']}"
            f" bench {out['cpu_ms_per_email']['client']} other {out['cpu_ms_per_email']['other']}"
        )

        say(f"  breakdown: histories of {plan.reminder_history_samples} carts, database probe")
        sent = sorted(
            (row for row in ledger if row.reminder_id == FIRST and row.due_at is not None),
            key=lambda row: row.due_at.timestamp() if row.due_at else 0.0,
        )
        out["breakdown"] = await history_breakdown(
            client, REMINDERS_SHOP, sent, received, plan.reminder_history_samples, FIRST_DELAY_S
        )
        out["db_probe"] = await db_probe(client, sessions, REMINDERS_SHOP, sent)
        if sent:
            say(f"  worker CPU: {PROBE_SENDS} sends in this process, {PROBE_REPLAYS} replays")
            settings = Settings(
                data_dir=state_dir,
                database_url=database_url,
                smtp_host=sink.host,
                smtp_port=sink.port,
            )
            out["send_probe"] = await send_probe(
                client, sessions, settings, REMINDERS_SHOP, sent[-1], PROBE_SENDS
            )
            step = max(len(sent) // PROBE_REPLAYS, 1)
            out["replay_probe"] = await replay_probe(
                client,
                REMINDERS_SHOP,
                [row.cart_id for row in sent[::step][:PROBE_REPLAYS]],
                (REMINDERS_CALIBRATION_SHOP, calibration_ids[:PROBE_REPLAYS]),
            )
            say(f"  send_probe {out['send_probe']}; replay_probe {out['replay_probe']}")
    finally:
        await engine.dispose()
    return out


def results_section(part: dict[str, Any] | None) -> dict[str, Any]:
    """The ``reminders`` figures of ``results.json`` (``None`` where it did not run)."""
    keys = (
        "emails_per_s",
        "duplicates",
        "lateness_p50_s",
        "lateness_p99_s",
        "lateness_max_s",
        "worker_rss_mb",
        "carts",
        "carts_lost",
        "carts_per_s",
        "abandon_window_s",
        "floor_emails_per_s",
        "floor_lateness_p99_s",
        "emails_per_s_vs_floor",
    )
    out: dict[str, Any] = dict.fromkeys(keys)
    if part is None:
        return out
    late = part.get("lateness_s", {})
    out.update(
        emails_per_s=part.get("emails_per_s"),
        duplicates=part.get("duplicates"),
        lateness_p50_s=late.get("p50"),
        lateness_p99_s=late.get("p99"),
        lateness_max_s=late.get("max"),
        worker_rss_mb=part.get("worker_rss_mb"),
        carts=part.get("create", {}).get("created"),
        carts_lost=part.get("carts_lost"),
        carts_per_s=part.get("carts_per_s"),
        abandon_window_s=part.get("abandonment", {}).get("window_s"),
    )
    floor = part.get("floor", {})
    out["floor_emails_per_s"] = floor.get("emails_per_s")
    out["floor_lateness_p99_s"] = floor.get("lateness_s", {}).get("p99")
    if out["emails_per_s"] and out["floor_emails_per_s"]:
        out["emails_per_s_vs_floor"] = round(out["emails_per_s"] / out["floor_emails_per_s"], 2)
    return out
