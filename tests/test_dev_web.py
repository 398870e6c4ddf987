"""What ``cartkeeper dev`` prints for the web: a development admin and viewer whose
passwords are new each run, a storefront key (the previous run's revoked), a webhook
secret only when none is configured, and the lines of the banner."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from activities.settings import Settings, webhook_secret_problem
from starter.dev import _web_lines
from starter.dev_web import DEV_ADMIN, DEV_VIEWER, prepare_dev_web, with_dev_webhook
from starter.web.admin_users import get_user, verify_password
from starter.web.api_keys import list_keys, verify_key


async def test_each_run_gets_new_credentials_and_the_old_ones_stop_working(
    session_factory: Any, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, default_shop="devshop")
    first = await prepare_dev_web(settings, session_factory, None)
    admin = await get_user(session_factory, DEV_ADMIN)
    viewer = await get_user(session_factory, DEV_VIEWER)
    assert admin is not None and admin.role == "admin"
    assert viewer is not None and viewer.role == "viewer"
    assert await verify_password(session_factory, DEV_ADMIN, first.admin_password)
    now = datetime.now(UTC)
    key = await verify_key(session_factory, first.api_key, now=now)
    assert key is not None and key.shop_id == "devshop"

    second = await prepare_dev_web(settings, session_factory, None)
    assert second.admin_password != first.admin_password
    assert not await verify_password(session_factory, DEV_ADMIN, first.admin_password)
    assert await verify_password(session_factory, DEV_VIEWER, second.viewer_password)
    assert await verify_key(session_factory, first.api_key, now=now) is None, "revoked"
    assert await verify_key(session_factory, second.api_key, now=now) is not None
    live = [k for k in await list_keys(session_factory, "devshop") if k.revoked_at is None]
    assert len(live) == 1


def test_a_webhook_secret_only_when_none_is_configured(tmp_path: Path) -> None:
    settings, secret = with_dev_webhook(Settings(data_dir=tmp_path))
    assert secret is not None and webhook_secret_problem(secret) is None
    assert settings.webhook_secrets["demo"].get_secret_value() == secret
    mine = Settings(data_dir=tmp_path, webhook_secrets={"stripe": SecretStr(secret)})
    kept, none = with_dev_webhook(mine)
    assert none is None and list(kept.webhook_secrets) == ["stripe"]


async def test_the_banner_names_the_console_the_api_and_the_webhook(
    session_factory: Any, tmp_path: Path
) -> None:
    class Web:
        url = "http://127.0.0.1:8080"

    settings, secret = with_dev_webhook(Settings(data_dir=tmp_path))
    dev_web = await prepare_dev_web(settings, session_factory, secret)
    text = "\n".join(_web_lines(settings, Web(), dev_web))  # type: ignore[arg-type]
    assert f"http://127.0.0.1:8080/admin  (user admin, password {dev_web.admin_password}" in text
    assert f"Bearer {dev_web.api_key}" in text and "http://127.0.0.1:8080/docs" in text
    assert f"/api/v1/webhooks/payments/demo  (Standard Webhooks secret {secret})" in text
    assert _web_lines(settings, None, dev_web) == []
