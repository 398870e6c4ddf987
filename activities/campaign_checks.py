"""What a reminder campaign is, and the checks every edit of it runs.

The types (``CampaignConfig``, ``ReminderDefinition``, ``ReminderVariant``,
``CouponOffer``, ``CampaignRefused``) live here with their checks, so that the store
(``activities.campaigns``, which re-exports them: import them from there) and the checks
do not import each other.

Every refusal is a ``CampaignRefused`` with a ``lower_snake`` code; nothing is silently
changed (no trimming, no clamping, no coercion of types):

===========================  ============================================================
``invalid_shop_id``          the shop id is not a valid id
``invalid_admin``            ``by`` is not a name of 1-64 characters
``invalid_setting``          a flag that is not a boolean, a setting that does not exist
``invalid_shop_name``        empty, longer than 200 characters, or with control characters
                             (line breaks, lone surrogates)
``invalid_sender``           not an e-mail address (``email-validator``, no deliverability)
``invalid_restore_url``      not an absolute http(s) URL, or placeholders other than
                             ``{cart_id}`` and ``{coupon}``
``invalid_restart_rule``     not ``continue`` or ``once``
``invalid_quiet_hours``      a minute outside 0-1439
``invalid_time_zone``        not a time zone ``zoneinfo`` knows
``invalid_cap``              count outside 1-100 or period outside 1-365 days
``invalid_reminder_id``      not a valid id (``workflows.validation.valid_id``)
``invalid_name``             empty, longer than 200 characters, or with control characters
                             (line breaks, lone surrogates)
``invalid_subject``          empty, longer than 300 characters, or with control characters
                             (line breaks, lone surrogates)
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
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from jinja2 import TemplateError

from activities.coupons import MAX_PERCENT
from activities.mail_render import (
    DEFAULT_LOCALE,
    TEMPLATES,
    MailContent,
    MailCoupon,
    MailLine,
    MailRenderer,
    TemplateMissing,
)
from activities.models import ID_LENGTH
from activities.settings import known_time_zone
from workflows.reminders import MAX_REMINDERS
from workflows.validation import MAX_AMOUNT, is_int, valid_id

RestartRule = Literal["continue", "once"]
CouponKind = Literal["fixed", "percent"]

RESTART_RULES: tuple[str, ...] = get_args(RestartRule)
COUPON_KINDS: tuple[str, ...] = get_args(CouponKind)
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


#: the shop-level settings (the ``campaigns`` columns an edit may change): every field of
#: ``CampaignConfig`` but the shop, the version and the reminders
SETTING_FIELDS: tuple[str, ...] = tuple(
    item.name
    for item in fields(CampaignConfig)
    if item.name not in ("shop_id", "version", "reminders")
)


# --------------------------------------------------------------------------- values


def _has_control(value: str) -> bool:
    """Control characters and line/paragraph separators (a subject is a mail header), and
    lone surrogates (``Cs``: no database stores them, no mail can carry them)."""
    return any(unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") for char in value)


def _check_text(value: object, what: str, code: str, limit: int) -> None:
    if not isinstance(value, str) or not value.strip():
        raise CampaignRefused(code, f"{what} must be a non-empty text")
    if len(value) > limit:
        raise CampaignRefused(code, f"{what} has {len(value)} characters; at most {limit}")
    if _has_control(value):
        raise CampaignRefused(
            code, f"{what} must not contain control characters, lone surrogates or line breaks"
        )


def _check_int(value: object, what: str, code: str, low: int, high: int, unit: str = "") -> None:
    if not is_int(value):
        raise CampaignRefused(code, f"{what} must be an integer, not {value!r}")
    assert isinstance(value, int)
    if not low <= value <= high:
        raise CampaignRefused(code, f"{what} must be from {low} to {high}{unit}, not {value}")


def _check_flag(value: object, what: str, code: str = "invalid_setting") -> None:
    if not isinstance(value, bool):
        raise CampaignRefused(code, f"{what} must be true or false, not {value!r}")


def _check_id(value: object, what: str, code: str) -> None:
    if not valid_id(value):
        raise CampaignRefused(
            code,
            f"{value!r} is not a valid {what} id (letters, digits, '.', '_', '-'; 1-64"
            " characters, starting with a letter or digit)",
        )


# --------------------------------------------------------------------------- settings


def check_shop_id(shop_id: object) -> None:
    _check_id(shop_id, "shop", "invalid_shop_id")


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
        raise CampaignRefused(code, "the restore URL must be a non-empty text")
    if len(url) > _MAX_URL:
        raise CampaignRefused(
            code, f"the restore URL has {len(url)} characters; at most {_MAX_URL}"
        )
    if not url.isprintable() or any(char.isspace() for char in url):
        raise CampaignRefused(code, "the restore URL must not contain spaces or control characters")
    try:
        parsed = list(string.Formatter().parse(url))
    except ValueError as error:
        raise CampaignRefused(
            code, f"the restore URL has an unbalanced brace ({error}); write {{{{ for a brace"
        ) from None
    for _literal, name, spec, conversion in parsed:
        if name is not None and (name not in RESTORE_PLACEHOLDERS or spec or conversion):
            shown = "{" + name + (f"!{conversion}" if conversion else "")
            shown += (f":{spec}" if spec else "") + "}"
            raise CampaignRefused(
                code, f"the restore URL may hold {{cart_id}} and {{coupon}} only, not {shown}"
            )
    try:
        parts = urlsplit(url.format(cart_id="cart-1", coupon="ABCD-EFGH"))
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError as error:
        raise CampaignRefused(code, f"the restore URL cannot be read ({error})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CampaignRefused(
            code, f"the restore URL must be an absolute http(s) URL (https://...), not {url!r}"
        )


def check_sender(sender: object) -> None:
    code = "invalid_sender"
    if not isinstance(sender, str) or not sender:
        raise CampaignRefused(code, "the sender must be an e-mail address")
    if len(sender) > _MAX_SENDER:
        raise CampaignRefused(
            code, f"the sender has {len(sender)} characters; at most {_MAX_SENDER}"
        )
    try:
        validate_email(sender, check_deliverability=False)
    except EmailNotValidError as error:
        raise CampaignRefused(code, f"{sender!r} is not an e-mail address: {error}") from None


def check_time_zone(name: object) -> None:
    code = "invalid_time_zone"
    if not isinstance(name, str) or not name or len(name) > _MAX_TIME_ZONE:
        raise CampaignRefused(code, f"{name!r} is not a time zone name")
    if not known_time_zone(name):
        raise CampaignRefused(
            code, f"{name!r} is not a time zone (IANA names: Europe/Berlin, UTC ...)"
        )


def check_settings(config: CampaignConfig) -> None:
    """The shop-level settings of ``config`` (not its reminders)."""
    check_shop_id(config.shop_id)
    _check_flag(config.enabled, "enabled")
    _check_flag(config.requires_consent, "requires_consent")
    _check_text(config.shop_name, "the shop name", "invalid_shop_name", MAX_NAME)
    check_sender(config.sender)
    check_restore_url(config.restore_url)
    if config.restart_rule not in RESTART_RULES:
        raise CampaignRefused(
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


# --------------------------------------------------------------------------- templates


@lru_cache(maxsize=8)
def renderer_for(templates: Path = TEMPLATES) -> MailRenderer:
    """One renderer per templates folder (it reads the folder's locales once)."""
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
#: a template must render with a coupon and a customer's name, and without either
_SAMPLES = (_SAMPLE, replace(_SAMPLE, coupon=None, customer_name=None))


def check_template(name: object, templates: Path = TEMPLATES, *, what: str = "template") -> None:
    """The template exists for the fallback locale and renders (sample content)."""
    if not isinstance(name, str) or not name or len(name) > ID_LENGTH:
        raise CampaignRefused("unknown_template", f"{what} {name!r} is not a template name")
    renderer = renderer_for(templates)
    for content in _SAMPLES:
        try:
            renderer.render(name, content)
        except TemplateMissing:
            raise CampaignRefused(
                "unknown_template",
                f"no {what} {name!r} for the fallback locale {DEFAULT_LOCALE!r} (templates:"
                f" {', '.join(template_names(templates)) or 'none'})",
            ) from None
        except TemplateError as error:
            raise CampaignRefused(
                "invalid_template", f"{what} {name!r} does not render: {error}"
            ) from None


def template_names(templates: Path = TEMPLATES) -> list[str]:
    """The templates of the fallback locale (those a reminder may use)."""
    folder = templates / DEFAULT_LOCALE
    if not folder.is_dir():
        return []
    return sorted(path.name.removesuffix(".html") for path in folder.glob("*.html"))


# --------------------------------------------------------------------------- reminders


def check_coupon(coupon: object, where: str = "") -> None:
    if coupon is None:
        return
    if not isinstance(coupon, CouponOffer):
        raise CampaignRefused("invalid_coupon", f"{where}the coupon is not a CouponOffer")
    if coupon.kind not in COUPON_KINDS:
        raise CampaignRefused(
            "invalid_coupon", f"{where}a coupon is 'fixed' or 'percent', not {coupon.kind!r}"
        )
    if coupon.kind == "percent":
        what, high, unit = f"{where}a percent coupon", MAX_PERCENT, " %"
    else:
        what, high, unit = f"{where}a fixed coupon's amount", MAX_AMOUNT, " minor units"
    _check_int(coupon.amount, what, "invalid_coupon", 1, high, unit)
    _check_int(
        coupon.expiry_days,
        f"{where}the coupon's expiry",
        "invalid_coupon_expiry",
        1,
        MAX_COUPON_DAYS,
        " days",
    )


def _check_variant(variant: object, where: str, templates: Path, rendered: set[str]) -> None:
    """``rendered``: the templates found to render already (each is tried once)."""
    if not isinstance(variant, ReminderVariant):
        raise CampaignRefused("invalid_variant", f"{where}not a ReminderVariant")
    _check_text(variant.subject, f"{where}the subject", "invalid_subject", MAX_SUBJECT)
    if not isinstance(variant.template, str) or variant.template not in rendered:
        check_template(variant.template, templates, what=f"{where}template")
        rendered.add(variant.template)
    check_coupon(variant.coupon, where)


def check_reminder(reminder: ReminderDefinition, templates: Path = TEMPLATES) -> None:
    """One reminder on its own (the campaign's rules are checked where it is written)."""
    _check_reminder(reminder, templates, set())


def _check_reminder(reminder: ReminderDefinition, templates: Path, rendered: set[str]) -> None:
    _check_id(reminder.reminder_id, "reminder", "invalid_reminder_id")
    _check_text(reminder.name, "the name", "invalid_name", MAX_NAME)
    _check_int(reminder.position, "the position", "invalid_position", 0, MAX_POSITION)
    delay = reminder.delay_seconds
    if not is_int(delay):
        raise CampaignRefused("invalid_delay", f"the delay must be whole seconds, not {delay!r}")
    if not MIN_DELAY_SECONDS <= delay <= MAX_DELAY_SECONDS:
        raise CampaignRefused(
            "invalid_delay", f"the delay must be from 60 seconds to 365 days, not {delay} s"
        )
    _check_flag(reminder.automatic, "automatic", "invalid_automatic")
    _check_flag(reminder.removed, "removed")
    _check_variant(reminder.a, "", templates, rendered)
    if reminder.b is not None:
        _check_variant(reminder.b, "variant b: ", templates, rendered)
        if reminder.b == reminder.a:
            raise CampaignRefused(
                "invalid_variant",
                "variant b is the same as a (give it its own subject, template or coupon)",
            )


def check_reminder_set(reminders: Iterable[ReminderDefinition]) -> None:
    """A campaign's reminders together: ids unique; the active ones' positions unique,
    at most ``MAX_REMINDERS`` of them."""
    ids: set[str] = set()
    positions: dict[int, str] = {}
    for item in reminders:
        if item.reminder_id in ids:
            raise CampaignRefused(
                "duplicate_reminder", f"reminder {item.reminder_id!r} is listed twice"
            )
        ids.add(item.reminder_id)
        if item.removed:
            continue
        other = positions.get(item.position)
        if other is not None:
            raise CampaignRefused(
                "duplicate_position",
                f"reminders {other!r} and {item.reminder_id!r} both have position {item.position}",
            )
        positions[item.position] = item.reminder_id
    if len(positions) > MAX_REMINDERS:
        raise CampaignRefused(
            "too_many_reminders",
            f"a campaign has at most {MAX_REMINDERS} reminders, not {len(positions)}",
        )


def check_campaign(config: CampaignConfig, templates: Path = TEMPLATES) -> None:
    """A whole campaign: its settings, each reminder, and the reminders together."""
    check_settings(config)
    rendered: set[str] = set()
    for item in config.reminders:
        if not isinstance(item, ReminderDefinition):
            raise CampaignRefused(
                "invalid_reminder_id", "a campaign's reminders are ReminderDefinitions"
            )
        _check_reminder(item, templates, rendered)
    check_reminder_set(config.reminders)
