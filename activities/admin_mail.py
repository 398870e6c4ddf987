"""E-mail to a shop's admins (the lock alert, the daily digest): templates, the message,
and sending it once per notice.

**Once per notice.** ``admin_notices`` holds one row per (shop, key): a lock alert's key
names the cart, its lineage and the lock's time, a digest's key its day. ``deliver``

1. answers ``already_sent`` (and sends nothing) when the row says it was sent;
2. claims the row (``sent_at`` NULL) in a committed transaction before any SMTP traffic;
3. hands the message to the relay, with a Message-ID derived from (shop, key): the same
   on every retry;
4. marks the row sent.

Temporal runs an activity's attempts one after the other, so retries never send twice.
The one window left is a crash (or a lost database) between the relay accepting the
message and step 4: the retry sends it again, with the same Message-ID, which mail
clients and receiving systems deduplicate. No SMTP client can close that window.

The templates live in ``activities/mail_templates/<name>/`` (``subject.txt``, ``text.txt``
and ``html.html``; the HTML extends ``_layout.html`` and is autoescaped, its CSS inlined).
Admin e-mail is in English. It carries ids, states and amounts, never a customer's
personal data (name, e-mail, address).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import css_inline
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from activities.db import SessionFactory, write_session
from activities.mail_render import TEMPLATES, message_id, money
from activities.models import AdminNotice
from activities.settings import Settings
from activities.smtp import SmtpConfig, send_message
from workflows.alerts_contract import ALERT_ALREADY_SENT, ALERT_SENT, AlertResult

log = logging.getLogger("cartkeeper.alerts")

#: ``admin_notices.kind``
KIND_LOCK_ALERT = "lock_alert"
KIND_DAILY_DIGEST = "daily_digest"

#: the ``cart_id`` part of an admin message's Message-ID (``mail_render.message_id``)
_MESSAGE_SCOPE = "admin"


@dataclass(frozen=True)
class RenderedAdminMail:
    subject: str
    text: str
    html: str


class AdminTemplates:
    """The admin e-mail templates (``mail_templates/<name>/subject.txt|text.txt|html.html``)."""

    def __init__(self, templates: Path = TEMPLATES) -> None:
        loader = FileSystemLoader(str(templates))
        self.html = Environment(
            loader=loader, autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True
        )
        self.text = Environment(
            loader=loader, autoescape=False, undefined=StrictUndefined, keep_trailing_newline=True
        )

    def render(self, name: str, values: Mapping[str, Any]) -> RenderedAdminMail:
        context = {"lang": "en", **values}
        subject = self.text.get_template(f"{name}/subject.txt").render(context)
        return RenderedAdminMail(
            subject=" ".join(subject.split()),  # one line, whatever the template holds
            text=self.text.get_template(f"{name}/text.txt").render(context),
            html=css_inline.inline(self.html.get_template(f"{name}/html.html").render(context)),
        )


def amount(total: int, currency: str | None) -> str:
    """``total`` minor units as an admin reads it (``€49.00``); without a currency, the
    bare number of minor units."""
    if not currency:
        return f"{total} (no currency)"
    try:
        return money(total, currency, "en")
    except ValueError:
        return f"{total} {currency} (minor units)"


def duration(seconds: float) -> str:
    """``2 d 3 h``, ``3 h 20 min``, ``31 min`` (never less than a minute)."""
    minutes = max(int(seconds // 60), 0)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


def message_domain(settings: Settings) -> str:
    """The Message-ID's domain: ``mail_domain``, else the alert sender's domain."""
    if settings.mail_domain:
        return settings.mail_domain
    domain = settings.alert_sender.rpartition("@")[2].strip()
    return domain if domain and domain.isprintable() and " " not in domain else "localhost"


def notice_message_id(shop_id: str, key: str, settings: Settings) -> str:
    """The same for the same (shop, notice key): a retry sends the same message."""
    return message_id(shop_id, _MESSAGE_SCOPE, key, message_domain(settings))


def _address(address: str) -> Address:
    username, _, domain = address.rpartition("@")
    return Address(username=username, domain=domain)


def build_admin_message(
    rendered: RenderedAdminMail,
    *,
    sender: str,
    recipients: list[str],
    message_id: str,
    date: datetime,
) -> EmailMessage:
    """One message to every admin of the shop: text and HTML alternatives."""
    message = EmailMessage()
    message["From"] = Address(display_name="cartkeeper", addr_spec=sender)
    message["To"] = [_address(address) for address in recipients]
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(date.astimezone(UTC))
    message["Message-ID"] = message_id
    # an automatic message: no out-of-office replies (RFC 3834)
    message["Auto-Submitted"] = "auto-generated"
    message["Content-Language"] = "en"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message


def _insert(dialect: str) -> postgresql.Insert | sqlite.Insert:
    if dialect == "postgresql":
        return postgresql.insert(AdminNotice)
    if dialect == "sqlite":
        return sqlite.insert(AdminNotice)
    raise NotImplementedError(f"the read model supports PostgreSQL and SQLite, not {dialect}")


async def sent_at(session_factory: SessionFactory, shop_id: str, key: str) -> datetime | None:
    """When the notice was sent (``None``: not yet, or never claimed)."""
    async with session_factory() as session:
        found: datetime | None = (
            await session.execute(
                select(AdminNotice.sent_at).where(
                    AdminNotice.shop_id == shop_id, AdminNotice.key == key
                )
            )
        ).scalar_one_or_none()
        return found


async def claim(
    session_factory: SessionFactory, shop_id: str, key: str, kind: str, now: datetime
) -> datetime | None:
    """Make the notice's row (if missing); when it was sent, ``None`` if not yet."""
    async with write_session(session_factory) as session:
        dialect = session.get_bind().dialect.name
        await session.execute(
            _insert(dialect)
            .values(shop_id=shop_id, key=key, kind=kind, created_at=now, sent_at=None)
            .on_conflict_do_nothing()
        )
        found: datetime | None = (
            await session.execute(
                select(AdminNotice.sent_at).where(
                    AdminNotice.shop_id == shop_id, AdminNotice.key == key
                )
            )
        ).scalar_one_or_none()
    return found


async def mark_sent(
    session_factory: SessionFactory, shop_id: str, key: str, when: datetime
) -> None:
    async with write_session(session_factory) as session:
        await session.execute(
            update(AdminNotice)
            .where(
                AdminNotice.shop_id == shop_id,
                AdminNotice.key == key,
                AdminNotice.sent_at.is_(None),
            )
            .values(sent_at=when)
            .execution_options(synchronize_session=False)
        )


async def deliver(
    session_factory: SessionFactory,
    settings: Settings,
    *,
    shop_id: str,
    key: str,
    kind: str,
    make: Callable[[str], EmailMessage],
    clock: Callable[[], datetime],
    smtp: SmtpConfig | None = None,
) -> AlertResult:
    """Send the notice ``(shop_id, key)`` once (see the module's docstring). ``make``
    builds the message for a Message-ID; ``smtp.MailError`` when the relay does not take
    it (the caller decides: retry, or report)."""
    id_ = notice_message_id(shop_id, key, settings)
    done = await claim(session_factory, shop_id, key, kind, clock())
    if done is not None:
        log.info("%s %s of shop %s: already sent at %s", kind, key, shop_id, done.isoformat())
        return AlertResult(status=ALERT_ALREADY_SENT, message_id=id_, sent_at=done)
    message = make(id_)
    sent = await send_message(smtp or SmtpConfig.from_settings(settings), message)
    when = clock()
    await mark_sent(session_factory, shop_id, key, when)
    log.info(
        "%s %s of shop %s sent as %s to %d admin(s)%s",
        kind,
        key,
        shop_id,
        id_,
        len(sent.recipients),
        f"; {len(sent.refused)} refused" if sent.refused else "",
    )
    detail = f"{len(sent.refused)} admin address(es) refused by the relay" if sent.refused else None
    return AlertResult(
        status=ALERT_SENT,
        message_id=id_,
        sent_at=when,
        recipients=len(sent.recipients),
        detail=detail,
    )
