"""The admin API's digest schedule (``starter.web.admin_api_schedules``) against the
real Temporal dev server: made once, read back with its next runs, brought in step when
the settings change while a pause made in the Temporal UI stays; refused for a shop
without admins, for a viewer, and 503 while Temporal cannot be reached."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.settings import Settings
from starter.schedules import digest_schedule_id
from starter.web import admin_users
from starter.web.app import create_app
from tests.admin_fixtures import PASSWORD, Clock
from tests.conftest_db import ScratchDatabase, scratch_database
from tests.test_web_admin_api import BACKENDS, app_on, basic, client_of, refused

BERLIN = "Europe/Berlin"


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        await admin_users.add_user(database.session_factory, "ann", PASSWORD, role="admin")
        await admin_users.add_user(database.session_factory, "vic", PASSWORD, role="viewer")
        yield database


@asynccontextmanager
async def api(
    database: ScratchDatabase,
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
    *,
    client: Client | None = None,
    **changes: Any,
) -> AsyncIterator[httpx.AsyncClient]:
    async def temporal() -> Any:
        return client or dev_env.client

    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        secret_key=SecretStr("e" * 40),
        **changes,
    )
    app = create_app(
        settings,
        temporal_client_factory=temporal,
        session_factory=database.session_factory,
        now=Clock(),
    )
    async with client_of(app) as http:
        yield http


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, (response.status_code, response.text)
    return response.json()


async def test_the_schedule_is_made_read_and_kept_in_step(
    db: ScratchDatabase, dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    shop = f"shop-{uuid.uuid4().hex[:8]}"
    path = f"/api/v1/admin/shops/{shop}/digest/schedule"
    settings: dict[str, Any] = {
        "task_queue": f"digest-{shop}",
        "shop_admins": {shop: ["admin@example.com"]},
        "shop_time_zones": {shop: BERLIN},
        "digest_local_time": "07:30",
    }
    handle = dev_env.client.get_schedule_handle(digest_schedule_id(shop))
    try:
        async with api(db, dev_env, tmp_path, **settings) as http:
            refused(await http.get(path, headers=basic("vic")), 404, "schedule_not_found")
            assert (await http.put(path, headers=basic("vic"))).status_code == 403
            assert (await http.put(path)).status_code == 401
            refused(
                await http.put(path.replace(shop, "nobody"), headers=basic("ann")),
                422,
                "no_admins",
            )
            refused(
                await http.put(path.replace(shop, ".bad"), headers=basic("ann")),
                422,
                "invalid_id",
            )

            made = ok(await http.put(path, headers=basic("ann")))
            assert made["action"] == "created" and made["schedule_id"] == f"digest:{shop}"
            assert made["schedule"]["description"] == f"every day at 07:30 {BERLIN}"
            again = ok(await http.put(path, headers=basic("ann")))
            assert again["action"] == "unchanged"

            seen = ok(await http.get(path, headers=basic("vic")))
            assert seen["in_step"] is True and seen["paused"] is False
            assert seen["schedule"] == seen["wanted"] == made["schedule"]
            assert seen["has_admins"] is True and seen["recent_runs"] == []
            runs = [datetime.fromisoformat(at) for at in seen["next_runs"]]
            assert runs and runs == sorted(runs)
            local = runs[0].astimezone(ZoneInfo(BERLIN))
            assert (local.hour, local.minute) == (7, 30)

        # an operator pauses it in the Temporal UI; the digest's time changes
        await handle.pause(note="paused by ops")
        async with api(db, dev_env, tmp_path, **{**settings, "digest_local_time": "09:15"}) as http:
            behind = ok(await http.get(path, headers=basic("ann")))
            assert behind["in_step"] is False and behind["paused"] is True
            assert behind["schedule"]["hour"] == 7 and behind["wanted"]["hour"] == 9
            assert ok(await http.put(path, headers=basic("ann")))["action"] == "updated"
            now = ok(await http.get(path, headers=basic("ann")))
            assert now["in_step"] is True and now["schedule"]["minute"] == 15
            assert now["paused"] is True and now["note"] == "paused by ops"
    finally:
        with contextlib.suppress(RPCError):  # not made: the failure above is the news
            await handle.delete()


async def test_temporal_unreachable_is_503(db: ScratchDatabase, tmp_path: Path) -> None:
    path = "/api/v1/admin/shops/demo/digest/schedule"
    app = app_on(db, tmp_path, Clock(), shop_admins={"demo": ["admin@example.com"]})
    async with client_of(app) as http:
        refused(await http.get(path, headers=basic("vic")), 503, "temporal_unavailable")
        refused(await http.put(path, headers=basic("ann")), 503, "temporal_unavailable")


async def test_a_refusal_of_temporal_is_coded(
    db: ScratchDatabase, dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Temporal answers, but refuses (here: a namespace it does not have): 422
    ``schedule_refused`` with its message, not a 503 that asks to try again."""
    elsewhere = await Client.connect(
        dev_env.client.service_client.config.target_host, namespace="no-such-namespace"
    )
    admins = {"shop_admins": {"demo": ["admin@example.com"]}}
    async with api(db, dev_env, tmp_path, client=elsewhere, **admins) as http:
        path = "/api/v1/admin/shops/demo/digest/schedule"
        error = refused(await http.put(path, headers=basic("ann")), 422, "schedule_refused")
    assert "no-such-namespace" in error["message"] or "namespace" in error["message"]
