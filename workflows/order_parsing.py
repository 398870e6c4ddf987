"""The order phase's admin messages as plain JSON, read strictly into events (like
``workflows.parsing``: a missing field, a field of the wrong JSON type or an unknown field
is refused with an ``ErrorCode``; nothing is truncated or guessed).
"""

from __future__ import annotations

from workflows.codes import ErrorCode
from workflows.order_checks import DELIVERY_FIELDS
from workflows.order_contract import (
    ADD_ORDER_NOTE,
    EDIT_DELIVERY,
    EDIT_ORDER_LINES,
    RECORD_PAYMENT,
    SET_ORDER_STATUS,
)
from workflows.order_events import (
    AddOrderNote,
    EditDelivery,
    EditOrderLines,
    RecordPayment,
    SetOrderStatus,
)
from workflows.parsing import (
    MESSAGES,
    MessageSpec,
    _admin_fields,
    _Fields,
    _json_type,
    parse_line,
)
from workflows.validation import CartRefused, is_int


def parse_set_order_status(raw: object) -> SetOrderStatus:
    fields = _Fields(raw, SET_ORDER_STATUS)
    common = _admin_fields(fields)
    status = fields.text("status", code=ErrorCode.INVALID_STATUS)
    fields.done()
    return SetOrderStatus(**common, status=status)


def parse_edit_delivery(raw: object) -> EditDelivery:
    fields = _Fields(raw, EDIT_DELIVERY)
    common = _admin_fields(fields)
    delivery = fields._get("delivery", True, ErrorCode.INVALID_DELIVERY)
    fields.done()
    if not isinstance(delivery, dict):
        raise CartRefused(
            ErrorCode.INVALID_DELIVERY, f"delivery must be an object, not {_json_type(delivery)}"
        )
    for name, value in delivery.items():
        if name not in DELIVERY_FIELDS:
            raise CartRefused(
                ErrorCode.INVALID_DELIVERY, f"{str(name)[:40]!r} is not a delivery field"
            )
        if name == "cost":
            if not is_int(value):
                raise CartRefused(
                    ErrorCode.INVALID_DELIVERY,
                    f"cost must be a whole number of minor units, not {_json_type(value)}",
                )
        elif value is not None and not isinstance(value, str):
            raise CartRefused(
                ErrorCode.INVALID_DELIVERY, f"{name} must be a string, not {_json_type(value)}"
            )
    # In the order the delivery's fields are declared: never the payload's or a set's.
    changes = {name: delivery[name] for name in DELIVERY_FIELDS if name in delivery}
    return EditDelivery(**common, changes=changes)


def parse_edit_order_lines(raw: object) -> EditOrderLines:
    fields = _Fields(raw, EDIT_ORDER_LINES)
    common = _admin_fields(fields)
    lines = fields.items("lines", code=ErrorCode.INVALID_LINE)
    fields.done()
    return EditOrderLines(**common, lines=[parse_line(line, i) for i, line in enumerate(lines)])


def parse_record_payment(raw: object) -> RecordPayment:
    fields = _Fields(raw, RECORD_PAYMENT)
    common = _admin_fields(fields)
    event = RecordPayment(
        **common,
        kind=fields.text("kind", code=ErrorCode.INVALID_PAYMENT),
        amount=fields.integer("amount", code=ErrorCode.INVALID_AMOUNT),
        currency=fields.text("currency", code=ErrorCode.INVALID_CURRENCY),
        reference=fields.text("reference", code=ErrorCode.INVALID_PAYMENT, required=False),
    )
    fields.done()
    return event


def parse_add_order_note(raw: object) -> AddOrderNote:
    fields = _Fields(raw, ADD_ORDER_NOTE)
    common = _admin_fields(fields)
    fields.done()
    return AddOrderNote(**common)


ORDER_MESSAGES: tuple[MessageSpec, ...] = (
    MessageSpec(
        SET_ORDER_STATUS,
        parse_set_order_status,
        "Admin: the order enters a status of the shop (a locked cart becomes an order with "
        'it). {"admin": "ann", "status": "A", "note": "stock checked"}',
        signal=True,
        needs_statuses=True,
    ),
    MessageSpec(
        EDIT_DELIVERY,
        parse_edit_delivery,
        'Admin: change the order\'s delivery (the fields given). {"admin": "ann", '
        '"delivery": {"method": "dhl", "cost": 500, "tracking_code": "JJD0001", '
        '"recipient_name": "Ann", "country": "DE", "city": "Berlin", "postal_code": '
        '"10115", "address": "Main st 1"}}',
        signal=True,
    ),
    MessageSpec(
        EDIT_ORDER_LINES,
        parse_edit_order_lines,
        'Admin: replace the order\'s lines while its status allows it. {"admin": "ann", '
        '"lines": [{"sku": "tea", "name": "Green tea", "quantity": 3, "unit_price": 450}]}',
        signal=True,
    ),
    MessageSpec(
        RECORD_PAYMENT,
        parse_record_payment,
        'Admin: a payment or refund received outside the gateways. {"admin": "ann", "kind": '
        '"payment", "amount": 500, "currency": "EUR", "reference": "bank transfer 42"}',
        signal=True,
    ),
    MessageSpec(
        ADD_ORDER_NOTE,
        parse_add_order_note,
        'Admin: a note in the order\'s journal. {"admin": "ann", "note": "called the customer"}',
        signal=True,
    ),
)

#: every message of the cart workflow (the cart's and the order phase's), by name
ALL_MESSAGES: tuple[MessageSpec, ...] = MESSAGES + ORDER_MESSAGES
ALL_MESSAGES_BY_NAME = {spec.name: spec for spec in ALL_MESSAGES}
