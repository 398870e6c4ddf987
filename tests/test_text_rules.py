"""Outside text with control characters or lone surrogates (``workflows.validation``'s text
rules): refused with ``invalid_text`` wherever a storefront or an admin sends it; kept
escaped where it cannot be refused (a gateway's result, the record of a refused signal);
read as before inside ``legacy_text`` (histories recorded before the rules). Pure: the
workflow, the databases and the HTTP API are in ``tests/test_workflow_text.py``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from activities.read_model import encode_cart
from workflows import machine
from workflows.codes import AttentionKind, CartState, ErrorCode, JournalKind
from workflows.events import (
    CartLine,
    CartUpdated,
    ConfirmCart,
    CustomerIdentified,
    CustomerInfo,
    CustomerVisited,
    PaymentResultReported,
    PaymentResultUnreadable,
    PaymentStarted,
    RecoveryLinkClicked,
    UnlockCart,
)
from workflows.order_checks import check_delivery
from workflows.order_events import AddOrderNote, RecordPayment
from workflows.parsing import admin_name, excerpt, parse_cart_updated, parse_payment_result
from workflows.state import Cart
from workflows.validation import (
    CartRefused,
    check_text,
    escape_text,
    has_unsafe_text,
    legacy_text,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
#: a control character of each kind, and lone surrogates
UNSAFE = ["\x00", "\x01", "\x1b", "\x1f", "\x7f", "\x85", "\x9f", "\ud800", "\udbff", "\udfff"]
LINE_BREAKS = ["\t", "\n", "\r"]


def storable(text: str) -> bool:
    """What both databases store and give back: UTF-8 without NUL."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def refusal(call: Any) -> CartRefused:
    with pytest.raises(CartRefused) as caught:
        call()
    return caught.value


def cart_with_lines() -> Cart:
    cart = Cart(shop_id="shop", cart_id="cart")
    machine.apply(cart, CartUpdated([CartLine("tea", "Tea", 1, 2100)], "EUR"), NOW)
    return cart


def locked() -> Cart:
    cart = cart_with_lines()
    machine.apply(cart, PaymentStarted("a1", "online", "stripe", 2100), NOW)  # type: ignore[arg-type]
    machine.apply(cart, PaymentResultReported("a1", "pending", 2100), NOW)  # type: ignore[arg-type]
    assert cart.state is CartState.LOCKED
    return cart


# --------------------------------------------------------------------------- the rule


@pytest.mark.parametrize("char", UNSAFE + LINE_BREAKS, ids=lambda c: f"U+{ord(c):04X}")
def test_a_text_with_a_control_character_or_a_lone_surrogate_is_invalid_text(char: str) -> None:
    refused = refusal(
        lambda: check_text(f"Te{char}a", "name", required=True, code=ErrorCode.INVALID_LINE)
    )
    assert refused.code is ErrorCode.INVALID_TEXT and refused.code.http_status == 422
    assert f"U+{ord(char):04X} at character 3" in refused.message
    assert storable(refused.message), "the refusal (journaled for a signal) can be stored"
    assert escape_text(char) in refused.message


@pytest.mark.parametrize("char", UNSAFE, ids=lambda c: f"U+{ord(c):04X}")
def test_a_note_may_have_lines_but_no_other_control_character(char: str) -> None:
    check_text("a\tb\r\nc", "note", required=True, code=ErrorCode.INVALID_INPUT, multiline=True)
    refused = refusal(
        lambda: check_text(
            f"a\n{char}", "note", required=True, code=ErrorCode.INVALID_INPUT, multiline=True
        )
    )
    assert refused.code is ErrorCode.INVALID_TEXT


@pytest.mark.parametrize("text", ["Grüner Tee", "茶 🍵", "a\u2028b", "\u200b", "«»"])
def test_other_text_passes_as_it_is(text: str) -> None:
    check_text(text, "name", required=True, code=ErrorCode.INVALID_LINE)


def test_a_blank_or_too_long_text_keeps_its_own_code() -> None:
    for value in ("", "  ", "x" * 201, 7):
        refused = refusal(
            lambda v=value: check_text(v, "name", required=True, code=ErrorCode.INVALID_LINE)
        )
        assert refused.code is ErrorCode.INVALID_LINE


# --------------------------------------------------------------------------- every outside text

CUSTOMER = CustomerInfo(email="ann@example.com")


@pytest.mark.parametrize(
    "event",
    [
        CartUpdated([CartLine("tea", "Te\x00a", 1, 100)], "EUR"),
        CartUpdated([CartLine("t\x00ea", "Tea", 1, 100)], "EUR"),
        CartUpdated([CartLine("tea", "Te\ud800a", 1, 100)], "EUR"),
        CustomerIdentified(CustomerInfo(email="ann@example.com", name="Ann\x00")),
        CustomerIdentified(CustomerInfo(email="ann@example.com", phone="+49\n30")),
        CustomerIdentified(CustomerInfo(email="a\x00nn@example.com")),
        CustomerIdentified(CustomerInfo(email="ann@exa\udc80mple.com")),
        CustomerVisited(page="/cart\x00"),
        PaymentStarted("a9", "online", "str\x00ipe", 100),  # type: ignore[arg-type]
        RecoveryLinkClicked(reminder_id="first", coupon_code="K7\x00"),
    ],
    ids=[
        "item name",
        "sku",
        "item name surrogate",
        "customer name",
        "phone",
        "email",
        "email surrogate",
        "page",
        "gateway",
        "coupon",
    ],
)
def test_storefront_text_is_refused_and_changes_nothing(event: object) -> None:
    cart = cart_with_lines()
    before = encode_cart(cart)
    refused = refusal(lambda: machine.apply(cart, event, NOW))
    assert refused.code is ErrorCode.INVALID_TEXT
    assert encode_cart(cart) == before


@pytest.mark.parametrize(
    "event",
    [
        ConfirmCart(admin="ops", note="paid\x00"),
        ConfirmCart(admin="o\x00ps"),
        UnlockCart(admin="ops", note="\ud800"),
        UnlockCart(admin="ops\n"),
    ],
    ids=["confirm note", "confirm admin", "unlock note", "unlock admin"],
)
def test_admin_text_is_refused_whatever_the_state(event: object) -> None:
    for cart in (locked(), cart_with_lines()):  # checked before the state
        assert refusal(lambda c=cart: machine.apply(c, event, NOW)).code is ErrorCode.INVALID_TEXT


def test_an_admin_note_with_lines_is_kept_as_written() -> None:
    cart = locked()
    machine.apply(cart, UnlockCart(admin="ops", note="called her\r\n\tshe pays today"), NOW)
    assert cart.journal[-1].kind is JournalKind.CART_UNLOCKED
    assert cart.journal[-1].detail == "called her\r\n\tshe pays today"


def test_order_texts_are_checked_too() -> None:
    assert refusal(lambda: check_delivery({"city": "Ber\nlin"})).code is ErrorCode.INVALID_TEXT
    assert refusal(lambda: check_delivery({"email": "a\x00@b.de"})).code is ErrorCode.INVALID_TEXT
    check_delivery({"address": "Main st 1\r\nBack house", "comment": "ring\ttwice"})
    assert refusal(lambda: check_delivery({"address": "x\x00"})).code is ErrorCode.INVALID_TEXT
    cart = cart_with_lines()
    cart.state = CartState.LOCKED  # a not finished order takes notes
    note = AddOrderNote(admin="ann", note="a\x07b")
    assert refusal(lambda: machine.check(cart, note)).code is ErrorCode.INVALID_TEXT
    machine.check(cart, AddOrderNote(admin="ann", note="line 1\nline 2"))
    ordered = cart_with_lines()
    machine.apply(ordered, PaymentResultReported("a1", "succeeded", 2100), NOW)  # type: ignore[arg-type]
    payment = RecordPayment(admin="ann", amount=1, currency="EUR", reference="t\x00")
    assert refusal(lambda: machine.check(ordered, payment)).code is ErrorCode.INVALID_TEXT


def test_the_json_reader_passes_text_on_for_the_check() -> None:
    raw = {"lines": [{"sku": "a", "name": "Tea\u0000", "quantity": 1, "unit_price": 1}]}
    event = parse_cart_updated({**raw, "currency": "EUR"})
    assert refusal(lambda: machine.check(Cart("s", "c"), event)).code is ErrorCode.INVALID_TEXT


# --------------------------------------------------------------------------- payment results


def test_a_success_with_a_garbled_gateway_is_an_order_flagged_for_an_admin() -> None:
    cart = cart_with_lines()
    raw = {"attempt_id": "a1", "status": "succeeded", "amount": 2100, "gateway": "str\x00ipe\ud800"}
    event = parse_payment_result(raw)
    assert isinstance(event, PaymentResultReported)
    machine.apply(cart, event, NOW)
    assert cart.state is CartState.ORDERED and cart.order is not None and cart.order.paid
    attempt = cart.attempt("a1")
    assert attempt is not None and attempt.gateway is None, "dropped, as any malformed detail"
    (flag,) = [a for a in cart.attention if a.kind is AttentionKind.INVALID_PAYMENT_RESULT]
    assert "'str\\x00ipe\\ud800'" in (flag.detail or ""), "shown escaped: nothing lost"
    assert_storable(cart)


@pytest.mark.parametrize(
    "raw",
    [
        {"attempt_id": "a1", "status": "succ\x00eeded", "amount": 2100},
        {"attempt_id": "a1", "status": "ok\ud800", "amount": 2100, "note": "\x7f\x9f"},
        {"attempt_id": "a\x00", "status": "succeeded", "amount": 2100, "k\udfff": "\x00"},
        ["\ud800", "\x00"],
        "\udc80",
    ],
    ids=["status NUL", "status surrogate", "attempt and key", "a list", "a string"],
)
def test_an_unreadable_result_is_kept_escaped_and_flagged(raw: Any) -> None:
    cart = cart_with_lines()
    event = parse_payment_result(raw)
    assert isinstance(event, PaymentResultUnreadable)
    for text in (event.problem, event.excerpt, event.status or ""):
        assert storable(text) and not has_unsafe_text(text), text
    if isinstance(raw, dict):
        # still JSON: the escapes are JSON's, the readable parts are all there
        assert json.loads(event.excerpt) == raw
    assert machine.apply(cart, event, NOW).changed
    assert [a.kind for a in cart.attention] == [AttentionKind.INVALID_PAYMENT_RESULT]
    assert_storable(cart)


def test_card_numbers_are_still_masked_next_to_escapes() -> None:
    text = excerpt({"status": "x\ud800", "pan": "4111 1111 1111 1111"})
    assert "4111 1111" not in text and "1111" in text and "\\ud800" in text


def test_a_refused_signals_sender_is_recorded_escaped() -> None:
    assert admin_name({"admin": "o\x00ps\ud800"}) == "o\\x00ps\\ud800"
    assert admin_name({"admin": "ops"}) == "ops"
    with legacy_text():
        assert admin_name({"admin": "o\x00ps"}) == "o\x00ps"


def assert_storable(cart: Cart) -> None:
    """Every text of the cart's snapshot, as the read model writes it, can be stored and
    read back: no NUL (PostgreSQL's JSON gives no ``\\u0000`` back as text), valid UTF-8."""

    def texts(value: Any) -> list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, dict):
            return [t for k, v in value.items() for t in [k, *texts(v)]]
        if isinstance(value, list):
            return [t for item in value for t in texts(item)]
        return []

    bad = [text for text in texts(encode_cart(cart)) if not storable(text)]
    assert not bad, bad[:3]


# --------------------------------------------------------------------------- before the rules


def test_legacy_text_reads_as_before_the_rules() -> None:
    """What a history recorded before the rules replays under (``TEXT_PATCH`` absent)."""
    cart = cart_with_lines()
    with legacy_text():
        machine.apply(cart, CartUpdated([CartLine("tea", "Te\x00a", 1, 2100)], "EUR"), NOW)
        event = parse_payment_result(
            {"attempt_id": "a1", "status": "succeeded", "amount": 2100, "gateway": "g\x00"}
        )
        machine.apply(cart, event, NOW)
        unreadable = parse_payment_result({"attempt_id": "a1", "status": "\ud800", "amount": 1})
    assert cart.lines[0].name == "Te\x00a"
    attempt = cart.attempt("a1")
    assert attempt is not None and attempt.gateway == "g\x00" and not cart.attention
    assert isinstance(unreadable, PaymentResultUnreadable) and "\ud800" in unreadable.excerpt
    # and outside it, the rules again
    refused = refusal(
        lambda: check_text("\x00", "name", required=True, code=ErrorCode.INVALID_LINE)
    )
    assert refused.code is ErrorCode.INVALID_TEXT


def test_has_unsafe_text_looks_at_keys_values_and_nesting() -> None:
    assert not has_unsafe_text({"a": ["b", {"c": 1}], "d": None, "e": 2.5})
    assert has_unsafe_text({"a": ["b", {"c": "\t"}]})
    assert has_unsafe_text({"k\x00": 1})
    assert has_unsafe_text(["\ud800"])
    assert has_unsafe_text("\x85")
    assert not has_unsafe_text("é\u2028")
