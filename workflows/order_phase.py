"""The order phase (DOMAIN.md section 3; seeds 000, 002, 003): once a cart is an order,
the same workflow carries it through the shop's letter-coded statuses until a ``final``
one, with its delivery, contents, payments and notes. Plain Python like the rest of the
machine: these functions apply events that ``workflows.order_checks`` accepted.

Statuses. Every status the order enters is an ``OrderStatusEntry`` (numbered from 1) that
keeps the name and colour the status had then. An admin's ``SetOrderStatus`` carries the
shop's registry (the workflow reads it first), so its entry is *resolved* at once; the
first entry of an order a payment created, and a status the order phase sets itself
(``wanted_status``: ``B`` when stock ran short, ``H`` on a partial payment while
Awaiting, ``P`` when the payments cover an Open order, ``O`` when a refund uncovers a
Processed one) wait for the workflow to read the registry (``OrderStatusesRead``).

Effects of a resolved entry, decided here and performed by the workflow:

- stock: a ``decrease`` status takes the order's lines once (nothing while the order
  holds stock); an ``increase`` status gives back what the order holds, and only that;
  a take that finds too little stock takes nothing and sets ``B``. Each move has a key
  (``order:<lineage>:<n>``) that the activity applies at most once, so retries, replays
  and a status set twice never move stock twice. New contents while the order holds
  stock: the old lines go back and the new ones are taken;
- e-mails: ``notify_customer`` / ``notify_department`` call for one ``StatusMail`` per
  entry and recipient (the activity's ledger sends each at most once).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from workflows.codes import (
    ORDER_STATUS_OPEN,
    ORDER_STATUS_PROCESSED,
    CartState,
    JournalKind,
    OrderSource,
    PaymentMethod,
    PaymentStatus,
)
from workflows.events import CartLine
from workflows.journal import SYSTEM, admin_actor, journal
from workflows.money import create_order, settle
from workflows.order_contract import REFUND_KIND
from workflows.order_events import (
    AddOrderNote,
    EditDelivery,
    EditOrderLines,
    OrderStatusesRead,
    RecordPayment,
    SetOrderStatus,
    StatusMailDone,
    StockMoved,
)
from workflows.order_state import (
    INVENTORY_DECREASE,
    INVENTORY_INCREASE,
    MAIL_PENDING,
    MAIL_SENT,
    MOVE_DONE,
    MOVE_PENDING,
    MOVE_SHORT,
    STOCK_GIVE_BACK,
    STOCK_TAKE,
    TO_CUSTOMER,
    TO_DEPARTMENT,
    Delivery,
    OrderStatusEntry,
    StatusDefinition,
    StatusMail,
    StockMove,
    StockQuantity,
)
from workflows.state import Cart, Order, PaymentAttempt

#: status entries an order keeps (the oldest go first; ``status_seq`` counts them all)
MAX_STATUS_ENTRIES = 100
#: stock moves and e-mails kept once done (pending ones are never dropped)
MAX_DONE_EFFECTS = 50
#: ``Delivery`` fields whose change needs a status with editable contents
DELIVERY_LOCKED_FIELDS = (
    "method",
    "cost",
    "recipient_name",
    "email",
    "phone",
    "country",
    "city",
    "postal_code",
    "address",
)
#: ``Delivery`` fields an admin may change in any status (the parcel's tracking code, a
#: comment)
DELIVERY_FREE_FIELDS = ("tracking_code", "comment")
#: what a "cancelled" move is marked (a give-back of a take that took nothing)
MOVE_CANCELLED = "cancelled"
#: a move the stock activity refused for good (recorded, nothing moved)
MOVE_FAILED = "failed"
BACKORDERED = "B"
AWAITING = "A"
AWAITING_WITH_PAYMENTS = "H"
NOT_FINISHED = "N"
#: a cart in these states is a not finished order (it reached the payment step): an
#: admin's status makes it an order (the shop chooses which of them its orders list
#: shows: ``activities.orders_query``)
NOT_FINISHED_STATES = frozenset({CartState.CHECKOUT, CartState.PAYMENT_PENDING, CartState.LOCKED})


def order_of(cart: Cart) -> Order:
    assert cart.order is not None
    return cart.order


# --------------------------------------------------------------------------- entering the phase


def manage(cart: Cart, now: datetime) -> bool:
    """The order (created by a payment or a confirmation) enters the order phase: its
    status becomes its first entry, resolved once the workflow has read the registry."""
    order = cart.order
    if order is None or order.managed:
        return False
    order.managed = True
    _enter(cart, order.status, SYSTEM, now, None, None)
    settle(cart, now)
    return True


def needs_statuses(cart: Cart) -> bool:
    """The workflow must read the shop's registry: an entry or a wanted status waits."""
    order = cart.order
    if order is None or not order.managed:
        return False
    unresolved = bool(order.statuses) and not order.statuses[-1].resolved
    return unresolved or order.wanted_status is not None


def statuses_read(cart: Cart, event: OrderStatusesRead, now: datetime) -> bool:
    order = order_of(cart)
    changed = False
    for entry in order.statuses:
        if entry.resolved:
            continue
        definition = event.statuses.find(entry.letter)
        current = entry is order.statuses[-1]
        if definition is None:
            # A letter the registry no longer has: kept as it is, without effects.
            entry.resolved = True
            entry.name = entry.name or entry.letter
            changed = True
            continue
        _resolve(cart, entry, definition, now, effects=current)
        changed = True
    wanted, order.wanted_status = order.wanted_status, None
    if wanted is not None:
        changed = True
        definition = event.statuses.find(wanted)
        # The payments may have changed again since it was wanted: only what they still
        # call for is entered.
        if definition is not None and wanted != order.status and still_wanted(order, wanted):
            _enter(cart, wanted, SYSTEM, now, definition, None)
    return changed


def still_wanted(order: Order, wanted: str) -> bool:
    """Whether the order's payments (or stock) still call for the status ``wanted``."""
    if wanted == ORDER_STATUS_PROCESSED:
        return order.paid and order.status == ORDER_STATUS_OPEN
    if wanted == ORDER_STATUS_OPEN:
        return not order.paid and order.status == ORDER_STATUS_PROCESSED
    if wanted == AWAITING_WITH_PAYMENTS:
        return not order.paid and order.amount_paid > 0 and order.status == AWAITING
    return True  # Backordered: the take that ran short decided it


# --------------------------------------------------------------------------- statuses


def set_status(cart: Cart, event: SetOrderStatus, now: datetime) -> bool:
    """An admin's status (checked against the registry by ``order_checks``). The same
    status again changes nothing."""
    assert event.statuses is not None
    letter = event.status.upper()
    definition = event.statuses.find(letter)
    assert definition is not None
    actor = admin_actor(event.admin)
    if cart.state in NOT_FINISHED_STATES:
        total = cart.total
        create_order(
            cart,
            now,
            source=OrderSource.ADMIN_STATUS,
            attempt_id=cart.current_attempt_id,
            managed=True,
            total=total,
        )
        journal(cart, now, JournalKind.CART_CONFIRMED, actor, event.note)
        order = order_of(cart)
        order.status = NOT_FINISHED
        _enter(cart, letter, actor, now, definition, event.note)
        settle(cart, now)
        return True
    order = order_of(cart)
    if not order.managed:
        order.managed = True
    current = order.statuses[-1] if order.statuses else None
    if current is not None and current.resolved and current.letter == letter:
        return False
    _enter(cart, letter, actor, now, definition, event.note)
    return True


def _enter(
    cart: Cart,
    letter: str,
    actor: str,
    now: datetime,
    definition: StatusDefinition | None,
    note: str | None,
) -> None:
    order = order_of(cart)
    before = order.status
    order.status_seq += 1
    entry = OrderStatusEntry(seq=order.status_seq, letter=letter, at=now, by=actor, note=note)
    order.statuses.append(entry)
    if len(order.statuses) > MAX_STATUS_ENTRIES:
        del order.statuses[0]
    order.status = letter
    order.wanted_status = None
    if definition is not None:
        _resolve(cart, entry, definition, now, effects=True)
    if order.statuses[0] is not entry or before != letter:
        journal(cart, now, JournalKind.ORDER_STATUS_CHANGED, actor, f"{before} -> {letter}")


def _resolve(
    cart: Cart,
    entry: OrderStatusEntry,
    definition: StatusDefinition,
    now: datetime,
    *,
    effects: bool,
) -> None:
    entry.resolved = True
    entry.name = definition.name
    entry.colour = definition.colour
    entry.final = definition.final
    entry.contents_editable = definition.contents_editable
    entry.inventory = definition.inventory
    if not effects:
        return
    order = order_of(cart)
    order.status_name = definition.name
    order.status_colour = definition.colour
    order.final = definition.final
    order.final_at = now if definition.final else None
    order.contents_editable = definition.contents_editable
    if definition.inventory == INVENTORY_DECREASE and order.stock_held is None:
        _take(cart, entry.seq)
    elif definition.inventory == INVENTORY_INCREASE and order.stock_held is not None:
        _give_back(cart, entry.seq)
    for recipient, wanted in (
        (TO_CUSTOMER, definition.notify_customer),
        (TO_DEPARTMENT, definition.notify_department),
    ):
        if wanted:
            order.mails.append(
                StatusMail(entry=entry.seq, recipient=recipient, letter=entry.letter)
            )
    _bound_done(order)


def payments_changed(cart: Cart) -> None:
    """What the payments call for once an admin runs the order: ``P`` when they cover an
    Open order, ``H`` (Awaiting with payments) when part of an Awaiting order is paid.
    (``O`` when a refund uncovers a Processed order: ``payment_recorded``; new lines or a
    delivery cost leave the status to the admin.)"""
    order = order_of(cart)
    for wanted in (ORDER_STATUS_PROCESSED, AWAITING_WITH_PAYMENTS):
        if still_wanted(order, wanted):
            order.wanted_status = wanted
            return
    if order.wanted_status is not None and not still_wanted(order, order.wanted_status):
        order.wanted_status = None  # e.g. a payment, then its refund, before the read


# --------------------------------------------------------------------------- stock


def _lines(cart: Cart) -> list[StockQuantity]:
    return [StockQuantity(sku=line.sku, quantity=line.quantity) for line in cart.lines]


def _move(cart: Cart, kind: str, lines: list[StockQuantity], entry: int) -> None:
    order = order_of(cart)
    order.stock_seq += 1
    key = f"order:{cart.lineage or cart.cart_id}:{order.stock_seq}"
    order.stock_moves.append(StockMove(key=key, kind=kind, lines=lines, entry=entry))


def _take(cart: Cart, entry: int) -> None:
    lines = _lines(cart)
    if lines:
        order_of(cart).stock_held = lines
        _move(cart, STOCK_TAKE, lines, entry)


def _give_back(cart: Cart, entry: int) -> None:
    order = order_of(cart)
    held, order.stock_held = order.stock_held, None
    if held:
        _move(cart, STOCK_GIVE_BACK, held, entry)


def next_stock_move(cart: Cart) -> StockMove | None:
    """The first move not done yet: moves run one at a time, in order."""
    order = cart.order
    if order is None:
        return None
    return next((m for m in order.stock_moves if m.outcome == MOVE_PENDING), None)


def stock_moved(cart: Cart, event: StockMoved, now: datetime) -> bool:
    order = order_of(cart)
    result = event.result
    move = next((m for m in order.stock_moves if m.key == result.key), None)
    if move is None or move.outcome != MOVE_PENDING:
        return False
    move.at = now
    described = ", ".join(f"{line.sku} x{line.quantity}" for line in move.lines)
    if result.outcome == MOVE_DONE:
        move.outcome = MOVE_DONE
        kind = JournalKind.STOCK_TAKEN if move.kind == STOCK_TAKE else JournalKind.STOCK_GIVEN_BACK
        journal(cart, now, kind, SYSTEM, described)
        return True
    if result.outcome != MOVE_SHORT:
        # Refused for good (the workflow records the activity's refusal): nothing moved.
        move.outcome = MOVE_FAILED
        journal(cart, now, JournalKind.STOCK_MOVE_FAILED, SYSTEM, result.detail or described)
        if move.kind == STOCK_TAKE:
            _nothing_taken(order, move)
        return True
    move.outcome = MOVE_SHORT
    move.short = list(result.short)
    journal(cart, now, JournalKind.STOCK_SHORT, SYSTEM, ", ".join(result.short) or described)
    first_take = _nothing_taken(order, move)
    current = order.statuses[-1] if order.statuses else None
    if (
        first_take is None
        and current is not None
        and current.inventory == INVENTORY_DECREASE
        and order.status != BACKORDERED
    ):
        order.wanted_status = BACKORDERED
    return True


def _nothing_taken(order: Order, move: StockMove) -> StockMove | None:
    """A take took nothing: no give-back may follow for it, and unless a later take is
    queued the order holds no stock. Returns that later take, if any."""
    # Nothing was taken: no give-back may follow for this take, and the order holds none.
    later = order.stock_moves[order.stock_moves.index(move) + 1 :]
    first_take = next((m for m in later if m.kind == STOCK_TAKE), None)
    for other in later:
        if other is first_take:
            break
        if other.kind == STOCK_GIVE_BACK and other.outcome == MOVE_PENDING:
            other.outcome = MOVE_CANCELLED
    if first_take is None:
        order.stock_held = None
    return first_take


# --------------------------------------------------------------------------- e-mails


def pending_mails(cart: Cart) -> list[StatusMail]:
    order = cart.order
    if order is None:
        return []
    return [mail for mail in order.mails if mail.outcome == MAIL_PENDING]


#: a status e-mail the relay has not taken this long after its status is given up
#: (``send_failed``): a relay down for good must not keep the order's workflow open
STATUS_MAIL_GIVE_UP = timedelta(hours=24)


def status_mail_given_up(cart: Cart, entry: int, now: datetime) -> bool:
    """Whether an e-mail for status entry ``entry`` that failed again is given up: its
    status was entered ``STATUS_MAIL_GIVE_UP`` ago or more (unknown entry: yes)."""
    order = cart.order
    status = next((e for e in order.statuses if e.seq == entry), None) if order else None
    return status is None or now - status.at >= STATUS_MAIL_GIVE_UP


def status_mail_done(cart: Cart, event: StatusMailDone, now: datetime) -> bool:
    order = order_of(cart)
    result = event.result
    mail = next(
        (m for m in order.mails if m.entry == result.entry and m.recipient == result.recipient),
        None,
    )
    if mail is None or mail.outcome != MAIL_PENDING:
        return False
    mail.outcome = MAIL_SENT if result.outcome == MAIL_SENT else result.outcome
    mail.at = now
    mail.message_id = result.message_id
    mail.reason = result.reason
    sent = mail.outcome == MAIL_SENT
    kind = JournalKind.STATUS_MAIL_SENT if sent else JournalKind.STATUS_MAIL_SKIPPED
    detail = f"{mail.letter} to the {mail.recipient}"
    if not sent:
        detail += f": {result.reason or 'not sent'}"
    journal(cart, now, kind, SYSTEM, detail)
    _bound_done(order)
    return True


def _bound_done(order: Order) -> None:
    """Keep the last ``MAX_DONE_EFFECTS`` finished moves and e-mails (never a pending one)."""
    moves = [m for m in order.stock_moves if m.outcome != MOVE_PENDING]
    for move in moves[: max(len(moves) - MAX_DONE_EFFECTS, 0)]:
        order.stock_moves.remove(move)
    mails = [m for m in order.mails if m.outcome != MAIL_PENDING]
    for mail in mails[: max(len(mails) - MAX_DONE_EFFECTS, 0)]:
        order.mails.remove(mail)


def effects_pending(cart: Cart) -> bool:
    """A stock move, an e-mail or a registry read waits: the workflow may not retire."""
    return needs_statuses(cart) or next_stock_move(cart) is not None or bool(pending_mails(cart))


# --------------------------------------------------------------------------- delivery, lines,
# payments, notes


def delivery_edited(cart: Cart, event: EditDelivery, now: datetime) -> bool:
    order = order_of(cart)
    delivery = order.delivery or Delivery()
    changed = []
    for name, value in event.changes.items():
        if getattr(delivery, name) != value:
            setattr(delivery, name, value)
            changed.append(name)
    if not changed:
        return False
    order.delivery = delivery
    detail = ", ".join(changed) + (f": {event.note}" if event.note else "")
    journal(cart, now, JournalKind.ORDER_DELIVERY_CHANGED, admin_actor(event.admin), detail)
    if "cost" in changed:
        _retotal(cart, now)
    return True


def lines_edited(cart: Cart, event: EditOrderLines, now: datetime) -> bool:
    order = order_of(cart)
    new_lines = [CartLine(ln.sku, ln.name, ln.quantity, ln.unit_price) for ln in event.lines]
    if new_lines == cart.lines:
        return False
    actor = admin_actor(event.admin)
    before = cart.total
    cart.lines = new_lines
    cart.contents_version += 1
    journal(
        cart,
        now,
        JournalKind.ORDER_LINES_CHANGED,
        actor,
        f"{len(new_lines)} line(s), {before} -> {cart.total}"
        + (f": {event.note}" if event.note else ""),
    )
    if order.stock_held is not None:
        entry = order.statuses[-1].seq if order.statuses else 0
        _give_back(cart, entry)
        _take(cart, entry)
    _retotal(cart, now)
    return True


def _retotal(cart: Cart, now: datetime) -> None:
    order = order_of(cart)
    order.total = cart.total + (order.delivery.cost if order.delivery else 0)
    settle(cart, now)


def payment_recorded(cart: Cart, event: RecordPayment, now: datetime) -> bool:
    order = order_of(cart)
    refund = event.kind == REFUND_KIND
    attempt = PaymentAttempt(
        attempt_id=f"{event.kind}-{cart.version + 1}",
        status=PaymentStatus.SUCCEEDED,
        amount=event.amount,
        method=PaymentMethod.MANUAL,
        gateway="admin",
        currency=event.currency,
        started_at=now,
        result_at=now,
        results=[PaymentStatus.SUCCEEDED],
        cart_total=order.total,
        contents_version=cart.contents_version,
        succeeded_amount=event.amount,
        succeeded_currency=event.currency,
        confirmed_by=event.admin,
        refund=refund,
        reference=event.reference,
    )
    cart.payments.append(attempt)
    actor = admin_actor(event.admin)
    kind = JournalKind.REFUND_RECORDED if refund else JournalKind.PAYMENT_RECORDED
    detail = f"{attempt.attempt_id} {event.amount} {event.currency}"
    if event.reference:
        detail += f" ({event.reference})"
    if event.note:
        detail += f": {event.note}"
    journal(cart, now, kind, actor, detail)
    settle(cart, now, attempt_id=None if refund else attempt.attempt_id, actor=actor)
    if refund and order.managed and still_wanted(order, ORDER_STATUS_OPEN):
        order.wanted_status = ORDER_STATUS_OPEN  # a refund uncovered a Processed order
    return True


def note_added(cart: Cart, event: AddOrderNote, now: datetime) -> bool:
    journal(cart, now, JournalKind.ORDER_NOTE_ADDED, admin_actor(event.admin), event.note)
    return True
