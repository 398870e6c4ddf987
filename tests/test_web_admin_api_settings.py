"""The admin JSON API's reads and settings on SQLite and PostgreSQL: carts and orders
lists with their filters and keyset pages, journals, statistics; order statuses (add,
edit, delete and every refusal with its status), shipping methods, stock levels, order
numbering and the reminder campaign."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from activities.db import write_session
from activities.models import CartRecord
from activities.read_model import cart_values
from starter.campaign_json import campaign_json
from starter.campaigns import default_campaign
from tests.conftest_db import ScratchDatabase, scratch_database
from tests.test_web_admin_api import BACKENDS, AdminApi, admin_api_on, basic, refused
from tests.test_web_admin_carts import T0, row_of
from workflows.contract import CartState

PREFIX = "/api/v1/admin"
SHOP = "/api/v1/admin/shops/shop-1"


@pytest.fixture(params=BACKENDS)
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AdminApi]:
    database: ScratchDatabase
    async with (
        scratch_database(request.param, tmp_path) as database,
        admin_api_on(database, tmp_path) as made,
    ):
        yield made


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    return response.json()


async def as_admin(api: AdminApi, method: str, url: str, body: Any = None) -> httpx.Response:
    return await api.http.request(method, url, json=body, headers=basic("ann"))


async def get(api: AdminApi, url: str, **params: Any) -> httpx.Response:
    return await api.http.get(url, params=params, headers=basic("vic"))


# --------------------------------------------------------------------------- statuses


async def test_order_statuses_and_their_refusals(api: AdminApi) -> None:
    url = f"{SHOP}/statuses"
    registry = ok(await get(api, url))
    assert (registry["version"], registry["customised"], len(registry["statuses"])) == (
        0,
        False,
        14,
    )

    added = ok(
        await as_admin(
            api, "POST", url, {"letter": "g", "name": "Gift wrapping", "colour": "#FF4081"}
        ),
        201,
    )
    assert (added["letter"], added["colour"], added["builtin"]) == ("G", "#ff4081", False)
    refused(
        await as_admin(api, "POST", url, {"letter": "G", "name": "Again"}),
        409,
        "status_letter_taken",
    )
    refused(
        await as_admin(api, "POST", url, {"letter": "J", "name": "J", "colour": "red"}),
        422,
        "invalid_status",
    )
    refused(
        await as_admin(api, "POST", url, {"letter": "J", "name": "J", "position": "5"}),
        422,
        "invalid_input",
    )
    refused(
        await as_admin(api, "POST", url, {"letter": "J", "name": "J", "hidden": True}),
        422,
        "invalid_input",
    )
    refused(await as_admin(api, "POST", url, {"letter": "J"}), 422, "invalid_input")
    refused(
        await api.http.post(url, json={"letter": "J", "name": "J"}, headers=basic("vic")),
        403,
        "forbidden",
    )

    edited = ok(await as_admin(api, "PATCH", f"{url}/g", {"name": "Gift wrap", "position": 65}))
    assert (edited["name"], edited["position"], edited["colour"]) == ("Gift wrap", 65, "#ff4081")
    refused(await as_admin(api, "PATCH", f"{url}/P", {"paid": False}), 409, "status_builtin")
    refused(await as_admin(api, "PATCH", f"{url}/N", {"paid": True}), 409, "status_hidden")
    refused(await as_admin(api, "PATCH", f"{url}/G", {}), 422, "invalid_status")
    refused(await as_admin(api, "PATCH", f"{url}/Q", {"name": "Q"}), 422, "unknown_status")
    refused(await as_admin(api, "DELETE", f"{url}/P"), 409, "status_builtin")

    for letter in "JKLMQTUWXZE":  # up to 26
        ok(await as_admin(api, "POST", url, {"letter": letter, "name": f"Status {letter}"}), 201)
    refused(
        await as_admin(api, "POST", url, {"letter": "G", "name": "27th"}),
        409,
        "status_limit_reached",
    )

    deleted = ok(await as_admin(api, "DELETE", f"{url}/G"))
    assert deleted["name"] == "Gift wrap"
    refused(await as_admin(api, "DELETE", f"{url}/G"), 422, "unknown_status")
    registry = ok(await get(api, url))
    assert registry["customised"] and registry["updated_by"] == "ann"
    assert len(registry["statuses"]) == 25 and "G" not in {
        s["letter"] for s in registry["statuses"]
    }
    refused(await get(api, f"{PREFIX}/shops/not%20a%20shop/statuses"), 422, "invalid_shop_id")


# --------------------------------------------------------------------------- catalog


async def test_shipping_methods_stock_and_order_numbering(api: AdminApi) -> None:
    url = f"{SHOP}/shipping-methods"
    courier = {"method_id": "courier", "name": "Courier", "cost": 490, "currency": "EUR"}
    made = ok(await as_admin(api, "POST", url, courier), 201)
    assert (made["position"], made["enabled"]) == (10, True)
    refused(await as_admin(api, "POST", url, courier), 409, "shipping_method_exists")
    bad = {**courier, "method_id": "post", "cost": -1}
    refused(await as_admin(api, "POST", url, bad), 422, "invalid_shipping_method")
    ok(await as_admin(api, "POST", url, {**courier, "method_id": "pick-up", "cost": 0}), 201)
    edited = ok(await as_admin(api, "PATCH", f"{url}/courier", {"cost": 590, "enabled": False}))
    assert (edited["cost"], edited["enabled"]) == (590, False)
    refused(await as_admin(api, "PATCH", f"{url}/courier", {}), 422, "invalid_shipping_method")
    refused(
        await as_admin(api, "PATCH", f"{url}/nope", {"cost": 1}), 404, "shipping_method_not_found"
    )
    offered = ok(await get(api, url, enabled_only="true"))["methods"]
    assert [m["method_id"] for m in offered] == ["pick-up"]
    assert len(ok(await get(api, url))["methods"]) == 2
    ok(await as_admin(api, "DELETE", f"{url}/courier"))
    refused(await as_admin(api, "DELETE", f"{url}/courier"), 404, "shipping_method_not_found")

    stock = f"{SHOP}/stock"
    assert ok(await as_admin(api, "PUT", f"{stock}/mug", {"level": 12}))["level"] == 12
    shirt = ok(await as_admin(api, "PUT", f"{stock}/tee-shirt/XL", {"level": 0}))
    assert (shirt["sku"], shirt["tracked"], shirt["level"]) == ("tee-shirt/XL", True, 0)
    assert ok(await get(api, f"{stock}/tee-shirt/XL"))["level"] == 0
    untracked = ok(await get(api, f"{stock}/teapot"))
    assert (untracked["tracked"], untracked["level"]) == (False, None)
    refused(await as_admin(api, "PUT", f"{stock}/mug", {"level": -1}), 422, "invalid_stock_level")
    refused(await as_admin(api, "PUT", f"{stock}/mug", {"level": 1.5}), 422, "invalid_input")
    first = ok(await get(api, stock, limit=1))
    assert [s["sku"] for s in first["levels"]] == ["mug"] and first["next_after"] == "mug"
    rest = ok(await get(api, stock, limit=1, after=first["next_after"]))
    assert [s["sku"] for s in rest["levels"]] == ["tee-shirt/XL"] and rest["next_after"] is None
    refused(await get(api, stock, after="mug\x00"), 422, "invalid_filter")

    numbering = f"{SHOP}/order-numbering"
    assert ok(await get(api, numbering)) == {
        "shop_id": "shop-1",
        "prefix": "",
        "next_number": 1,
        "next_reference": "1",
    }
    moved = ok(await as_admin(api, "PATCH", numbering, {"prefix": "W-", "start": 100}))
    assert moved["next_reference"] == "W-100"
    refused(
        await as_admin(api, "PATCH", numbering, {"start": 50}), 409, "order_number_start_too_low"
    )
    refused(await as_admin(api, "PATCH", numbering, {}), 422, "invalid_input")
    refused(
        await as_admin(api, "PATCH", numbering, {"prefix": "no spaces"}),
        422,
        "invalid_order_number_prefix",
    )


async def test_the_reminder_campaign(api: AdminApi) -> None:
    url = f"{SHOP}/campaign"
    refused(await get(api, url), 404, "campaign_not_found")
    document = campaign_json(default_campaign("shop-1"))
    refused(await api.http.put(url, json=document, headers=basic("vic")), 403, "forbidden")
    saved = ok(await as_admin(api, "PUT", url, document))
    assert saved["version"] == 1 and [r["id"] for r in saved["reminders"]] == [
        r["id"] for r in document["reminders"]
    ]
    fewer = {**document, "reminders": document["reminders"][:1], "sender": "hi@shop.example"}
    saved = ok(await as_admin(api, "PUT", url, fewer))
    assert saved["sender"] == "hi@shop.example" and saved["version"] == 2
    assert [r["removed"] for r in saved["reminders"]] == [False] + [True] * (
        len(document["reminders"]) - 1
    )
    assert ok(await get(api, url)) == saved
    refused(
        await as_admin(api, "PUT", url, {**document, "enabled": "yes"}), 422, "invalid_document"
    )
    refused(await as_admin(api, "PUT", url, [1, 2]), 422, "invalid_input")


# --------------------------------------------------------------------------- lists


async def test_the_carts_and_orders_lists_page_by_keyset(api: AdminApi) -> None:
    hour = timedelta(hours=1)
    carts = [
        row_of("a-2", CartState.LOCKED, T0 + hour),
        row_of("A-1", CartState.ACTIVE, T0 + hour),  # the same time: ids by code point
        row_of("b", CartState.ABANDONED, T0 + 2 * hour, email="Bea@Example.com"),
        row_of("c", CartState.ACTIVE, T0 - 72 * hour, created=T0 - 120 * hour),
        row_of("e", CartState.LOCKED, T0 - hour),
        row_of("a-2", CartState.LOCKED, T0 + hour, shop="shop-2"),
    ]
    for number, at in ((7, T0 + 3 * hour), (8, T0 + 4 * hour), (9, T0 + 5 * hour)):
        order = row_of(f"o-{number}", CartState.ORDERED, at)
        assert order.order is not None
        order.order = dataclasses.replace(order.order, number=number)
        carts.append(order)
    async with write_session(api.sessions) as session:
        for cart in carts:
            session.add(CartRecord(**cart_values(cart, T0)))

    async def pages(url: str, key: str, cursor: str, **params: Any) -> list[Any]:
        seen: list[Any] = []
        after = None
        while True:
            page = ok(await get(api, url, **params, **({cursor: after} if after else {})))
            seen += page[key]
            after = page[f"next_{cursor}" if cursor != "after" else "next_cursor"]
            if after is None:
                return seen

    everything = await pages(f"{PREFIX}/carts", "carts", "after", limit=2)
    expected = sorted(
        carts,
        key=lambda c: (-c.updated_at.timestamp(), c.shop_id, c.cart_id),  # type: ignore[union-attr]
    )
    assert [(r["shop_id"], r["cart_id"]) for r in everything] == [
        (c.shop_id, c.cart_id) for c in expected
    ]

    async def ids(**params: Any) -> list[str]:
        return [
            r["cart_id"]
            for r in ok(await get(api, f"{PREFIX}/carts", shop="shop-1", **params))["carts"]
        ]

    assert await ids(state="locked") == ["a-2", "e"]
    assert await ids(email="bea@EXAMPLE.com") == ["b"]
    assert await ids(needs_admin="true") == ["a-2", "e"]
    assert await ids(created_to=(T0 - 100 * hour).date().isoformat()) == ["c"]
    assert await ids(updated_from=T0.isoformat(), updated_to=(T0 + hour).isoformat()) == []
    refused(await get(api, f"{PREFIX}/carts", after="garbage"), 422, "invalid_cursor")
    refused(await get(api, f"{PREFIX}/carts", created_from="31.12.2026"), 422, "invalid_filter")
    refused(await get(api, f"{PREFIX}/carts", created_to="9999-12-31"), 422, "invalid_filter")
    refused(await get(api, f"{PREFIX}/carts", state="nope"), 422, "invalid_input")
    refused(await get(api, f"{PREFIX}/carts", limit=0), 422, "invalid_input")
    refused(await get(api, f"{PREFIX}/carts", email="a\x00@b.c"), 422, "invalid_filter")

    orders = await pages(f"{SHOP}/orders", "orders", "after", limit=2)
    assert [o["number"] for o in orders if o["number"]] == [9, 8, 7]
    assert {o["cart_id"] for o in orders if o["not_finished"]} == {"a-2", "e"}
    oldest = ok(await get(api, f"{SHOP}/orders", sort="oldest", status="P"))["orders"]
    assert [o["number"] for o in oldest] == [7, 8, 9]
    assert ok(await get(api, f"{SHOP}/orders/counts"))["counts"] == {"P": 3, "not_finished": 2}
    one = ok(await get(api, f"{SHOP}/orders/8"))
    assert (one["cart_id"], one["status"], one["details"]["order_total"]) == ("o-8", "P", 900)
    refused(await get(api, f"{SHOP}/orders/99"), 404, "order_not_found")
    refused(await get(api, f"{SHOP}/orders", since="tomorrow"), 422, "invalid_filter")
    refused(await get(api, f"{SHOP}/orders", after="garbage"), 422, "invalid_cursor")
    refused(await get(api, f"{SHOP}/orders", email="a\x00@b.c"), 422, "invalid_filter")
    refused(await get(api, f"{SHOP}/orders/0"), 422, "invalid_input")
    refused(await get(api, f"{SHOP}/orders/{2**64}"), 422, "invalid_input")
    refused(await get(api, f"{SHOP}/orders", number=2**64), 422, "invalid_input")

    journal = ok(await get(api, f"{PREFIX}/carts/shop-1/b/journal"))
    assert (journal["cart_id"], journal["state"], journal["customer_email"]) == (
        "b",
        "abandoned",
        "Bea@Example.com",
    )
    refused(await get(api, f"{PREFIX}/carts/shop-1/nope/journal"), 404, "journal_not_found")
    customer = ok(await get(api, f"{SHOP}/journal", email="BEA@example.com"))
    assert customer["next_cursor"] is None and set(customer["dropped"]) <= {"b"}
    refused(await get(api, f"{SHOP}/journal", email="not an address"), 422, "invalid_filter")
    refused(await get(api, f"{SHOP}/journal"), 422, "invalid_input")


async def test_recovery_statistics(api: AdminApi) -> None:
    url = f"{PREFIX}/stats/recovery"
    found = ok(await get(api, url, **{"from": "2026-11-01", "to": "2026-11-30", "shop": "shop-1"}))
    assert (found["start"], found["end"]) == (
        "2026-11-01T00:00:00+00:00",
        "2026-12-01T00:00:00+00:00",
    )
    assert found["total"]["emails_sent"] == 0 and found["recovery_rate"] is None
    default = ok(await get(api, url))  # the last 30 days, by the app's clock
    assert default["end"] == "2026-12-01T00:00:00+00:00" and default["shop_id"] is None
    refused(
        await get(api, url, **{"from": "2026-12-01", "to": "2026-11-01"}), 422, "invalid_filter"
    )
    refused(await get(api, url, **{"from": "01.11.2026"}), 422, "invalid_filter")
    refused(await get(api, url, **{"to": "0001-01-02"}), 422, "invalid_filter")
