"""The money rules of the state machine, case by case (``workflows.money``).

The stateful property test in ``test_machine.py`` checks them after every step of random
event sequences (``paid`` exactly when the succeeded payments cover the total, every
mismatch flagged, every success reflected); these are the cases the issue names.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workflows.contract import (
    AttentionKind,
    Cart,
    CartLine,
    CartPolicy,
    CartState,
    CartUpdated,
    CheckoutStarted,
    ConfirmCart,
    DeleteCart,
    ErrorCode,
    JournalKind,
    OrderSource,
    PaymentMethod,
    PaymentResultReported,
    PaymentStarted,
    PaymentStatus,
    ResolveAttention,
)
from workflows.events import AdminActionRefused, CancellationRequested, RestoreFailed
from workflows.machine import CartRefused, apply, tick

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
EUR = "EUR"


class Till:
    """One cart and a clock."""

    def __init__(self, policy: CartPolicy | None = None) -> None:
        self.cart = Cart(shop_id="shop", cart_id="cart", policy=policy or CartPolicy())
        self.now = T0

    def do(self, *events: object) -> Till:
        for event in events:
            self.now += timedelta(seconds=1)
            apply(self.cart, event, self.now)
        return self

    def kinds(self) -> list[AttentionKind]:
        return [item.kind for item in self.cart.attention]


def lines(total: int) -> CartUpdated:
    return CartUpdated([CartLine("sku", "Thing", 1, total)], EUR)


def start(attempt: str, amount: int, method: PaymentMethod = PaymentMethod.ONLINE) -> object:
    return PaymentStarted(attempt, method, "stripe", amount)


def paid(attempt: str, amount: int, currency: str | None = None) -> PaymentResultReported:
    return PaymentResultReported(attempt, PaymentStatus.SUCCEEDED, amount, currency)


def test_exact_payment_pays_the_order_without_flags() -> None:
    till = Till().do(lines(2100), CheckoutStarted(), start("a1", 2100), paid("a1", 2100))
    order = till.cart.order
    assert order is not None and order.paid and order.status == "P"
    assert order.amount_paid == 2100 and till.cart.attention == []


def test_a_payment_for_10_while_the_cart_became_5000_is_an_unpaid_flagged_order() -> None:
    """The issue's first case: the cart changed after the payment started."""
    till = Till().do(lines(1000), CheckoutStarted(), start("a1", 1000))
    till.do(lines(500_000))  # back from the gateway, the customer adds something expensive
    assert till.cart.state is CartState.ACTIVE
    till.do(paid("a1", 1000))
    cart = till.cart
    order = cart.order
    assert cart.state is CartState.ORDERED and order is not None, "the money is never lost"
    assert order.total == 500_000 and order.amount_paid == 1000
    assert not order.paid and order.status == "O"
    assert till.kinds() == [
        AttentionKind.AMOUNT_MISMATCH,
        AttentionKind.CART_CHANGED_DURING_PAYMENT,
    ]
    mismatch, changed = cart.attention
    assert (mismatch.amount, mismatch.expected_amount) == (1000, 500_000)
    assert changed.detail is not None and "1000 then, 500000 now" in changed.detail
    assert cart.needs_admin


def test_a_success_of_1_on_a_cart_of_100_is_not_paid() -> None:
    till = Till().do(lines(10_000), CheckoutStarted(), start("a1", 10_000), paid("a1", 1))
    order = till.cart.order
    assert order is not None and not order.paid and order.amount_paid == 1
    assert till.kinds() == [AttentionKind.AMOUNT_MISMATCH]
    assert till.cart.attention[0].expected_amount == 10_000


def test_overpayment_pays_and_is_flagged() -> None:
    till = Till().do(lines(1000), start("a1", 1000), paid("a1", 1500))
    order = till.cart.order
    assert order is not None and order.paid and order.amount_paid == 1500
    assert till.kinds() == [AttentionKind.AMOUNT_MISMATCH]


def test_a_success_for_a_cart_that_never_existed_is_no_order() -> None:
    till = Till().do(paid("ghost-1", 4200, EUR))
    cart = till.cart
    assert cart.order is None and cart.state is CartState.ACTIVE
    assert till.kinds() == [AttentionKind.PAYMENT_WITHOUT_CART]
    attempt = cart.attempt("ghost-1")
    assert attempt is not None and attempt.status is PaymentStatus.SUCCEEDED
    assert attempt.succeeded_amount == 4200, "the money is recorded"
    assert cart.needs_admin


def test_a_success_after_the_cart_was_emptied_is_no_empty_order() -> None:
    till = Till().do(lines(1000), start("a1", 1000))
    till.do(CartUpdated([], EUR))
    till.do(paid("a1", 1000))
    assert till.cart.order is None
    assert AttentionKind.PAYMENT_WITHOUT_CART in till.kinds()


def test_a_pending_result_on_an_empty_cart_locks_nothing() -> None:
    till = Till().do(PaymentResultReported("a1", PaymentStatus.PENDING, 100))
    assert till.cart.state is CartState.ACTIVE and till.cart.order is None


def test_offline_order_is_paid_by_partial_transfers_that_cover_it() -> None:
    till = Till().do(lines(3000), start("t1", 3000, PaymentMethod.OFFLINE))
    order = till.cart.order
    assert order is not None and order.source is OrderSource.OFFLINE_PAYMENT
    assert not order.paid and order.status == "O"
    till.do(paid("t1", 1000))
    assert not order.paid and order.amount_paid == 1000
    assert till.kinds() == [AttentionKind.AMOUNT_MISMATCH]  # 1000 paid, 3000 due
    till.do(paid("t2", 2000))
    assert order.paid and order.amount_paid == 3000 and order.status == "P"
    assert order.attempt_id == "t2"
    assert till.kinds() == [AttentionKind.AMOUNT_MISMATCH], "2000 was exactly what was due"
    assert JournalKind.ORDER_PAID in [entry.kind for entry in till.cart.journal]


def test_a_payment_in_another_currency_does_not_count() -> None:
    till = Till().do(lines(1000), start("a1", 1000), paid("a1", 1000, "USD"))
    order = till.cart.order
    assert order is not None and not order.paid and order.amount_paid == 0
    assert till.kinds() == [AttentionKind.PAYMENT_CURRENCY_MISMATCH]


def test_a_second_success_on_a_paid_order_is_a_possible_double_charge() -> None:
    till = Till().do(lines(1000), start("a1", 1000), paid("a1", 1000))
    till.do(paid("a2", 1000))
    order = till.cart.order
    assert order is not None and order.paid and order.amount_paid == 2000
    assert till.kinds() == [AttentionKind.POSSIBLE_DOUBLE_CHARGE]


def test_a_repeated_success_with_another_amount_is_flagged_once() -> None:
    till = Till().do(lines(1000), start("a1", 1000), paid("a1", 1000))
    version = till.cart.version
    till.do(paid("a1", 1000))
    assert till.cart.version == version, "the same webhook again changes nothing"
    till.do(paid("a1", 900))
    assert till.kinds() == [AttentionKind.AMOUNT_MISMATCH]
    assert till.cart.order is not None and till.cart.order.amount_paid == 1000


def test_admin_confirm_p_records_the_current_attempt_as_paid() -> None:
    till = Till().do(lines(2500), CheckoutStarted(), start("a1", 2500))
    till.now += timedelta(hours=1)
    tick(till.cart, till.now)
    assert till.cart.state is CartState.LOCKED
    till.do(ConfirmCart(admin="ann", note="seen in Stripe"))
    attempt = till.cart.attempt("a1")
    assert attempt is not None and attempt.status is PaymentStatus.SUCCEEDED
    assert attempt.confirmed_by == "ann" and attempt.succeeded_amount == 2500
    order = till.cart.order
    assert order is not None and order.paid and order.source is OrderSource.ADMIN_CONFIRMATION
    # The gateway's late success confirms it: no double charge.
    till.do(paid("a1", 2500))
    assert till.cart.attention == []
    # ... but a late failure of a confirmed payment is shown to an admin.
    till.do(PaymentResultReported("a1", PaymentStatus.FAILED, 2500))
    assert till.kinds() == []  # the gateway already said succeeded: a later failure is noise


def test_gateway_fails_a_payment_an_admin_confirmed() -> None:
    till = Till().do(
        lines(2500), start("a1", 2500), PaymentResultReported("a1", PaymentStatus.PENDING, 0)
    )
    assert till.cart.state is CartState.LOCKED
    till.do(ConfirmCart(admin="ann"))
    till.do(PaymentResultReported("a1", PaymentStatus.FAILED, 2500))
    assert till.kinds() == [AttentionKind.CONFIRMED_PAYMENT_FAILED]
    assert till.cart.order is not None and till.cart.order.paid, "flagged, not undone"


def test_gateway_reports_less_than_an_admin_confirmed() -> None:
    till = Till().do(
        lines(2500), start("a1", 2500), PaymentResultReported("a1", PaymentStatus.PENDING, 0)
    )
    till.do(ConfirmCart(admin="ann"))
    till.do(paid("a1", 2000))
    order = till.cart.order
    assert order is not None and not order.paid and order.amount_paid == 2000
    assert till.kinds() == [AttentionKind.AMOUNT_MISMATCH]


def test_gateway_reports_another_currency_than_an_admin_confirmed() -> None:
    """The same amount in USD on a EUR cart an admin confirmed: it does not count."""
    till = Till().do(
        lines(2500), start("a1", 2500), PaymentResultReported("a1", PaymentStatus.PENDING, 0)
    )
    till.do(ConfirmCart(admin="ann"))
    assert till.cart.order is not None and till.cart.order.paid
    till.do(paid("a1", 2500, "USD"))
    order = till.cart.order
    assert order is not None and not order.paid and order.amount_paid == 0
    assert till.kinds() == [AttentionKind.PAYMENT_CURRENCY_MISMATCH]
    attempt = till.cart.attempt("a1")
    assert attempt is not None and attempt.succeeded_currency == "USD"
    assert attempt.succeeded_amount == 2500


def test_a_repeated_success_in_another_currency_is_flagged() -> None:
    till = Till().do(lines(1000), start("a1", 1000), paid("a1", 1000))
    till.do(paid("a1", 1000, "EUR"))
    assert till.cart.attention == [], "the same currency, named, is the same webhook"
    till.do(paid("a1", 1000, "USD"))
    assert till.kinds() == [AttentionKind.PAYMENT_CURRENCY_MISMATCH]
    order = till.cart.order
    assert order is not None and order.paid and order.amount_paid == 1000
    assert till.cart.journal[-2].kind is JournalKind.PAYMENT_RESULT_IGNORED


def test_admin_confirms_an_attempt_in_another_currency() -> None:
    """A result that came before its start made an attempt in the gateway's currency."""
    till = Till().do(lines(2500), PaymentResultReported("a1", PaymentStatus.PENDING, 2500, "USD"))
    assert till.cart.state is CartState.LOCKED
    till.do(ConfirmCart(admin="ann"))
    order = till.cart.order
    assert order is not None and not order.paid and order.amount_paid == 0
    assert AttentionKind.PAYMENT_CURRENCY_MISMATCH in till.kinds()


def test_admin_confirm_o_awaits_the_money() -> None:
    till = Till().do(
        lines(2500), start("a1", 2500), PaymentResultReported("a1", PaymentStatus.PENDING, 0)
    )
    till.do(ConfirmCart(admin="ann", status="O"))
    order = till.cart.order
    assert order is not None and not order.paid
    till.do(paid("a1", 2500))
    assert order.paid and till.cart.attention == []


def test_confirm_of_an_empty_locked_cart_is_refused() -> None:
    cart = Cart(shop_id="s", cart_id="c", state=CartState.LOCKED)
    with pytest.raises(CartRefused) as refused:
        apply(cart, ConfirmCart(admin="ann"), T0)
    assert refused.value.code is ErrorCode.CART_EMPTY


def test_an_unpaid_order_stays_open_until_paid_or_its_lifetime_ends() -> None:
    policy = CartPolicy(lifetime_seconds=10 * 86400, retire_after_seconds=86400)
    till = Till(policy).do(lines(3000), start("t1", 3000, PaymentMethod.OFFLINE))
    cart = till.cart
    assert cart.ordered_at is not None
    assert cart.retire_at == cart.ordered_at + timedelta(days=10)
    till.now += timedelta(days=3)
    till.do(paid("t1", 3000))
    assert cart.order is not None and cart.order.paid and cart.order.paid_at is not None
    assert cart.retire_at == cart.order.paid_at + timedelta(days=1)


# --------------------------------------------------------------------------- attention


def test_resolve_one_item_then_all() -> None:
    till = Till().do(paid("x1", 100, EUR), paid("x2", 200, EUR))
    assert [item.id for item in till.cart.open_attention] == [1, 2]
    till.do(ResolveAttention(admin="ann", note="refunded", items=[2]))
    first, second = till.cart.attention
    assert first.is_open and not second.is_open
    assert (second.resolved_by, second.resolution) == ("ann", "refunded")
    assert till.cart.needs_admin
    till.do(ResolveAttention(admin="bob"))
    assert not till.cart.needs_admin and first.resolved_by == "bob"
    with pytest.raises(CartRefused) as refused:
        apply(till.cart, ResolveAttention(admin="bob"), till.now)
    assert refused.value.code is ErrorCode.NOTHING_TO_RESOLVE
    with pytest.raises(CartRefused) as refused:
        apply(till.cart, ResolveAttention(admin="bob", items=[1]), till.now)
    assert refused.value.code is ErrorCode.NOTHING_TO_RESOLVE


def test_a_refused_admin_signal_is_journaled() -> None:
    till = Till().do(lines(100))
    till.do(AdminActionRefused("confirm", "ann", "not_locked", "only a locked cart ..."))
    entry = till.cart.journal[-1]
    assert entry.kind is JournalKind.ADMIN_ACTION_REFUSED and entry.actor == "admin:ann"
    assert entry.detail is not None and "not_locked" in entry.detail


@pytest.mark.parametrize(
    ("events", "state"),
    [
        ([lines(100)], CartState.DELETED),
        ([lines(100), start("a1", 100)], CartState.DELETED),
        ([lines(100), start("a1", 100), paid("a1", 100)], CartState.ORDERED),
        ([lines(100), DeleteCart(admin="ann")], CartState.DELETED),
    ],
)
def test_a_cancellation_request_is_a_delete_where_one_is_allowed(
    events: list[object], state: CartState
) -> None:
    till = Till().do(*events)
    order = till.cart.order
    till.do(CancellationRequested())
    assert till.cart.state is state
    assert till.cart.order == order, "an order is never lost to a cancellation"
    kinds = [entry.kind for entry in till.cart.journal[-2:]]
    assert JournalKind.CANCELLATION_REQUESTED in kinds


def test_a_restore_that_found_nothing_is_flagged_and_invents_nothing() -> None:
    till = Till().do(RestoreFailed("no record"))
    assert till.cart.lines == [] and till.cart.order is None
    assert till.kinds() == [AttentionKind.CART_NOT_RESTORED]
