"""The lock alert: an e-mail to a shop's admins when a cart has been locked for
``Settings.lock_alert_after_seconds`` (seed 004: "admins are told 30 minutes after the
lock"). The cart workflow calls ``send_lock_alert`` (contract:
``workflows.alerts_contract``).

One e-mail per (shop, cart, lineage, locked_at), whatever the retries
(``activities.admin_mail.deliver``, table ``admin_notices``), to every admin of the shop
at once. It says which cart, how much, why and since when it is locked, its payment
attempts' ids (to find them at the gateway) and the commands that act on it; nothing about
the customer. The answers (``AlertResult.status``):

- ``no_admins``: the shop has no admin addresses (``CARTKEEPER_SHOP_ADMINS``); logged;
- ``already_sent``: an earlier attempt or call sent it;
- ``no_longer_locked``: the read model shows the same cart past this lock (confirmed,
  unlocked, deleted or locked again since), e.g. after a relay outage outlasted it;
- ``sent``; or ``failed`` when the relay refused it for good or it could not be made.

A relay that is down (or answers "try later", or not in time) raises a retryable
``ApplicationError`` of type ``smtp_unavailable`` / ``smtp_timeout``; a database error
propagates as it is (retryable too).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from jinja2 import TemplateError
from sqlalchemy import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import admin_mail
from activities.db import SessionFactory
from activities.models import CartRecord
from activities.settings import Settings
from activities.smtp import MailError, SmtpConfig
from workflows.alerts_contract import (
    ACTIVITY_SEND_LOCK_ALERT,
    ALERT_ALREADY_SENT,
    ALERT_FAILED,
    ALERT_NO_ADMINS,
    ALERT_NO_LONGER_LOCKED,
    AlertResult,
    LockAlertInput,
)

log = admin_mail.log

#: how an admin reads a ``LockReason``
LOCK_REASONS = {
    "payment_pending": "the payment gateway answered that the payment is pending",
    "no_payment_result": "no payment result came back from the gateway in time",
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def lock_alert_key(request: LockAlertInput) -> str:
    """The notice's key: the cart, its lineage and the lock's time (to the microsecond)."""
    locked_at = _utc(request.locked_at).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"lock:{request.cart_id}:{request.lineage}:{locked_at}"


class LockAlertActivities:
    """``send_lock_alert``, bound to the read model's sessions and the settings (admins,
    relay, sender). ``clock`` is the activity's clock (tests set it)."""

    def __init__(
        self,
        session_factory: SessionFactory,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = _utcnow,
        templates: admin_mail.AdminTemplates | None = None,
        smtp: SmtpConfig | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.settings = settings
        self.clock = clock
        self.templates = templates or admin_mail.AdminTemplates()
        self.smtp = smtp or SmtpConfig.from_settings(settings)

    def all(self) -> list[Any]:
        """The activities to register on a worker."""
        return [self.send_lock_alert]

    @activity.defn(name=ACTIVITY_SEND_LOCK_ALERT)
    async def send_lock_alert(self, request: LockAlertInput) -> AlertResult:
        """Tell the shop's admins about the locked cart, once (see the module's docstring)."""
        try:
            return await self.alert(request)
        except MailError as error:
            if error.transient:
                raise ApplicationError(
                    f"lock alert of cart {request.shop_id}/{request.cart_id} not sent yet:"
                    f" {error.code}: {error.message}",
                    type=error.code,
                ) from None
            log.warning(
                "lock alert of cart %s/%s not sent: %s",
                request.shop_id,
                request.cart_id,
                error,
            )
            return AlertResult(status=ALERT_FAILED, detail=f"{error.code}: {error.message}")
        except (TemplateError, ValueError) as error:
            log.warning(
                "lock alert of cart %s/%s not made: %s", request.shop_id, request.cart_id, error
            )
            return AlertResult(status=ALERT_FAILED, detail=f"the alert could not be made: {error}")

    async def alert(self, request: LockAlertInput) -> AlertResult:
        """The alert's work; ``MailError`` when the relay does not take the message."""
        shop_id, cart_id = request.shop_id, request.cart_id
        admins = self.settings.admins_for(shop_id)
        if not admins:
            detail = f"shop {shop_id!r} has no admin addresses (CARTKEEPER_SHOP_ADMINS)"
            log.warning("lock alert of cart %s/%s not sent: %s", shop_id, cart_id, detail)
            return AlertResult(status=ALERT_NO_ADMINS, detail=detail)
        key = lock_alert_key(request)
        done = await admin_mail.sent_at(self.session_factory, shop_id, key)
        if done is not None:
            return AlertResult(
                status=ALERT_ALREADY_SENT,
                message_id=admin_mail.notice_message_id(shop_id, key, self.settings),
                sent_at=done,
            )
        moved_on = await self._moved_on(request)
        if moved_on is not None:
            log.info("lock alert of cart %s/%s not sent: %s", shop_id, cart_id, moved_on)
            return AlertResult(status=ALERT_NO_LONGER_LOCKED, detail=moved_on)

        def make(message_id: str) -> EmailMessage:
            return admin_mail.build_admin_message(
                self.render(request),
                sender=self.settings.alert_sender,
                recipients=admins,
                message_id=message_id,
                date=self.clock(),
            )

        return await admin_mail.deliver(
            self.session_factory,
            self.settings,
            shop_id=shop_id,
            key=key,
            kind=admin_mail.KIND_LOCK_ALERT,
            make=make,
            clock=self.clock,
            smtp=self.smtp,
        )

    async def _moved_on(self, request: LockAlertInput) -> str | None:
        """Why the read model says this lock is over (``None``: it does not say so). Only a
        newer record of the same lineage counts: a read model that lags (or missed the
        lock) never stops the alert."""
        async with self.session_factory() as session:
            record = (
                await session.execute(
                    select(
                        CartRecord.state,
                        CartRecord.lineage,
                        CartRecord.locked_at,
                        CartRecord.updated_at,
                    ).where(
                        CartRecord.shop_id == request.shop_id,
                        CartRecord.cart_id == request.cart_id,
                    )
                )
            ).one_or_none()
        if record is None or (record.lineage or "") != request.lineage:
            return None
        locked_at = _utc(request.locked_at)
        if record.updated_at <= locked_at:
            return None
        if record.state == "locked" and record.locked_at == locked_at:
            return None
        if record.state == "locked":
            return "the cart was unlocked and locked again since (a new lock, a new alert)"
        return f"the cart is {record.state} now"

    def render(self, request: LockAlertInput) -> admin_mail.RenderedAdminMail:
        """The alert's subject, text and HTML (no customer data: ids, amounts, times)."""
        now = self.clock()
        locked_at = _utc(request.locked_at)
        shop, cart = request.shop_id, request.cart_id
        reason = request.lock_reason or ""
        return self.templates.render(
            "lock_alert",
            {
                "shop_id": shop,
                "cart_id": cart,
                "total": admin_mail.amount(request.total, request.currency),
                "locked_at": locked_at.strftime("%Y-%m-%d %H:%M UTC"),
                "locked_for": admin_mail.duration((now - locked_at).total_seconds()),
                "reason": LOCK_REASONS.get(reason, reason or "not recorded"),
                "attempt_ids": list(request.attempt_ids),
                "show_command": f"cartkeeper carts show {cart} --shop {shop}",
                "confirm_command": f"cartkeeper carts confirm {cart} --shop {shop}",
                "unlock_command": f"cartkeeper carts unlock {cart} --shop {shop}",
                "delete_command": f"cartkeeper carts delete {cart} --shop {shop}",
            },
        )


def admin_alert_activities(session_factory: SessionFactory, settings: Settings) -> list[Any]:
    """Every admin alert activity (the lock alert and the daily digest), for a worker."""
    from activities.digest import DigestActivities

    return [
        *LockAlertActivities(session_factory, settings).all(),
        *DigestActivities(session_factory, settings).all(),
    ]
