"""The order phase of the state machine (``workflows.order_phase``, ``order_checks``): plain
Python, no Temporal. Statuses with the shop's registry, every refusal, stock taken and
given back once, status e-mails once per entry, payments and refunds, delivery and
contents, and when the workflow may retire. A stateful property test drives random
admin actions and effect answers and checks the stock and e-mail invariants after each.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from activities.order_status_rules import DEFAULT_STATUSES
from workflows.codes import CartState, ErrorCode, JournalKind, PaymentMethod, PaymentStatus
from workflows.events import (
    CartLine,
    CartUpdated,
    CheckoutStarted,
    PaymentResultReported,
    PaymentStarted,
)
from workflows.machine import CartRefused, apply, check
from workflows.order_contract import (
    OrderStatuses,
    StatusMailResult,
    StockMoveResult,
)
from workflows.order_events import (
    AddOrderNote,
    EditDelivery,
    EditOrderLines,
    OrderManaged,
    OrderStatusesRead,
    RecordPayment,
    SetOrderStatus,
    StatusMailDone,
    StockMoved,
)
from workflows.order_phase import (
    STATUS_MAIL_GIVE_UP,
    effects_pending,
    needs_statuses,
    next_stock_move,
    status_mail_given_up,
)
from workflows.order_state import StatusDefinition
from workflows.state import Cart, CartPolicy
from workflows.timers import is_retired

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
EUR = "EUR"


def registry(**changes: dict[str, Any]) -> OrderStatuses:
    """The default statuses, with ``changes`` per letter."""
    statuses = []
    for status in DEFAULT_STATUSES:
        definition = StatusDefinition(
            letter=status.letter,
            name=status.name,
            colour=status.colour,
            paid=status.paid,
            final=status.final,
            notify_customer=status.notify_customer,
            notify_department=status.notify_department,
            inventory=status.inventory,
            contents_editable=status.contents_editable,
            hidden=status.hidden,
        )
        statuses.append(dataclasses.replace(definition, **changes.get(status.letter, {})))
    return OrderStatuses(statuses=statuses, version=1)


DEFAULTS = registry()


class Shop:
    """One cart, a clock, and the effects the workflow would perform."""

    def __init__(self, *, policy: CartPolicy | None = None) -> None:
        self.cart = Cart(
            shop_id="shop", cart_id="cart", lineage="run-1", policy=policy or CartPolicy()
        )
        self.now = T0
        #: stock levels (a SKU missing: not tracked)
        self.stock: dict[str, int] = {}
        self.moved: set[str] = set()

    def do(self, *events: object) -> Shop:
        for event in events:
            self.now += timedelta(seconds=1)
            apply(self.cart, event, self.now)
        return self

    def refused(self, event: object) -> ErrorCode:
        version = self.cart.version
        with pytest.raises(CartRefused) as refused:
            self.do(event)
        assert self.cart.version == version, "a refusal changes nothing"
        return refused.value.code

    # -- reaching an order

    def paid_order(self, total: int = 2000, *, lines: list[CartLine] | None = None) -> Shop:
        items = lines or [CartLine("tea", "Tea", 2, total // 2)]
        total = sum(line.subtotal for line in items)
        return self.do(
            CartUpdated(items, EUR),
            CheckoutStarted(),
            PaymentStarted("att-1", PaymentMethod.ONLINE, "stripe", total),
            PaymentResultReported("att-1", PaymentStatus.SUCCEEDED, total, EUR),
            OrderManaged(),
            OrderStatusesRead(DEFAULTS),
        )

    def offline_order(self, total: int = 2000) -> Shop:
        return self.do(
            CartUpdated([CartLine("tea", "Tea", 2, total // 2)], EUR),
            CheckoutStarted(),
            PaymentStarted("bank-1", PaymentMethod.OFFLINE, "bank", total),
            OrderManaged(),
            OrderStatusesRead(DEFAULTS),
        )

    def status(self, letter: str, statuses: OrderStatuses = DEFAULTS, **kw: object) -> Shop:
        return self.do(SetOrderStatus(admin="ann", status=letter, statuses=statuses, **kw))  # type: ignore[arg-type]

    # -- the workflow's effects

    def run_effects(self) -> Shop:
        """Answer the pending effects as the activities would (stock by key, once)."""
        while True:
            if needs_statuses(self.cart):
                self.do(OrderStatusesRead(DEFAULTS))
                continue
            move = next_stock_move(self.cart)
            if move is not None:
                self.do(StockMoved(self._move(move)))
                continue
            order = self.cart.order
            assert order is not None
            pending = [m for m in order.mails if m.outcome == "pending"]
            if not pending:
                return self
            mail = pending[0]
            self.do(StatusMailDone(StatusMailResult(mail.entry, mail.recipient, "sent", "<id>")))

    def _move(self, move: object) -> StockMoveResult:
        assert hasattr(move, "key")
        key, kind, lines = move.key, move.kind, move.lines  # type: ignore[attr-defined]
        if key in self.moved:
            return StockMoveResult(key, "done")
        short = [
            ln.sku for ln in lines if kind == "take" and self.stock.get(ln.sku, 10**9) < ln.quantity
        ]
        if short:
            return StockMoveResult(key, "short", short=short)
        for line in lines:
            if line.sku in self.stock:
                self.stock[line.sku] += -line.quantity if kind == "take" else line.quantity
        self.moved.add(key)
        return StockMoveResult(key, "done")

    @property
    def order(self):  # type: ignore[no-untyped-def]
        assert self.cart.order is not None
        return self.cart.order


# --------------------------------------------------------------------------- entering the phase


def test_a_paid_order_enters_the_phase_as_processed_and_waits_for_the_registry() -> None:
    shop = Shop().do(
        CartUpdated([CartLine("tea", "Tea", 2, 1000)], EUR),
        CheckoutStarted(),
        PaymentStarted("att-1", PaymentMethod.ONLINE, "stripe", 2000),
        PaymentResultReported("att-1", PaymentStatus.SUCCEEDED, 2000, EUR),
    )
    assert shop.order.status == "P" and not shop.order.managed
    assert not needs_statuses(shop.cart)
    shop.do(OrderManaged())
    assert shop.order.managed and needs_statuses(shop.cart)
    [entry] = shop.order.statuses
    assert (entry.seq, entry.letter, entry.resolved, entry.by) == (1, "P", False, "system")
    assert shop.cart.retire_at is None, "an order in the phase stays open until a final status"
    shop.do(OrderStatusesRead(DEFAULTS))
    assert not needs_statuses(shop.cart)
    assert (shop.order.status_name, shop.order.status_colour) == ("Processed", "#43a047")
    # P takes the stock and tells the customer and the department.
    [move] = shop.order.stock_moves
    assert (move.kind, move.key, [(ln.sku, ln.quantity) for ln in move.lines]) == (
        "take",
        "order:run-1:1",
        [("tea", 2)],
    )
    assert [(m.entry, m.recipient) for m in shop.order.mails] == [
        (1, "customer"),
        (1, "department"),
    ]


def test_a_status_mail_is_given_up_a_day_after_its_status() -> None:
    shop = Shop().do(
        CartUpdated([CartLine("tea", "Tea", 2, 1000)], EUR),
        CheckoutStarted(),
        PaymentStarted("att-1", PaymentMethod.ONLINE, "stripe", 2000),
        PaymentResultReported("att-1", PaymentStatus.SUCCEEDED, 2000, EUR),
        OrderManaged(),
    )
    at = shop.order.statuses[0].at
    assert not status_mail_given_up(shop.cart, 1, at + STATUS_MAIL_GIVE_UP - timedelta(seconds=1))
    assert status_mail_given_up(shop.cart, 1, at + STATUS_MAIL_GIVE_UP)
    assert status_mail_given_up(shop.cart, 99, at), "no such entry: nothing to wait for"


def test_managing_twice_changes_nothing() -> None:
    shop = Shop().paid_order()
    version = shop.cart.version
    shop.do(OrderManaged())
    assert shop.cart.version == version


def test_an_offline_order_is_open_and_moves_to_processed_when_paid() -> None:
    shop = Shop().offline_order().run_effects()
    assert shop.order.status == "O" and not shop.order.paid
    shop.do(
        RecordPayment(admin="ann", kind="payment", amount=2000, currency=EUR, reference="bank 7")
    )
    assert shop.order.paid and shop.order.wanted_status == "P"
    shop.run_effects()
    assert shop.order.status == "P" and [e.letter for e in shop.order.statuses] == ["O", "P"]
    assert shop.order.statuses[-1].by == "system"
    # O took the stock already: P takes nothing more.
    assert [m.kind for m in shop.order.stock_moves] == ["take"]


# --------------------------------------------------------------------------- statuses


def test_an_admin_takes_the_order_to_delivered_and_the_workflow_may_retire() -> None:
    shop = Shop(policy=CartPolicy(retire_after_seconds=3600)).paid_order().run_effects()
    for letter in "ARSV":
        shop.status(letter).run_effects()
    assert [e.letter for e in shop.order.statuses] == ["P", "A", "R", "S", "V"]
    assert [e.by for e in shop.order.statuses] == ["system"] + ["admin:ann"] * 4
    assert shop.order.final and shop.order.status_name == "Delivered"
    # an hour after the last change (the last e-mail's answer came after the status)
    assert shop.cart.updated_at is not None and shop.order.final_at is not None
    assert shop.order.final_at < shop.cart.updated_at
    assert shop.cart.retire_at == shop.cart.updated_at + timedelta(seconds=3600)
    assert not is_retired(shop.cart, shop.now)
    assert is_retired(shop.cart, shop.now + timedelta(seconds=3600))
    kinds = [e.kind for e in shop.cart.journal]
    assert kinds.count(JournalKind.ORDER_STATUS_CHANGED) == 4
    # every decrease status after the first took nothing more
    assert [m.kind for m in shop.order.stock_moves] == ["take"]
    # R, S and V tell the customer (A does not)
    assert [(m.entry, m.recipient) for m in shop.order.mails if m.entry > 1] == [
        (3, "customer"),
        (4, "customer"),
        (5, "customer"),
    ]


def test_the_same_status_twice_is_one_entry() -> None:
    shop = Shop().paid_order().run_effects().status("A").run_effects()
    version = shop.cart.version
    shop.status("A")
    assert shop.cart.version == version and len(shop.order.statuses) == 2


@pytest.mark.parametrize(
    ("letter", "statuses", "code"),
    [
        ("N", None, ErrorCode.STATUS_HIDDEN),
        ("n", DEFAULTS, ErrorCode.STATUS_HIDDEN),
        ("Q", DEFAULTS, ErrorCode.UNKNOWN_STATUS),
        ("AB", None, ErrorCode.INVALID_STATUS),
        ("", None, ErrorCode.INVALID_STATUS),
        ("1", None, ErrorCode.INVALID_STATUS),
        ("Z", registry(), ErrorCode.UNKNOWN_STATUS),
    ],
)
def test_a_status_the_shop_does_not_allow_is_refused(
    letter: str, statuses: OrderStatuses | None, code: ErrorCode
) -> None:
    shop = Shop().paid_order().run_effects()
    assert shop.refused(SetOrderStatus(admin="ann", status=letter, statuses=statuses)) == code


def test_a_custom_hidden_status_is_refused() -> None:
    hidden = OrderStatuses(
        [*DEFAULTS.statuses, StatusDefinition("X", "Secret", "#000000", hidden=True)]
    )
    shop = Shop().paid_order().run_effects()
    assert (
        shop.refused(SetOrderStatus(admin="ann", status="X", statuses=hidden))
        == ErrorCode.STATUS_HIDDEN
    )


def test_a_paid_status_needs_the_payments() -> None:
    shop = Shop().offline_order().run_effects()
    assert shop.refused(SetOrderStatus(admin="ann", status="C", statuses=DEFAULTS)) == (
        ErrorCode.PAYMENT_REQUIRED
    )
    shop.do(RecordPayment(admin="ann", kind="payment", amount=2000, currency=EUR)).run_effects()
    shop.status("C")
    assert shop.order.status == "C" and shop.order.final


def test_status_refused_outside_an_order() -> None:
    shop = Shop().do(CartUpdated([CartLine("tea", "Tea", 1, 100)], EUR))
    code = shop.refused(SetOrderStatus(admin="ann", status="A", statuses=DEFAULTS))
    assert code == ErrorCode.NOT_AN_ORDER
    assert shop.refused(AddOrderNote(admin="ann", note="hello")) == ErrorCode.NOT_AN_ORDER
    assert (
        shop.refused(RecordPayment(admin="ann", amount=1, currency=EUR)) == ErrorCode.NOT_AN_ORDER
    )


def test_the_validator_checks_what_it_can_without_the_registry() -> None:
    shop = Shop().paid_order().run_effects()
    check(shop.cart, SetOrderStatus(admin="ann", status="Q"))  # unknown only with the registry
    with pytest.raises(CartRefused) as refused:
        check(shop.cart, SetOrderStatus(admin="", status="A"))
    assert refused.value.code == ErrorCode.INVALID_INPUT


# --------------------------------------------------------------------------- not finished orders


def locked_cart() -> Shop:
    shop = Shop(policy=CartPolicy(lock_after_seconds=60)).do(
        CartUpdated([CartLine("tea", "Tea", 2, 1000)], EUR),
        CheckoutStarted(),
        PaymentStarted("att-1", PaymentMethod.ONLINE, "stripe", 2000),
        PaymentResultReported("att-1", PaymentStatus.PENDING, 2000, EUR),
    )
    assert shop.cart.state is CartState.LOCKED
    return shop


def test_a_not_finished_order_becomes_an_order_when_an_admin_sets_its_status() -> None:
    shop = locked_cart()
    assert shop.cart.order is None
    shop.status("A", note="customer called")
    assert shop.cart.state is CartState.ORDERED
    assert shop.order.managed and shop.order.number is None, "the projection numbers it"
    assert [(e.letter, e.by, e.note) for e in shop.order.statuses] == [
        ("A", "admin:ann", "customer called")
    ]
    assert shop.order.contents_editable and not shop.order.paid
    assert str(shop.order.source) == "admin_status"
    changed = [e for e in shop.cart.journal if e.kind is JournalKind.ORDER_STATUS_CHANGED]
    assert [e.detail for e in changed] == ["N -> A"]


def test_an_empty_locked_cart_cannot_become_an_order() -> None:
    shop = locked_cart()
    shop.cart.lines = []
    assert (
        shop.refused(SetOrderStatus(admin="ann", status="A", statuses=DEFAULTS))
        == ErrorCode.CART_EMPTY
    )


# --------------------------------------------------------------------------- stock


def test_stock_is_taken_once_and_given_back_once() -> None:
    shop = Shop()
    shop.stock = {"tea": 5}
    shop.paid_order().run_effects()
    assert shop.stock == {"tea": 3}
    shop.status("A").run_effects().status("R").run_effects()
    assert shop.stock == {"tea": 3}
    shop.status("I").run_effects()
    assert shop.stock == {"tea": 5}
    assert shop.order.stock_held is None
    # Cancelled again (another increase status): nothing more is given back.
    shop.status("D").run_effects()
    assert shop.stock == {"tea": 5}
    # Reopened: taken again, with a new key.
    shop.status("O").run_effects()
    assert shop.stock == {"tea": 3}
    keys = [m.key for m in shop.order.stock_moves]
    assert keys == ["order:run-1:1", "order:run-1:2", "order:run-1:3"]


def test_a_repeated_stock_answer_changes_nothing() -> None:
    shop = Shop().paid_order()
    move = next_stock_move(shop.cart)
    assert move is not None
    shop.do(StockMoved(StockMoveResult(move.key, "done")))
    version = shop.cart.version
    shop.do(
        StockMoved(StockMoveResult(move.key, "done")), StockMoved(StockMoveResult("nope", "done"))
    )
    assert shop.cart.version == version


def test_an_order_without_stock_becomes_backordered_and_gives_nothing_back() -> None:
    shop = Shop()
    shop.stock = {"tea": 1}
    shop.paid_order().run_effects()
    assert shop.order.status == "B"
    assert [e.letter for e in shop.order.statuses] == ["P", "B"]
    assert shop.stock == {"tea": 1} and shop.order.stock_held is None
    assert [m.outcome for m in shop.order.stock_moves] == ["short"]
    short = [e for e in shop.cart.journal if e.kind is JournalKind.STOCK_SHORT]
    assert [e.detail for e in short] == ["tea"]
    # Cancelled: nothing to give back (nothing was taken).
    shop.status("I").run_effects()
    assert shop.stock == {"tea": 1} and len(shop.order.stock_moves) == 1
    # Restocked and reopened: taken now.
    shop.stock["tea"] = 4
    shop.status("O").run_effects()
    assert shop.stock == {"tea": 2} and shop.order.status == "O"


def test_a_give_back_queued_behind_a_short_take_is_cancelled() -> None:
    shop = Shop()
    shop.stock = {"tea": 0}
    shop.paid_order()  # the take is pending
    shop.status("I")  # cancelled before the take's answer: a give-back is queued
    assert [m.kind for m in shop.order.stock_moves] == ["take", "give_back"]
    shop.run_effects()
    assert [m.outcome for m in shop.order.stock_moves] == ["short", "cancelled"]
    assert shop.order.status == "I", "no Backordered once the order was cancelled"
    assert shop.stock == {"tea": 0}


def test_new_contents_give_the_old_lines_back_and_take_the_new() -> None:
    shop = Shop()
    shop.stock = {"tea": 10, "cup": 10}
    shop.paid_order().run_effects().status("A").run_effects()
    shop.do(
        EditOrderLines(
            admin="ann",
            lines=[CartLine("tea", "Tea", 1, 1000), CartLine("cup", "Cup", 3, 500)],
        )
    ).run_effects()
    assert shop.stock == {"tea": 9, "cup": 7}
    assert shop.order.total == 2500 and shop.order.balance == 500 and not shop.order.paid
    assert shop.order.status == "H", "a partial payment while Awaiting: Awaiting with payments"


# --------------------------------------------------------------------------- contents, delivery


def test_contents_change_only_while_the_status_allows_it() -> None:
    shop = Shop().paid_order().run_effects()
    lines = EditOrderLines(admin="ann", lines=[CartLine("tea", "Tea", 1, 1000)])
    assert shop.refused(lines) == ErrorCode.CONTENTS_NOT_EDITABLE  # P
    shop.status("A").do(lines)
    assert shop.order.total == 1000 and shop.order.balance == -1000
    shop.status("S")
    assert shop.refused(lines) == ErrorCode.CONTENTS_NOT_EDITABLE
    assert shop.refused(EditOrderLines(admin="ann", lines=[])) == ErrorCode.CONTENTS_NOT_EDITABLE
    shop.status("A")
    assert shop.refused(EditOrderLines(admin="ann", lines=[])) == ErrorCode.CART_EMPTY


def test_delivery_fields_and_their_cost() -> None:
    shop = Shop().paid_order().run_effects()
    # The tracking code and the comment in any status; the rest while contents are editable.
    shop.do(EditDelivery(admin="ann", changes={"tracking_code": "JJD1", "comment": "back door"}))
    assert shop.refused(EditDelivery(admin="ann", changes={"city": "Berlin"})) == (
        ErrorCode.CONTENTS_NOT_EDITABLE
    )
    shop.status("A").do(
        EditDelivery(
            admin="ann",
            changes={"method": "dhl", "cost": 500, "country": "DE", "city": "Berlin"},
        )
    )
    delivery = shop.order.delivery
    assert delivery is not None
    assert (delivery.method, delivery.cost, delivery.tracking_code, delivery.city) == (
        "dhl",
        500,
        "JJD1",
        "Berlin",
    )
    assert shop.order.total == 2500 and shop.order.balance == 500
    shop.do(EditDelivery(admin="ann", changes={"comment": None}))
    assert shop.order.delivery is not None and shop.order.delivery.comment is None


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"cost": -1},
        {"cost": "5"},
        {"country": "Germany"},
        {"email": "not-an-address"},
        {"phone": "call me"},
        {"method": "no spaces allowed"},
        {"city": ""},
        {"address": "x" * 501},
        {"colour": "red"},
    ],
)
def test_bad_delivery_fields_are_refused(changes: dict[str, object]) -> None:
    shop = Shop().paid_order().run_effects().status("A")
    assert shop.refused(EditDelivery(admin="ann", changes=changes)) == ErrorCode.INVALID_DELIVERY


# --------------------------------------------------------------------------- payments, notes


def test_payments_and_refunds() -> None:
    shop = Shop().offline_order().run_effects().status("A")
    shop.do(RecordPayment(admin="ann", amount=500, currency=EUR, reference="bank 1")).run_effects()
    assert shop.order.amount_paid == 500 and shop.order.status == "H"
    assert shop.refused(RecordPayment(admin="ann", amount=500, currency="USD")) == (
        ErrorCode.CURRENCY_MISMATCH
    )
    assert shop.refused(RecordPayment(admin="ann", kind="refund", amount=501, currency=EUR)) == (
        ErrorCode.REFUND_EXCEEDS_PAID
    )
    assert (
        shop.refused(RecordPayment(admin="ann", amount=0, currency=EUR)) == ErrorCode.INVALID_AMOUNT
    )
    assert shop.refused(RecordPayment(admin="ann", kind="gift", amount=1, currency=EUR)) == (
        ErrorCode.INVALID_PAYMENT
    )
    shop.do(RecordPayment(admin="ann", kind="refund", amount=200, currency=EUR))
    assert shop.order.amount_paid == 300 and shop.order.balance == 1700
    refund = shop.cart.payments[-1]
    assert refund.refund and refund.confirmed_by == "ann" and refund.method is PaymentMethod.MANUAL
    kinds = [e.kind for e in shop.cart.journal]
    assert JournalKind.PAYMENT_RECORDED in kinds and JournalKind.REFUND_RECORDED in kinds


def test_a_refund_uncovers_a_processed_order() -> None:
    shop = Shop().paid_order().run_effects()
    shop.do(RecordPayment(admin="ann", kind="refund", amount=2000, currency=EUR)).run_effects()
    assert not shop.order.paid and shop.order.status == "O"


def test_notes_go_to_the_journal_with_the_admin() -> None:
    shop = Shop().paid_order().run_effects().do(AddOrderNote(admin="bob", note="called"))
    last = shop.cart.journal[-1]
    assert (last.kind, last.actor, last.detail) == (
        JournalKind.ORDER_NOTE_ADDED,
        "admin:bob",
        "called",
    )
    assert shop.refused(AddOrderNote(admin="bob")) == ErrorCode.INVALID_INPUT
    assert (
        locked_cart().do(AddOrderNote(admin="bob", note="waiting")).cart.state is CartState.LOCKED
    )


# --------------------------------------------------------------------------- e-mails


def test_each_status_entry_calls_for_its_e_mails_once() -> None:
    shop = Shop().paid_order()
    [customer, department] = shop.order.mails
    shop.do(StatusMailDone(StatusMailResult(1, "customer", "sent", "<m1>")))
    shop.do(StatusMailDone(StatusMailResult(1, "department", "skipped", reason="no_department")))
    version = shop.cart.version
    shop.do(StatusMailDone(StatusMailResult(1, "customer", "sent", "<m2>")))
    assert shop.cart.version == version
    assert (customer.outcome, customer.message_id) == ("sent", "<m1>")
    assert (department.outcome, department.reason) == ("skipped", "no_department")
    # I (Cancelled) again after an entry in between: a new entry, new e-mails.
    shop.run_effects().status("I").run_effects().status("O").run_effects().status("I")
    entries = [(m.entry, m.recipient) for m in shop.order.mails if m.letter == "I"]
    assert entries == [(2, "customer"), (2, "department"), (4, "customer"), (4, "department")]


def test_the_workflow_may_not_retire_while_effects_wait() -> None:
    shop = Shop(policy=CartPolicy(retire_after_seconds=0)).paid_order()
    shop.status("C")
    assert effects_pending(shop.cart)
    shop.run_effects()
    assert not effects_pending(shop.cart)
    assert is_retired(shop.cart, shop.now)


def test_a_renamed_status_keeps_the_name_it_had_in_the_history() -> None:
    shop = Shop().paid_order().run_effects().status("A")
    renamed = registry(A={"name": "Waiting for us"})
    shop.status("R", statuses=renamed).status("A", statuses=renamed)
    assert [e.name for e in shop.order.statuses] == [
        "Processed",
        "Awaiting",
        "Preparing shipment",
        "Waiting for us",
    ]


# --------------------------------------------------------------------------- property


class OrderMachine(RuleBasedStateMachine):
    """Random admin actions and effect answers (in any order) on one order."""

    def __init__(self) -> None:
        super().__init__()
        self.shop = Shop()
        self.shop.stock = {"tea": 3, "cup": 100}
        self.shop.paid_order(lines=[CartLine("tea", "Tea", 2, 500), CartLine("cup", "Cup", 1, 300)])
        self.initial = dict(self.shop.stock)

    @rule(letter=st.sampled_from("OPCAHRSVBYFDIX"))
    def set_status(self, letter: str) -> None:
        try:
            self.shop.status(letter)
        except CartRefused as refused:
            assert refused.code in (ErrorCode.UNKNOWN_STATUS, ErrorCode.PAYMENT_REQUIRED)

    @rule(quantity=st.integers(1, 4))
    def edit_lines(self, quantity: int) -> None:
        try:
            self.shop.do(EditOrderLines(admin="ann", lines=[CartLine("tea", "Tea", quantity, 500)]))
        except CartRefused as refused:
            assert refused.code is ErrorCode.CONTENTS_NOT_EDITABLE

    @rule(restock=st.integers(0, 5))
    def restock(self, restock: int) -> None:
        self.shop.stock["tea"] += restock
        self.initial["tea"] += restock

    @precondition(lambda self: next_stock_move(self.shop.cart) is not None)
    @rule()
    def answer_a_move(self) -> None:
        move = next_stock_move(self.shop.cart)
        assert move is not None
        self.shop.do(StockMoved(self.shop._move(move)))

    @precondition(lambda self: needs_statuses(self.shop.cart))
    @rule()
    def read_the_registry(self) -> None:
        self.shop.do(OrderStatusesRead(DEFAULTS))

    @rule()
    def settle_everything(self) -> None:
        self.shop.run_effects()

    @invariant()
    def stock_never_goes_negative_nor_is_held_twice(self) -> None:
        assert all(level >= 0 for level in self.shop.stock.values())
        # What the shop lacks is exactly what the order's done takes hold, minus give-backs.
        order = self.shop.order
        held: dict[str, int] = {}
        for move in order.stock_moves:
            if move.outcome != "done":
                continue
            for line in move.lines:
                sign = 1 if move.kind == "take" else -1
                held[line.sku] = held.get(line.sku, 0) + sign * line.quantity
        for sku, level in self.shop.stock.items():
            assert self.initial[sku] - level == held.get(sku, 0)
            assert held.get(sku, 0) >= 0

    @invariant()
    def one_e_mail_per_entry_and_recipient(self) -> None:
        keys = [(m.entry, m.recipient) for m in self.shop.order.mails]
        assert len(keys) == len(set(keys))

    @invariant()
    def the_current_status_is_the_last_entry(self) -> None:
        order = self.shop.order
        assert order.statuses[-1].letter == order.status
        assert [e.seq for e in order.statuses] == sorted({e.seq for e in order.statuses})


TestOrderMachine = OrderMachine.TestCase
TestOrderMachine.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)


# --------------------------------------------------------------------------- the payment step


def test_a_cart_at_the_payment_step_can_become_an_order_and_others_cannot() -> None:
    at_form = Shop().do(CartUpdated([CartLine("tea", "Tea", 1, 500)], EUR), CheckoutStarted())
    assert at_form.cart.payment_step_at == at_form.now
    at_form.status("O")
    assert at_form.cart.state is CartState.ORDERED and at_form.cart.payment_step_at is None
    at_gateway = Shop().do(
        CartUpdated([CartLine("tea", "Tea", 1, 500)], EUR),
        PaymentStarted("att-1", PaymentMethod.ONLINE, "stripe", 500),
    )
    at_gateway.status("Y")
    assert at_gateway.order.status == "Y" and at_gateway.order.attempt_id == "att-1"
    # the payment's success still counts for the order
    at_gateway.do(PaymentResultReported("att-1", PaymentStatus.SUCCEEDED, 500, EUR))
    assert at_gateway.order.paid and at_gateway.order.status == "Y"
    shopping = Shop().do(CartUpdated([CartLine("tea", "Tea", 1, 500)], EUR))
    assert shopping.refused(SetOrderStatus(admin="ann", status="O", statuses=DEFAULTS)) == (
        ErrorCode.NOT_AN_ORDER
    )


def test_payment_step_at_is_kept_while_at_the_payment_step() -> None:
    shop = Shop().do(CartUpdated([CartLine("tea", "Tea", 1, 500)], EUR), CheckoutStarted())
    since = shop.now
    shop.do(
        PaymentStarted("att-1", PaymentMethod.ONLINE, "stripe", 500),
        PaymentResultReported("att-1", PaymentStatus.FAILED, 500, EUR),
    )
    assert shop.cart.state is CartState.CHECKOUT and shop.cart.payment_step_at == since
    shop.do(PaymentStarted("att-2", PaymentMethod.ONLINE, "stripe", 500))
    assert shop.cart.payment_step_at == since
    # back from the gateway to change the cart: shopping again
    shop.do(CartUpdated([CartLine("tea", "Tea", 2, 500)], EUR))
    assert str(shop.cart.state) == "active"
    assert shop.cart.payment_step_at is None


# --------------------------------------------------------------------------- orders from before


def test_an_admin_action_leaves_an_order_from_before_the_phase_on_its_old_path() -> None:
    """Without ``OrderManaged`` (a history recorded before the order phase), a payment
    recorded by an admin pays the order the old way (``P``) and the workflow retires as
    it did; a tracking code changes nothing about that."""
    shop = Shop(policy=CartPolicy(retire_after_seconds=60)).do(
        CartUpdated([CartLine("tea", "Tea", 2, 1000)], EUR),
        CheckoutStarted(),
        PaymentStarted("bank-1", PaymentMethod.OFFLINE, "bank", 2000),
    )
    assert shop.order.status == "O" and not shop.order.managed
    shop.do(
        RecordPayment(admin="ann", amount=2000, currency=EUR, note="wire"),
        EditDelivery(admin="ann", changes={"tracking_code": "JJD1"}),
    )
    assert shop.order.status == "P" and shop.order.paid and not shop.order.managed
    assert shop.order.statuses == [] and shop.cart.retire_at is not None
    assert shop.refused(EditOrderLines(admin="ann", lines=[CartLine("tea", "Tea", 1, 1)])) == (
        ErrorCode.CONTENTS_NOT_EDITABLE
    )


def test_notes_of_payments_and_delivery_are_kept() -> None:
    shop = Shop().paid_order().run_effects().status("A")
    shop.do(EditDelivery(admin="ann", changes={"method": "dhl"}, note="customer asked"))
    shop.do(RecordPayment(admin="ann", kind="refund", amount=100, currency=EUR, note="broken mug"))
    details = [e.detail or "" for e in shop.cart.journal]
    assert any(d.endswith("customer asked") for d in details)
    assert any(d.endswith("broken mug") for d in details)


def test_a_refund_is_not_the_payment_method_nor_the_covering_payment() -> None:
    shop = Shop().offline_order().run_effects()
    shop.do(RecordPayment(admin="ann", amount=2000, currency=EUR))
    first = shop.order.attempt_id
    shop.do(RecordPayment(admin="ann", kind="refund", amount=500, currency=EUR))
    assert not shop.order.paid
    shop.do(RecordPayment(admin="ann", amount=500, currency=EUR))
    assert shop.order.paid and shop.order.attempt_id != first
    assert shop.order.attempt_id == shop.cart.payments[-1].attempt_id
    paid = [e for e in shop.cart.journal if e.kind is JournalKind.ORDER_PAID]
    assert {e.actor for e in paid} == {"admin:ann"}


def test_new_lines_never_move_a_processed_order_back_to_open() -> None:
    editable = registry(P={"contents_editable": True})
    shop = Shop().do(
        CartUpdated([CartLine("tea", "Tea", 2, 1000)], EUR),
        CheckoutStarted(),
        PaymentStarted("att-1", PaymentMethod.ONLINE, "stripe", 2000),
        PaymentResultReported("att-1", PaymentStatus.SUCCEEDED, 2000, EUR),
        OrderManaged(),
        OrderStatusesRead(editable),
    )
    assert shop.order.contents_editable
    shop.do(EditOrderLines(admin="ann", lines=[CartLine("tea", "Tea", 3, 1000)]))
    assert not shop.order.paid and shop.order.wanted_status is None
    assert shop.order.status == "P" and shop.order.balance == 1000


# --------------------------------------------------------------------------- second review


def test_a_wanted_status_is_entered_only_if_the_payments_still_call_for_it() -> None:
    shop = Shop().offline_order().run_effects()
    shop.do(RecordPayment(admin="ann", amount=2000, currency=EUR))
    assert shop.order.wanted_status == "P"
    shop.do(RecordPayment(admin="ann", kind="refund", amount=2000, currency=EUR))
    assert shop.order.wanted_status is None
    shop.do(OrderStatusesRead(DEFAULTS))
    assert shop.order.status == "O" and not shop.order.paid
    # and the other way: a refund uncovers a Processed order, a payment covers it again
    paid = Shop().paid_order().run_effects()
    paid.do(RecordPayment(admin="ann", kind="refund", amount=500, currency=EUR))
    assert paid.order.wanted_status == "O"
    paid.do(RecordPayment(admin="ann", amount=500, currency=EUR))
    paid.run_effects()
    assert paid.order.status == "P" and paid.order.paid


def test_an_empty_cart_at_checkout_is_not_at_the_payment_step() -> None:
    shop = Shop().do(CartUpdated([CartLine("tea", "Tea", 1, 500)], EUR), CheckoutStarted())
    assert shop.cart.payment_step_at is not None
    shop.do(CartUpdated([], EUR))
    assert shop.cart.state is CartState.CHECKOUT and shop.cart.payment_step_at is None


def test_the_covering_payment_is_one_that_was_not_refunded_away() -> None:
    shop = Shop().offline_order(total=3000).run_effects()
    shop.do(
        RecordPayment(admin="ann", amount=2000, currency=EUR),
        RecordPayment(admin="ann", kind="refund", amount=2000, currency=EUR),
        RecordPayment(admin="ann", amount=1000, currency=EUR),
    )
    last = shop.cart.payments[-1].attempt_id
    shop.status("A").do(EditOrderLines(admin="ann", lines=[CartLine("tea", "Tea", 1, 1000)]))
    assert shop.order.paid and shop.order.attempt_id == last
