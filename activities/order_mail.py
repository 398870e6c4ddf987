"""The order status e-mail (``activities.order_activities.send_order_status_mail``): which
template, what it says, and the message.

**Templates** (Jinja2, like the reminders' and the admin e-mail: the HTML extends
``_layout.html``, is autoescaped and its CSS inlined; the text is not escaped) live in
``activities/mail_templates/status/``, three files per template: ``<name>.subject.txt``,
``<name>.txt`` and ``<name>.html``.

- The customer's e-mail: the first of ``<LETTER>.<locale>``, ``<LETTER>``,
  ``default.<locale>``, ``default`` that exists, where ``<locale>`` runs from the
  customer's most specific locale to its language (``de_AT``, ``de``) and, after the
  template without a locale, English (``en``: the locale of a customer who has none). So a
  shop may add ``status/B.fr.*`` for its French customers, or one ``status/X.*`` for a
  status of its own in every language. Shipped: ``default``, ``S`` (shipped: the
  tracking code) and ``I`` (cancelled), each in ``en`` and ``de``.
- The orders department's e-mail: ``department`` (English, whatever the status).

Amounts are formatted with babel in the order's currency and the customer's locale (the
department's in English). The customer's e-mail shows the order as the customer knows
it (lines, totals, delivery); the department's carries ids, the status, who set it, the
note, the lines and amounts and the delivery method, never the customer's personal data
(name, e-mail, address), as every e-mail to a shop's staff (``activities.admin_mail``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import css_inline
from jinja2 import TemplateNotFound

from activities.mail_render import (
    DEFAULT_LOCALE,
    TEMPLATES,
    MailRenderer,
    RenderedMail,
    TemplateMissing,
    address,
    candidates,
    money,
    parse_locale,
)
from workflows.order_contract import StatusMailInput
from workflows.order_state import Delivery

#: the folder of the order status templates (under ``mail_templates``)
FOLDER = "status"
DEFAULT_TEMPLATE = "default"
DEPARTMENT_TEMPLATE = "department"
_LETTER_RE = re.compile(r"^[A-Z]\Z")


@dataclass(frozen=True)
class ShopIdentity:
    """How the shop signs its customer e-mail: its name and From address."""

    name: str
    sender: str


def order_ref(request: StatusMailInput) -> str:
    """The order as its e-mail names it: its number (the cart's id without one)."""
    return str(request.order_number) if request.order_number is not None else request.cart_id


def _amount(total: int, currency: str | None, locale: str) -> str:
    if not currency:
        raise ValueError("the order has no currency")
    return money(total, currency, locale)


def _optional(total: int, currency: str | None, locale: str) -> str | None:
    return _amount(total, currency, locale) if total > 0 else None


def _lines(request: StatusMailInput, locale: str) -> list[dict[str, Any]]:
    return [
        {
            "name": line.name,
            "quantity": line.quantity,
            "amount": _amount(line.subtotal, request.currency, locale),
        }
        for line in request.lines
    ]


def _totals(request: StatusMailInput, locale: str) -> dict[str, Any]:
    return {
        "total": _amount(request.total, request.currency, locale),
        "amount_paid": _optional(request.amount_paid, request.currency, locale),
        "outstanding": _optional(request.total - request.amount_paid, request.currency, locale),
    }


def _delivery(delivery: Delivery | None, currency: str | None, locale: str) -> dict[str, Any]:
    """The delivery as the customer reads it (every key present: the templates are
    strict); ``shown`` false when there is nothing to show."""
    d = delivery or Delivery()
    place = " ".join(part for part in (d.postal_code, d.city) if part)
    address_lines = [part for part in (d.address, place, d.country) if part]
    values: dict[str, Any] = {
        "method": d.method,
        "cost": _optional(d.cost, currency, locale),
        "tracking_code": d.tracking_code,
        "recipient_name": d.recipient_name,
        "address_lines": address_lines,
        "comment": d.comment,
    }
    values["shown"] = any(value for value in values.values())
    return values


class StatusTemplates:
    """The order status templates, rendered with ``MailRenderer``'s Jinja environments
    (HTML autoescaped, text not; undefined values are errors)."""

    def __init__(self, templates: Path = TEMPLATES) -> None:
        self.root = templates
        self._jinja = MailRenderer(templates)

    def _exists(self, name: str) -> bool:
        return (self.root / FOLDER / f"{name}.html").is_file()

    def choose(self, letter: str, locale: str | None) -> tuple[str, str | None]:
        """The customer's template for status ``letter``: its name and its locale
        (``None``: a template without one). See the module's docstring for the order."""
        if not _LETTER_RE.match(letter):
            raise TemplateMissing(f"{letter!r} is not a status letter")
        locale = locale or DEFAULT_LOCALE
        own = candidates(locale)  # e.g. de_AT, de, en
        if parse_locale(locale).language != DEFAULT_LOCALE:
            own = [tag for tag in own if tag != DEFAULT_LOCALE]  # English after no locale
        tried: list[str | None] = [*own, None]
        if DEFAULT_LOCALE not in own:
            tried.append(DEFAULT_LOCALE)
        for base in (letter, DEFAULT_TEMPLATE):
            for tag in tried:
                if self._exists(f"{base}.{tag}" if tag else base):
                    return (f"{base}.{tag}" if tag else base), tag
        raise TemplateMissing(f"no order status template for {letter!r} (not even the default)")

    def render(self, name: str, values: dict[str, Any]) -> RenderedMail:
        """Subject, text and HTML of ``status/<name>``; ``values['lang']`` is the locale."""
        path = f"{FOLDER}/{name}"
        try:
            subject = self._jinja.text.get_template(f"{path}.subject.txt").render(values)
            text = self._jinja.text.get_template(f"{path}.txt").render(values)
            html = self._jinja.html.get_template(f"{path}.html").render(values)
        except TemplateNotFound as missing:
            raise TemplateMissing(f"template {missing.name} is missing") from None
        return RenderedMail(
            locale=str(values["lang"]),
            subject=" ".join(subject.split()),  # one line, whatever the template holds
            text=text,
            html=css_inline.inline(html),
        )

    def customer(self, request: StatusMailInput, shop: ShopIdentity) -> RenderedMail:
        """The customer's e-mail, in the customer's locale (``en`` without one)."""
        locale = request.locale or DEFAULT_LOCALE
        name, tag = self.choose(request.letter, locale)
        where = parse_locale(locale)
        lang = tag or "_".join(part for part in (where.language, where.territory) if part)
        values: dict[str, Any] = {
            "lang": lang,
            "shop_name": shop.name,
            "order_ref": order_ref(request),
            "order_number": request.order_number,
            "letter": request.letter,
            "status_name": request.status_name,
            "customer_name": request.customer_name,
            "lines": _lines(request, locale),
            **_totals(request, locale),
            "delivery": _delivery(request.delivery, request.currency, locale),
        }
        return self.render(name, values)

    def department(self, request: StatusMailInput, shop: ShopIdentity) -> RenderedMail:
        """The orders department's e-mail (English; no personal data of the customer)."""
        delivery = request.delivery or Delivery()
        shop_id, cart_id = request.shop_id, request.cart_id
        values: dict[str, Any] = {
            "lang": DEFAULT_LOCALE,
            "shop_id": shop_id,
            "shop_name": shop.name,
            "cart_id": cart_id,
            "order_ref": order_ref(request),
            "order_number": request.order_number,
            "letter": request.letter,
            "status_name": request.status_name,
            "set_by": request.set_by,
            "note": request.note,
            "lines": _lines(request, DEFAULT_LOCALE),
            **_totals(request, DEFAULT_LOCALE),
            "delivery_method": delivery.method,
            "delivery_cost": _optional(delivery.cost, request.currency, DEFAULT_LOCALE),
            "tracking_code": delivery.tracking_code,
            "country": delivery.country,
            "show_command": f"cartkeeper carts show {cart_id} --shop {shop_id}",
        }
        return self.render(DEPARTMENT_TEMPLATE, values)


def build_status_message(
    rendered: RenderedMail,
    *,
    sender: tuple[str | None, str],
    recipients: list[tuple[str | None, str]],
    message_id: str,
    date: datetime,
) -> EmailMessage:
    """The message: text and HTML alternatives, a fixed Message-ID (the same on every
    retry), ``Auto-Submitted`` (no out-of-office replies) and ``Content-Language``.
    ``ValueError`` for an address that is not one."""
    if date.tzinfo is None:
        raise ValueError("the message date must be timezone-aware")
    message = EmailMessage()
    message["From"] = address(sender[0], sender[1])
    message["To"] = [address(name, email.strip()) for name, email in recipients]
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(date.astimezone(UTC))
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    # (after the content: ``set_content`` drops every Content-* header set before it)
    message["Content-Language"] = rendered.locale.replace("_", "-")
    return message
