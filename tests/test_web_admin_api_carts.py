"""The admin JSON API on the real Temporal dev server and worker: a locked cart confirmed
through the API becomes a numbered order with the admin's name in its journal; an
order's delivery, lines, status, payments and notes, and the workflow's refusals
(``status_hidden`` 409 ...); unlock, delete, resolve and remind; ``Idempotency-Key``
replays per user; an API key created through the admin API drives the storefront API
and is shown once, never kept; a reminder sent by hand to many carts, after its dry run,
with the admin as who requested it."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.db import SessionFactory
from activities.read_model import get_cart_record
from activities.web_models import IdempotencyRecord
from starter.campaign_json import campaign_json
from starter.campaigns import CampaignClient, default_campaign
from starter.client import CartkeeperClient
from starter.web import admin_users, api_keys
from starter.web.app import create_app
from tests.admin_fixtures import PASSWORD
from tests.conftest import new_id
from tests.test_web_admin_carts import FAST_LOCK, QUICK_ABANDON, client_with, locked_cart
from tests.test_web_links import client_of
from tests.test_web_storefront import web_settings
from tests.test_workflow_dev import LINES, TOTAL, eventually
from workflows.contract import CartState, CustomerInfo, JournalKind

PREFIX = "/api/v1/admin"


@dataclass
class AdminApi:
    http: httpx.AsyncClient
    sessions: SessionFactory
    admin: str
    other_admin: str
    viewer: str
    shop: str
    carts: CartkeeperClient

    def auth(self, username: str | None = None, **headers: str) -> dict[str, str]:
        name = username or self.admin
        token = base64.b64encode(f"{name}:{PASSWORD}".encode()).decode()
        return {"Authorization": f"Basic {token}", **headers}

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.http.get(PREFIX + path, params=params, headers=self.auth())

    async def post(
        self, path: str, body: Any = None, *, user: str | None = None, **headers: str
    ) -> httpx.Response:
        return await self.http.post(PREFIX + path, json=body, headers=self.auth(user, **headers))


@pytest.fixture
async def api(
    dev_env: WorkflowEnvironment, dev_worker: Worker, session_factory: Any, tmp_path: Path
) -> AsyncIterator[AdminApi]:
    """The app on the dev server and the worker's read model; two admins and a viewer
    of the test's own, and a shop of its own."""

    async def temporal() -> Any:
        return dev_env.client

    app = create_app(
        web_settings(tmp_path), temporal_client_factory=temporal, session_factory=session_factory
    )
    names = new_id("ann"), new_id("bob"), new_id("vic")
    for name, role in zip(names, ("admin", "admin", "viewer"), strict=True):
        await admin_users.add_user(session_factory, name, PASSWORD, role=role)
    async with client_of(app) as http:
        yield AdminApi(
            http, session_factory, *names, new_id("shop"), client_with(dev_env, FAST_LOCK)
        )


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    return response.json()


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    return error


async def paid_order(api: AdminApi) -> tuple[str, int]:
    """A cart paid online: an order (P) with its number, in the read model."""
    carts, shop, cart_id = api.carts, api.shop, new_id()
    await carts.update_cart(shop, cart_id, LINES, "EUR")
    await carts.start_checkout(shop, cart_id)
    await carts.start_payment(
        shop, cart_id, attempt_id="att-1", method="online", gateway="stripe", amount=TOTAL
    )
    await carts.report_payment_result(
        shop, cart_id, attempt_id="att-1", status="succeeded", amount=TOTAL
    )
    view = await carts.await_order(shop, cart_id, timeout_seconds=10)
    assert view.order_number is not None
    number = view.order_number

    async def listed() -> bool:
        found = await api.get(f"/shops/{shop}/orders", number=number)
        return [row["cart_id"] for row in ok(found)["orders"]] == [cart_id]

    await eventually(listed)
    return cart_id, number


# --------------------------------------------------------------------------- carts


async def test_a_locked_cart_confirmed_through_the_api_gets_a_number(api: AdminApi) -> None:
    shop = api.shop
    cart_id = await locked_cart(api.carts, shop, last4="1881")

    async def listed() -> Any:
        page = ok(await api.get("/carts", shop=shop, state="locked", needs_admin="true"))
        return [row for row in page["carts"] if row["cart_id"] == cart_id]

    (row,) = await eventually(listed)
    assert (row["state"], row["lock_reason"], row["total"]) == ("locked", "payment_pending", TOTAL)

    shown = ok(await api.get(f"/carts/{shop}/{cart_id}"))
    assert (shown["source"], shown["stale"], shown["state"]) == ("workflow", None, "locked")
    (attempt,) = shown["payments"]
    assert (attempt["gateway"], attempt["card_last4"], attempt["amount"]) == (
        "paypal",
        "1881",
        TOTAL,
    )

    refused(await api.post(f"/carts/{shop}/{cart_id}/confirm", user=api.viewer), 403, "forbidden")
    refused(
        await api.post(f"/carts/{shop}/{cart_id}/confirm", {"status": "X"}), 422, "invalid_status"
    )
    assert (await api.carts.get_cart(shop, cart_id)).state is CartState.LOCKED

    view = ok(
        await api.post(f"/carts/{shop}/{cart_id}/confirm", {"status": "P", "note": "PayPal: paid"})
    )
    assert view["state"] == "ordered" and view["order_status"] == "P" and view["order_paid"]
    assert isinstance(view["order_number"], int)
    cart = await api.carts.get_cart(shop, cart_id)
    assert cart.order is not None and cart.order.number == view["order_number"]
    confirmed = [e for e in cart.journal if e.kind is JournalKind.CART_CONFIRMED]
    assert [e.actor for e in confirmed] == [f"admin:{api.admin}"]
    refused(await api.post(f"/carts/{shop}/{cart_id}/confirm"), 409, "already_ordered")

    async def journaled() -> Any:
        journal = ok(await api.get(f"/carts/{shop}/{cart_id}/journal"))
        return [i for i in journal["items"] if i["kind"] == "cart_confirmed"]

    (entry,) = await eventually(journaled)
    assert entry["actor"] == f"admin:{api.admin}" and "key" not in entry


async def test_unlock_delete_resolve_remind_and_their_refusals(api: AdminApi) -> None:
    shop, carts = api.shop, api.carts
    locked = await locked_cart(carts, shop)
    view = ok(await api.post(f"/carts/{shop}/{locked}/unlock", {"note": "called her"}))
    assert view["state"] == "active"
    cart = await carts.get_cart(shop, locked)
    assert [e.actor for e in cart.journal if e.kind is JournalKind.CART_UNLOCKED] == [
        f"admin:{api.admin}"
    ]
    refused(await api.post(f"/carts/{shop}/{locked}/unlock"), 409, "not_locked")
    refused(await api.post(f"/carts/{shop}/{locked}/resolve", {}), 409, "nothing_to_resolve")
    refused(
        await api.post(f"/carts/{shop}/{locked}/remind", {"reminder_id": "first"}),
        409,
        "not_abandoned",
    )
    refused(await api.post(f"/carts/{shop}/{locked}/remind"), 422, "invalid_input")
    refused(
        await api.post(f"/carts/{shop}/{locked}/resolve", {"items": ["2"]}), 422, "invalid_input"
    )
    deleted = ok(await api.post(f"/carts/{shop}/{locked}/delete"))
    assert deleted["state"] == "deleted"
    assert (await carts.get_cart(shop, locked)).state is CartState.DELETED

    refused(await api.get(f"/carts/{shop}/no-such-cart"), 404, "cart_not_found")
    refused(await api.get(f"/carts/{shop}/not%20an%20id"), 422, "invalid_id")
    refused(await api.post(f"/carts/{shop}/no-such-cart/unlock"), 404, "cart_not_found")


async def test_a_not_finished_order_gets_a_status_and_a_number_through_its_cart(
    api: AdminApi,
) -> None:
    cart_id = await locked_cart(api.carts, api.shop)
    view = ok(await api.post(f"/carts/{api.shop}/{cart_id}/status", {"status": "O"}))
    assert view["state"] == "ordered" and view["order_status"] == "O"
    assert isinstance(view["order_number"], int)


# --------------------------------------------------------------------------- orders


async def test_an_orders_delivery_lines_status_payments_and_notes(api: AdminApi) -> None:
    shop = api.shop
    cart_id, number = await paid_order(api)
    order = f"/shops/{shop}/orders/{number}"
    for method in (
        {"method_id": "courier", "name": "Courier", "cost": 490, "currency": "EUR"},
        {"method_id": "usd-post", "name": "US post", "cost": 900, "currency": "USD"},
    ):
        ok(await api.post(f"/shops/{shop}/shipping-methods", method), 201)

    refused(
        await api.post(f"{order}/delivery", {"method": "courier", "city": "Berlin"}),
        409,
        "contents_not_editable",  # P: only the tracking code and the comment change
    )
    ok(await api.post(f"{order}/status", {"status": "A", "note": "stock checked"}))
    view = ok(await api.post(f"{order}/delivery", {"method": "courier", "city": "Berlin"}))
    assert (view["order_total"], view["balance"]) == (TOTAL + 490, 490)
    refused(await api.post(f"{order}/delivery", {"method": "usd-post"}), 409, "currency_mismatch")
    refused(
        await api.post(f"{order}/delivery", {"method": "nope"}), 404, "shipping_method_not_found"
    )
    refused(await api.post(f"{order}/delivery", {"country": "germany"}), 422, "invalid_delivery")

    three = {"lines": [{"sku": "sku-1", "quantity": 3, "unit_price": 450}]}
    view = ok(await api.post(f"{order}/lines", three))
    assert view["order_total"] == 3 * 450 + 490
    lines = (await api.carts.get_cart(shop, cart_id)).lines
    assert [(line.sku, line.name, line.quantity) for line in lines] == [("sku-1", "Tea", 3)]
    zero = {"lines": [{"sku": "sku-1", "quantity": 0, "unit_price": 1}]}
    refused(await api.post(f"{order}/lines", zero), 422, "invalid_quantity")
    refused(await api.post(f"{order}/lines", {"lines": []}), 409, "cart_empty")

    refused(await api.post(f"{order}/status", {"status": "N"}), 409, "status_hidden")
    refused(await api.post(f"{order}/status", {"status": "Z"}), 422, "unknown_status")
    refused(await api.post(f"{order}/status", {"status": 5}), 422, "invalid_input")
    refused(await api.post(f"{order}/status", {"status": "S"}, user=api.viewer), 403, "forbidden")
    view = ok(await api.post(f"{order}/status", {"status": "S", "note": "sent with DHL"}))
    assert view["order_status"] == "S"
    cart = await api.carts.get_cart(shop, cart_id)
    assert cart.order is not None
    actor = f"admin:{api.admin}"
    # the admin's statuses, with the workflow's own between (A with payments is H)
    assert [e.letter for e in cart.order.statuses if e.by == actor] == ["A", "S"]
    assert cart.order.statuses[-1].note == "sent with DHL"

    refused(
        await api.post(
            f"{order}/payments", {"kind": "refund", "amount": 99_999, "currency": "EUR"}
        ),
        409,
        "refund_exceeds_paid",
    )
    refused(
        await api.post(f"{order}/payments", {"amount": 100, "currency": "USD"}),
        409,
        "currency_mismatch",
    )
    view = ok(
        await api.post(f"{order}/payments", {"amount": 490, "currency": "EUR", "reference": "bank"})
    )
    assert view["amount_paid"] == TOTAL + 490  # the 2100 paid online, and 490 by bank
    ok(await api.post(f"{order}/notes", {"note": "called the customer"}))
    refused(await api.post(f"{order}/notes", {}), 422, "invalid_input")
    cart = await api.carts.get_cart(shop, cart_id)
    noted = [e for e in cart.journal if e.kind is JournalKind.ORDER_NOTE_ADDED]
    assert [e.actor for e in noted] == [f"admin:{api.admin}"]

    async def shown() -> Any:
        found = ok(await api.get(order))
        return found if found["status"] == "S" else None

    found = await eventually(shown)
    assert found["cart_id"] == cart_id and found["number"] == number
    history = [(s["letter"], s["by"]) for s in found["details"]["statuses"]]
    assert ("A", actor) in history and history[-1] == ("S", actor)
    assert found["details"]["delivery"]["city"] == "Berlin"
    counts = ok(await api.get(f"/shops/{shop}/orders/counts"))
    assert counts["counts"]["S"] == 1 and "not_finished" in counts["counts"]

    refused(await api.get(f"/shops/{shop}/orders/999999"), 404, "order_not_found")
    refused(
        await api.post(f"/shops/{shop}/orders/999999/status", {"status": "S"}),
        404,
        "order_not_found",
    )


# --------------------------------------------------------------------------- idempotency


async def test_a_post_with_an_idempotency_key_is_answered_again_not_applied_again(
    api: AdminApi,
) -> None:
    shop = api.shop
    cart_id = await locked_cart(api.carts, shop)
    path = f"/carts/{shop}/{cart_id}/unlock"
    first = await api.post(path, {"note": "once"}, **{"Idempotency-Key": "unlock-1"})
    assert ok(first)["state"] == "active" and "Idempotent-Replayed" not in first.headers
    version = (await api.carts.get_cart(shop, cart_id)).version

    again = await api.post(path, {"note": "once"}, **{"Idempotency-Key": "unlock-1"})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert (await api.carts.get_cart(shop, cart_id)).version == version
    refused(
        await api.post(path, {"note": "other"}, **{"Idempotency-Key": "unlock-1"}),
        422,
        "idempotency_key_reused",
    )
    # each user's keys are their own: the other admin's request runs (and is refused)
    refused(
        await api.post(
            path, {"note": "once"}, user=api.other_admin, **{"Idempotency-Key": "unlock-1"}
        ),
        409,
        "not_locked",
    )
    refused(
        await api.post(path, {"note": "once"}, **{"Idempotency-Key": "k" * 256}),
        422,
        "invalid_input",
    )


# --------------------------------------------------------------------------- API keys


async def test_a_key_created_through_the_admin_api_drives_the_storefront(api: AdminApi) -> None:
    shop = api.shop
    made = await api.post(
        "/api-keys", {"shop_id": shop, "name": "php-shop"}, **{"Idempotency-Key": "key-1"}
    )
    key = ok(made, 201)
    plain = key["key"]
    assert plain.startswith(f"ck_{key['prefix']}_") and key["created_by"] == api.admin
    assert made.headers["Cache-Control"] == "no-store"

    cart = f"/api/v1/carts/{new_id()}"
    lines = {
        "lines": [{"sku": "tea", "name": "Tea", "quantity": 2, "unit_price": 450}],
        "currency": "EUR",
    }
    bearer = {"Authorization": f"Bearer {plain}"}
    stored = await api.http.put(f"{cart}/lines", json=lines, headers=bearer)
    assert stored.status_code == 200 and stored.json()["shop_id"] == shop

    replay = await api.post(
        "/api-keys", {"shop_id": shop, "name": "php-shop"}, **{"Idempotency-Key": "key-1"}
    )
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == {**key, "key": None}  # the same key's record, never the key
    async with api.sessions() as session:
        bodies = (
            await session.scalars(
                select(IdempotencyRecord.response_body).where(
                    IdempotencyRecord.scope == f"admin:{api.admin}"
                )
            )
        ).all()
    assert bodies and not any(plain in (body or "") for body in bodies)

    listed = ok(await api.get("/api-keys", shop=shop))["keys"]
    assert [k["prefix"] for k in listed] == [key["prefix"]] and "key" not in listed[0]
    refused(await api.post(f"/api-keys/{key['prefix']}/revoke", user=api.viewer), 403, "forbidden")
    revoked = ok(await api.post(f"/api-keys/{key['prefix']}/revoke"))
    assert revoked["revoked"] and revoked["revoked_at"]

    async def refused_now() -> bool:  # a web process trusts a verified key a few seconds
        after = await api.http.put(f"{cart}/lines", json=lines, headers=bearer)
        return after.status_code == 401

    await eventually(refused_now, within=api_keys.VERIFIED_FOR.total_seconds() + 5)
    refused(await api.post("/api-keys/0123456789ab/revoke"), 404, "api_key_not_found")
    refused(await api.post("/api-keys/nope/revoke"), 422, "invalid_input")
    refused(await api.post("/api-keys", {"shop_id": "no spaces", "name": "x"}), 422, "invalid_id")


# --------------------------------------------------------------------------- reminders


async def test_a_reminder_sent_by_hand_to_many_carts_after_its_dry_run(
    api: AdminApi, dev_env: WorkflowEnvironment
) -> None:
    shop = api.shop
    # the default campaign, without quiet hours (the test runs at any hour)
    document = campaign_json(default_campaign(shop))
    document.update(sender="shop@example.com", quiet_start_minute=0, quiet_end_minute=0)
    await CampaignClient(api.sessions).load(shop, document, by="setup")
    quiet = client_with(dev_env, QUICK_ABANDON)
    gone, active = new_id(), new_id()
    for cart_id in (gone, active):
        carts = quiet if cart_id == gone else api.carts
        await carts.update_cart(shop, cart_id, LINES, "EUR")
        await carts.identify_customer(shop, cart_id, CustomerInfo(email=f"{cart_id}@example.com"))

    async def abandoned() -> bool:
        record = await get_cart_record(api.sessions, shop, gone)
        return record is not None and record.state is CartState.ABANDONED

    await eventually(abandoned)
    url = f"/shops/{shop}/campaign/reminders/saved-cart/send"
    body = {"cart_ids": [gone, active], "note": "by hand"}
    refused(await api.post(url, {**body, "dry_run": True}, user=api.viewer), 403, "forbidden")
    dry = ok(await api.post(url, {**body, "dry_run": True}))
    assert [(r["cart_id"], r["status"], r["reason"]) for r in dry["results"]] == [
        (gone, "would_send", None),
        (active, "not_sent", "not_abandoned"),
    ]
    before = await quiet.get_cart(shop, gone)
    assert not any(step.manual for step in before.reminders), "a dry run sends nothing"

    sent = ok(await api.post(url, body))
    assert sent["dry_run"] is False
    outcome = {r["cart_id"]: r["status"] for r in sent["results"]}
    assert outcome[active] == "not_sent" and outcome[gone] in ("sent", "skipped", "sending")
    cart = await quiet.get_cart(shop, gone)
    step = next(s for s in cart.reminders if s.reminder_id == "saved-cart")
    assert step.manual and step.requested_by == api.admin
    again = ok(await api.post(url, {**body, "dry_run": True}))
    assert again["results"][0]["reason"] == "reminder_already_sent"


# --------------------------------------------------------------------------- text


async def test_a_nul_or_a_lone_surrogate_in_an_actions_text_is_refused_and_changes_nothing(
    api: AdminApi,
) -> None:
    """Every text field of the actions on a cart and on an order (notes, the reminder,
    the status letter, delivery fields, lines, payments) sent a NUL and a lone surrogate
    (JSON ``"\\u0000"``, ``"\\ud800"``): 422 with its code, nothing applied."""
    shop = api.shop
    locked = await locked_cart(api.carts, shop)
    cart_id, number = await paid_order(api)
    ok(await api.post(f"{order_path(shop, number)}/status", {"status": "A"}))
    order = order_path(shop, number)
    cart = f"/carts/{shop}/{locked}"
    bodies: list[tuple[str, dict[str, Any], dict[str, str]]] = [
        (f"{cart}/confirm", {"status": "P", "note": "n"}, {"status": "invalid_status"}),
        (f"{cart}/unlock", {"note": "n"}, {}),
        (f"{cart}/delete", {"note": "n"}, {}),
        (f"{cart}/resolve", {"note": "n"}, {}),
        (
            f"{cart}/remind",
            {"reminder_id": "first", "note": "n"},
            {"reminder_id": "invalid_reminder"},
        ),
        (f"{cart}/status", {"status": "A", "note": "n"}, {"status": "invalid_status"}),
        (f"{order}/status", {"status": "A", "note": "n"}, {"status": "invalid_status"}),
        (
            f"{order}/delivery",
            {
                "tracking_code": "t",
                "recipient_name": "r",
                "email": "ann@example.com",
                "phone": "+49 30 1234567",
                "country": "DE",
                "city": "c",
                "postal_code": "1",
                "address": "a",
                "comment": "c",
                "note": "n",
            },
            {},
        ),
        (f"{order}/delivery", {"method": "courier"}, {"method": "invalid_shipping_method"}),
        (
            f"{order}/lines",
            {"lines": [{"sku": "sku-1", "name": "Tea", "quantity": 1, "unit_price": 450}]},
            {},
        ),
        (
            f"{order}/payments",
            {"kind": "payment", "amount": 1, "currency": "EUR", "reference": "r", "note": "n"},
            {"kind": "invalid_input", "currency": "invalid_currency"},
        ),
        (f"{order}/notes", {"note": "n"}, {}),
    ]
    before = (
        (await api.carts.get_cart(shop, locked)).version,
        (await api.carts.get_cart(shop, cart_id)).version,
    )
    for path, body, special in bodies:
        for field in _texts(body):
            for bad in ("a\x00b", "a\ud800b"):
                answer = await api.http.post(
                    PREFIX + path,
                    content=json.dumps(_with(body, field, bad)),
                    headers=api.auth(**{"content-type": "application/json"}),
                )
                assert answer.status_code == 422, (path, field, bad, answer.text)
                code = special.get(str(field[-1]), "invalid_text")
                assert answer.json()["error"]["code"] == code, (path, field, bad, answer.text)
    after = (
        (await api.carts.get_cart(shop, locked)).version,
        (await api.carts.get_cart(shop, cart_id)).version,
    )
    assert after == before, "nothing was applied"


def order_path(shop: str, number: int) -> str:
    return f"/shops/{shop}/orders/{number}"


def _texts(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every text in a JSON value."""
    if isinstance(value, str):
        return [path]
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in _texts(item, (*path, key))]
    if isinstance(value, list):
        return [found for index, item in enumerate(value) for found in _texts(item, (*path, index))]
    return []


def _with(body: Any, path: tuple[Any, ...], value: str) -> Any:
    changed = json.loads(json.dumps(body))
    holder = changed
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    return changed
