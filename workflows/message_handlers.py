"""The cart workflow's message plumbing: payloads taken raw and decoded as plain JSON,
the update (with its validator) and signal of every message of the tables
(``workflows.parsing.MESSAGES``, ``workflows.order_parsing.ORDER_MESSAGES``), and the
one-line summary shown in the Temporal UI.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import machine
    from workflows.contract import Cart, CartView
    from workflows.order_parsing import ALL_MESSAGES
    from workflows.parsing import MessageSpec
    from workflows.validation import TEXT_PATCH, has_unsafe_text, legacy_text

MISSING = object()


def summary(cart: Cart) -> str:
    """The one line shown in the Temporal UI's current details (no personal data)."""
    parts = [f"**{cart.state}**", f"{cart.item_count} item(s)"]
    if cart.currency:
        parts.append(f"{cart.total / 100:.2f} {cart.currency}")
    if cart.order is not None:
        number = f"#{cart.order.number}" if cart.order.number else "(numbering)"
        paid = "paid" if cart.order.paid else f"paid {cart.order.amount_paid / 100:.2f}"
        parts.append(f"order {number} {cart.order.status} {paid}")
    if cart.lock_reason:
        parts.append(f"locked: {cart.lock_reason}")
    open_items = cart.open_attention
    if open_items:
        kinds = sorted({str(item.kind) for item in open_items})
        parts.append(f"needs admin: {', '.join(kinds)}")
    return " · ".join(parts)


def decode(payload: RawValue) -> object:
    """A raw message as plain JSON values; ``MISSING`` if it is not JSON at all."""
    encoding = payload.payload.metadata.get("encoding", b"")
    if encoding == b"json/plain":
        try:
            return json.loads(payload.payload.data)
        except ValueError:
            return MISSING
    if encoding == b"binary/null":
        return None
    return MISSING


def text_rules(raw: object) -> AbstractContextManager[None]:
    """How a handler reads and applies the message ``raw`` (decoded): by today's text
    rules (``workflows.validation``: control characters and lone surrogates refused, or
    escaped in what a payment result keeps), unless ``raw`` holds such a character and the
    history was recorded before the rules (no ``TEXT_PATCH`` marker): then as it was
    (``legacy_text``), so that it makes the cart it made. The patch is asked only for such
    a message: the histories of other carts get no marker. Never from a validator (it
    issues a command); validators run for new messages only, by today's rules."""
    if raw is MISSING or not has_unsafe_text(raw) or workflow.patched(TEXT_PATCH):
        return nullcontext()
    return legacy_text()


def being_evicted() -> bool:
    """Whether the SDK is tearing this workflow instance down (cache eviction, worker
    shutdown, the end of a replay): it cancels the workflow's tasks then, which must not be
    taken for Temporal's "Request Cancellation". The SDK has no public way to tell; its
    instance's ``_deleting`` flag does (``tests/test_workflow_operations.py`` checks that
    it still exists)."""
    runtime = workflow._Runtime.current()
    return bool(getattr(runtime, "_deleting", False))


def refusal(refused: machine.CartRefused) -> ApplicationError:
    return ApplicationError(refused.message, type=refused.code, non_retryable=True)


def _make_update(spec: MessageSpec) -> Callable[..., Any]:
    """The update handler and validator of one message of ``workflows.parsing.MESSAGES``."""

    # ``self`` stays unannotated: the SDK takes annotated parameters for the payload's.
    async def handler(self, payload: RawValue) -> CartView:  # type: ignore[no-untyped-def]
        return await self._on_update(spec, payload)  # type: ignore[no-any-return]

    handler.__name__ = handler.__qualname__ = f"update_{spec.name}"
    update = workflow.update(name=spec.name, description=spec.description)(handler)

    def validator(self, payload: RawValue) -> None:  # type: ignore[no-untyped-def]
        self._validate(spec, payload)

    update.validator(validator)  # type: ignore[attr-defined]
    return update


def _make_signal(spec: MessageSpec) -> Callable[..., Any]:
    """A signal of the table: an admin action (the Temporal UI) with the update's checks,
    or a signal-only message (a recovery click); refusals are journaled."""
    if spec.needs_statuses:

        async def reading(self, payload: RawValue) -> None:  # type: ignore[no-untyped-def]
            await self._on_status_signal(spec, payload)

        reading.__name__ = reading.__qualname__ = f"signal_{spec.name}"
        description = spec.description + " (signal)"
        return workflow.signal(name=spec.name, description=description)(reading)

    def handler(self, payload: RawValue) -> None:  # type: ignore[no-untyped-def]
        self._on_signal(spec, payload)

    handler.__name__ = handler.__qualname__ = f"signal_{spec.name}"
    return workflow.signal(name=spec.name, description=spec.description + " (signal)")(handler)


def with_messages(cls: type[Any]) -> type[Any]:
    """Declare the update (and admin signal) of every message of the table once."""
    for spec in ALL_MESSAGES:
        if spec.update:
            setattr(cls, f"update_{spec.name}", _make_update(spec))
        if spec.signal:
            setattr(cls, f"signal_{spec.name}", _make_signal(spec))
    return cls
