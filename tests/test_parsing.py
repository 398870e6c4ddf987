"""Outside input as plain JSON (``workflows.parsing``): storefront and admin messages are
read strictly (refused with a code, never coerced); payment results are never refused
(what cannot be read is kept, card numbers masked)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflows.contract import (
    ErrorCode,
    PaymentMethod,
    PaymentResultReported,
    PaymentResultUnreadable,
    PaymentStatus,
)
from workflows.parsing import (
    EXCERPT_LIMIT,
    MESSAGE_BY_NAME,
    MESSAGES,
    excerpt,
    mask_card_numbers,
    parse_await_timeout,
    parse_cart_updated,
    parse_payment_result,
    parse_payment_started,
)
from workflows.validation import CartRefused

LINE = {"sku": "tea", "name": "Green tea", "quantity": 2, "unit_price": 450}


def refused(parse: Any, raw: Any) -> ErrorCode:
    with pytest.raises(CartRefused) as info:
        parse(raw)
    assert info.value.message
    return info.value.code


def test_a_whole_cart_is_read() -> None:
    event = parse_cart_updated({"lines": [LINE], "currency": "EUR", "customer_id": "c-1"})
    assert event.lines[0].quantity == 2 and event.currency == "EUR"
    assert event.customer_id == "c-1"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"quantity": 2.7}, ErrorCode.INVALID_QUANTITY),  # never truncated to 2
        ({"quantity": 2.0}, ErrorCode.INVALID_QUANTITY),
        ({"quantity": "2"}, ErrorCode.INVALID_QUANTITY),
        ({"quantity": True}, ErrorCode.INVALID_QUANTITY),
        ({"unit_price": 4.5}, ErrorCode.INVALID_PRICE),
        ({"unit_price": "450"}, ErrorCode.INVALID_PRICE),
        ({"sku": 12}, ErrorCode.INVALID_LINE),
        ({"name": None}, ErrorCode.INVALID_LINE),
        ({"colour": "red"}, ErrorCode.INVALID_INPUT),  # an unknown field: a typo is refused
    ],
)
def test_a_line_of_the_wrong_type_is_refused_never_coerced(
    change: dict[str, Any], code: ErrorCode
) -> None:
    assert refused(parse_cart_updated, {"lines": [LINE | change], "currency": "EUR"}) is code


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (None, ErrorCode.INVALID_INPUT),
        ([LINE], ErrorCode.INVALID_INPUT),
        ("cart", ErrorCode.INVALID_INPUT),
        ({"lines": [LINE]}, ErrorCode.INVALID_CURRENCY),
        ({"lines": LINE, "currency": "EUR"}, ErrorCode.INVALID_LINE),
        ({"lines": [LINE], "currency": 978}, ErrorCode.INVALID_CURRENCY),
        ({"lines": [LINE], "currency": "EUR", "extra": 1}, ErrorCode.INVALID_INPUT),
    ],
)
def test_a_malformed_cart_is_refused(raw: Any, code: ErrorCode) -> None:
    assert refused(parse_cart_updated, raw) is code


def test_a_payment_start_is_read_strictly() -> None:
    raw = {"attempt_id": "pi_1", "method": "online", "gateway": "stripe", "amount": 2100}
    event = parse_payment_started(raw)
    assert event.method is PaymentMethod.ONLINE and event.amount == 2100
    assert refused(parse_payment_started, raw | {"amount": "2100"}) is ErrorCode.INVALID_AMOUNT
    assert refused(parse_payment_started, raw | {"amount": 21.5}) is ErrorCode.INVALID_AMOUNT
    # An unknown method is read as it is; the state machine refuses it with a code.
    assert parse_payment_started(raw | {"method": "crypto"}).method == "crypto"


def test_every_message_of_the_table_refuses_a_non_object() -> None:
    for spec in MESSAGES:
        assert refused(spec.parse, [1, 2]) in (ErrorCode.INVALID_INPUT,), spec.name


def test_admin_messages_need_the_admin() -> None:
    confirm = MESSAGE_BY_NAME["confirm"].parse
    assert confirm({"admin": "ann"}).status == "P"
    assert confirm({"admin": "ann", "status": "O", "note": "x"}).status == "O"
    assert refused(confirm, {}) is ErrorCode.INVALID_INPUT
    assert refused(confirm, {"admin": "ann", "status": 1}) is ErrorCode.INVALID_STATUS
    resolve = MESSAGE_BY_NAME["resolve"].parse
    assert resolve({"admin": "ann", "items": [1, 2]}).items == [1, 2]
    assert refused(resolve, {"admin": "ann", "items": ["1"]}) is ErrorCode.INVALID_INPUT


def test_await_timeout() -> None:
    assert parse_await_timeout(30) == 30.0
    assert parse_await_timeout({"timeout_seconds": 2.5}) == 2.5
    for bad in (-1, 301, True, "30", {"timeout": 3}, None):
        assert refused(parse_await_timeout, bad) is ErrorCode.INVALID_INPUT


# --------------------------------------------------------------------------- payment results


def test_a_readable_result() -> None:
    event = parse_payment_result(
        {"attempt_id": "pi_1", "status": "succeeded", "amount": 2100, "card_last4": "4242"}
    )
    assert isinstance(event, PaymentResultReported)
    assert event.status is PaymentStatus.SUCCEEDED and event.card_last4 == "4242"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"attempt_id": "pi_1", "status": "SUCCEEDED", "amount": 2100}, "SUCCEEDED"),
        ({"attempt_id": "pi_1", "status": "succeeded", "amount": "100"}, "amount"),
        ({"attempt_id": "pi_1", "status": "refunded_partially", "amount": 1}, "refunded"),
        ({"attempt_id": "pi_1", "amount": 2100}, "status is missing"),
        ({"status": "succeeded", "amount": 2100}, "attempt_id is missing"),
        ({"attempt_id": "pi 1", "status": "succeeded", "amount": 1}, "attempt_id"),
        ({"attempt_id": "pi_1", "status": "succeeded", "amount": 21.5}, "amount"),
        ([1, 2, 3], "a list"),
        ("succeeded", "a string"),
        (None, "null"),
    ],
)
def test_an_unreadable_result_is_kept_with_what_could_be_read(raw: Any, problem: str) -> None:
    event = parse_payment_result(raw)
    assert isinstance(event, PaymentResultUnreadable)
    assert problem in event.problem
    if isinstance(raw, dict):
        assert event.attempt_id == (
            raw.get("attempt_id") if raw.get("attempt_id") != "pi 1" else None
        )
        if isinstance(raw.get("amount"), int):
            assert event.amount == raw["amount"]


def test_card_numbers_never_reach_the_cart() -> None:
    raw = {
        "attempt_id": "pi_1",
        "status": "SUCCEEDED",
        "amount": 100,
        "card": "4242 4242 4242 4242",
        "pan": "5555555555554444",
        "nested": {"number": "4000-0566-5566-5556"},
    }
    event = parse_payment_result(raw)
    assert isinstance(event, PaymentResultUnreadable)
    for full in ("4242 4242 4242 4242", "5555555555554444", "4000-0566-5566-5556", "42424242"):
        assert full not in event.excerpt
    assert "************4242" in event.excerpt and "************4444" in event.excerpt
    status = parse_payment_result({"attempt_id": "a", "amount": 1, "status": "4111111111111111"})
    assert isinstance(status, PaymentResultUnreadable)
    assert "4111111111111111" not in status.problem and "4111111111111111" not in (
        status.status or ""
    )


def test_masking_keeps_short_numbers() -> None:
    assert mask_card_numbers("order 12345, 2100 EUR") == "order 12345, 2100 EUR"
    assert mask_card_numbers("4242424242424242") == "************4242"


@settings(max_examples=200, deadline=None)
@given(
    raw=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=10), children, max_size=5)
        ),
        max_leaves=20,
    )
)
def test_any_json_is_either_a_result_or_kept_unreadable(raw: Any) -> None:
    """Never an exception, whatever a gateway sends."""
    event = parse_payment_result(raw)
    assert isinstance(event, PaymentResultReported | PaymentResultUnreadable)
    if isinstance(event, PaymentResultUnreadable):
        assert len(event.excerpt) <= EXCERPT_LIMIT
        json.dumps(event.excerpt)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["lines", "currency", "customer_id", "x"]), st.integers()))
def test_storefront_parsers_raise_only_refusals(raw: dict[str, Any]) -> None:
    for spec in MESSAGES:
        try:
            spec.parse(raw)
        except CartRefused as refusal:
            assert isinstance(refusal.code, ErrorCode)


def test_excerpt_is_bounded() -> None:
    assert len(excerpt({"x": "y" * 5000})) == EXCERPT_LIMIT


def test_a_trailing_newline_never_passes_a_pattern() -> None:
    """``$`` also matches before a final newline: every pattern ends in ``\\Z``."""
    from workflows import validation

    assert validation.valid_id("shop-1") and not validation.valid_id("shop-1\n")
    for pattern, good in (
        (validation._ATTEMPT_RE, "pay-1"),
        (validation._EMAIL_RE, "ann@example.com"),
        (validation._LAST4_RE, "4242"),
        (validation._TZ_RE, "Europe/Berlin"),
        (validation._LOCALE_RE, "de-DE"),
    ):
        assert pattern.match(good) and not pattern.match(good + "\n"), pattern.pattern
