"""The cart workflow's activities: the read model, order numbers and restoring a cart.

Every activity is idempotent, so Temporal may retry it freely:
- ``project_cart`` upserts the snapshot and never goes backwards (by ``Cart.version``,
  within one lineage; a newer lineage under the same id replaces the row); in the same
  transaction it writes the reminders the workflow skipped to the reminder ledger;
- ``allocate_order_number`` gives a cart one number, whatever the retries or races;
- ``restore_cart`` finds the state a new run of a closed cart continues from: the closed
  run's result, a replay of a terminated run (a query), else the last projection.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import Insert, and_, bindparam, func, or_
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError, WorkflowQueryFailedError
from temporalio.service import RPCError

from activities.db import SessionFactory, dialect_insert, write_session
from activities.models import CartRecord, ReminderSend
from activities.order_activities import read_statuses
from activities.order_numbering import allocate
from activities.order_statuses import StatusRefused
from activities.read_model import cart_values, get_cart_record, skipped_reminder_values
from workflows import machine
from workflows.contract import (
    ACTIVITY_ALLOCATE_ORDER_NUMBER,
    ACTIVITY_PROJECT_CART,
    ACTIVITY_RESTORE_CART,
    GET_CART,
    AllocateOrderNumberInput,
    Cart,
    OrderNumberAssigned,
    ProjectCartInput,
    ProjectedCart,
    RestoreCartInput,
    RestoredCart,
    workflow_id,
)
from workflows.order_events import OrderStatusesRead

log = activity.logger

_PRIMARY_KEY = ("shop_id", "cart_id")


_CARTS = CartRecord.__table__


@cache
def upsert_cart_statement(dialect: str) -> Insert:
    """INSERT the cart row, or UPDATE it only if the new values are newer: a greater
    version of the same lineage, or a newer lineage (the id reused after Temporal forgot
    the old cart: the row follows the cart the id now names).

    Built once per dialect, against the table with bound parameters (execute it with the
    row's values): building it per call, through the ORM, cost more than the write."""
    columns = [column.name for column in _CARTS.columns]
    statement = dialect_insert(dialect, _CARTS).values({name: bindparam(name) for name in columns})
    excluded = statement.excluded
    stored = _CARTS.c
    # A row without lineage (projected before lineages existed) belongs to the cart that
    # writes next; a cart without lineage (restored from such a row) is its own lineage:
    # NULL is no lineage, so compare with IS NOT DISTINCT FROM, not "=" (NULL = NULL is
    # not true, and such a cart would never update its row again).
    stored_lineage = func.coalesce(stored.lineage, excluded.lineage)
    same_lineage = stored_lineage.is_not_distinct_from(excluded.lineage)
    return statement.on_conflict_do_update(
        index_elements=list(_PRIMARY_KEY),
        set_={name: excluded[name] for name in columns if name not in _PRIMARY_KEY},
        where=or_(
            and_(same_lineage, excluded.version > stored.version),
            and_(~same_lineage, excluded.created_at > stored.created_at),
        ),
    )


_REMINDER_SENDS = ReminderSend.__table__
_REMINDER_KEY = ("shop_id", "cart_id", "lineage", "reminder_id")
#: what a workflow-side skip writes over (the row's key and creation stay)
_SKIP_FIELDS = ("status", "reason", "detail", "variant", "manual", "email", "currency", "due_at")


@cache
def upsert_skipped_reminders_statement(dialect: str) -> Insert:
    """INSERT a reminder the workflow skipped into the ledger (``reminder_sends``), or
    UPDATE its row unless the row says more: a ``sent`` row, or a skip that already has
    its reason (e.g. ``send_reminder``'s own, with the relay's answer), is kept."""
    columns = [column.name for column in _REMINDER_SENDS.columns]
    statement = dialect_insert(dialect, _REMINDER_SENDS).values(
        {name: bindparam(name) for name in columns}
    )
    excluded = statement.excluded
    stored = _REMINDER_SENDS.c
    return statement.on_conflict_do_update(
        index_elements=list(_REMINDER_KEY),
        set_={
            **{name: excluded[name] for name in _SKIP_FIELDS},
            "updated_at": excluded.updated_at,
        },
        where=and_(
            stored.status != "sent",
            or_(stored.status != "skipped", stored.reason.is_(None)),
        ),
    )


class CartActivities:
    """The activities of the cart workflow, bound to the read model's sessions and (to
    restore closed carts) a Temporal client."""

    def __init__(self, session_factory: SessionFactory, client: Client | None = None) -> None:
        self.session_factory = session_factory
        self.client = client

    def all(self) -> list[Any]:
        """The activities to register on a worker."""
        return [self.restore_cart, self.project_cart]

    @activity.defn(name=ACTIVITY_RESTORE_CART)
    async def restore_cart(self, request: RestoreCartInput) -> RestoredCart:
        """The state a new run of a closed cart continues from. Temporal first (the closed
        run's result; for a terminated run, its state replayed through the ``get_cart``
        query), so a database outage does not stop it; the read model last."""
        problems = []
        if self.client is not None:
            handle = self.client.get_workflow_handle(
                workflow_id(request.shop_id, request.cart_id),
                run_id=request.run_id,
                result_type=Cart,
            )
            try:
                cart = await handle.result(follow_runs=False)
                return RestoredCart(cart=cart, source="result")
            except WorkflowFailureError as error:
                problems.append(f"run {request.run_id} did not complete ({error.cause})")
            except RPCError as error:
                problems.append(f"run {request.run_id}: {error.message}")
            if problems and "did not complete" in problems[-1]:
                try:
                    cart = await handle.query(GET_CART, result_type=Cart)
                    return RestoredCart(cart=cart, source="query")
                except (WorkflowQueryFailedError, RPCError) as error:
                    problems.append(f"its state could not be replayed ({error})")
        record = await get_cart_record(self.session_factory, request.shop_id, request.cart_id)
        if record is not None:
            return RestoredCart(cart=record, source="read_model", detail="; ".join(problems))
        problems.append("the read model has no record of the cart")
        detail = "; ".join(problems)
        log.warning("cart %s/%s not restored: %s", request.shop_id, request.cart_id, detail)
        return RestoredCart(cart=None, source="none", detail=detail)

    @activity.defn(name=ACTIVITY_PROJECT_CART)
    async def project_cart(self, request: ProjectCartInput) -> ProjectedCart:
        """Write the snapshot to the read model unless a newer (or the same) version is
        already there: a late or repeated write changes nothing.

        With ``assign_number``, first give the cart's order its number (allocated once per
        order, whatever the retries) and write the cart *with* it: the number is applied
        to this copy by the state machine at ``assigned_at``, and the workflow applies the
        same event at the same time, so it arrives at exactly the state written here (one
        activity instead of two; the result carries number and time). With
        ``read_statuses`` too, the shop's order statuses are read first and applied to the
        copy after the number, at the same time (the order enters its first status without
        an activity of its own; the stock move that status calls for is the workflow's).
        Statuses that cannot be read are left to the workflow's ``read_order_statuses``.
        A retry may read other statuses (an admin edited them): nothing was applied."""
        cart = request.cart
        now = datetime.now(UTC)
        order = cart.order
        numbering = request.assign_number and order is not None and order.number is None
        statuses = None
        if numbering and request.read_statuses:
            try:
                statuses = await read_statuses(self.session_factory, cart.shop_id)
            except StatusRefused as refusal:
                log.warning(
                    "cart %s/%s: statuses not read: %s", cart.shop_id, cart.cart_id, refusal
                )
        async with write_session(self.session_factory) as session:
            dialect = session.get_bind().dialect.name
            result = ProjectedCart(version=cart.version)
            if numbering:
                number = await allocate(session, dialect, cart.shop_id, cart.cart_id, cart.lineage)
                assigned_at = max(now, cart.updated_at or now)
                machine.apply(cart, OrderNumberAssigned(number=number), assigned_at)
                if statuses is not None:
                    machine.apply(cart, OrderStatusesRead(statuses=statuses), assigned_at)
                result = ProjectedCart(
                    version=cart.version,
                    number=number,
                    assigned_at=assigned_at,
                    statuses=statuses,
                )
            values = cart_values(cart, now)
            if values["total"] != cart.total:
                log.warning(
                    "cart %s/%s: total %s exceeds the database; stored clamped",
                    cart.shop_id,
                    cart.cart_id,
                    cart.total,
                )
            written = await session.execute(upsert_cart_statement(dialect), values)
            # Skips the workflow decided go to the reminder ledger with the row (statistics
            # count them); a projection that is not newer than the stored one (late or
            # repeated) writes none.
            newer = bool(getattr(written, "rowcount", 1))
            skipped = skipped_reminder_values(cart, now) if newer and cart.reminders else []
            if skipped:
                await session.execute(upsert_skipped_reminders_statement(dialect), skipped)
        log.debug(
            "cart %s/%s version %s %s",
            cart.shop_id,
            cart.cart_id,
            cart.version,
            "projected" if newer else "skipped: not newer than the stored version",
        )
        return result

    @activity.defn(name=ACTIVITY_ALLOCATE_ORDER_NUMBER)
    async def allocate_order_number(self, request: AllocateOrderNumberInput) -> int:
        """The cart's order number: allocated on the first call, the same one ever after.
        (The workflow gets its number through ``project_cart``; this is the same
        allocation on its own, for tools and tests.)"""
        async with write_session(self.session_factory) as session:
            dialect = session.get_bind().dialect.name
            return await allocate(
                session, dialect, request.shop_id, request.cart_id, request.lineage
            )
