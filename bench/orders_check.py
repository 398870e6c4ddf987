"""The orders part's checks (``bench/orders.py`` runs them): the orders' status histories
against the statuses the admins set, the SMTP sink's messages against one per (order,
entry, recipient) that the default registry calls for, the worker log's warnings and the
workflow histories' failed or timed-out tasks; and the part's ``results.json`` figures and
summary lines.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from temporalio.api.enums.v1 import EventType, TimeoutType

from activities.admin_mail import notice_message_id
from activities.order_statuses import DEFAULT_STATUSES
from activities.settings import Settings
from bench.mailsink import MailSink
from bench.plan import ORDERS_SHOP
from starter.client import CartkeeperClient
from starter.workerprocess import WorkerProcess
from workflows.order_state import MAIL_PENDING, MOVE_PENDING, TO_CUSTOMER, TO_DEPARTMENT
from workflows.state import Cart

#: the shop's orders department (``CARTKEEPER_ORDER_DEPARTMENTS``)
DEPARTMENT = "orders@bench.example.com"
CUSTOMER_DOMAIN = "customers.example.com"
#: who gets an e-mail when an order enters each status (the default registry)
NOTIFIES: dict[str, tuple[str, ...]] = {
    s.letter: tuple(
        r
        for r, wanted in ((TO_CUSTOMER, s.notify_customer), (TO_DEPARTMENT, s.notify_department))
        if wanted
    )
    for s in DEFAULT_STATUSES
}
#: after the last effect is done, wait this long for late duplicate e-mails
LINGER_S = 3.0
#: examples of each kind of problem kept in the details
EXAMPLES = 5


@dataclass
class BenchOrder:
    cart_id: str
    walk: tuple[str, ...]
    email: str
    #: the letters of its history after the setup (``P``: the payment covered it)
    setup_letters: list[str] = field(default_factory=list)
    lineage: str = ""
    #: the letters the admins set (accepted)
    accepted: list[str] = field(default_factory=list)
    #: a refusal or error stopped its walk (the call and its answer)
    stopped: str | None = None

    @property
    def walk_done(self) -> bool:
        return self.stopped is not None or len(self.accepted) >= len(self.walk)


def settled(cart: Cart) -> bool:
    """The order has its number, every entry resolved, no status wanted, and its stock
    moves and e-mails done."""
    order = cart.order
    if order is None or order.number is None or not order.statuses:
        return False
    return (
        all(e.resolved for e in order.statuses)
        and order.wanted_status is None
        and not any(m.outcome == MOVE_PENDING for m in order.stock_moves)
        and not any(m.outcome == MAIL_PENDING for m in order.mails)
    )


def check_orders(
    orders: list[BenchOrder], latest: dict[str, Cart], sink: MailSink, settings: Settings
) -> dict[str, Any]:
    """Histories against the statuses set; e-mails against one per (order, entry,
    recipient) that the default registry calls for."""
    received: Counter[str] = Counter()
    recipients_of: dict[str, set[str]] = {}
    no_id = 0
    for message in sink.received:
        if message.message_id is None:
            no_id += 1
            continue
        received[message.message_id] += 1
        recipients_of.setdefault(message.message_id, set()).update(message.recipients)
    problems: dict[str, list[str]] = {}

    def note(kind: str, text: str) -> None:
        examples = problems.setdefault(kind, [])
        if len(examples) < EXAMPLES:
            examples.append(text)

    lost = extra = out_of_order = unresolved = 0
    expected_ids: set[str] = set()
    missing = duplicates = wrong_recipient = ledger_mismatch = 0
    outcomes: Counter[str] = Counter()
    for order in orders:
        cart = latest.get(order.cart_id)
        if cart is None or cart.order is None:
            lost += len(order.setup_letters) + len(order.accepted)
            note("unreadable", order.cart_id)
            continue
        entries = cart.order.statuses
        letters = [e.letter for e in entries]
        expected = order.setup_letters + order.accepted
        missing_letters = Counter(expected) - Counter(letters)
        extra_letters = Counter(letters) - Counter(expected)
        lost += sum(missing_letters.values())
        extra += sum(extra_letters.values())
        if letters != expected:
            out_of_order += 1
            note("history", f"{order.cart_id}: expected {expected}, has {letters}")
        unresolved += sum(not e.resolved for e in entries)
        records = {(m.entry, m.recipient): m for m in cart.order.mails}
        address = {TO_CUSTOMER: order.email, TO_DEPARTMENT: DEPARTMENT}
        for entry in entries:
            for recipient in NOTIFIES.get(entry.letter, ()):
                key = f"status:{order.cart_id}:{order.lineage}:{entry.seq}:{recipient}"
                message_id = notice_message_id(ORDERS_SHOP, key, settings)
                expected_ids.add(message_id)
                record = records.get((entry.seq, recipient))
                outcomes[f"{recipient} {record.outcome if record else 'no record'}"] += 1
                if record is not None and record.message_id not in (None, message_id):
                    ledger_mismatch += 1
                    note("ledger", f"{key}: the cart recorded {record.message_id}")
                count = received.get(message_id, 0)
                if count == 0:
                    missing += 1
                    note("missing", f"{key} ({entry.letter})")
                elif count > 1:
                    duplicates += count - 1
                    note("duplicate", f"{key} ({entry.letter}) x{count}")
                if count and recipients_of[message_id] != {address[recipient]}:
                    wrong_recipient += 1
                    note("recipient", f"{key}: to {sorted(recipients_of[message_id])}")
    unexpected = sum(c for mid, c in received.items() if mid not in expected_ids)
    return {
        "orders_checked": len(orders),
        "status_entries_expected": sum(len(o.setup_letters) + len(o.accepted) for o in orders),
        "lost_entries": lost,
        "extra_entries": extra,
        "histories_differing": out_of_order,
        "unresolved_entries": unresolved,
        "emails_expected": len(expected_ids),
        "emails_received": len(sink.received),
        "missing_emails": missing,
        "duplicate_emails": duplicates,
        "unexpected_emails": unexpected,
        "messages_without_id": no_id,
        "wrong_recipient": wrong_recipient,
        "ledger_message_id_mismatch": ledger_mismatch,
        "mail_outcomes_in_carts": dict(outcomes),
        "walks_stopped": sum(o.stopped is not None for o in orders),
        "walks_not_finished": sum(not o.walk_done for o in orders),
        "examples": problems,
    }


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def worker_log_problems(worker: WorkerProcess) -> dict[str, Any]:
    """The worker log's warnings and errors, the Python logger's and the SDK core's,
    counted by kind; the first few with their exception (a traceback's last line)."""
    try:
        lines = [
            _ANSI.sub("", ln) for ln in worker.log_path.read_text(errors="replace").splitlines()
        ]
    except OSError:
        return {}
    kinds: Counter[str] = Counter()
    first: list[str] = []
    for i, line in enumerate(lines):
        if " WARNING " in line or " ERROR " in line:  # the Python logger's records
            kind = " ".join(line.split()[2:7])
            found = re.search(r"'activity_type': '(\w+)'", line)
            if found:
                kind += f" ({found.group(1)})"
            exception = None
            for following in lines[i + 1 : i + 400]:
                if following[:4].isdigit() and following[4:5] == "-":
                    break  # the next record
                if following and not following.startswith((" ", "Traceback")):
                    exception = following
            text = f"{line[:300]} -> {exception}" if exception else line[:300]
            kinds[f"{kind} -> {exception}" if exception else kind] += 1
        elif " WARN " in line or " ERROR " in line:  # the SDK core's (Rust) lines
            message = line.split(": ", 1)[-1]
            kind = f"core: {message.split(' error=')[0].split(' task_token=')[0][:120]}"
            kinds[kind] += 1
            text = line[:300]
        else:
            continue
        if len(first) < EXAMPLES:
            first.append(text)
    return {"records": sum(kinds.values()), "by_kind": dict(kinds.most_common(12)), "first": first}


# --------------------------------------------------------------------------- the part


RESULT_KEYS = (
    "status_changes_per_s",
    "status_change_p99_ms",
    "status_change_p50_ms",
    "note_updates_per_s",
    "note_update_p99_ms",
    "ratio",
    "refused",
    "duplicate_emails",
    "missing_emails",
    "lost_entries",
)

#: the counts that must be 0 (the part's targets; the throughput has none)
ORDERS_ZERO_KEYS = ("refused", "duplicate_emails", "missing_emails", "lost_entries")


def results_section(part: dict[str, Any] | None) -> dict[str, Any]:
    """The ``orders`` figures of ``results.json`` (``None`` where not measured)."""
    out: dict[str, Any] = dict.fromkeys(RESULT_KEYS)
    if part is None:
        return out
    status, notes, check = part["status_changes"], part["note_updates"], part["check"]
    refused = sum(status["refused"].values()) + sum(status["errors"].values())
    refused += sum(notes["refused"].values()) + sum(notes["errors"].values())
    out.update(
        status_changes_per_s=status["per_s"],
        status_change_p99_ms=status["p99_ms"],
        status_change_p50_ms=status["p50_ms"],
        note_updates_per_s=notes["per_s"],
        note_update_p99_ms=notes["p99_ms"],
        ratio=(
            round(status["per_s"] / notes["per_s"], 3)
            if status["per_s"] and notes["per_s"]
            else None
        ),
        refused=refused,
        duplicate_emails=check["duplicate_emails"],
        missing_emails=check["missing_emails"],
        lost_entries=check["lost_entries"] + check["extra_entries"],
    )
    return out


def print_orders(results: dict[str, Any], details: dict[str, Any], mark: Any) -> None:
    """The part's lines of the summary."""
    section = results.get("orders") or {}
    if section.get("status_changes_per_s") is None:
        return
    part = details.get("orders", {})
    kept = results["environment"].get("kept_from_previous", {}).get("orders")
    print("-" * 78)
    print(
        f"orders       {part.get('setup', {}).get('orders_ready', '?')} orders,"
        f" {part.get('status_changes', {}).get('calls_accepted', '?')} status changes by"
        f" {details.get('environment', {}).get('plan', {}).get('orders_admins', '?')} admins"
        + (f" (kept from the run of {kept['date']})" if kept else "")
    )
    print(
        f"             status changes {section['status_changes_per_s']}/s (p50"
        f" {section['status_change_p50_ms']} ms, p99 {section['status_change_p99_ms']} ms);"
        f" notes {section['note_updates_per_s']}/s (p99 {section['note_update_p99_ms']} ms);"
        f" ratio {section['ratio']} (no target)"
    )
    print(
        f"             refused {section['refused']} ({mark('orders.refused')}), lost entries"
        f" {section['lost_entries']} ({mark('orders.lost_entries')}), e-mails missing"
        f" {section['missing_emails']} ({mark('orders.missing_emails')}), duplicates"
        f" {section['duplicate_emails']} ({mark('orders.duplicate_emails')})"
    )
    tails = part.get("effects_tail_s")
    if tails:
        print(
            f"             e-mails and stock moves done {', '.join(f'{t} s' for t in tails)}"
            " after the status rounds' last answers"
        )
    cpu = part.get("status_changes", {}).get("cpu_ms_per_call")
    cpu_notes = part.get("note_updates", {}).get("cpu_ms_per_call")
    if cpu and cpu_notes:
        print(
            f"             cpu ms/status change server {cpu['server']}, worker {cpu['worker']};"
            f" per note server {cpu_notes['server']}, worker {cpu_notes['worker']}"
        )


#: history events that mean a workflow task or an activity had to be tried again
_TROUBLE = (
    "WORKFLOW_TASK_TIMED_OUT",
    "WORKFLOW_TASK_FAILED",
    "ACTIVITY_TASK_TIMED_OUT",
    "ACTIVITY_TASK_FAILED",
)


async def history_probe(
    carts: CartkeeperClient, orders: list[BenchOrder], phases: list[tuple[str, float]]
) -> dict[str, Any]:
    """Every order's history: its size, and the workflow tasks and activities that timed
    out or failed (each a retry: a slow call), by kind (a workflow task's timeout type:
    ``SCHEDULE_TO_START`` is the sticky queue's, then a full replay; ``START_TO_CLOSE``
    a task that ran past the workflow task timeout) and by the part's phase it fell in
    (``phases``: name and start, ``time.time()``, in order)."""
    gate = asyncio.Semaphore(20)
    totals: Counter[str] = Counter()
    by_phase: Counter[str] = Counter()
    sizes: list[int] = []
    examples: list[str] = []
    unread = 0

    def phase_at(at: float) -> str:
        name = "before"
        for phase, start in phases:
            if at >= start:
                name = phase
        return name

    async def one(order: BenchOrder) -> None:
        nonlocal unread
        async with gate:
            handle = carts.handle(ORDERS_SHOP, order.cart_id)
            try:
                history = await handle.fetch_history()
            except Exception:
                unread += 1
                return
        sizes.append(len(history.events))
        found: Counter[str] = Counter()
        for event in history.events:
            name = str(EventType.Name(event.event_type)).removeprefix("EVENT_TYPE_")  # type: ignore[arg-type]
            if name == "WORKFLOW_TASK_COMPLETED":
                totals[name] += 1
            if name not in _TROUBLE:
                continue
            if name == "WORKFLOW_TASK_TIMED_OUT":
                kind = TimeoutType.Name(event.workflow_task_timed_out_event_attributes.timeout_type)
                name += f" {kind.removeprefix('TIMEOUT_TYPE_')}"
            found[name] += 1
            by_phase[f"{phase_at(event.event_time.ToMicroseconds() / 1e6)}: {name}"] += 1
        totals.update(found)
        if found and len(examples) < EXAMPLES:
            examples.append(f"{order.cart_id}: {dict(found)}")

    await asyncio.gather(*(one(o) for o in orders))
    return {
        "histories": len(sizes),
        "unreadable": unread,
        "events_mean": round(sum(sizes) / len(sizes), 1) if sizes else None,
        "events_max": max(sizes) if sizes else None,
        "totals": dict(totals),
        "by_phase": dict(sorted(by_phase.items())),
        "examples": examples,
        "note": "the last run of each order's workflow",
    }
