"""What ``cartkeeper dev`` gives a new user for the web: a development admin for the
console (a new password each run, printed), a storefront API key for the demo shop (new
each run, printed; the previous run's are revoked) and a payment-webhook secret for the
``demo`` gateway when none is configured. Local development only: ``cartkeeper dev`` binds
127.0.0.1 and its data directory holds nothing of a real shop."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import SecretStr

from activities.db import SessionFactory
from activities.settings import Settings
from starter.web.admin_users import UserRefused, add_user, change_password
from starter.web.api_keys import create_key, list_keys, revoke_key

#: the development admin's user name
DEV_ADMIN = "admin"
#: the development viewer's (reads only)
DEV_VIEWER = "viewer"
#: the demo gateway of the development webhook secret
DEV_GATEWAY = "demo"
#: the name of the storefront key ``cartkeeper dev`` makes
DEV_KEY_NAME = "dev-storefront"


@dataclass(frozen=True)
class DevWeb:
    admin_password: str
    viewer_password: str
    api_key: str
    webhook_source: str | None
    webhook_secret: str | None


async def _user(sessions: SessionFactory, name: str, role: str) -> str:
    password = secrets.token_urlsafe(12)
    try:
        await add_user(sessions, name, password, role=role)
    except UserRefused as refused:
        if refused.code != "user_exists":
            raise
        await change_password(sessions, name, password)
    return password


def with_dev_webhook(settings: Settings) -> tuple[Settings, str | None]:
    """The settings with a ``demo`` webhook secret when none is configured (and it)."""
    if settings.webhook_secrets:
        return settings, None
    from starter.cli.webhooks import new_secret

    secret = new_secret()
    updated = settings.model_copy(update={"webhook_secrets": {DEV_GATEWAY: SecretStr(secret)}})
    return updated, secret


async def prepare_dev_web(
    settings: Settings, sessions: SessionFactory, webhook_secret: str | None
) -> DevWeb:
    """The development admin and viewer (new passwords) and a new storefront key for the
    default shop (the previous ``dev-storefront`` keys are revoked)."""
    now = datetime.now(UTC)
    admin = await _user(sessions, DEV_ADMIN, "admin")
    viewer = await _user(sessions, DEV_VIEWER, "viewer")
    shop = settings.default_shop
    for key in await list_keys(sessions, shop_id=shop):
        if key.name == DEV_KEY_NAME and key.revoked_at is None:
            await revoke_key(sessions, key.prefix, now=now)
    _, plain = await create_key(sessions, shop, DEV_KEY_NAME, now=now, created_by="cartkeeper dev")
    return DevWeb(
        admin_password=admin,
        viewer_password=viewer,
        api_key=plain,
        webhook_source=DEV_GATEWAY if webhook_secret else None,
        webhook_secret=webhook_secret,
    )
