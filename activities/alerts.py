"""The lock alert: an e-mail to a shop's admins when a cart has been locked for
``Settings.lock_alert_after_seconds`` (seed 004: "admins are told 30 minutes after the
lock"). The cart workflow calls ``send_lock_alert`` (contract:
``workflows.alerts_contract``).

One e-mail per (shop, cart, lineage, locked_at), whatever the retries
(``activities.admin_mail.AdminMailer.deliver``, table ``admin_notices``), to every admin
of the shop at once. It says which cart, how much, why and since when it is locked, its
payment attempts' ids (to find them at the gateway) and the commands that act on it;
nothing about the customer. The answers (``AlertResult.status``):

- ``no_admins``: the shop has no admin addresses (``CARTKEEPER_SHOP_ADMINS``); logged;
- ``already_sent``: an earlier attempt or call sent it;
- ``no_longer_locked``: the read model shows the same cart past this lock (confirmed,
  unlocked, deleted or locked again since), e.g. after a relay outage outlasted it;
- ``sent``; or ``failed`` when the relay refused it for good or it could not be made.

A relay that is down (or answers "try later", or not in time) raises a retryable
``ApplicationError`` of type ``smtp_unavailable`` / ``smtp_timeout``, and so does an
alert another delivery is sending right now (type ``sending``: the retry finds it sent);
a database error propagates as it is (retryable too).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from temporalio import activity

from activities import admin_mail
from activities.db import SessionFactory
from activities.digest import DigestActivities
from activities.models import CartRecord
from activities.settings import Settings
from workflows.alerts_contract import (
    ACTIVITY_SEND_LOCK_ALERT,
    ALERT_NO_LONGER_LOCKED,
    AlertResult,
    LockAlertInput,
)
from workflows.codes import CartState

log = admin_mail.log


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def lock_alert_key(request: LockAlertInput) -> str:
    """The notice's key: the cart, its lineage and the lock's time (to the microsecond)."""
    locked_at = _utc(request.locked_at).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"lock:{request.cart_id}:{request.lineage}:{locked_at}"


def _about(request: LockAlertInput) -> str:
    """The alert as the logs and errors name it."""
    return f"lock alert of cart {request.shop_id}/{request.cart_id}"


class LockAlertActivities(admin_mail.AdminMailer):
    """``send_lock_alert``, bound to the read model's sessions and the settings."""

    def all(self) -> list[Any]:
        """The activities to register on a worker."""
        return [self.send_lock_alert]

    @activity.defn(name=ACTIVITY_SEND_LOCK_ALERT)
    async def send_lock_alert(self, request: LockAlertInput) -> AlertResult:
        """Tell the shop's admins about the locked cart, once (see the module's docstring)."""
        return await self.answer(_about(request), "alert", self.alert(request))

    async def alert(self, request: LockAlertInput) -> AlertResult:
        """The alert's work; ``MailError`` when the relay does not take the message."""
        key = lock_alert_key(request)
        settled = await self.settled(request.shop_id, key, _about(request))
        if settled is not None:
            return settled
        moved_on = await self._moved_on(request)
        if moved_on is not None:
            log.info("%s not sent: %s", _about(request), moved_on)
            return AlertResult(status=ALERT_NO_LONGER_LOCKED, detail=moved_on)
        return await self.deliver(
            request.shop_id, key, admin_mail.KIND_LOCK_ALERT, lambda: self.render(request)
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
        locked_at = _utc(request.locked_at)
        if (
            record is None
            or (record.lineage or "") != request.lineage
            or record.updated_at <= locked_at
        ):
            return None
        if record.state != CartState.LOCKED:
            return f"the cart is {record.state} now"
        if record.locked_at == locked_at:
            return None
        return "the cart was unlocked and locked again since (a new lock, a new alert)"

    def render(self, request: LockAlertInput) -> admin_mail.RenderedAdminMail:
        """The alert's subject, text and HTML (no customer data: ids, amounts, times)."""
        locked_at = _utc(request.locked_at)
        shop, cart = request.shop_id, request.cart_id
        return self.templates.render(
            "lock_alert",
            {
                "shop_id": shop,
                "cart_id": cart,
                "total": admin_mail.amount(request.total, request.currency),
                "locked_at": locked_at.strftime("%Y-%m-%d %H:%M UTC"),
                "locked_for": admin_mail.duration((self.clock() - locked_at).total_seconds()),
                "reason": admin_mail.lock_reason(request.lock_reason, missing="not recorded"),
                "attempt_ids": list(request.attempt_ids),
                "show_command": f"cartkeeper carts show {cart} --shop {shop}",
                "confirm_command": f"cartkeeper carts confirm {cart} --shop {shop}",
                "unlock_command": f"cartkeeper carts unlock {cart} --shop {shop}",
                "delete_command": f"cartkeeper carts delete {cart} --shop {shop}",
            },
        )


def admin_alert_activities(session_factory: SessionFactory, settings: Settings) -> list[Any]:
    """Every admin alert activity (the lock alert and the daily digest), for a worker."""
    return [
        *LockAlertActivities(session_factory, settings).all(),
        *DigestActivities(session_factory, settings).all(),
    ]
