"""Outside input as plain JSON, read strictly into events.

The workflow's updates and signals take their argument raw (``RawValue``): the SDK never
decodes, coerces or drops it. These parsers turn the decoded JSON into the event
dataclasses of ``workflows.events``:

- storefront and admin messages are read strictly: a missing field, a field of the wrong
  JSON type (``2.7`` for a quantity, ``"100"`` for an amount) or an unknown field is
  refused with an ``ErrorCode``; nothing is truncated or guessed;
- a payment result is never refused: if its core (attempt id, status, amount) cannot be
  read it becomes ``PaymentResultUnreadable``, which keeps what could be read and an
  excerpt of the payload with card numbers masked, for an admin.

Text with a control character or a lone surrogate is refused (``invalid_text``,
``workflows.validation.check_text``), except where refusing would lose something: a
payment result (the money) and the record of a refused signal (who sent it). There, and
only there, text is altered: what is kept of the raw payload (the excerpt, the problem,
the sender's name) has each such character written as its escape (``\\u0000``,
``\\ud800``; ``workflows.validation.escape_text``), so that the cart stays storable in
either database and readable, and the result is flagged for an admin as an unreadable one
is (a gateway name with such characters is dropped from the result, shown escaped in the
flag, as any malformed detail is). Histories recorded before kept the raw text
(``legacy_text``).

Statuses are read exactly as ``PaymentStatus`` spells them (``"succeeded"``, not
``"SUCCEEDED"``). A status added later must be read only under a ``workflow.patched``
branch, so that recorded histories keep replaying to the same carts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workflows.codes import (
    PAYMENT_RESULT_STATUSES,
    ErrorCode,
    PaymentMethod,
    PaymentStatus,
)
from workflows.contract import (
    CONFIRM,
    DELETE,
    IDENTIFY_CUSTOMER,
    RECORD_VISIT,
    RECOVERY_LINK_CLICKED,
    RESOLVE,
    SEND_REMINDER,
    START_CHECKOUT,
    START_PAYMENT,
    UNLOCK,
    UPDATE_CART,
)
from workflows.events import (
    CartLine,
    CartUpdated,
    CheckoutStarted,
    ConfirmCart,
    CustomerIdentified,
    CustomerInfo,
    CustomerVisited,
    DeleteCart,
    PaymentResultReported,
    PaymentResultUnreadable,
    PaymentStarted,
    RecoveryLinkClicked,
    ResolveAttention,
    SendReminder,
    UnlockCart,
)
from workflows.validation import (
    MAX_AMOUNT,
    CartRefused,
    check_attempt_id,
    escape_text,
    is_int,
    text_rules_apply,
)

#: how much of an unreadable payload is kept on the cart
EXCERPT_LIMIT = 500

# 12-19 digits, optionally grouped by spaces or hyphens: a card number (PAN).
_PAN_RE = re.compile(r"(?<!\d)(?:\d[ \-]?){11,18}\d(?!\d)")


def mask_card_numbers(text: str) -> str:
    """Every run of 12-19 digits with all but its last four digits masked."""

    def mask(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group(0))
        return "*" * (len(digits) - 4) + digits[-4:]

    return _PAN_RE.sub(mask, text)


def excerpt(raw: object) -> str:
    """A short, safe rendering of a raw payload: JSON, card numbers masked, truncated;
    control characters and lone surrogates escaped (``storable``)."""
    try:
        text = json.dumps(raw, ensure_ascii=False, sort_keys=False, default=repr)
    except (TypeError, ValueError):  # pragma: no cover - json.loads output always dumps
        text = repr(raw)
    text = mask_card_numbers(storable(text, as_json=True))
    return text if len(text) <= EXCERPT_LIMIT else text[: EXCERPT_LIMIT - 3] + "..."


def storable(text: str, *, as_json: bool = False) -> str:
    """``text`` as a record of outside input keeps it: with its control characters and
    lone surrogates escaped (``as_json``: as JSON escapes; inside ``legacy_text``, as before
    the text rules: unchanged)."""
    return escape_text(text, as_json=as_json) if text_rules_apply() else text


# --------------------------------------------------------------------------- strict reading


class _Fields:
    """A JSON object read field by field; unknown fields are refused at ``done()``."""

    def __init__(self, raw: object, what: str, code: ErrorCode = ErrorCode.INVALID_INPUT) -> None:
        if not isinstance(raw, dict):
            raise CartRefused(code, f"{what} must be a JSON object, not {_json_type(raw)}")
        self.raw: dict[str, Any] = raw
        self.what = what
        self.seen: set[str] = set()

    def _get(self, key: str, required: bool, code: ErrorCode) -> Any:
        self.seen.add(key)
        if key not in self.raw or self.raw[key] is None:
            if required:
                raise CartRefused(code, f"{self.what}: {key} is required")
            return None
        return self.raw[key]

    def text(self, key: str, *, code: ErrorCode, required: bool = True) -> Any:
        value = self._get(key, required, code)
        if value is not None and not isinstance(value, str):
            raise CartRefused(code, f"{self.what}: {key} must be a string, not {_json_type(value)}")
        return value

    def integer(self, key: str, *, code: ErrorCode, required: bool = True) -> Any:
        value = self._get(key, required, code)
        if value is not None and not is_int(value):
            raise CartRefused(
                code, f"{self.what}: {key} must be a whole number, not {_json_type(value)}"
            )
        return value

    def flag(self, key: str, *, code: ErrorCode, default: bool) -> bool:
        value = self._get(key, False, code)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise CartRefused(code, f"{self.what}: {key} must be true or false")
        return value

    def items(self, key: str, *, code: ErrorCode, required: bool = True) -> Any:
        value = self._get(key, required, code)
        if value is not None and not isinstance(value, list):
            raise CartRefused(code, f"{self.what}: {key} must be a list, not {_json_type(value)}")
        return value

    def done(self) -> None:
        unknown = [key for key in self.raw if key not in self.seen]
        if unknown:
            names = ", ".join(repr(str(key))[:40] for key in unknown[:5])
            raise CartRefused(ErrorCode.INVALID_INPUT, f"{self.what}: unknown field(s) {names}")


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return f"not a finite number ({value!r})"
        return f"a number with a fraction ({value!r})" if value != int(value) else "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# --------------------------------------------------------------------------- storefront


def parse_line(raw: object, index: int) -> CartLine:
    fields = _Fields(raw, f"line {index + 1}", ErrorCode.INVALID_LINE)
    line = CartLine(
        sku=fields.text("sku", code=ErrorCode.INVALID_LINE),
        name=fields.text("name", code=ErrorCode.INVALID_LINE),
        quantity=fields.integer("quantity", code=ErrorCode.INVALID_QUANTITY),
        unit_price=fields.integer("unit_price", code=ErrorCode.INVALID_PRICE),
    )
    fields.done()
    return line


def parse_cart_updated(raw: object) -> CartUpdated:
    fields = _Fields(raw, "update_cart")
    lines = fields.items("lines", code=ErrorCode.INVALID_LINE)
    event = CartUpdated(
        lines=[parse_line(line, i) for i, line in enumerate(lines)],
        currency=fields.text("currency", code=ErrorCode.INVALID_CURRENCY),
        customer_id=fields.text("customer_id", code=ErrorCode.INVALID_CUSTOMER, required=False),
    )
    fields.done()
    return event


def parse_customer(raw: object) -> CustomerInfo:
    code = ErrorCode.INVALID_CUSTOMER
    fields = _Fields(raw, "customer", code)
    customer = CustomerInfo(
        email=fields.text("email", code=ErrorCode.INVALID_EMAIL),
        name=fields.text("name", code=code, required=False),
        phone=fields.text("phone", code=code, required=False),
        locale=fields.text("locale", code=code, required=False),
        time_zone=fields.text("time_zone", code=code, required=False),
        marketing_consent=fields.flag("marketing_consent", code=code, default=False),
        logged_in=fields.flag("logged_in", code=code, default=False),
        customer_id=fields.text("customer_id", code=code, required=False),
    )
    fields.done()
    return customer


def parse_customer_identified(raw: object) -> CustomerIdentified:
    fields = _Fields(raw, "identify_customer")
    customer = fields._get("customer", True, ErrorCode.INVALID_CUSTOMER)
    fields.done()
    return CustomerIdentified(customer=parse_customer(customer))


def parse_customer_visited(raw: object) -> CustomerVisited:
    fields = _Fields(raw, "record_visit")
    event = CustomerVisited(page=fields.text("page", code=ErrorCode.INVALID_INPUT, required=False))
    fields.done()
    return event


def parse_checkout_started(raw: object) -> CheckoutStarted:
    _Fields(raw, "start_checkout").done()
    return CheckoutStarted()


def parse_payment_started(raw: object) -> PaymentStarted:
    fields = _Fields(raw, "start_payment")
    method = fields.text("method", code=ErrorCode.INVALID_PAYMENT)
    event = PaymentStarted(
        attempt_id=fields.text("attempt_id", code=ErrorCode.INVALID_PAYMENT),
        method=PaymentMethod(method) if method in PaymentMethod.__members__.values() else method,
        gateway=fields.text("gateway", code=ErrorCode.INVALID_PAYMENT),
        amount=fields.integer("amount", code=ErrorCode.INVALID_AMOUNT),
        currency=fields.text("currency", code=ErrorCode.INVALID_CURRENCY, required=False),
    )
    fields.done()
    return event


# --------------------------------------------------------------------------- admin


def _admin_fields(fields: _Fields) -> dict[str, Any]:
    return {
        "admin": fields.text("admin", code=ErrorCode.INVALID_INPUT),
        "note": fields.text("note", code=ErrorCode.INVALID_INPUT, required=False),
    }


def parse_confirm(raw: object) -> ConfirmCart:
    fields = _Fields(raw, "confirm")
    common = _admin_fields(fields)
    status = fields.text("status", code=ErrorCode.INVALID_STATUS, required=False)
    fields.done()
    return ConfirmCart(**common, status=status if status is not None else ConfirmCart.status)


def parse_unlock(raw: object) -> UnlockCart:
    fields = _Fields(raw, "unlock")
    event = UnlockCart(**_admin_fields(fields))
    fields.done()
    return event


def parse_delete(raw: object) -> DeleteCart:
    fields = _Fields(raw, "delete")
    event = DeleteCart(**_admin_fields(fields))
    fields.done()
    return event


def parse_resolve(raw: object) -> ResolveAttention:
    fields = _Fields(raw, "resolve")
    common = _admin_fields(fields)
    items = fields.items("items", code=ErrorCode.INVALID_INPUT, required=False)
    fields.done()
    if items is not None and not all(is_int(item) for item in items):
        raise CartRefused(ErrorCode.INVALID_INPUT, "resolve: items must be whole numbers")
    return ResolveAttention(**common, items=items)


def parse_send_reminder(raw: object) -> SendReminder:
    fields = _Fields(raw, "send_reminder")
    common = _admin_fields(fields)
    reminder_id = fields.text("reminder_id", code=ErrorCode.INVALID_REMINDER)
    fields.done()
    return SendReminder(**common, reminder_id=reminder_id)


def parse_recovery_link_clicked(raw: object) -> RecoveryLinkClicked:
    fields = _Fields(raw, "recovery_link_clicked")
    reminder_id = fields.text("reminder_id", code=ErrorCode.INVALID_REMINDER)
    coupon = fields.text("coupon_code", code=ErrorCode.INVALID_INPUT, required=False)
    fields.done()
    return RecoveryLinkClicked(reminder_id=reminder_id, coupon_code=coupon)


def admin_name(raw: object) -> str:
    """Who sent an admin message, as far as it can be read (for the refusal's record)."""
    if isinstance(raw, dict) and isinstance(raw.get("admin"), str) and raw["admin"].strip():
        return storable(str(raw["admin"])[:200])
    return "unknown"


# --------------------------------------------------------------------------- await_order

#: the longest an ``await_order`` call may wait
MAX_AWAIT_SECONDS = 300


def parse_await_timeout(raw: object) -> float:
    """``await_order``'s argument: seconds, as a number or ``{"timeout_seconds": n}``."""
    value = raw.get("timeout_seconds") if isinstance(raw, dict) else raw
    if isinstance(raw, dict) and set(raw) - {"timeout_seconds"}:
        raise CartRefused(ErrorCode.INVALID_INPUT, "await_order takes only timeout_seconds")
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= MAX_AWAIT_SECONDS
    ):
        raise CartRefused(
            ErrorCode.INVALID_INPUT,
            f"timeout_seconds must be a number from 0 to {MAX_AWAIT_SECONDS}",
        )
    return float(value)


# --------------------------------------------------------------------------- payment results


def parse_payment_result(raw: object) -> PaymentResultReported | PaymentResultUnreadable:
    """A gateway's result. Never refused: what cannot be read is kept for an admin.

    The core must be exact (a string attempt id, a known lower-case status, a whole
    amount). Optional details (currency, card_last4, gateway) are passed on as they came;
    the state machine drops a malformed one and flags it (``workflows.money``)."""
    if not isinstance(raw, dict):
        return PaymentResultUnreadable(
            problem=f"the payload is {_json_type(raw)}, not a JSON object",
            excerpt=excerpt(raw),
        )
    attempt_id: Any = raw.get("attempt_id")
    status: Any = raw.get("status")
    amount: Any = raw.get("amount")
    problems = []
    readable_attempt: str | None = None
    try:
        readable_attempt = check_attempt_id(attempt_id)
    except CartRefused as refused:
        problems.append(
            f"attempt_id: {refused.message}" if attempt_id is not None else "attempt_id is missing"
        )
    if not isinstance(status, str) or status not in PAYMENT_RESULT_STATUSES:
        known = ", ".join(sorted(PAYMENT_RESULT_STATUSES))
        problems.append(
            "status is missing"
            if status is None
            else f"status {_short(status)} is not one of {known}"
        )
    if not is_int(amount) or not 0 <= amount <= MAX_AMOUNT:
        problems.append(
            "amount is missing"
            if amount is None
            else f"amount must be whole minor units, not {_json_type(amount)}"
        )
    if problems:
        return PaymentResultUnreadable(
            problem="; ".join(problems),
            excerpt=excerpt(raw),
            attempt_id=readable_attempt,
            status=storable(mask_card_numbers(status[:40])) if isinstance(status, str) else None,
            amount=amount if is_int(amount) else None,
        )
    return PaymentResultReported(
        attempt_id=attempt_id,  # type: ignore[arg-type]
        status=PaymentStatus(status),
        amount=amount,  # type: ignore[arg-type]
        currency=raw.get("currency"),
        card_last4=raw.get("card_last4"),
        gateway=raw.get("gateway"),
    )


def _short(value: object) -> str:
    dumped = json.dumps(value, ensure_ascii=False, default=repr)
    text = mask_card_numbers(storable(dumped, as_json=True))
    return text if len(text) <= 40 else text[:37] + "..."


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class MessageSpec:
    """One update (and, for admin actions, the signal of the same name), or a signal only."""

    name: str
    parse: Callable[[object], Any]
    description: str
    #: the first storefront message creates the cart (update-with-start)
    storefront: bool = False
    #: also accepted as a signal (the Temporal UI); a refusal is kept in the journal
    signal: bool = False
    #: declared as an update (``False``: a signal only)
    update: bool = True
    #: who sends the signal, for a refusal's record (default: the payload's ``admin``)
    sender: str | None = None
    #: the workflow reads the shop's order statuses before it applies the event
    needs_statuses: bool = False


MESSAGES: tuple[MessageSpec, ...] = (
    MessageSpec(
        UPDATE_CART,
        parse_cart_updated,
        'Storefront: the whole cart, lines replace lines. {"lines": [{"sku": "tea", "name": '
        '"Green tea", "quantity": 2, "unit_price": 450}], "currency": "EUR"}',
        storefront=True,
    ),
    MessageSpec(
        IDENTIFY_CUSTOMER,
        parse_customer_identified,
        'Storefront: who the customer is. {"customer": {"email": "ann@example.com", '
        '"name": "Ann", "locale": "en", "time_zone": "Europe/Paris"}}',
        storefront=True,
    ),
    MessageSpec(
        RECORD_VISIT,
        parse_customer_visited,
        'Storefront: the customer looked at a page (activity). {"page": "/checkout"}',
        storefront=True,
    ),
    MessageSpec(
        START_CHECKOUT,
        parse_checkout_started,
        "Storefront: the customer is on the checkout form. {}",
        storefront=True,
    ),
    MessageSpec(
        START_PAYMENT,
        parse_payment_started,
        'Storefront: a payment attempt starts. {"attempt_id": "pi_1", "method": "online", '
        '"gateway": "stripe", "amount": 2100}',
        storefront=True,
    ),
    MessageSpec(
        CONFIRM,
        parse_confirm,
        'Admin: a locked cart becomes an order (P: paid, O: open). {"admin": "ann", '
        '"note": "paid, seen in the gateway", "status": "P"}',
        signal=True,
    ),
    MessageSpec(
        UNLOCK,
        parse_unlock,
        'Admin: a locked cart becomes active again. {"admin": "ann", "note": "called"}',
        signal=True,
    ),
    MessageSpec(
        DELETE,
        parse_delete,
        'Admin: delete the cart (the customer starts over). {"admin": "ann", "note": "test"}',
        signal=True,
    ),
    MessageSpec(
        RESOLVE,
        parse_resolve,
        'Admin: resolve attention items (all open ones without "items"). {"admin": "ann", '
        '"note": "refunded in the gateway", "items": [1]}',
        signal=True,
    ),
    MessageSpec(
        SEND_REMINDER,
        parse_send_reminder,
        "Admin: send a reminder of the shop's campaign to this abandoned cart now (once per "
        'cart; the send-time checks apply). {"admin": "ann", "reminder_id": "first"}',
        signal=True,
    ),
    MessageSpec(
        RECOVERY_LINK_CLICKED,
        parse_recovery_link_clicked,
        'Web: the customer followed a reminder\'s recovery link. {"reminder_id": "first", '
        '"coupon_code": "K7Q2M9XA"}; an abandoned cart becomes active',
        signal=True,
        update=False,
        sender="web",
    ),
)

MESSAGE_BY_NAME = {spec.name: spec for spec in MESSAGES}
