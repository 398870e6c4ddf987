"""E-mail to a customer: templates rendered for the customer's locale, and the message
with the headers mail clients and providers expect.

- Templates (Jinja2) live in ``activities/mail_templates/<locale>/<name>.subject.txt``,
  ``<name>.txt`` and ``<name>.html`` (which extends ``_layout.html``: the page and its CSS,
  shared by every locale). The HTML is autoescaped (a customer name such as
  ``<script>`` is shown, never run), the text is not. The locale falls back from
  ``de_AT`` to ``de`` to ``en``.
- Amounts are formatted with babel in **the cart's own currency** (integer minor units,
  the currency's own number of decimals) and the customer's locale.
- The HTML's CSS is inlined (css-inline): mail clients drop ``<style>`` blocks.
- Every message carries ``List-Unsubscribe`` (the one-click URL) with
  ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058), a ``Message-ID`` derived
  from (shop, cart, message key), the same on every retry, and ``Date``.
"""

from __future__ import annotations

import copy
import hashlib
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import urlsplit

import css_inline
from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_percent, is_currency
from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound

from workflows.codes import ISO_4217, currency_exponent

TEMPLATES = Path(__file__).resolve().parent / "mail_templates"
DEFAULT_LOCALE = "en"


class TemplateMissing(LookupError):
    pass


@dataclass(frozen=True)
class MailLine:
    name: str
    quantity: int
    #: the line's amount in minor units (unit price times quantity)
    amount: int


@dataclass(frozen=True)
class MailCoupon:
    code: str
    #: a fixed amount in minor units of the cart's currency, or a percent
    amount: int | None = None
    percent: int | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class MailContent:
    """What a reminder says (the tokens of the shop's templates)."""

    shop_name: str
    customer_name: str | None
    locale: str
    currency: str
    lines: tuple[MailLine, ...]
    total: int
    recovery_url: str
    unsubscribe_url: str
    coupon: MailCoupon | None = None


@dataclass(frozen=True)
class RenderedMail:
    locale: str  # the templates' locale actually used
    subject: str
    text: str
    html: str


def money(amount: int, currency: str, locale: str) -> str:
    """``amount`` minor units of ``currency`` as the customer's locale writes it, with the
    currency's ISO 4217 decimals (the project's, not babel's cash rounding: 123456 HUF
    minor units are 1,234.56 HUF)."""
    if currency not in ISO_4217 or not is_currency(currency):
        raise ValueError(f"{currency!r} is not an ISO 4217 currency code")
    digits = currency_exponent(currency)
    where = parse_locale(locale)
    pattern = copy.copy(where.currency_formats["standard"])
    pattern.frac_prec = (digits, digits)
    text: str = pattern.apply(
        Decimal(amount).scaleb(-digits), where, currency=currency, currency_digits=False
    )
    return text


def parse_locale(locale: str) -> Locale:
    """The customer's locale (``de-AT``, ``de_AT``, ``DE``, ``de.UTF-8`` ...); English when
    it cannot be read."""
    tag = locale.split(".", 1)[0].split("@", 1)[0].replace("-", "_").strip()
    try:
        return Locale.parse(tag)
    except (UnknownLocaleError, ValueError, TypeError):
        try:
            return Locale.parse(tag.lower())
        except (UnknownLocaleError, ValueError, TypeError):
            return Locale.parse(DEFAULT_LOCALE)


def candidates(locale: str) -> list[str]:
    """The template folders to try, most specific first: ``sr_Latn_RS`` →
    ``["sr_Latn_RS", "sr_Latn", "sr", "en"]``; ``de-AT`` → ``["de_AT", "de", "en"]``."""
    where = parse_locale(locale)
    out: list[str] = []
    for parts in (
        (where.language, where.script, where.territory),
        (where.language, where.script),
        (where.language, where.territory),
        (where.language,),
        (DEFAULT_LOCALE,),
    ):
        if all(parts):
            tag = "_".join(str(part) for part in parts)
            if tag not in out:
                out.append(tag)
    return out


class MailRenderer:
    def __init__(self, templates: Path = TEMPLATES) -> None:
        self.templates = templates
        loader = FileSystemLoader(str(templates))
        self.html = Environment(
            loader=loader, autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True
        )
        self.text = Environment(
            loader=loader, autoescape=False, undefined=StrictUndefined, keep_trailing_newline=True
        )
        #: the locales that have templates (read once, not at every message)
        self.locales = frozenset(path.name for path in templates.iterdir() if path.is_dir())

    def render(self, name: str, content: MailContent) -> RenderedMail:
        """Subject, text and HTML of template ``name`` for ``content.locale`` (falling back)."""
        if not name.replace("_", "").replace("-", "").isalnum():
            raise TemplateMissing(f"{name!r} is not a template name")
        for locale in candidates(content.locale):
            if locale in self.locales and (self.templates / locale / f"{name}.html").is_file():
                break
        else:
            raise TemplateMissing(f"no template {name!r} for {content.locale} or {DEFAULT_LOCALE}")
        values = self._values(content, locale)
        try:
            subject = self.text.get_template(f"{locale}/{name}.subject.txt").render(values)
            text = self.text.get_template(f"{locale}/{name}.txt").render(values)
            html = self.html.get_template(f"{locale}/{name}.html").render(values)
        except TemplateNotFound as missing:
            raise TemplateMissing(f"template {missing.name} is missing") from None
        return RenderedMail(
            locale=locale,
            subject=" ".join(subject.split()),  # one line, whatever the template holds
            text=text,
            html=css_inline.inline(html),
        )

    @staticmethod
    def _values(content: MailContent, template_locale: str) -> dict[str, object]:
        locale = content.locale
        coupon = content.coupon
        coupon_values = None
        if coupon is not None:
            if coupon.percent is not None:
                value = format_percent(coupon.percent / 100, locale=parse_locale(locale))
            else:
                value = money(coupon.amount or 0, content.currency, locale)
            coupon_values = {
                "code": coupon.code,
                "value": value,
                "expires": format_date(coupon.expires_at, "long", locale=parse_locale(locale))
                if coupon.expires_at
                else None,
            }
        return {
            "lang": template_locale.split("_")[0],
            "shop_name": content.shop_name,
            "customer_name": content.customer_name,
            "lines": [
                {
                    "name": line.name,
                    "quantity": line.quantity,
                    "amount": money(line.amount, content.currency, locale),
                }
                for line in content.lines
            ],
            "total": money(content.total, content.currency, locale),
            "coupon": coupon_values,
            "recovery_url": content.recovery_url,
            "unsubscribe_url": content.unsubscribe_url,
        }


def message_domain(configured: str | None, sender: str) -> str:
    """A Message-ID's domain: the configured one (``CARTKEEPER_MAIL_DOMAIN``), else the
    sender address's, else ``localhost``."""
    if configured:
        return configured
    domain = sender.rpartition("@")[2].strip().strip(">")
    return domain if domain and domain.isprintable() and " " not in domain else "localhost"


def message_id(shop_id: str, cart_id: str, key: str, domain: str) -> str:
    """The same for the same (shop, cart, key): a retry sends the same message."""
    digest = hashlib.sha256(f"{shop_id}\x00{cart_id}\x00{key}".encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def _display_name(name: str | None) -> str:
    """A name fit for a header: control characters (CR, LF ...) dropped."""
    return "".join(char for char in (name or "") if unicodedata.category(char)[0] != "C").strip()


def check_link(url: str) -> str:
    """A link fit for ``List-Unsubscribe``: absolute http(s), nothing that would end the
    ``<...>`` or add a second URI."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValueError(f"{url!r} is not an absolute http(s) URL")
    if any(char in url for char in ' <>,"') or not url.isprintable():
        raise ValueError(f"{url!r} has characters a List-Unsubscribe link cannot carry")
    return url


def address(name: str | None, email: str) -> Address:
    """A header address: ``name`` (control characters dropped) and ``email``."""
    username, _, domain = email.rpartition("@")
    if not username or not domain:
        raise ValueError(f"{email!r} is not an e-mail address")
    return Address(display_name=_display_name(name), username=username, domain=domain)


def build_message(
    rendered: RenderedMail,
    *,
    sender: tuple[str, str],
    recipient: tuple[str | None, str],
    shop_id: str,
    cart_id: str,
    key: str,
    unsubscribe_url: str,
    domain: str,
    date: datetime,
    fixed_message_id: str | None = None,
) -> EmailMessage:
    """The whole message: text and HTML alternatives, and the headers above. The
    Message-ID is derived from (shop, cart, key) unless one was fixed earlier
    (``fixed_message_id``: the reminder ledger's, so a retry sends the same message whatever
    the settings say now)."""
    if date.tzinfo is None:
        raise ValueError("the message date must be timezone-aware")
    check_link(unsubscribe_url)
    message = EmailMessage()
    message["From"] = address(sender[0], sender[1])
    message["To"] = address(recipient[0], recipient[1])
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(date.astimezone(UTC))
    message["Message-ID"] = fixed_message_id or message_id(shop_id, cart_id, key, domain)
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    # (after the content: ``set_content`` drops every Content-* header set before it)
    message["Content-Language"] = rendered.locale.replace("_", "-")
    return message
