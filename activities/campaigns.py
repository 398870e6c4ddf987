"""Reminder campaigns in the database: one per shop, with its reminders.

``load_campaign`` reads a shop's campaign (every reminder, removed ones included, in
position order); ``save_campaign`` writes the shop-level settings and ``update_campaign``
changes some of them; ``save_reminder`` adds or replaces one reminder; ``remove_reminder``
marks one removed (kept, so statistics and running sequences still name it);
``replace_campaign`` writes a whole campaign at once (settings and reminders; the shop's
reminders it does not hold are removed) and ``create_campaign`` does so only for a shop
without a campaign. Every write checks its input and bumps the campaign's ``version``
once, in one transaction (the campaign's row is locked on PostgreSQL, so concurrent edits
of a shop's campaign apply one after the other).

Every refusal is a ``CampaignRefused`` with a ``lower_snake`` code; nothing is silently
changed (no trimming, no clamping, no coercion of types):

===========================  ============================================================
``invalid_shop_id``          the shop id is not a valid id
``invalid_admin``            ``by`` is not a name of 1-64 characters
``invalid_setting``          a flag that is not a boolean, a setting that does not exist
``invalid_shop_name``        empty, longer than 200 characters, or with control characters
``invalid_sender``           not an e-mail address (``email-validator``, no deliverability)
``invalid_restore_url``      not an absolute http(s) URL, or placeholders other than
                             ``{cart_id}`` and ``{coupon}``
``invalid_restart_rule``     not ``continue`` or ``once``
``invalid_quiet_hours``      a minute outside 0-1439
``invalid_time_zone``        not a time zone ``zoneinfo`` knows
``invalid_cap``              count outside 1-100 or period outside 1-365 days
``invalid_reminder_id``      not a valid id (``workflows.validation.valid_id``)
``invalid_name``             empty, longer than 200 characters, or with control characters
``invalid_subject``          empty, longer than 300 characters, or with control characters
``invalid_position``         not an integer from 0 to 9999
``duplicate_position``       another active reminder of the campaign has that position
``duplicate_reminder``       a campaign lists the same reminder id twice
``invalid_delay``            under 60 seconds or over 365 days
``invalid_automatic``        ``automatic`` is not a boolean
``unknown_template``         no such template for the fallback locale (``en``)
``invalid_template``         the template exists but does not render
``invalid_coupon``           kind not fixed/percent, percent outside 1-100, fixed not > 0
``invalid_coupon_expiry``    expiry outside 1-365 days
``invalid_variant``          variant ``b`` is not a variant, or is the same as ``a``
``too_many_reminders``       more than ``workflows.reminders.MAX_REMINDERS`` active ones
``reminder_not_found``       removing a reminder the campaign does not have (active)
===========================  ============================================================

The rule for carts already in a sequence when the campaign changes is in
``workflows.reminders`` (and the README): a sequence keeps the reminders and times it was
planned with; what a reminder says is read when it is sent; a removed reminder (or a
disabled campaign) is skipped.
"""

from __future__ import annotations

import dataclasses
import string
import unicodedata
import zoneinfo
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from jinja2 import TemplateError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.db import write_session
from activities.mail_render import (
    DEFAULT_LOCALE,
    TEMPLATES,
    MailContent,
    MailCoupon,
    MailLine,
    MailRenderer,
    TemplateMissing,
)
from activities.models import ID_LENGTH, Campaign, CampaignReminder
from workflows.reminders import MAX_REMINDERS
from workflows.validation import MAX_AMOUNT, is_int, valid_id

RestartRule = Literal["continue", "once"]
CouponKind = Literal["fixed", "percent"]

RESTART_RULES: tuple[str, ...] = ("continue", "once")
COUPON_KINDS: tuple[str, ...] = ("fixed", "percent")
MAX_NAME = 200
MAX_SUBJECT = 300
MAX_POSITION = 9_999
MIN_DELAY_SECONDS = 60
MAX_DELAY_SECONDS = 365 * 86_400
MAX_COUPON_DAYS = 365
MAX_CAP_COUNT = 100
MAX_CAP_DAYS = 365
MINUTES_PER_DAY = 24 * 60
#: the placeholders a restore URL may hold
RESTORE_PLACEHOLDERS = frozenset({"cart_id", "coupon"})
_MAX_URL = 2000
_MAX_SENDER = 320
_MAX_TIME_ZONE = 64


class CampaignRefused(Exception):
    """A campaign edit that cannot be applied; ``code`` is a ``lower_snake`` error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class CouponOffer:
    """The coupon a reminder gives: ``amount`` minor units of the cart's currency
    (``fixed``) or a percent (``percent``), valid ``expiry_days``, single use."""

    kind: CouponKind
    amount: int
    expiry_days: int


@dataclass(frozen=True)
class ReminderVariant:
    subject: str
    template: str
    coupon: CouponOffer | None = None


@dataclass(frozen=True)
class ReminderDefinition:
    reminder_id: str
    position: int
    name: str
    delay_seconds: int
    automatic: bool
    #: variant ``a`` (every cart when there is no ``b``)
    a: ReminderVariant
    #: variant ``b``: carts are split between ``a`` and ``b`` deterministically
    b: ReminderVariant | None = None
    removed: bool = False

    def variant(self, name: str | None) -> ReminderVariant:
        return self.b if name == "b" and self.b is not None else self.a


@dataclass(frozen=True)
class CampaignConfig:
    shop_id: str
    enabled: bool = True
    version: int = 0
    shop_name: str = "Shop"
    sender: str = "shop@example.com"
    #: where a recovery link sends the customer; ``{cart_id}`` and ``{coupon}`` are filled
    restore_url: str = "http://127.0.0.1:8000/cart/{cart_id}?coupon={coupon}"
    requires_consent: bool = False
    restart_rule: RestartRule = "continue"
    #: quiet hours in the customer's local time, minutes after midnight (equal: none)
    quiet_start_minute: int = 21 * 60
    quiet_end_minute: int = 8 * 60
    default_time_zone: str = "UTC"
    cap_count: int = 3
    cap_period_days: int = 7
    #: every reminder, removed ones included, by position
    reminders: tuple[ReminderDefinition, ...] = field(default_factory=tuple)

    def reminder(self, reminder_id: str) -> ReminderDefinition | None:
        for item in self.reminders:
            if item.reminder_id == reminder_id:
                return item
        return None

    @property
    def active_reminders(self) -> tuple[ReminderDefinition, ...]:
        return tuple(item for item in self.reminders if not item.removed)


SessionFactory = async_sessionmaker[AsyncSession]

#: the shop-level settings (the ``campaigns`` columns an edit may change)
SETTING_FIELDS: tuple[str, ...] = (
    "enabled",
    "shop_name",
    "sender",
    "restore_url",
    "requires_consent",
    "restart_rule",
    "quiet_start_minute",
    "quiet_end_minute",
    "default_time_zone",
    "cap_count",
    "cap_period_days",
)


# --------------------------------------------------------------------------- validation


def _refuse(code: str, message: str) -> CampaignRefused:
    return CampaignRefused(code, message)


def _has_control(value: str) -> bool:
    """Control characters and line/paragraph separators (a subject is a mail header)."""
    return any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in value)


def _check_text(value: object, what: str, code: str, limit: int) -> None:
    if not isinstance(value, str) or not value.strip():
        raise _refuse(code, f"{what} must be a non-empty text")
    if len(value) > limit:
        raise _refuse(code, f"{what} has {len(value)} characters; at most {limit}")
    if _has_control(value):
        raise _refuse(code, f"{what} must not contain control characters or line breaks")


def _check_int(value: object, what: str, code: str, low: int, high: int, unit: str = "") -> None:
    if not is_int(value):
        raise _refuse(code, f"{what} must be an integer, not {value!r}")
    assert isinstance(value, int)
    if not low <= value <= high:
        raise _refuse(code, f"{what} must be from {low} to {high}{unit}, not {value}")


def _check_flag(value: object, what: str, code: str = "invalid_setting") -> None:
    if not isinstance(value, bool):
        raise _refuse(code, f"{what} must be true or false, not {value!r}")


def check_shop_id(shop_id: object) -> None:
    if not valid_id(shop_id):
        raise _refuse(
            "invalid_shop_id",
            f"{shop_id!r} is not a valid shop id (letters, digits, '.', '_', '-'; 1-64"
            " characters, starting with a letter or digit)",
        )


def check_admin(by: object) -> None:
    """``by`` (who edits, kept as ``updated_by``): ``None`` or a name of 1-64 characters."""
    if by is None:
        return
    _check_text(by, "the editor's name", "invalid_admin", ID_LENGTH)


def check_restore_url(url: object) -> None:
    """Absolute http(s), printable, no spaces; ``{cart_id}`` and ``{coupon}`` are the only
    placeholders (a literal brace is written ``{{`` or ``}}``)."""
    code = "invalid_restore_url"
    if not isinstance(url, str) or not url:
        raise _refuse(code, "the restore URL must be a non-empty text")
    if len(url) > _MAX_URL:
        raise _refuse(code, f"the restore URL has {len(url)} characters; at most {_MAX_URL}")
    if not url.isprintable() or any(char.isspace() for char in url):
        raise _refuse(code, "the restore URL must not contain spaces or control characters")
    try:
        fields = list(string.Formatter().parse(url))
    except ValueError as error:
        raise _refuse(
            code, f"the restore URL has an unbalanced brace ({error}); write {{{{ for a brace"
        ) from None
    for _literal, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in RESTORE_PLACEHOLDERS or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "")
            shown += (f":{spec}" if spec else "") + "}"
            raise _refuse(
                code,
                f"the restore URL may hold {{cart_id}} and {{coupon}} only, not {shown}",
            )
    filled = url.format(cart_id="cart-1", coupon="ABCD-EFGH")
    try:
        parts = urlsplit(filled)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError as error:
        raise _refuse(code, f"the restore URL cannot be read ({error})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _refuse(
            code, f"the restore URL must be an absolute http(s) URL (https://...), not {url!r}"
        )


def check_sender(sender: object) -> None:
    code = "invalid_sender"
    if not isinstance(sender, str) or not sender:
        raise _refuse(code, "the sender must be an e-mail address")
    if len(sender) > _MAX_SENDER:
        raise _refuse(code, f"the sender has {len(sender)} characters; at most {_MAX_SENDER}")
    try:
        validate_email(sender, check_deliverability=False)
    except EmailNotValidError as error:
        raise _refuse(code, f"{sender!r} is not an e-mail address: {error}") from None


def check_time_zone(name: object) -> None:
    code = "invalid_time_zone"
    if not isinstance(name, str) or not name or len(name) > _MAX_TIME_ZONE:
        raise _refuse(code, f"{name!r} is not a time zone name")
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise _refuse(
            code, f"{name!r} is not a time zone (IANA names: Europe/Berlin, UTC ...)"
        ) from None


def check_settings(config: CampaignConfig) -> None:
    """The shop-level settings of ``config`` (not its reminders)."""
    check_shop_id(config.shop_id)
    _check_flag(config.enabled, "enabled")
    _check_flag(config.requires_consent, "requires_consent")
    _check_text(config.shop_name, "the shop name", "invalid_shop_name", MAX_NAME)
    check_sender(config.sender)
    check_restore_url(config.restore_url)
    if config.restart_rule not in RESTART_RULES:
        raise _refuse(
            "invalid_restart_rule",
            f"the restart rule is 'continue' or 'once', not {config.restart_rule!r}",
        )
    for what, minute in (
        ("the start of the quiet hours", config.quiet_start_minute),
        ("the end of the quiet hours", config.quiet_end_minute),
    ):
        _check_int(
            minute, what, "invalid_quiet_hours", 0, MINUTES_PER_DAY - 1, " (minutes after 0:00)"
        )
    check_time_zone(config.default_time_zone)
    _check_int(config.cap_count, "the cap's count", "invalid_cap", 1, MAX_CAP_COUNT, " reminders")
    _check_int(config.cap_period_days, "the cap's period", "invalid_cap", 1, MAX_CAP_DAYS, " days")


@lru_cache(maxsize=8)
def _renderer(templates: Path) -> MailRenderer:
    return MailRenderer(templates)


_SAMPLE = MailContent(
    shop_name="Shop",
    customer_name="Ann",
    locale=DEFAULT_LOCALE,
    currency="EUR",
    lines=(MailLine("Blue mug", 2, 2400),),
    total=2400,
    recovery_url="https://shop.example.com/recover/sample",
    unsubscribe_url="https://shop.example.com/unsubscribe/sample",
    coupon=MailCoupon("ABCD-EFGH", percent=10, expires_at=datetime(2026, 1, 1, tzinfo=UTC)),
)


def check_template(name: object, templates: Path = TEMPLATES, *, what: str = "template") -> None:
    """The template exists for the fallback locale and renders (sample content)."""
    if not isinstance(name, str) or not name or len(name) > ID_LENGTH:
        raise _refuse("unknown_template", f"{what} {name!r} is not a template name")
    renderer = _renderer(templates)
    for content in (_SAMPLE, dataclasses.replace(_SAMPLE, coupon=None, customer_name=None)):
        try:
            renderer.render(name, content)
        except TemplateMissing:
            raise _refuse(
                "unknown_template",
                f"no {what} {name!r} for the fallback locale {DEFAULT_LOCALE!r} (templates:"
                f" {', '.join(template_names(templates)) or 'none'})",
            ) from None
        except TemplateError as error:
            raise _refuse("invalid_template", f"{what} {name!r} does not render: {error}") from None


def template_names(templates: Path = TEMPLATES) -> list[str]:
    """The templates of the fallback locale (those a reminder may use)."""
    folder = templates / DEFAULT_LOCALE
    if not folder.is_dir():
        return []
    return sorted(path.name.removesuffix(".html") for path in folder.glob("*.html"))


def check_coupon(coupon: object, where: str = "") -> None:
    if coupon is None:
        return
    if not isinstance(coupon, CouponOffer):
        raise _refuse("invalid_coupon", f"{where}the coupon is not a CouponOffer")
    if coupon.kind not in COUPON_KINDS:
        raise _refuse(
            "invalid_coupon", f"{where}a coupon is 'fixed' or 'percent', not {coupon.kind!r}"
        )
    if coupon.kind == "percent":
        _check_int(coupon.amount, f"{where}a percent coupon", "invalid_coupon", 1, 100, " %")
    else:
        _check_int(
            coupon.amount,
            f"{where}a fixed coupon's amount",
            "invalid_coupon",
            1,
            MAX_AMOUNT,
            " minor units",
        )
    _check_int(
        coupon.expiry_days,
        f"{where}the coupon's expiry",
        "invalid_coupon_expiry",
        1,
        MAX_COUPON_DAYS,
        " days",
    )


def check_variant(
    variant: object, where: str = "", templates: Path = TEMPLATES, *, checked: bool = False
) -> None:
    if not isinstance(variant, ReminderVariant):
        raise _refuse("invalid_variant", f"{where}not a ReminderVariant")
    _check_text(variant.subject, f"{where}the subject", "invalid_subject", MAX_SUBJECT)
    if not checked:
        check_template(variant.template, templates, what=f"{where}template")
    check_coupon(variant.coupon, where)


def check_reminder(reminder: ReminderDefinition, templates: Path = TEMPLATES) -> None:
    """One reminder on its own (the campaign's rules are checked where it is written)."""
    if not valid_id(reminder.reminder_id):
        raise _refuse(
            "invalid_reminder_id",
            f"{reminder.reminder_id!r} is not a valid reminder id (letters, digits, '.', '_',"
            " '-'; 1-64 characters, starting with a letter or digit)",
        )
    _check_text(reminder.name, "the name", "invalid_name", MAX_NAME)
    _check_int(reminder.position, "the position", "invalid_position", 0, MAX_POSITION)
    if not is_int(reminder.delay_seconds):
        raise _refuse(
            "invalid_delay", f"the delay must be whole seconds, not {reminder.delay_seconds!r}"
        )
    if not MIN_DELAY_SECONDS <= reminder.delay_seconds <= MAX_DELAY_SECONDS:
        raise _refuse(
            "invalid_delay",
            f"the delay must be from 60 seconds to 365 days, not {reminder.delay_seconds} s",
        )
    _check_flag(reminder.automatic, "automatic", "invalid_automatic")
    _check_flag(reminder.removed, "removed")
    check_variant(reminder.a, "", templates)
    if reminder.b is not None:
        check_variant(
            reminder.b, "variant b: ", templates, checked=reminder.b.template == reminder.a.template
        )
        if reminder.b == reminder.a:
            raise _refuse(
                "invalid_variant",
                "variant b is the same as a (give it its own subject, template or coupon)",
            )


def _check_reminder_set(reminders: Iterable[ReminderDefinition]) -> None:
    """A campaign's active reminders together: ids and positions unique, at most 20."""
    ids: set[str] = set()
    positions: dict[int, str] = {}
    count = 0
    for item in reminders:
        if item.reminder_id in ids:
            raise _refuse("duplicate_reminder", f"reminder {item.reminder_id!r} is listed twice")
        ids.add(item.reminder_id)
        if item.removed:
            continue
        count += 1
        other = positions.get(item.position)
        if other is not None:
            raise _refuse(
                "duplicate_position",
                f"reminders {other!r} and {item.reminder_id!r} both have position {item.position}",
            )
        positions[item.position] = item.reminder_id
    if count > MAX_REMINDERS:
        raise _refuse(
            "too_many_reminders",
            f"a campaign has at most {MAX_REMINDERS} reminders, not {count}",
        )


def check_campaign(config: CampaignConfig, templates: Path = TEMPLATES) -> None:
    """A whole campaign: its settings, each reminder, and the reminders together."""
    check_settings(config)
    for item in config.reminders:
        if not isinstance(item, ReminderDefinition):
            raise _refuse("invalid_reminder_id", "a campaign's reminders are ReminderDefinitions")
        check_reminder(item, templates)
    _check_reminder_set(config.reminders)


# --------------------------------------------------------------------------- reading


def _offer(kind: str | None, amount: int | None, days: int | None) -> CouponOffer | None:
    if kind is None or amount is None or days is None:
        return None
    return CouponOffer(kind=kind, amount=amount, expiry_days=days)  # type: ignore[arg-type]


def _variant_b(data: dict[str, Any] | None) -> ReminderVariant | None:
    if not data:
        return None
    return ReminderVariant(
        subject=str(data["subject"]),
        template=str(data["template"]),
        coupon=_offer(
            data.get("coupon_kind"), data.get("coupon_amount"), data.get("coupon_expiry_days")
        ),
    )


def _definition(row: CampaignReminder) -> ReminderDefinition:
    return ReminderDefinition(
        reminder_id=row.reminder_id,
        position=row.position,
        name=row.name,
        delay_seconds=row.delay_seconds,
        automatic=row.automatic,
        a=ReminderVariant(
            subject=row.subject,
            template=row.template,
            coupon=_offer(row.coupon_kind, row.coupon_amount, row.coupon_expiry_days),
        ),
        b=_variant_b(row.variant_b),
        removed=row.removed_at is not None,
    )


async def load_campaign(sessions: SessionFactory, shop_id: str) -> CampaignConfig | None:
    """The shop's campaign, or ``None`` if the shop has none."""
    async with sessions() as session:
        row = await session.get(Campaign, shop_id)
        if row is None:
            return None
        reminders = (
            await session.execute(
                select(CampaignReminder)
                .where(CampaignReminder.shop_id == shop_id)
                .order_by(CampaignReminder.position, CampaignReminder.reminder_id)
            )
        ).scalars()
        return CampaignConfig(
            shop_id=row.shop_id,
            enabled=row.enabled,
            version=row.version,
            shop_name=row.shop_name,
            sender=row.sender,
            restore_url=row.restore_url,
            requires_consent=row.requires_consent,
            restart_rule=row.restart_rule,  # type: ignore[arg-type]
            quiet_start_minute=row.quiet_start_minute,
            quiet_end_minute=row.quiet_end_minute,
            default_time_zone=row.default_time_zone,
            cap_count=row.cap_count,
            cap_period_days=row.cap_period_days,
            reminders=tuple(_definition(item) for item in reminders),
        )


# --------------------------------------------------------------------------- writing

_T = TypeVar("_T")


async def _transaction(
    sessions: SessionFactory, work: Callable[[AsyncSession], Awaitable[_T]]
) -> _T:
    """``work`` in one write transaction. Two first edits of a shop racing to create its
    campaign row: the loser's transaction fails on the primary key and runs again (it then
    finds the row, and waits for its lock)."""
    for attempt in range(2):
        try:
            async with write_session(sessions) as session:
                return await work(session)
        except IntegrityError:
            if attempt:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


async def _bump(session: AsyncSession, shop_id: str, now: datetime, by: str | None) -> Campaign:
    """The shop's campaign row, locked (PostgreSQL), made with the default settings if
    there is none, its version bumped."""
    row = await session.get(Campaign, shop_id, with_for_update=True)
    if row is None:
        defaults = CampaignConfig(shop_id=shop_id)
        row = Campaign(
            shop_id=shop_id,
            version=0,
            created_at=now,
            **{name: getattr(defaults, name) for name in SETTING_FIELDS},
        )
        session.add(row)
    row.version += 1
    row.updated_at = now
    row.updated_by = by
    return row


def _settings_of(row: Campaign) -> CampaignConfig:
    return CampaignConfig(
        shop_id=row.shop_id,
        version=row.version,
        **{name: getattr(row, name) for name in SETTING_FIELDS},
    )


async def _reminder_rows(session: AsyncSession, shop_id: str) -> list[CampaignReminder]:
    result = await session.execute(
        select(CampaignReminder).where(CampaignReminder.shop_id == shop_id)
    )
    return list(result.scalars())


def _reminder_values(reminder: ReminderDefinition, now: datetime) -> dict[str, Any]:
    a, b = reminder.a, reminder.b
    return {
        "position": reminder.position,
        "name": reminder.name,
        "delay_seconds": reminder.delay_seconds,
        "automatic": reminder.automatic,
        "subject": a.subject,
        "template": a.template,
        "coupon_kind": a.coupon.kind if a.coupon else None,
        "coupon_amount": a.coupon.amount if a.coupon else None,
        "coupon_expiry_days": a.coupon.expiry_days if a.coupon else None,
        "variant_b": None
        if b is None
        else {
            "subject": b.subject,
            "template": b.template,
            "coupon_kind": b.coupon.kind if b.coupon else None,
            "coupon_amount": b.coupon.amount if b.coupon else None,
            "coupon_expiry_days": b.coupon.expiry_days if b.coupon else None,
        },
        "updated_at": now,
        "removed_at": None,
    }


def _write_reminder(
    session: AsyncSession,
    shop_id: str,
    reminder: ReminderDefinition,
    existing: CampaignReminder | None,
    now: datetime,
) -> None:
    values = _reminder_values(reminder, now)
    if existing is None:
        session.add(
            CampaignReminder(
                shop_id=shop_id, reminder_id=reminder.reminder_id, created_at=now, **values
            )
        )
    else:
        for name, value in values.items():
            setattr(existing, name, value)


async def save_campaign(
    sessions: SessionFactory, config: CampaignConfig, now: datetime, by: str | None = None
) -> int:
    """Write the shop-level settings of ``config`` (not its reminders); the new version."""
    check_settings(config)
    check_admin(by)

    async def work(session: AsyncSession) -> int:
        row = await _bump(session, config.shop_id, now, by)
        for name in SETTING_FIELDS:
            setattr(row, name, getattr(config, name))
        return row.version

    return await _transaction(sessions, work)


async def update_campaign(
    sessions: SessionFactory,
    shop_id: str,
    changes: Mapping[str, Any],
    now: datetime,
    by: str | None = None,
) -> int:
    """Change the settings named in ``changes`` (``SETTING_FIELDS``), keep the others; a
    shop without a campaign gets one with the default settings and these changes. The
    new version."""
    check_shop_id(shop_id)
    check_admin(by)
    unknown = sorted(set(changes) - set(SETTING_FIELDS))
    if unknown:
        raise _refuse(
            "invalid_setting",
            f"no such setting: {', '.join(unknown)} (settings: {', '.join(SETTING_FIELDS)})",
        )
    # refuse what is wrong before taking the lock (and again on the merged settings below)
    check_settings(dataclasses.replace(CampaignConfig(shop_id=shop_id), **changes))

    async def work(session: AsyncSession) -> int:
        row = await _bump(session, shop_id, now, by)
        merged = dataclasses.replace(_settings_of(row), **changes)
        check_settings(merged)
        for name in changes:
            setattr(row, name, changes[name])
        return row.version

    return await _transaction(sessions, work)


async def save_reminder(
    sessions: SessionFactory,
    shop_id: str,
    reminder: ReminderDefinition,
    now: datetime,
    by: str | None = None,
    *,
    templates: Path = TEMPLATES,
) -> int:
    """Add or replace one reminder (a removed one comes back); the campaign's new version.

    Refused when another active reminder has its position (``duplicate_position``) or
    when it would be the campaign's 21st active reminder (``too_many_reminders``)."""
    check_shop_id(shop_id)
    check_admin(by)
    check_reminder(reminder, templates)
    if reminder.removed:
        raise _refuse(
            "invalid_setting", "a reminder is saved active; remove it with remove_reminder"
        )

    async def work(session: AsyncSession) -> int:
        campaign = await _bump(session, shop_id, now, by)
        rows = await _reminder_rows(session, shop_id)
        existing = None
        active = 0
        for row in rows:
            if row.reminder_id == reminder.reminder_id:
                existing = row
                continue
            if row.removed_at is not None:
                continue
            active += 1
            if row.position == reminder.position:
                raise _refuse(
                    "duplicate_position",
                    f"reminder {row.reminder_id!r} has position {reminder.position} already",
                )
        if active + 1 > MAX_REMINDERS:
            raise _refuse(
                "too_many_reminders",
                f"shop {shop_id!r} has {active} other reminders; a campaign has at most"
                f" {MAX_REMINDERS}",
            )
        _write_reminder(session, shop_id, reminder, existing, now)
        return campaign.version

    return await _transaction(sessions, work)


async def remove_reminder(
    sessions: SessionFactory, shop_id: str, reminder_id: str, now: datetime, by: str | None = None
) -> int:
    """Mark a reminder removed (kept for statistics); the campaign's new version."""
    check_admin(by)

    async def work(session: AsyncSession) -> int:
        row = await session.get(CampaignReminder, (shop_id, reminder_id))
        if row is None or row.removed_at is not None:
            raise CampaignRefused(
                "reminder_not_found", f"shop {shop_id!r} has no reminder {reminder_id!r}"
            )
        campaign = await _bump(session, shop_id, now, by)
        row.removed_at = now
        row.updated_at = now
        return campaign.version

    return await _transaction(sessions, work)


async def _replace(
    session: AsyncSession, config: CampaignConfig, now: datetime, by: str | None
) -> int:
    row = await _bump(session, config.shop_id, now, by)
    for name in SETTING_FIELDS:
        setattr(row, name, getattr(config, name))
    existing = {item.reminder_id: item for item in await _reminder_rows(session, config.shop_id)}
    keep = {item.reminder_id for item in config.active_reminders}
    for item in config.active_reminders:
        _write_reminder(session, config.shop_id, item, existing.get(item.reminder_id), now)
    for reminder_id, stored in existing.items():
        if reminder_id not in keep and stored.removed_at is None:
            stored.removed_at = now
            stored.updated_at = now
    return row.version


async def replace_campaign(
    sessions: SessionFactory,
    config: CampaignConfig,
    now: datetime,
    by: str | None = None,
    *,
    templates: Path = TEMPLATES,
) -> int:
    """Write a whole campaign in one transaction (one new version): its settings and its
    active reminders. The shop's reminders that ``config`` does not hold as active are
    marked removed (kept, like ``remove_reminder``); removed ones it holds are not
    written. The new version."""
    check_admin(by)
    check_campaign(config, templates)
    return await _transaction(sessions, lambda session: _replace(session, config, now, by))


async def create_campaign(
    sessions: SessionFactory,
    config: CampaignConfig,
    now: datetime,
    by: str | None = None,
    *,
    templates: Path = TEMPLATES,
) -> int | None:
    """``replace_campaign`` for a shop that has no campaign: its version (1), or ``None``
    (and nothing written) when the shop has one already."""
    check_admin(by)
    check_campaign(config, templates)

    async def work(session: AsyncSession) -> int | None:
        if await session.get(Campaign, config.shop_id, with_for_update=True) is not None:
            return None
        return await _replace(session, config, now, by)

    return await _transaction(sessions, work)
