"""The orders part (the "Orders" issue, point 14): ``orders.status_changes_per_s`` for 50
admins changing statuses at once, with its p99 latency, against a baseline of the same run
(the same admins sending ``add_order_note``, an update that reads no registry and starts
no activity, to the same orders for the same duration).

1. Setup (not timed): ``plan.orders`` carts of shop ``bench-orders`` taken through an
   online payment that succeeds (``update_cart`` with start, ``identify_customer`` with an
   address of their own, ``start_checkout``, ``start_payment``, ``report_payment_result``,
   ``await_order``), then polled (``get_cart``) until every order has its number, its
   first status resolved (``P``: the payment covers the order) and its stock moves and
   e-mails done.
2. Status changes (measured): ``plan.orders_admins`` admins (asyncio tasks) take orders
   from a queue (no order is held by two admins at once) and move each one step along
   its walk (``WALKS``: A-R-S-V for even orders, A-H-I for odd ones; none counts as paid,
   ``V`` and ``I`` are final and end the walk), putting it back until its walk is done.
   A window ends with its last answer; every call's latency (client send to the update's
   answer), refusals and errors. Every order's effects are then waited for (polled until
   its stock moves and e-mails are done: ``effects_tail_s``).
3. Notes (the baseline): the same admins send ``add_order_note`` to the same orders, taken
   the same way, for as long as the status window before took.
4. Steps 2 and 3 run twice, interleaved (status, notes, status, notes: the first status
   round takes every walk two steps, the second to its end), so that a disturbance of
   the machine that comes and goes is shared by both kinds.
5. The checks (``bench.orders_check``): each order's status history against the statuses
   set; the SMTP sink's messages against one per (order, entry, recipient) that the
   default registry's flags call for (the Message-ID is derived from that key,
   ``activities.admin_mail.notice_message_id``); the worker log; the workflow histories'
   timed-out or failed tasks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from activities.settings import Settings
from bench.kinds import LINE_A, LINE_B, TOTAL
from bench.mailsink import MailSink
from bench.mailsink import worker_env as relay_env
from bench.measure import CpuMeter, percentile, rounded
from bench.orders_check import (
    CUSTOMER_DOMAIN,
    DEPARTMENT,
    EXAMPLES,
    LINGER_S,
    BenchOrder,
    check_orders,
    history_probe,
    settled,
    worker_log_problems,
)
from bench.plan import ORDERS_SHOP, Plan
from starter.client import CartkeeperClient
from starter.client_errors import CartkeeperError
from starter.workerprocess import WorkerProcess
from workflows.contract import CustomerInfo
from workflows.state import Cart

Say = Callable[[str], None]

#: the walks from ``P`` (where a paid order starts); accepted by the default registry:
#: no status of them counts as paid, and the last one is final
WALKS: tuple[tuple[str, ...], ...] = (("A", "R", "S", "V"), ("A", "H", "I"))
#: the status rounds: how far each takes the walks (``None``: to their end)
STATUS_ROUNDS: tuple[int | None, ...] = (2, None)
#: after a window, before the next: the carts' projections are written (at once for a
#: cart an admin acts on, else 5 s after a change) and the e-mails of a late duplicate
GAP_S = 6.0
#: the slowest calls kept in the details
SLOWEST = 10


def worker_env(sink: MailSink) -> dict[str, str]:
    """The part's worker settings: the sink is its SMTP relay, and the shop has an orders
    department (else its department e-mails are skipped, ``no_department``)."""
    return {
        **relay_env(sink),
        "CARTKEEPER_ORDER_DEPARTMENTS": json.dumps({ORDERS_SHOP: [DEPARTMENT]}),
    }


@dataclass
class Window:
    """One measured window: latencies, refusals and errors, throughput."""

    name: str
    latencies_ms: list[float] = field(default_factory=list)
    #: seconds from the window's start at which each answer came
    answered_at: list[float] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)
    #: (ms, answered at, what) of every accepted call
    calls: list[tuple[float, float, str]] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)

    def answered(self, start: float, end: float, t0: float, what: str) -> None:
        ms = (end - start) * 1000
        self.latencies_ms.append(ms)
        self.answered_at.append(end - t0)
        self.calls.append((round(ms, 1), round(end - t0, 2), what))

    @classmethod
    def merge(cls, name: str, windows: list[Window]) -> Window:
        """The rounds of one kind as one window (the seconds and CPU added up)."""
        out = cls(name)
        offset = 0.0
        for window in windows:
            out.latencies_ms += window.latencies_ms
            out.answered_at += [offset + t for t in window.answered_at]
            out.calls += window.calls
            out.refused.update(window.refused)
            out.errors.update(window.errors)
            out.examples += window.examples[: EXAMPLES - len(out.examples)]
            for key, value in window.cpu_s.items():
                out.cpu_s[key] = round(out.cpu_s.get(key, 0.0) + value, 3)
            offset += window.seconds
            out.seconds += window.seconds
            round_summary = window.summary()
            out.rounds.append(
                {k: round_summary[k] for k in ("calls_accepted", "seconds", "per_s", "p50_ms")}
                | {k: round_summary[k] for k in ("p99_ms", "refused", "errors")}
            )
        return out

    def failed(self, what: str, error: BaseException) -> str:
        if isinstance(error, CartkeeperError):
            self.refused[str(error.code)] += 1
        else:
            self.errors[type(error).__name__] += 1
        text = f"{what} -> {type(error).__name__}: {error}"[:400]
        if len(self.examples) < EXAMPLES:
            self.examples.append(text)
        return text

    def summary(self) -> dict[str, Any]:
        calls = len(self.latencies_ms)
        per_second = Counter(int(t) for t in self.answered_at)
        return {
            "calls_accepted": calls,
            "seconds": round(self.seconds, 2),
            "per_s": round(calls / self.seconds, 2) if self.seconds else None,
            "p50_ms": rounded(percentile(self.latencies_ms, 50)),
            "p90_ms": rounded(percentile(self.latencies_ms, 90)),
            "p99_ms": rounded(percentile(self.latencies_ms, 99)),
            "max_ms": rounded(max(self.latencies_ms) if self.latencies_ms else None),
            "mean_ms": rounded(sum(self.latencies_ms) / calls if calls else None),
            "refused": dict(self.refused),
            "errors": dict(self.errors),
            "examples": self.examples,
            "cpu_s": self.cpu_s,
            "cpu_ms_per_call": {
                k: round(v * 1000 / calls, 2) for k, v in self.cpu_s.items() if calls
            },
            "cpu_utilisation": {
                k: round(v / self.seconds, 2) for k, v in self.cpu_s.items() if self.seconds
            },
            "answered_per_second": [per_second.get(s, 0) for s in range(int(self.seconds) + 1)],
            "slowest": sorted(self.calls, reverse=True)[:SLOWEST],
            "rounds": self.rounds,
        }


# --------------------------------------------------------------------------- setup


async def _create_order(carts: CartkeeperClient, order: BenchOrder) -> None:
    shop, cart_id = ORDERS_SHOP, order.cart_id
    attempt = f"{cart_id}-pay1"
    customer = CustomerInfo(email=order.email, name="Bench Customer", locale="en", logged_in=True)
    await carts.update_cart(shop, cart_id, [dataclasses.replace(LINE_A, quantity=2), LINE_B], "EUR")
    await carts.identify_customer(shop, cart_id, customer)
    await carts.start_checkout(shop, cart_id)
    await carts.start_payment(
        shop,
        cart_id,
        attempt_id=attempt,
        method="online",
        gateway="benchpay",
        amount=TOTAL,
        currency="EUR",
    )
    await carts.report_payment_result(
        shop,
        cart_id,
        attempt_id=attempt,
        status="succeeded",
        amount=TOTAL,
        currency="EUR",
        card_last4="4242",
        gateway="benchpay",
    )
    view = await carts.await_order(shop, cart_id, 60)
    if view.order_number is None:
        raise RuntimeError(f"{cart_id}: no order number after await_order")


async def _gather_limited(calls: list[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    """Run ``calls`` ``limit`` at a time; each one's result or exception."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            try:
                return await call()
            except Exception as error:
                return error

    return await asyncio.gather(*(one(c) for c in calls))


async def settle(
    carts: CartkeeperClient,
    orders: list[BenchOrder],
    timeout_s: float,
    say: Say,
    failures: Counter[str] | None = None,
) -> tuple[dict[str, Cart], float, list[str]]:
    """Poll every order (``get_cart``) until each is ``settled``: the carts, the seconds
    it took, the orders still not settled at ``timeout_s``. A query that fails is tried
    again at the next poll (``failures`` counts them)."""
    started = time.perf_counter()
    latest: dict[str, Cart] = {}
    waiting = [o.cart_id for o in orders]
    next_report = started + 15
    while waiting:
        answers = await _gather_limited(
            [functools.partial(carts.get_cart, ORDERS_SHOP, c) for c in waiting], 20
        )
        still = []
        for cart_id, answer in zip(waiting, answers, strict=True):
            if isinstance(answer, Cart):
                latest[cart_id] = answer
                if settled(answer):
                    continue
            elif failures is not None:
                failures[f"{type(answer).__name__}: {answer}"[:120]] += 1
            still.append(cart_id)
        waiting = still
        now = time.perf_counter()
        if not waiting or now - started > timeout_s:
            break
        if now >= next_report:
            say(f"  settling: {len(orders) - len(waiting)}/{len(orders)} orders settled")
            next_report = now + 15
        await asyncio.sleep(2.0)  # (each poll is a query per order on the worker)
    return latest, time.perf_counter() - started, waiting


async def setup_orders(
    plan: Plan, carts: CartkeeperClient, run_id: str, say: Say
) -> tuple[list[BenchOrder], dict[str, Any]]:
    orders = [
        BenchOrder(
            cart_id=f"{run_id}-o{n:05d}",
            walk=WALKS[n % len(WALKS)],
            email=f"{run_id}-o{n:05d}@{CUSTOMER_DOMAIN}",
        )
        for n in range(plan.orders)
    ]
    say(f"orders: setup, {plan.orders} orders through a payment ({plan.orders_admins} at a time)")
    t0 = time.perf_counter()
    answers = await _gather_limited(
        [functools.partial(_create_order, carts, o) for o in orders], plan.orders_admins
    )
    created_s = time.perf_counter() - t0
    failed = Counter(
        f"{type(a).__name__}: {a}"[:160] for a in answers if isinstance(a, BaseException)
    )
    ok = [o for o, a in zip(orders, answers, strict=True) if not isinstance(a, BaseException)]
    say(f"  {len(ok)} orders in {created_s:.1f} s; waiting for their statuses and e-mails")
    carts_now, settle_s, unsettled = await settle(carts, ok, plan.orders_settle_s, say)
    ready = []
    for order in ok:
        cart = carts_now.get(order.cart_id)
        if order.cart_id in unsettled or cart is None or cart.order is None:
            continue
        order.setup_letters = [e.letter for e in cart.order.statuses]
        order.lineage = cart.lineage or ""
        ready.append(order)
    info = {
        "orders_requested": plan.orders,
        "orders_ready": len(ready),
        "create_s": round(created_s, 1),
        "create_per_s": round(len(ok) / created_s, 2) if created_s else None,
        "create_errors": dict(failed),
        "settle_s": round(settle_s, 1),
        "not_settled": unsettled[:EXAMPLES],
        "not_settled_count": len(unsettled),
        "histories_after_setup": dict(Counter("".join(o.setup_letters) for o in ready)),
    }
    return ready, info


# --------------------------------------------------------------------------- the windows


async def status_window(
    carts: CartkeeperClient,
    orders: list[BenchOrder],
    admins: int,
    max_s: float,
    upto: int | None,
) -> Window:
    """Every order walked ``upto`` steps from its start (``None``: to its end) or until
    ``max_s``, ``admins`` at a time."""
    window = Window("status_changes")

    def due(order: BenchOrder) -> bool:
        end = len(order.walk) if upto is None else min(upto, len(order.walk))
        return order.stopped is None and len(order.accepted) < end

    queue: asyncio.Queue[BenchOrder | None] = asyncio.Queue()
    active = 0
    for order in orders:
        if due(order):
            queue.put_nowait(order)
            active += 1
    if not active:
        return window
    t0 = time.perf_counter()
    deadline = t0 + max_s

    async def admin(index: int) -> None:
        nonlocal active
        name = f"admin-{index:02d}"
        while True:
            order = await queue.get()
            if order is None or time.perf_counter() > deadline:
                return
            letter = order.walk[len(order.accepted)]
            start = time.perf_counter()
            try:
                await carts.set_order_status(
                    ORDERS_SHOP, order.cart_id, letter, admin=name, note=f"bench: {letter}"
                )
            except Exception as error:
                order.stopped = window.failed(
                    f"set_order_status({ORDERS_SHOP!r}, {order.cart_id!r}, {letter!r},"
                    f" admin={name!r}, note='bench: {letter}') after {order.accepted}",
                    error,
                )
            else:
                window.answered(start, time.perf_counter(), t0, f"{order.cart_id} {letter}")
                order.accepted.append(letter)
            if due(order):
                queue.put_nowait(order)
                continue
            active -= 1
            if active == 0:
                for _ in range(admins):
                    queue.put_nowait(None)

    await asyncio.gather(*(admin(i) for i in range(admins)))
    window.seconds = time.perf_counter() - t0
    return window


async def note_window(
    carts: CartkeeperClient, orders: list[BenchOrder], admins: int, seconds: float
) -> Window:
    """``add_order_note`` to the orders, taken the same way, for ``seconds``."""
    window = Window("note_updates")
    queue: deque[BenchOrder] = deque(orders)
    t0 = time.perf_counter()
    deadline = t0 + seconds
    sent = 0

    async def admin(index: int) -> None:
        nonlocal sent
        name = f"admin-{index:02d}"
        while time.perf_counter() < deadline and queue:
            order = queue.popleft()
            sent += 1
            note = f"bench note {sent} by {name}"
            start = time.perf_counter()
            try:
                await carts.add_order_note(ORDERS_SHOP, order.cart_id, note, admin=name)
            except Exception as error:
                window.failed(
                    f"add_order_note({ORDERS_SHOP!r}, {order.cart_id!r}, {note!r}, admin={name!r})",
                    error,
                )
            else:
                window.answered(start, time.perf_counter(), t0, f"{order.cart_id} note")
            queue.append(order)

    await asyncio.gather(*(admin(i) for i in range(admins)))
    window.seconds = time.perf_counter() - t0
    return window


async def measured(meter: CpuMeter, run: Callable[[], Awaitable[Window]]) -> Window:
    cpu0 = meter.snapshot()
    window = await run()
    window.cpu_s = CpuMeter.delta(cpu0, meter.snapshot())
    return window


def _window_text(window: Window) -> str:
    figures = window.summary()
    return (
        f"{figures['calls_accepted']} in {window.seconds:.1f} s: {figures['per_s']}/s,"
        f" p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms; refused"
        f" {dict(window.refused)}, errors {dict(window.errors)}"
    )


# --------------------------------------------------------------------------- the part


async def orders_phase(
    plan: Plan,
    carts: CartkeeperClient,
    run_id: str,
    worker: WorkerProcess,
    meter: CpuMeter,
    sink: MailSink,
    say: Say,
) -> dict[str, Any]:
    started = time.perf_counter()
    # (the worker's settings: its Message-IDs are derived from the same domain)
    settings = Settings(order_departments={ORDERS_SHOP: [DEPARTMENT]})
    phases = [("setup", time.time())]
    orders, setup = await setup_orders(plan, carts, run_id, say)
    out: dict[str, Any] = {"shop": ORDERS_SHOP, "walks": ["".join(w) for w in WALKS]}
    out["setup"] = setup
    out["emails_after_setup"] = len(sink.received)
    if not orders:
        raise RuntimeError(f"no order is ready after the setup: {setup}")
    await asyncio.sleep(GAP_S)

    changes = sum(len(o.walk) for o in orders)
    say(
        f"orders: {plan.orders_admins} admins, {changes} status changes on {len(orders)}"
        f" orders in {len(STATUS_ROUNDS)} rounds, each followed by as long of notes"
    )
    status_rounds: list[Window] = []
    note_rounds: list[Window] = []
    tails: list[float] = []
    latest: dict[str, Cart] = {}
    query_failures: Counter[str] = Counter()
    for r, upto in enumerate(STATUS_ROUNDS, start=1):
        phases.append((f"{r} status window", time.time()))
        status = await measured(
            meter,
            functools.partial(
                status_window, carts, orders, plan.orders_admins, plan.orders_max_window_s, upto
            ),
        )
        status_rounds.append(status)
        say(f"  round {r} status changes: {_window_text(status)}")
        phases.append((f"{r} status effects tail", time.time()))
        latest, tail_s, unsettled = await settle(
            carts, orders, plan.orders_settle_s, say, query_failures
        )
        phases.append((f"{r} gaps", time.time()))
        tails.append(round(tail_s, 1))
        say(
            f"  round {r}: effects done {tail_s:.1f} s after the window"
            + (f"; {len(unsettled)} orders NOT settled" if unsettled else "")
        )
        await asyncio.sleep(GAP_S)
        phases.append((f"{r} notes window", time.time()))
        notes = await measured(
            meter,
            functools.partial(note_window, carts, orders, plan.orders_admins, status.seconds),
        )
        note_rounds.append(notes)
        phases.append((f"{r} gaps", time.time()))
        say(f"  round {r} notes:          {_window_text(notes)}")
        await asyncio.sleep(GAP_S)

    status_all = Window.merge("status_changes", status_rounds)
    notes_all = Window.merge("note_updates", note_rounds)
    out["status_changes"] = status_all.summary()
    out["note_updates"] = notes_all.summary()
    out["effects_tail_s"] = tails
    out["status_changes"]["per_s_with_effects_tail"] = round(
        len(status_all.latencies_ms) / (status_all.seconds + sum(tails)), 2
    )
    phases.append(("checks", time.time()))
    say("orders: checking histories and e-mails")
    latest, _, unsettled = await settle(carts, orders, plan.orders_settle_s, say)
    await asyncio.sleep(LINGER_S)
    out["effects_not_settled"] = len(unsettled)
    out["get_cart_failures_while_polling"] = dict(query_failures)
    out["check"] = check = check_orders(orders, latest, sink, settings)
    say(
        f"  lost entries {check['lost_entries']}, extra {check['extra_entries']}; e-mails"
        f" {check['emails_received']} (expected {check['emails_expected']}), missing"
        f" {check['missing_emails']}, duplicates {check['duplicate_emails']}, unexpected"
        f" {check['unexpected_emails']}"
    )
    out["histories"] = await history_probe(carts, orders, phases)
    out["worker_log"] = worker_log_problems(worker)
    out["worker_rss_mb"] = round(worker.rss_mb(), 1)
    out["part_s"] = round(time.perf_counter() - started, 1)
    return out
