"""The read model's tables (SQLAlchemy 2 typed ORM).

The read model is a projection of the cart workflows: the workflow is the source of truth
and writes its snapshot here (``project_cart``) so the CLI and admin tools can list and
count carts without asking Temporal. ``order_numbers`` is the exception: it is the one
place order numbers come from (a sequence per shop, ``order_numbering``), so a cart never
gets two and two carts of a shop never share one.

Every datetime is stored as UTC (see ``UTCDateTime``). Schema changes go through Alembic
(``activities/migrations``); keep the two in step (``tests/test_read_model.py`` checks).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

#: Deterministic constraint and index names, so migrations can name what they change.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Ids are validated by ``workflows.machine.valid_id`` (at most 64 characters).
ID_LENGTH = 64
#: an order number's prefix, and the number as shown (prefix and up to 19 digits)
PREFIX_LENGTH = 16
REFERENCE_LENGTH = 40


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    PostgreSQL: ``timestamp with time zone``. SQLite keeps no offset, so the value is
    stored as naive UTC and comes back with ``tzinfo=UTC``. Aware values in other zones
    are converted to UTC; naive values are taken to be UTC already.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


class CartRecord(Base):
    """The last projected snapshot of one cart, with the columns the admin lists need."""

    __tablename__ = "carts"

    shop_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    cart_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    state: Mapped[str] = mapped_column(String(32))
    #: ``Cart.version``: a projection only ever replaces an older one
    version: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    #: ``Cart.total`` in minor units of ``currency``
    total: Mapped[int] = mapped_column(BigInteger)
    item_count: Mapped[int] = mapped_column(BigInteger)
    #: unbounded: the machine checks the e-mail's syntax, not its length
    customer_email: Mapped[str | None] = mapped_column(String())
    customer_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    order_number: Mapped[int | None] = mapped_column(BigInteger)
    #: the order's letter status (``P``, ``O`` ...)
    order_status: Mapped[str | None] = mapped_column(String())
    order_paid: Mapped[bool] = mapped_column(Boolean)
    #: the succeeded payments in the order's currency (minor units)
    order_amount_paid: Mapped[int] = mapped_column(BigInteger, server_default="0")
    #: ``Cart.needs_admin``: locked, or an attention item is raised
    needs_admin: Mapped[bool] = mapped_column(Boolean)
    lock_reason: Mapped[str | None] = mapped_column(String(32))
    #: the kinds of the open attention items, comma-separated, oldest first
    attention: Mapped[str | None] = mapped_column(String())
    #: ``Cart.lineage``: the cart's first run id. A newer lineage under the same id (the
    #: id reused after Temporal forgot the old cart) replaces the row
    lineage: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    #: the reminder whose recovery link the customer last followed (an order with one is
    #: a recovered order), and the coupon attached to the cart
    recovered_via: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    coupon_code: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    last_activity_at: Mapped[datetime | None]
    locked_at: Mapped[datetime | None]
    abandoned_at: Mapped[datetime | None]
    ordered_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    #: ``Cart.payment_step_at``: since when the cart is at the payment step (migration 0011)
    payment_step_at: Mapped[datetime | None]
    #: the status of the cart's latest payment attempt (``PaymentStatus``)
    last_payment_status: Mapped[str | None] = mapped_column(String(16))
    #: what the orders list shows beyond the columns (``activities.order_rows.listing_of``)
    listing: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: when the projection was written (the activity's clock)
    projected_at: Mapped[datetime]
    #: the whole ``Cart`` as Temporal's JSON payload converter encodes it. Plain JSON (not
    #: JSONB) on PostgreSQL: it keeps any text the workflow accepted, ``\\u0000`` included.
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (
        Index("ix_carts_state_updated_at", "state", "updated_at"),
        Index("ix_carts_shop_id_state", "shop_id", "state"),
        Index("ix_carts_needs_admin", "needs_admin"),
        Index("ix_carts_updated_at", "updated_at"),
        # the reminders' "newer cart of the same customer" check (``reminder_checks``)
        Index("ix_carts_shop_id_email", "shop_id", func.lower(text("customer_email"))),
        # the admin's orders list (``orders_query``, migration 0010): orders by time,
        # by status (and the counts per status), not finished orders, one order by number
        Index("ix_carts_shop_id_state_ordered_at", "shop_id", "state", "ordered_at", "cart_id"),
        Index(
            "ix_carts_shop_id_state_order_status",
            "shop_id",
            "state",
            "order_status",
            "ordered_at",
            "cart_id",
        ),
        Index("ix_carts_shop_id_state_locked_at", "shop_id", "state", "locked_at", "cart_id"),
        Index("ix_carts_shop_id_order_number", "shop_id", "order_number"),
        # the not finished orders at the payment step (migration 0011)
        Index(
            "ix_carts_shop_id_state_payment_step_at",
            "shop_id",
            "state",
            "payment_step_at",
            "cart_id",
        ),
        Index(
            "ix_carts_shop_id_state_last_payment_status",
            "shop_id",
            "state",
            "last_payment_status",
            "payment_step_at",
            "cart_id",
        ),
    )


class OrderNumber(Base):
    """One order number per cart (and lineage), per shop: the shop's counter
    (``OrderNumbering``) gives them in sequence, and none is ever given twice. ``reference``
    is the number as shown (the shop's prefix when it was given, then the number)."""

    __tablename__ = "order_numbers"

    shop_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    number: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False
    )
    cart_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    lineage: Mapped[str] = mapped_column(String(ID_LENGTH), server_default="")
    reference: Mapped[str] = mapped_column(String(REFERENCE_LENGTH))
    created_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint(
            "shop_id", "cart_id", "lineage", name="uq_order_numbers_shop_id_cart_id_lineage"
        ),
    )


class OrderNumbering(Base):
    """A shop's order numbers: the next one, and the prefix shown before it. Its row is
    locked while a number is given, so a shop's numbers follow each other without gaps."""

    __tablename__ = "order_numbering"

    shop_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(PREFIX_LENGTH), server_default="")
    next_number: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class Coupon(Base):
    """A discount code given to one cart (by a reminder): a fixed amount in the cart's
    currency or a percent, valid until ``expires_at``, redeemed at most once when
    ``single_use`` (``activities.coupons``)."""

    __tablename__ = "coupons"

    shop_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: the cart it was made for, and what made it (e.g. the reminder's key): one coupon
    #: per (shop, cart, issued_for), whatever the retries
    cart_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    issued_for: Mapped[str] = mapped_column(String(ID_LENGTH))
    #: ``fixed`` (``amount`` minor units of ``currency``) or ``percent`` (``amount`` %)
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    single_use: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    redeemed_at: Mapped[datetime | None]
    #: what redeemed it (e.g. the cart or order), for an idempotent retry
    redeemed_by: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    redemptions: Mapped[int] = mapped_column(BigInteger, server_default="0")

    __table_args__ = (
        UniqueConstraint(
            "shop_id", "cart_id", "issued_for", name="uq_coupons_shop_id_cart_id_issued_for"
        ),
    )


class Campaign(Base):
    """A shop's reminder campaign and the shop settings its e-mails need
    (``activities.campaigns``). One per shop; ``version`` grows with every edit."""

    __tablename__ = "campaigns"

    shop_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    version: Mapped[int] = mapped_column(BigInteger)
    shop_name: Mapped[str] = mapped_column(String(200))
    #: the From address of reminders
    sender: Mapped[str] = mapped_column(String(320))
    #: where a recovery link sends the customer; ``{cart_id}`` and ``{coupon}`` are filled
    restore_url: Mapped[str] = mapped_column(String(2000))
    #: only customers who gave marketing consent get reminders
    requires_consent: Mapped[bool] = mapped_column(Boolean)
    #: ``continue``: a cart abandoned again gets the reminders it was not sent yet;
    #: ``once``: a cart gets the sequence for its first abandonment only
    restart_rule: Mapped[str] = mapped_column(String(16))
    #: quiet hours in the customer's local time, minutes after midnight (start == end: none)
    quiet_start_minute: Mapped[int] = mapped_column(Integer)
    quiet_end_minute: Mapped[int] = mapped_column(Integer)
    #: the time zone of customers who did not give one
    default_time_zone: Mapped[str] = mapped_column(String(64))
    #: at most ``cap_count`` reminders per customer (e-mail) in ``cap_period_days``
    cap_count: Mapped[int] = mapped_column(Integer)
    cap_period_days: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    updated_by: Mapped[str | None] = mapped_column(String(ID_LENGTH))


class CampaignReminder(Base):
    """One reminder of a shop's campaign. Removed reminders are kept (``removed_at``) so
    statistics and sequences that planned them still name them."""

    __tablename__ = "campaign_reminders"

    shop_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    reminder_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    #: seconds after the cart was abandoned
    delay_seconds: Mapped[int] = mapped_column(BigInteger)
    #: automatic reminders are scheduled by the cart; manual ones only sent by an admin
    automatic: Mapped[bool] = mapped_column(Boolean)
    subject: Mapped[str] = mapped_column(String(500))
    #: the template's name (``activities/mail_templates/<locale>/<template>.*``)
    template: Mapped[str] = mapped_column(String(ID_LENGTH))
    #: ``fixed`` or ``percent``; ``None``: no coupon
    coupon_kind: Mapped[str | None] = mapped_column(String(16))
    coupon_amount: Mapped[int | None] = mapped_column(BigInteger)
    coupon_expiry_days: Mapped[int | None] = mapped_column(Integer)
    #: variant ``b`` (subject, template, coupon fields); ``None``: one variant only
    variant_b: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]


class ReminderSend(Base):
    """The ledger of reminders: one row per cart (lineage) and reminder, written before
    the e-mail leaves (``sending``) and after (``sent``), or why it was not (``skipped``).
    It makes sending idempotent and it is what statistics count (it outlives carts)."""

    __tablename__ = "reminder_sends"

    shop_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    cart_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    lineage: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    reminder_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(String(600))
    variant: Mapped[str | None] = mapped_column(String(8))
    manual: Mapped[bool] = mapped_column(Boolean, server_default="0")
    #: lower-cased; the customer for caps and statistics
    email: Mapped[str | None] = mapped_column(String(320))
    message_id: Mapped[str | None] = mapped_column(String(300))
    coupon_code: Mapped[str | None] = mapped_column(String(32))
    currency: Mapped[str | None] = mapped_column(String(3))
    due_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_reminder_sends_email_sent_at", "email", "sent_at"),
        Index("ix_reminder_sends_shop_id_created_at", "shop_id", "created_at"),
    )


class Suppression(Base):
    """An address that gets no more reminders from a shop: unsubscribed or bounced."""

    __tablename__ = "suppressions"

    shop_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    #: lower-cased
    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))
    #: what recorded it (``one_click``, ``link``, ``admin``, ``smtp``) and from which cart
    source: Mapped[str] = mapped_column(String(32))
    cart_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    created_at: Mapped[datetime]


class RecoveryClick(Base):
    """One click on a recovery link (every click is kept; statistics count carts)."""

    __tablename__ = "recovery_clicks"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"),
        Identity(start=1),
        primary_key=True,
        autoincrement=True,
    )
    shop_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    cart_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    lineage: Mapped[str] = mapped_column(String(ID_LENGTH))
    reminder_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    clicked_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_recovery_clicks_shop_id_cart_id", "shop_id", "cart_id"),
        {"sqlite_autoincrement": True},
    )


class AdminNotice(Base):
    """One e-mail to a shop's admins (``activities.admin_mail``): a lock alert per (cart,
    lineage, lock), a digest per day. Claimed before the e-mail leaves (``claimed_at``, a
    lease: one delivery at a time) and marked sent after, so neither a retry nor a
    concurrent delivery sends it twice (``AdminMailer.deliver``)."""

    __tablename__ = "admin_notices"

    shop_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    #: what the notice is about, e.g. ``lock:<cart>:<lineage>:<locked_at>``, ``digest:<day>``
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    #: ``lock_alert`` or ``daily_digest``
    kind: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    #: when the delivery under way claimed it (NULL: none is; older than
    #: ``admin_mail.CLAIM_FOR``: its process died, the claim has expired)
    claimed_at: Mapped[datetime | None]


class OrderStatusRegistry(Base):
    """A shop's order-status registry (``activities.order_statuses``): the row its edits
    lock, so they apply one after the other. A shop without one has the default statuses;
    its first edit writes them (``order_statuses``) and this row. ``version`` grows with
    every edit."""

    __tablename__ = "order_status_registries"

    shop_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    updated_by: Mapped[str | None] = mapped_column(String(ID_LENGTH))


class OrderStatusRecord(Base):
    """One order status of a shop (``activities.order_status_rules.OrderStatusDef``).
    Orders record the letter, name and colour they had when the status was set, so a
    status renamed or deleted here never makes an order's history unreadable."""

    __tablename__ = "order_statuses"

    shop_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    #: one upper-case letter A-Z
    letter: Mapped[str] = mapped_column(String(1), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    #: ``#rrggbb``, lower case
    colour: Mapped[str] = mapped_column(String(7))
    position: Mapped[int] = mapped_column(Integer)
    paid: Mapped[bool] = mapped_column(Boolean)
    final: Mapped[bool] = mapped_column(Boolean)
    notify_customer: Mapped[bool] = mapped_column(Boolean)
    notify_department: Mapped[bool] = mapped_column(Boolean)
    #: ``decrease``, ``increase`` or ``none``
    inventory: Mapped[str] = mapped_column(String(16))
    contents_editable: Mapped[bool] = mapped_column(Boolean)
    #: only ``N`` Incomplete: an admin never sets it
    hidden: Mapped[bool] = mapped_column(Boolean)
    #: a default status: it cannot be deleted and keeps its letter
    builtin: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


import activities.catalog_models  # noqa: E402  (registers the catalog tables on Base)
import activities.web_models  # noqa: E402, F401  (registers the web tables on Base)
