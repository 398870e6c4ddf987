"""E-mail to a customer: templates rendered for the customer's locale, and the message
with the headers mail clients and providers expect.

- Templates (Jinja2) live in ``activities/mail_templates/<locale>/<name>.subject.txt``,
  ``<name>.txt`` and ``<name>.html``. The HTML is autoescaped (a customer name such as
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

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path

import css_inline
from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency, get_currency_precision
from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound

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
    """``amount`` minor units of ``currency`` as the customer's locale writes it."""
    digits = get_currency_precision(currency)
    return format_currency(Decimal(amount).scaleb(-digits), currency, locale=_babel(locale))


def _babel(locale: str) -> Locale:
    try:
        return Locale.parse(locale.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse(DEFAULT_LOCALE)


def candidates(locale: str) -> list[str]:
    """``de_AT`` → ``["de_AT", "de", "en"]``."""
    tag = locale.replace("-", "_")
    out = [tag]
    if "_" in tag:
        out.append(tag.split("_", 1)[0])
    if DEFAULT_LOCALE not in out:
        out.append(DEFAULT_LOCALE)
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

    def render(self, name: str, content: MailContent) -> RenderedMail:
        """Subject, text and HTML of template ``name`` for ``content.locale`` (falling back)."""
        for locale in candidates(content.locale):
            if (self.templates / locale / f"{name}.html").is_file():
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
                value = f"{coupon.percent} %"
            else:
                value = money(coupon.amount or 0, content.currency, locale)
            coupon_values = {
                "code": coupon.code,
                "value": value,
                "expires": format_date(coupon.expires_at, "long", locale=_babel(locale))
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


def message_id(shop_id: str, cart_id: str, key: str, domain: str) -> str:
    """The same for the same (shop, cart, key): a retry sends the same message."""
    digest = hashlib.sha256(f"{shop_id}\x00{cart_id}\x00{key}".encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


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
) -> EmailMessage:
    """The whole message: text and HTML alternatives, and the headers above."""
    if date.tzinfo is None:
        raise ValueError("the message date must be timezone-aware")
    message = EmailMessage()
    message["From"] = formataddr(sender)
    message["To"] = formataddr((recipient[0] or "", recipient[1]))
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(date.astimezone(UTC))
    message["Message-ID"] = message_id(shop_id, cart_id, key, domain)
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Content-Language"] = rendered.locale.replace("_", "-")
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message
