"""The admin JSON API's reminders, coupons and users on SQLite and PostgreSQL (no
Temporal): one reminder of a campaign set and removed with the admin kept as its editor,
a reminder previewed for a cart of the read model, a manual send's dry run to carts of a
filter with why each would not get it, a coupon by its code with its state, and the
console's users (admins only; never a password or its hash, not even among the
idempotency records); each refusal with its code, viewers never writing."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from activities.coupons import CouponTerms, issue, redeem
from activities.db import write_session
from activities.links import LinkRefused
from activities.models import Campaign, CartRecord
from activities.read_model import cart_values
from activities.web_models import IdempotencyRecord
from starter.campaign_json import campaign_json
from starter.campaigns import PREVIEW_COUPON_CODE, default_campaign
from starter.web import admin_users
from starter.web.idempotency import request_digest
from tests import test_web_admin_api_settings as settings_tests
from tests.admin_fixtures import NOW, PASSWORD
from tests.test_web_admin_api import AdminApi, basic, refused
from tests.test_web_admin_carts import row_of
from workflows.contract import CartState, CustomerInfo

PREFIX = "/api/v1/admin"
SHOP = f"{PREFIX}/shops/shop-1"
CAMPAIGN = f"{SHOP}/campaign"
NUDGE = {
    "name": "A nudge",
    "position": 5,
    "delay_seconds": 1800,
    "automatic": False,
    "subject": "Still thinking?",
    "template": "reminder",
    "coupon": {"kind": "percent", "amount": 5, "expiry_days": 3},
}


#: the admin API on each database, and a 2xx answer's JSON: the settings tests'
api = settings_tests.api
ok = settings_tests.ok


async def as_admin(
    api: AdminApi, method: str, url: str, body: Any = None, **headers: str
) -> httpx.Response:
    return await api.http.request(method, url, json=body, headers={**basic("ann"), **headers})


async def as_viewer(api: AdminApi, method: str, url: str, body: Any = None) -> httpx.Response:
    return await api.http.request(method, url, json=body, headers=basic("vic"))


def a_cart(cart_id: str, state: CartState = CartState.ABANDONED, **changes: Any) -> Any:
    """A cart of shop-1 abandoned an hour before the app's clock, with its own address."""
    cart = row_of(cart_id, state, NOW - timedelta(hours=1))
    values: dict[str, Any] = {
        "customer": CustomerInfo(email=f"{cart_id}@example.com", name="Ann", time_zone="UTC"),
        "abandoned_at": NOW - timedelta(hours=1) if state is CartState.ABANDONED else None,
        **changes,
    }
    return dataclasses.replace(cart, **values)


async def write_carts(api: AdminApi, *carts: Any) -> None:
    async with write_session(api.sessions) as session:
        for cart in carts:
            session.add(CartRecord(**cart_values(cart, NOW)))


async def editor(api: AdminApi) -> str | None:
    """Who edited shop-1's campaign last (kept with it)."""
    async with api.sessions() as session:
        row: Campaign | None = await session.get(Campaign, "shop-1")
        assert row is not None
        return row.updated_by


async def a_campaign(api: AdminApi) -> None:
    """The default campaign, without quiet hours (the test's clock is any hour)."""
    document = campaign_json(default_campaign("shop-1"))
    document.update(quiet_start_minute=0, quiet_end_minute=0, sender="shop@example.com")
    ok(await as_admin(api, "PUT", CAMPAIGN, document))


# --------------------------------------------------------------------------- reminders


async def test_one_reminder_is_set_and_removed_with_the_admin_as_its_editor(
    api: AdminApi,
) -> None:
    url = f"{CAMPAIGN}/reminders/nudge"
    refused(await as_viewer(api, "PUT", url, NUDGE), 403, "forbidden")
    refused(await as_viewer(api, "DELETE", url), 403, "forbidden")
    made = ok(await as_admin(api, "PUT", url, NUDGE))  # no campaign yet: one is made
    (nudge,) = made["reminders"]
    assert nudge == {**NUDGE, "id": "nudge", "b": None, "removed": False}
    assert await editor(api) == "ann"

    await a_campaign(api)  # the whole campaign: the nudge is removed (not listed)
    again = ok(await as_admin(api, "PUT", url, {**NUDGE, "id": "nudge", "removed": False}))
    version = again["version"]
    assert [r["id"] for r in again["reminders"] if not r["removed"]] == [
        "saved-cart",
        "coupon-24h",
        "last-chance",
        "nudge",
    ]
    b_variant = {"subject": "Still there?", "template": "reminder", "coupon": None}
    replaced = ok(await as_admin(api, "PUT", url, {**NUDGE, "position": 6, "b": b_variant}))
    nudge = next(r for r in replaced["reminders"] if r["id"] == "nudge")
    assert (nudge["position"], nudge["b"], replaced["version"]) == (6, b_variant, version + 1)

    for body, status, code in (
        ({**NUDGE, "position": 1}, 422, "duplicate_position"),  # coupon-24h's
        ({**NUDGE, "delay_seconds": 5}, 422, "invalid_delay"),
        ({**NUDGE, "template": "nope"}, 422, "unknown_template"),
        (
            {**NUDGE, "coupon": {"kind": "gift", "amount": 5, "expiry_days": 3}},
            422,
            "invalid_coupon",
        ),
        ({**NUDGE, "id": "other"}, 422, "invalid_reminder_id"),
        ({**NUDGE, "position": "6"}, 422, "invalid_input"),  # never coerced
        ({**NUDGE, "removed": True}, 422, "invalid_input"),
        ({**NUDGE, "colour": "red"}, 422, "invalid_input"),
        ({"name": "x"}, 422, "invalid_input"),
    ):
        refused(await as_admin(api, "PUT", url, body), status, code)
    refused(
        await as_admin(api, "PUT", f"{CAMPAIGN}/reminders/no%20spaces", NUDGE),
        422,
        "invalid_reminder_id",
    )
    refused(
        await as_admin(api, "PUT", f"{PREFIX}/shops/no%20spaces/campaign/reminders/x", NUDGE),
        422,
        "invalid_shop_id",
    )
    assert ok(await as_viewer(api, "GET", CAMPAIGN))["version"] == version + 1  # unchanged

    await admin_users.add_user(api.sessions, "bea", PASSWORD)
    removed = ok(await api.http.delete(url, headers=basic("bea")))
    assert await editor(api) == "bea"
    assert next(r for r in removed["reminders"] if r["id"] == "nudge")["removed"] is True
    refused(await as_admin(api, "DELETE", url), 404, "reminder_not_found")
    refused(await as_admin(api, "DELETE", f"{CAMPAIGN}/reminders/never"), 404, "reminder_not_found")
    refused(
        await as_admin(api, "DELETE", f"{CAMPAIGN}/reminders/a%00b"), 422, "invalid_reminder_id"
    )


async def test_a_reminder_is_previewed_for_a_cart_with_links_that_lead_nowhere(
    api: AdminApi,
) -> None:
    await a_campaign(api)
    await write_carts(
        api,
        a_cart("c-1"),
        dataclasses.replace(a_cart("c-guest"), customer=None),
        dataclasses.replace(a_cart("c-empty"), lines=[], currency=None),
    )
    url = f"{CAMPAIGN}/reminders/coupon-24h/preview"
    shown = ok(await as_viewer(api, "GET", url + "?cart=c-1"))  # a read: viewers too
    assert shown["subject"] == "10 % off the cart you left" and shown["variant"] == "a"
    assert shown["recipient"] == "Ann <c-1@example.com>" and shown["cart_state"] == "abandoned"
    assert PREVIEW_COUPON_CODE in shown["text"] and shown["html"].startswith("<")
    assert shown["sample_coupon_code"] == PREVIEW_COUPON_CODE
    token = shown["recovery_url"].rsplit("/", 1)[1]
    with pytest.raises(LinkRefused):  # signed with a throwaway key: the app's links refuse it
        api.app.state.context.links.read_recovery(token)
    b = ok(await as_viewer(api, "GET", url + "?cart=c-1&variant=b"))
    assert b["subject"] == "A discount on the cart you left" and b["variant"] == "b"
    plain = ok(await as_viewer(api, "GET", f"{CAMPAIGN}/reminders/saved-cart/preview?cart=c-1"))
    assert plain["coupon"] is None and plain["sample_coupon_code"] is None

    for path, status, code in (
        ("coupon-24h/preview?cart=c-nope", 404, "cart_not_found"),
        ("coupon-24h/preview?cart=c-guest", 409, "no_address"),
        ("coupon-24h/preview?cart=c-empty", 409, "empty_cart"),
        ("nope/preview?cart=c-1", 404, "reminder_not_found"),
        ("saved-cart/preview?cart=c-1&variant=b", 422, "no_variant_b"),
        ("saved-cart/preview?cart=c-1&variant=c", 422, "invalid_input"),
        ("saved-cart/preview?cart=no%20spaces", 422, "invalid_input"),
        ("saved-cart/preview", 422, "invalid_input"),
    ):
        refused(await as_viewer(api, "GET", f"{CAMPAIGN}/reminders/{path}"), status, code)
    refused(
        await as_viewer(api, "GET", f"{PREFIX}/shops/shop-2/campaign/reminders/x/preview?cart=c"),
        404,
        "campaign_not_found",
    )


async def test_a_manual_send_to_a_filters_carts_has_a_dry_run_saying_why_not(
    api: AdminApi,
) -> None:
    await a_campaign(api)
    await write_carts(
        api,
        a_cart("c-go"),
        a_cart("c-old", abandoned_at=NOW - timedelta(days=3)),
        dataclasses.replace(a_cart("c-guest"), customer=None),
        a_cart("c-active", CartState.ACTIVE),
        a_cart("c-locked", CartState.LOCKED),
        dataclasses.replace(a_cart("c-elsewhere"), shop_id="shop-2"),
    )
    url = f"{CAMPAIGN}/reminders/saved-cart/send"
    since = (NOW - timedelta(days=1)).isoformat()
    body = {"abandoned_since": since, "dry_run": True}
    refused(await as_viewer(api, "POST", url, body), 403, "forbidden")
    report = ok(await as_admin(api, "POST", url, body))
    assert (report["dry_run"], report["reminder_id"], report["shop_id"]) == (
        True,
        "saved-cart",
        "shop-1",
    )
    assert {r["cart_id"]: (r["status"], r["reason"]) for r in report["results"]} == {
        "c-go": ("would_send", None),
        "c-guest": ("not_sent", "no_address"),
    }
    assert report["counts"] == {"would_send": 1, "not_sent": 1}
    assert report["reasons"] == {"no_address": 1}
    (go,) = [r for r in report["results"] if r["cart_id"] == "c-go"]
    assert go["email"] == "c-go@example.com" and go["state"] == "abandoned"

    day = ok(await as_admin(api, "POST", url, {"abandoned_since": "2026-11-01", "dry_run": True}))
    assert {r["cart_id"] for r in day["results"]} == {"c-go", "c-old", "c-guest"}
    locked = ok(
        await as_admin(
            api, "POST", url, {"abandoned_since": "2026-11-01", "state": "locked", "dry_run": True}
        )
    )
    assert [r["cart_id"] for r in locked["results"]] == []  # a locked cart has no abandoned_at
    named = ok(
        await as_admin(
            api,
            "POST",
            url,
            {"cart_ids": ["c-active", "c-locked", "c-missing", "c-go"], "dry_run": True},
        )
    )
    assert [(r["cart_id"], r["status"], r["reason"]) for r in named["results"]] == [
        ("c-active", "not_sent", "not_abandoned"),
        ("c-locked", "not_sent", "cart_locked"),
        ("c-missing", "not_found", "cart_not_found"),
        ("c-go", "would_send", None),
    ]
    nothing = ok(await as_admin(api, "POST", url, {"cart_ids": ["c-guest"], "note": "try"}))
    assert nothing["dry_run"] is False and nothing["results"][0]["status"] == "not_sent"
    # a cart that would get it needs Temporal: without it, 503 and nothing kept
    refused(await as_admin(api, "POST", url, {"cart_ids": ["c-go"]}), 503, "temporal_unavailable")

    for wrong, code in (
        ({}, "invalid_input"),
        ({"cart_ids": []}, "invalid_input"),
        ({"cart_ids": ["c-go"], "abandoned_since": since}, "invalid_input"),
        ({"cart_ids": ["no spaces"]}, "invalid_id"),
        ({"abandoned_since": "yesterday"}, "invalid_filter"),
        ({"abandoned_since": since, "state": "gone"}, "invalid_filter"),
        ({"abandoned_since": since, "dry_run": "yes"}, "invalid_input"),
        ({"cart_ids": ["c-go"], "note": 5}, "invalid_input"),
    ):
        refused(await as_admin(api, "POST", url, wrong), 422, code)
    refused(
        await as_admin(api, "POST", f"{CAMPAIGN}/reminders/no%20good/send", body),
        422,
        "invalid_reminder",
    )
    unknown = ok(await as_admin(api, "POST", f"{CAMPAIGN}/reminders/nope/send", body))
    assert {r["reason"] for r in unknown["results"]} == {"reminder_removed", "no_address"}


async def test_ids_no_database_stores_are_refused_not_taken_for_an_outage(api: AdminApi) -> None:
    refused(await as_viewer(api, "GET", f"{PREFIX}/shops/a%00b/campaign"), 422, "invalid_shop_id")
    refused(await as_viewer(api, "GET", f"{PREFIX}/carts/a%00b/c-1"), 422, "invalid_id")
    refused(await as_viewer(api, "GET", f"{PREFIX}/carts/shop-1/c%001"), 422, "invalid_id")


# --------------------------------------------------------------------------- coupons


async def test_a_coupon_is_read_by_its_code_with_its_state(api: AdminApi) -> None:
    ten = CouponTerms(kind="percent", amount=10, currency=None, valid_days=7)
    fixed = CouponTerms(kind="fixed", amount=500, currency="EUR", valid_days=2)
    first = await issue(api.sessions, "shop-1", "c-1", "run-1:coupon-24h", ten, NOW)
    second = await issue(api.sessions, "shop-1", "c-2", "run-2:coupon-24h", fixed, NOW)
    await redeem(api.sessions, "shop-1", second.code, by="c-9", now=NOW + timedelta(hours=1))

    typed = first.code.lower().replace("-", " ")
    found = ok(await as_viewer(api, "GET", f"{SHOP}/coupons/{typed}"))
    assert found == {
        "shop_id": "shop-1",
        "code": first.code,
        "state": "active",
        "cart_id": "c-1",
        "issued_for": "run-1:coupon-24h",
        "kind": "percent",
        "amount": 10,
        "currency": None,
        "single_use": True,
        "created_at": NOW.isoformat(),
        "expires_at": (NOW + timedelta(days=7)).isoformat(),
        "redeemed_at": None,
        "redeemed_by": None,
        "redemptions": 0,
    }
    used = ok(await as_viewer(api, "GET", f"{SHOP}/coupons/{second.code}"))
    assert (used["state"], used["redeemed_by"], used["redemptions"], used["currency"]) == (
        "redeemed",
        "c-9",
        1,
        "EUR",
    )
    api.clock.advance(timedelta(days=8))
    assert ok(await as_viewer(api, "GET", f"{SHOP}/coupons/{first.code}"))["state"] == "expired"

    refused(await as_viewer(api, "GET", f"{SHOP}/coupons/ZZZZ-ZZZZ"), 404, "coupon_not_found")
    refused(await as_viewer(api, "GET", f"{SHOP}/coupons/%00%01"), 404, "coupon_not_found")
    refused(
        await as_viewer(api, "GET", f"{PREFIX}/shops/shop-2/coupons/{first.code}"),
        404,
        "coupon_not_found",
    )
    refused(await as_viewer(api, "GET", f"{PREFIX}/shops/a%00b/coupons/x"), 422, "invalid_id")


# --------------------------------------------------------------------------- users


async def test_users_are_admins_business_and_never_show_a_password(api: AdminApi) -> None:
    url = f"{PREFIX}/users"
    for method, path, body in (
        ("GET", url, None),
        ("POST", url, {"username": "eve", "password": "x" * 12}),
        ("PUT", f"{url}/ann/password", {"password": "x" * 12}),
        ("DELETE", f"{url}/ann", None),
    ):
        refused(await as_viewer(api, method, path, body), 403, "forbidden")

    listed = ok(await as_admin(api, "GET", url))
    assert [(u["username"], u["role"]) for u in listed["users"]] == [
        ("ann", "admin"),
        ("vic", "viewer"),
    ]
    assert set(listed["users"][0]) == {"username", "role", "created_at", "updated_at"}

    secret = "a long passphrase of bob"
    body = {"username": "Bob", "password": secret, "role": "viewer"}
    made = await as_admin(api, "POST", url, body, **{"Idempotency-Key": "bob-1"})
    assert ok(made, 201) == {
        "username": "bob",
        "role": "viewer",
        "created_at": NOW.isoformat(),
        "updated_at": NOW.isoformat(),
    }
    again = await as_admin(api, "POST", url, body, **{"Idempotency-Key": "bob-1"})
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    refused(
        await as_admin(
            api, "POST", url, {**body, "password": secret + "!"}, **{"Idempotency-Key": "bob-1"}
        ),
        422,
        "idempotency_key_reused",
    )
    async with api.sessions() as session:
        records = (await session.scalars(select(IdempotencyRecord))).all()
    assert records and all(secret not in (r.response_body or "") for r in records)
    assert request_digest("POST", url, body) not in {r.request_digest for r in records}
    refused(await api.http.get(url, headers=basic("bob", secret)), 403, "forbidden")

    for wrong, status, code in (
        (body, 409, "user_exists"),
        ({**body, "username": "no spaces"}, 422, "invalid_username"),
        ({**body, "username": "carl", "password": "short"}, 422, "invalid_password"),
        ({**body, "username": "carl", "role": "owner"}, 422, "invalid_role"),
        ({**body, "username": "carl", "password": 12345678}, 422, "invalid_input"),
        ({"username": "carl"}, 422, "invalid_input"),
    ):
        refused(await as_admin(api, "POST", url, wrong), status, code)

    changed = ok(await as_admin(api, "PUT", f"{url}/BOB/password", {"password": "another one!"}))
    assert changed["username"] == "bob" and "password" not in changed
    refused(
        await api.http.get(f"{SHOP}/statuses", headers=basic("bob", secret)), 401, "unauthenticated"
    )
    assert (
        await api.http.get(f"{SHOP}/statuses", headers=basic("bob", "another one!"))
    ).status_code == 200
    refused(
        await as_admin(api, "PUT", f"{url}/nobody/password", {"password": "x" * 12}),
        404,
        "user_not_found",
    )
    refused(
        await as_admin(api, "PUT", f"{url}/bob/password", {"password": " " * 12}),
        422,
        "invalid_password",
    )

    assert ok(await as_admin(api, "DELETE", f"{url}/bob")) == {"username": "bob", "removed": True}
    refused(
        await api.http.get(f"{SHOP}/statuses", headers=basic("bob", "another one!")),
        401,
        "unauthenticated",
    )
    refused(await as_admin(api, "DELETE", f"{url}/bob"), 404, "user_not_found")
    refused(await as_admin(api, "DELETE", f"{url}/a%00b"), 422, "invalid_username")
    # ann is the only admin left: never removed, never demoted (the console would have
    # nobody who can act)
    refused(await as_admin(api, "DELETE", f"{url}/ann"), 409, "last_admin")
    everyone = ok(await as_admin(api, "GET", url))["users"]
    assert [u["username"] for u in everyone] == ["ann", "vic"]
    assert PASSWORD not in str(everyone) and "argon2" not in str(everyone)
