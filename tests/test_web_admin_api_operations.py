"""The admin API's shop operations (``starter.web.admin_api_operations``): the shop's
cart policy, its daily digest sent by hand (a real SMTP server, aiosmtpd) and the mail
catcher's outbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from activities.db import write_session
from activities.models import CartRecord
from activities.read_model import cart_values
from starter.mailbox import Mailbox
from tests.admin_mail_fixtures import ADMINS, HeldHandler
from tests.conftest_db import ScratchDatabase, scratch_database
from tests.test_smtp import Handler, smtp_server
from tests.test_web_admin_api import BACKENDS, AdminApi, admin_api_on, basic, refused
from tests.test_web_admin_carts import T0, row_of
from workflows.contract import CartState

SHOP = "/api/v1/admin/shops/demo"
OUTBOX = "/api/v1/admin/outbox"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def api_with(backend: str, tmp_path: Path, **changes: Any) -> AsyncIterator[AdminApi]:
    database: ScratchDatabase
    async with (
        scratch_database(backend, tmp_path) as database,
        admin_api_on(database, tmp_path, **changes) as made,
    ):
        yield made


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    return response.json()


async def test_the_policy_with_where_each_value_comes_from(backend: str, tmp_path: Path) -> None:
    async with api_with(
        backend, tmp_path, shop_policies={"demo": {"lock_after_seconds": 600}}
    ) as api:
        policy = ok(await api.http.get(f"{SHOP}/policy", headers=basic("vic")))
        other = ok(await api.http.get("/api/v1/admin/shops/other/policy", headers=basic("vic")))
        anonymous = await api.http.get(f"{SHOP}/policy")
    assert policy["shop_id"] == "demo"
    assert policy["policy"]["lock_after_seconds"] == 600
    assert policy["sources"]["lock_after_seconds"] == "CARTKEEPER_SHOP_POLICIES (demo)"
    assert other["policy"]["lock_after_seconds"] != 600
    assert other["sources"]["lock_after_seconds"] == "default"
    assert (
        set(policy["policy"]) == set(policy["sources"])
        and "abandon_after_seconds" in policy["policy"]
    )
    assert anonymous.status_code == 401


async def test_the_digest_is_sent_by_hand_once_a_day(backend: str, tmp_path: Path) -> None:
    handler = Handler()
    async with (
        smtp_server(handler) as port,
        api_with(
            backend,
            tmp_path,
            smtp_port=port,
            shop_admins={"demo": ADMINS},
            alert_sender="alerts@shop.example.com",
        ) as api,
    ):
        url = f"{SHOP}/digest"
        empty = ok(await api.http.post(url, json={"day": "2026-11-30"}, headers=basic("ann")))
        async with write_session(api.sessions) as session:  # a locked cart to report
            locked = row_of("lock-1", CartState.LOCKED, T0, shop="demo")
            session.add(CartRecord(**cart_values(locked, T0)))
        preview = ok(await api.http.post(url, json={"dry_run": True}, headers=basic("ann")))
        viewer = await api.http.post(url, json={}, headers=basic("vic"))
        wrong = await api.http.post(url, json={"day": 20261201}, headers=basic("ann"))
        no_day = await api.http.post(url, json={"day": "2026-02-30"}, headers=basic("ann"))
        first = ok(await api.http.post(url, json={"day": "2026-12-01"}, headers=basic("ann")))
        again = ok(await api.http.post(url, json={"day": "2026-12-01"}, headers=basic("ann")))
        nobody = await api.http.post(
            "/api/v1/admin/shops/other/digest", json={}, headers=basic("ann")
        )
        other_preview = ok(
            await api.http.post(
                "/api/v1/admin/shops/other/digest", json={"dry_run": True}, headers=basic("ann")
            )
        )
    assert empty["status"] == "nothing_to_report"
    assert preview["status"] == "dry_run" and not preview["empty"]
    assert "lock-1" in preview["text"] and preview["recipients"] == len(ADMINS)
    assert viewer.status_code == 403
    refused(wrong, 422, "invalid_input")
    refused(no_day, 422, "invalid_input")
    assert first["status"] == "sent" and first["recipients"] == len(ADMINS)
    assert again["status"] == "already_sent" and again["message_id"] == first["message_id"]
    assert len(handler.received) == 1  # the preview and the repeat sent nothing
    refused(nobody, 422, "no_admins")
    assert other_preview["status"] == "dry_run" and other_preview["recipients"] == 0


async def test_the_digest_being_sent_by_another_call_is_409(backend: str, tmp_path: Path) -> None:
    """The day's digest is with the relay (held there) when a second call comes: 409
    ``digest_sending`` with ``Retry-After``, nothing sent twice; once it is out, the same
    request (its ``Idempotency-Key`` too) answers ``already_sent``."""
    handler = HeldHandler()
    async with (
        smtp_server(handler) as port,
        api_with(
            backend,
            tmp_path,
            smtp_port=port,
            shop_admins={"demo": ADMINS},
            alert_sender="alerts@shop.example.com",
        ) as api,
    ):
        async with write_session(api.sessions) as session:  # a locked cart to report
            locked = row_of("lock-1", CartState.LOCKED, T0, shop="demo")
            session.add(CartRecord(**cart_values(locked, T0)))
        url, body = f"{SHOP}/digest", {"day": "2026-12-01"}
        first = asyncio.create_task(api.http.post(url, json=body, headers=basic("ann")))
        await asyncio.wait_for(handler.arrived.wait(), 10)
        keyed = {**basic("ann"), "Idempotency-Key": "digest-1"}
        second = await api.http.post(url, json=body, headers=keyed)
        handler.go.set()
        sent = ok(await asyncio.wait_for(first, 10))
        # a refusal of a moment is not kept under the key: the same request runs again
        again = await api.http.post(url, json=body, headers=keyed)
    refused(second, 409, "digest_sending")
    assert second.headers["Retry-After"] == "5"
    assert sent["status"] == "sent" and ok(again)["status"] == "already_sent"
    assert "Idempotent-Replayed" not in again.headers
    assert len(handler.received) == 1


async def test_the_outbox_lists_what_the_mail_catcher_kept(backend: str, tmp_path: Path) -> None:
    async with api_with(backend, tmp_path) as api:
        missing = await api.http.get(OUTBOX, headers=basic("vic"))
        mailbox = Mailbox(tmp_path / "data" / "mail")
        for n in (1, 2, 3):
            mailbox.store(
                f"From: shop@example.com\r\nTo: ada@example.com\r\nSubject: Message {n}\r\n"
                f"\r\nHello {n}\r\n".encode(),
                "shop@example.com",
                ["ada@example.com"],
            )
        first = ok(await api.http.get(OUTBOX, params={"limit": 2}, headers=basic("vic")))
        rest = ok(
            await api.http.get(
                OUTBOX, params={"limit": 2, "before": first["next_before"]}, headers=basic("vic")
            )
        )
    refused(missing, 404, "mailbox_not_found")
    assert [m["subject"] for m in first["messages"]] == ["Message 3", "Message 2"]
    assert first["total"] == 3 and first["messages"][0]["to"] == "ada@example.com"
    assert [m["subject"] for m in rest["messages"]] == ["Message 1"] and rest["next_before"] is None
