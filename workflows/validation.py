"""Validation: the values an event may carry, and what the cart's state allows.

``check(cart, event)`` raises ``CartRefused`` (with an ``ErrorCode``) if ``event`` cannot be
applied to ``cart`` and changes nothing. The value checks (``check_lines``,
``check_customer`` ...) need no cart: the client runs them at the edge before sending.
Events built in Python are checked as strictly as events parsed from JSON: a value of the
wrong type is refused here, never coerced.

Outside text (``check_text``, e-mail addresses) holding a control character (Unicode
``Cc``: C0, DEL, C1; tab, CR and LF only where ``multiline``: notes, addresses) or a lone
surrogate is refused with ``invalid_text``, never cleaned: PostgreSQL stores no NUL in
text, reads no ``\\u0000`` back out of JSON, and neither database (nor UTF-8 output)
takes a lone surrogate. Histories recorded before this rule replay under it
(``legacy_text``, asked by the workflow through the patch ``TEXT_PATCH``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from workflows.codes import (
    ADMIN_CONFIRM_STATUSES,
    ISO_4217,
    PAYMENT_RESULT_STATUSES,
    STOREFRONT_METHODS,
    CartState,
    ErrorCode,
    PaymentStatus,
    ReminderStatus,
)
from workflows.events import (
    AdminAction,
    CartLine,
    CartUpdated,
    CheckoutStarted,
    ConfirmCart,
    CustomerIdentified,
    CustomerInfo,
    CustomerVisited,
    DeleteCart,
    OrderNumberAssigned,
    PaymentResultReported,
    PaymentStarted,
    RecoveryLinkClicked,
    ResolveAttention,
    SendReminder,
    UnlockCart,
)
from workflows.state import Cart, PaymentAttempt

MAX_LINES = 200
MAX_QUANTITY = 100_000
MAX_AMOUNT = 10**12  # minor units
MAX_TEXT = 200
MAX_NOTE = 1000
#: payment attempts a cart keeps; a storefront start beyond it is refused, a gateway
#: result for yet another attempt is recorded as an attention item
MAX_ATTEMPTS = 50

#: an id (shop, cart, source ...): 1-64 letters, digits, '.', '_' or '-', the first a
#: letter or digit; in this form for OpenAPI documents (ECMA-262) and pydantic
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN.removesuffix("$") + r"\Z")
_ATTEMPT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}\Z")
# Syntax only: the edge (starter.client) validates deliverable form with email-validator.
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+\Z")
_LAST4_RE = re.compile(r"^[0-9]{4}\Z")
_TZ_RE = re.compile(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*\Z")
_LOCALE_RE = re.compile(r"^[a-zA-Z]{2,3}([_-][A-Za-z0-9]{2,8})*\Z")
#: what no outside text may hold: control characters (``Cc``) and lone surrogates
_UNSAFE_RE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
#: the same where a text may have lines (a note, an address): tab, LF and CR allowed
_UNSAFE_MULTILINE_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
#: the name of the patch under which the workflow applies the text rules (``legacy_text``)
TEXT_PATCH = "outside-text-checked"
_LEGACY_TEXT: ContextVar[bool] = ContextVar("cartkeeper_legacy_text", default=False)


class CartRefused(Exception):  # not "...Error": a refusal is an outcome, not a bug
    """The event was refused; the cart is unchanged."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --------------------------------------------------------------------------- values


def valid_id(value: object) -> bool:
    return isinstance(value, str) and bool(_ID_RE.match(value))


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@contextmanager
def legacy_text() -> Iterator[None]:
    """Within it, text is read as before ``invalid_text``: control characters and lone
    surrogates pass, records of raw payloads keep them. Only for the workflow replaying a
    message of a history recorded before the rule (``TEXT_PATCH`` absent): that history
    must make the cart it made."""
    token = _LEGACY_TEXT.set(True)
    try:
        yield
    finally:
        _LEGACY_TEXT.reset(token)


def text_rules_apply() -> bool:
    """Whether the text rules apply (everywhere but inside ``legacy_text``)."""
    return not _LEGACY_TEXT.get()


def has_unsafe_text(value: object) -> bool:
    """Whether a decoded JSON value holds, in a string or a key, a character the text rules
    refuse anywhere (a tab or line break included): what the workflow asks ``TEXT_PATCH``
    for, a message the rules may treat otherwise than before them."""
    if isinstance(value, str):
        return _UNSAFE_RE.search(value) is not None
    if isinstance(value, dict):
        return any(has_unsafe_text(k) or has_unsafe_text(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_unsafe_text(item) for item in value)
    return False


def escape_text(value: str, *, as_json: bool = False, multiline: bool = False) -> str:
    """``value`` with each control character and lone surrogate written as its escape
    (``\\x00``, ``\\ud800``; ``as_json``: always ``\\u0000``, so JSON text stays JSON;
    ``multiline``: tab, LF and CR kept as they are): storable and readable; for records of
    what was refused or could not be read, and for showing text stored before the rules,
    never for what the cart acts on."""
    unsafe = _UNSAFE_MULTILINE_RE if multiline else _UNSAFE_RE
    return unsafe.sub(lambda m: _escape(m.group(0), as_json), value)


def _escape(char: str, as_json: bool) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 and not as_json else f"\\u{code:04x}"


def text_problem(value: str, what: str, *, multiline: bool = False) -> str | None:
    """Why ``value`` is not acceptable outside text (``None`` when it is, and always
    inside ``legacy_text``)."""
    if _LEGACY_TEXT.get():
        return None
    return outside_text_problem(value, what, multiline=multiline)


def outside_text_problem(value: str, what: str, *, multiline: bool = False) -> str | None:
    """``text_problem`` whatever the context (``legacy_text`` too): for the read model's
    text filters, which must take every text a cart can hold and nothing else."""
    found = (_UNSAFE_MULTILINE_RE if multiline else _UNSAFE_RE).search(value)
    if found is None:
        return None
    char = found.group(0)
    kind = "a lone surrogate" if "\ud800" <= char <= "\udfff" else "a control character"
    shown = escape_text(value[:60]) + ("..." if len(value) > 60 else "")
    allowed = " other than tab and line breaks" if multiline else ""
    return (
        f"{what} holds {kind} (U+{ord(char):04X} at character {found.start() + 1}:"
        f" '{shown}'): text takes no control characters{allowed} and no lone surrogates"
    )


def check_text(
    value: object,
    what: str,
    *,
    required: bool,
    code: ErrorCode,
    limit: int = MAX_TEXT,
    multiline: bool = False,
) -> None:
    """A text of at most ``limit`` characters, not blank, without control characters
    (``multiline``: but tab, CR and LF) or lone surrogates (``invalid_text``)."""
    if value is None and not required:
        return
    if isinstance(value, str) and (problem := text_problem(value, what, multiline=multiline)):
        raise CartRefused(ErrorCode.INVALID_TEXT, problem)
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise CartRefused(code, f"{what} must be a non-empty text of at most {limit} characters")


def check_currency(currency: object) -> str:
    if not isinstance(currency, str) or currency not in ISO_4217:
        raise CartRefused(
            ErrorCode.INVALID_CURRENCY, f"currency {currency!r} is not an ISO 4217 code"
        )
    return currency


def check_lines(lines: object) -> list[CartLine]:
    if not isinstance(lines, list):
        raise CartRefused(ErrorCode.INVALID_LINE, "lines must be a list")
    if len(lines) > MAX_LINES:
        raise CartRefused(ErrorCode.TOO_MANY_LINES, f"a cart holds at most {MAX_LINES} lines")
    seen: set[str] = set()
    for line in lines:
        if not isinstance(line, CartLine):
            raise CartRefused(ErrorCode.INVALID_LINE, "each line needs sku, name, quantity, price")
        check_text(line.sku, "sku", required=True, code=ErrorCode.INVALID_LINE)
        check_text(line.name, f"name of {line.sku}", required=True, code=ErrorCode.INVALID_LINE)
        if line.sku in seen:
            raise CartRefused(ErrorCode.DUPLICATE_SKU, f"sku {line.sku!r} appears twice")
        seen.add(line.sku)
        if not is_int(line.quantity) or not 0 < line.quantity <= MAX_QUANTITY:
            raise CartRefused(
                ErrorCode.INVALID_QUANTITY,
                f"quantity of {line.sku!r} must be a whole number from 1 to {MAX_QUANTITY}",
            )
        if not is_int(line.unit_price) or not 0 <= line.unit_price <= MAX_AMOUNT:
            raise CartRefused(
                ErrorCode.INVALID_PRICE,
                f"unit price of {line.sku!r} must be a whole number of minor units, 0 or more",
            )
    if sum(line.quantity * line.unit_price for line in lines) > MAX_AMOUNT:
        raise CartRefused(
            ErrorCode.INVALID_PRICE, f"the cart's total must not exceed {MAX_AMOUNT} minor units"
        )
    return lines


def check_customer(customer: object) -> CustomerInfo:
    if not isinstance(customer, CustomerInfo):
        raise CartRefused(ErrorCode.INVALID_CUSTOMER, "customer details are missing")
    if isinstance(customer.email, str) and (problem := text_problem(customer.email, "email")):
        raise CartRefused(ErrorCode.INVALID_TEXT, problem)
    if not isinstance(customer.email, str) or not _EMAIL_RE.match(customer.email):
        raise CartRefused(ErrorCode.INVALID_EMAIL, f"{customer.email!r} is not an e-mail address")
    for what, value in (("name", customer.name), ("phone", customer.phone)):
        check_text(value, what, required=False, code=ErrorCode.INVALID_CUSTOMER)
    if customer.customer_id is not None and not valid_id(customer.customer_id):
        raise CartRefused(ErrorCode.INVALID_CUSTOMER, "customer_id is not a valid id")
    if customer.locale is not None and not (
        isinstance(customer.locale, str) and _LOCALE_RE.match(customer.locale)
    ):
        raise CartRefused(ErrorCode.INVALID_CUSTOMER, f"locale {customer.locale!r} is not valid")
    if customer.time_zone is not None and not (
        isinstance(customer.time_zone, str) and _TZ_RE.match(customer.time_zone)
    ):
        raise CartRefused(
            ErrorCode.INVALID_CUSTOMER, f"time zone {customer.time_zone!r} is not valid"
        )
    for what, flag in (
        ("marketing_consent", customer.marketing_consent),
        ("logged_in", customer.logged_in),
    ):
        if not isinstance(flag, bool):
            raise CartRefused(ErrorCode.INVALID_CUSTOMER, f"{what} must be true or false")
    return customer


def check_amount(amount: object) -> int:
    if not is_int(amount) or not 0 < amount <= MAX_AMOUNT:  # type: ignore[operator]
        raise CartRefused(
            ErrorCode.INVALID_AMOUNT, "amount must be a positive whole number of minor units"
        )
    return amount  # type: ignore[return-value]


def check_attempt_id(attempt_id: object) -> str:
    if not isinstance(attempt_id, str) or not _ATTEMPT_RE.match(attempt_id):
        raise CartRefused(
            ErrorCode.INVALID_PAYMENT,
            "attempt id must be 1-128 letters, digits, '.', '_', ':' or '-'",
        )
    return attempt_id


def check_payment_result_core(event: PaymentResultReported) -> None:
    """The parts a result cannot be acted on without: attempt, status, amount."""
    check_attempt_id(event.attempt_id)
    if not isinstance(event.status, str) or event.status not in PAYMENT_RESULT_STATUSES:
        raise CartRefused(ErrorCode.INVALID_STATUS, "status is not a payment result status")
    if not is_int(event.amount) or not 0 <= event.amount <= MAX_AMOUNT:
        raise CartRefused(ErrorCode.INVALID_AMOUNT, "amount must be whole minor units, 0 or more")


def check_payment_result_detail(name: str, value: object) -> None:
    """One optional detail of a result (``currency``, ``card_last4``, ``gateway``)."""
    if value is None:
        return
    if name == "currency":
        check_currency(value)
    elif name == "card_last4":
        if not (isinstance(value, str) and _LAST4_RE.match(value)):
            raise CartRefused(ErrorCode.INVALID_PAYMENT, "card_last4 must be exactly four digits")
    elif name == "gateway":
        check_text(value, "gateway", required=False, code=ErrorCode.INVALID_PAYMENT)


def check_payment_result(event: PaymentResultReported) -> None:
    """The whole result (the client checks it at the edge before sending)."""
    check_payment_result_core(event)
    for name in PAYMENT_RESULT_DETAILS:
        check_payment_result_detail(name, getattr(event, name))


PAYMENT_RESULT_DETAILS = ("currency", "card_last4", "gateway")


def check_admin(event: AdminAction) -> None:
    check_text(event.admin, "admin", required=True, code=ErrorCode.INVALID_INPUT)
    check_text(
        event.note,
        "note",
        required=False,
        code=ErrorCode.INVALID_INPUT,
        limit=MAX_NOTE,
        multiline=True,
    )


# --------------------------------------------------------------------------- state rules


def refuse_storefront_change(cart: Cart) -> None:
    """Storefront changes are refused once a cart is locked, ordered, expired or deleted."""
    match cart.state:
        case CartState.LOCKED:
            raise CartRefused(ErrorCode.CART_LOCKED, "the cart is locked until an admin acts")
        case CartState.ORDERED:
            number = cart.order.number if cart.order else None
            suffix = f" (order {number})" if number else ""
            raise CartRefused(ErrorCode.ALREADY_ORDERED, f"the cart is already ordered{suffix}")
        case _:
            refuse_closed(cart)


def refuse_closed(cart: Cart) -> None:
    if cart.state is CartState.EXPIRED:
        raise CartRefused(ErrorCode.CART_EXPIRED, "the cart has expired")
    if cart.state is CartState.DELETED:
        raise CartRefused(ErrorCode.CART_DELETED, "the cart was deleted")


def _require_locked(cart: Cart, event: AdminAction, done: str) -> None:
    check_admin(event)
    refuse_closed(cart)
    if cart.state is CartState.ORDERED:
        raise CartRefused(ErrorCode.ALREADY_ORDERED, "the cart is already ordered")
    if cart.state is not CartState.LOCKED:
        raise CartRefused(ErrorCode.NOT_LOCKED, f"only a locked cart can be {done} ({cart.state})")


def same_start(known: PaymentAttempt, event: PaymentStarted) -> bool:
    return (
        known.status is PaymentStatus.STARTED
        and known.method == event.method
        and known.gateway == event.gateway
        and known.amount == event.amount
    )


def _check_payment_started(cart: Cart, event: PaymentStarted) -> None:
    refuse_storefront_change(cart)
    if not cart.lines:
        raise CartRefused(ErrorCode.CART_EMPTY, "the cart is empty")
    check_attempt_id(event.attempt_id)
    if not isinstance(event.method, str) or event.method not in STOREFRONT_METHODS:
        raise CartRefused(ErrorCode.INVALID_PAYMENT, "method must be online or offline")
    check_text(event.gateway, "gateway", required=True, code=ErrorCode.INVALID_PAYMENT)
    check_amount(event.amount)
    if event.currency is not None:
        check_currency(event.currency)
        if event.currency != cart.currency:
            raise CartRefused(
                ErrorCode.CURRENCY_MISMATCH,
                f"the cart's currency is {cart.currency}; {event.currency} is refused",
            )
    known = cart.attempt(event.attempt_id)
    if known is not None and not same_start(known, event):
        raise CartRefused(
            ErrorCode.DUPLICATE_ATTEMPT, f"payment attempt {event.attempt_id!r} is already known"
        )
    if known is None and len(cart.payments) >= MAX_ATTEMPTS:
        raise CartRefused(
            ErrorCode.TOO_MANY_ATTEMPTS, f"a cart takes at most {MAX_ATTEMPTS} payment attempts"
        )


def _check_resolve(cart: Cart, event: ResolveAttention) -> None:
    check_admin(event)
    items = event.items
    if items is not None:
        if not isinstance(items, list) or not items or not all(is_int(i) for i in items):
            raise CartRefused(
                ErrorCode.INVALID_INPUT, "items must be a non-empty list of attention item ids"
            )
        open_ids = {item.id for item in cart.attention if item.is_open}
        unknown = [i for i in items if i not in open_ids]
        if unknown:
            raise CartRefused(
                ErrorCode.NOTHING_TO_RESOLVE,
                f"no open attention item {', '.join(f'#{i}' for i in unknown)}",
            )
    elif not cart.open_attention:
        raise CartRefused(ErrorCode.NOTHING_TO_RESOLVE, "the cart has no open attention item")


def check(cart: Cart, event: object) -> None:
    """Raise ``CartRefused`` if ``event`` cannot be applied to ``cart``; change nothing.

    Payment results, refused-signal records, cancellation requests and restore failures
    are never refused (``workflows.machine.apply`` records what it cannot act on)."""
    match event:
        case CartUpdated():
            refuse_storefront_change(cart)
            currency = check_currency(event.currency)
            if cart.currency is not None and currency != cart.currency:
                raise CartRefused(
                    ErrorCode.CURRENCY_MISMATCH,
                    f"the cart's currency is {cart.currency}; {currency} is refused",
                )
            check_lines(event.lines)
            if event.customer_id is not None and not valid_id(event.customer_id):
                raise CartRefused(ErrorCode.INVALID_CUSTOMER, "customer_id is not a valid id")
        case CustomerIdentified():
            refuse_storefront_change(cart)
            check_customer(event.customer)
        case CustomerVisited():
            refuse_closed(cart)
            check_text(event.page, "page", required=False, code=ErrorCode.INVALID_INPUT)
        case CheckoutStarted():
            refuse_storefront_change(cart)
            if not cart.lines:
                raise CartRefused(ErrorCode.CART_EMPTY, "the cart is empty")
        case PaymentStarted():
            _check_payment_started(cart, event)
        case ConfirmCart():
            _require_locked(cart, event, "confirmed")
            if not cart.lines:
                raise CartRefused(ErrorCode.CART_EMPTY, "an empty cart cannot become an order")
            if event.status not in ADMIN_CONFIRM_STATUSES:
                raise CartRefused(
                    ErrorCode.INVALID_STATUS,
                    f"a confirmed order starts as {' or '.join(sorted(ADMIN_CONFIRM_STATUSES))}",
                )
        case UnlockCart():
            _require_locked(cart, event, "unlocked")
        case DeleteCart():
            check_admin(event)
            if cart.state is CartState.ORDERED:
                raise CartRefused(ErrorCode.ALREADY_ORDERED, "an ordered cart cannot be deleted")
            if cart.state is CartState.EXPIRED:
                raise CartRefused(ErrorCode.CART_EXPIRED, "the cart has expired")
        case ResolveAttention():
            _check_resolve(cart, event)
        case OrderNumberAssigned():
            if not is_int(event.number) or event.number <= 0:
                raise CartRefused(ErrorCode.INVALID_INPUT, "an order number is positive")
        case SendReminder():
            _check_send_reminder(cart, event)
        case RecoveryLinkClicked():
            if not valid_id(event.reminder_id):
                raise CartRefused(ErrorCode.INVALID_REMINDER, "reminder_id is not a valid id")
            check_text(
                event.coupon_code,
                "coupon_code",
                required=False,
                code=ErrorCode.INVALID_INPUT,
                limit=32,
            )
        case _:
            return


def _check_send_reminder(cart: Cart, event: SendReminder) -> None:
    """An admin's manual reminder: to an abandoned cart with an address, once per cart."""
    check_admin(event)
    if not valid_id(event.reminder_id):
        raise CartRefused(ErrorCode.INVALID_REMINDER, "reminder_id is not a valid id")
    refuse_storefront_change(cart)
    if cart.state is not CartState.ABANDONED:
        raise CartRefused(
            ErrorCode.NOT_ABANDONED,
            f"reminders go to abandoned carts; this cart is {cart.state}",
        )
    if cart.customer is None or not cart.customer.email:
        raise CartRefused(ErrorCode.NO_ADDRESS, "the cart has no customer e-mail address")
    for item in cart.reminders:
        if item.reminder_id == event.reminder_id and item.status in (
            ReminderStatus.SENT,
            ReminderStatus.SENDING,
        ):
            raise CartRefused(
                ErrorCode.REMINDER_ALREADY_SENT,
                f"reminder {event.reminder_id} was {item.status} to this cart already",
            )
    if any(item.status is ReminderStatus.SENDING for item in cart.reminders):
        raise CartRefused(
            ErrorCode.REMINDER_ALREADY_SENT, "another reminder is being sent to this cart"
        )


# --------------------------------------------------------------------------- policy


def policy_problems(policy: object) -> list[str]:
    """What is wrong with a ``CartPolicy`` (empty when it is usable)."""
    from dataclasses import fields

    from workflows.state import CartPolicy

    if not isinstance(policy, CartPolicy):
        return ["not a CartPolicy"]
    problems = []
    limits: dict[str, tuple[float, float]] = {
        "abandon_after_seconds": (1, 10**9),
        "lock_after_seconds": (1, 10**9),
        "lifetime_seconds": (1, 10**10),
        "retire_after_seconds": (0, 10**10),
        "journal_limit": (1, 10_000),
        "continue_as_new_after_events": (50, 40_000),
        "projection_interval_seconds": (0, 86_400),
        "lock_alert_after_seconds": (0, 10**9),
        "reminder_max_lateness_seconds": (60, 10**9),
    }
    for spec in fields(policy):
        value = getattr(policy, spec.name)
        if spec.name == "process_pending_payments":
            if not isinstance(value, bool):
                problems.append(f"{spec.name} must be true or false")
            continue
        low, high = limits[spec.name]
        number_ok = is_int(value) or (
            spec.name == "projection_interval_seconds"
            and isinstance(value, float)
            and value == value  # not NaN
        )
        if not number_ok or not low <= value <= high:
            kind = "a whole number" if spec.name != "projection_interval_seconds" else "a number"
            problems.append(f"{spec.name} must be {kind} from {low:g} to {high:g}")
    return problems
