"""Every text field of the admin JSON API's bodies that the read model keeps (settings,
campaigns, reminders, users, keys) sent a NUL and a lone surrogate (JSON ``"\\u0000"``,
``"\\ud800"``), on SQLite and PostgreSQL, with and without ``Idempotency-Key``: each is
refused with its field's coded error (422), never a 500 or a 503, and nothing is kept.

Before, a lone surrogate in a status's or a shipping method's name, a campaign's shop
name, a reminder's name or subject (its variant's too) was taken by the checks (they
looked for control characters and line breaks, not ``Cs``) and failed the write: a 500
on SQLite (no UTF-8 form to send), a 503 ``database_unavailable`` on PostgreSQL; and a
password holding one was a 500 on both (its idempotency fingerprint, then argon2, need
its UTF-8 form). A password may hold a NUL or any other control character: it hashes,
signs in and is never stored. The admin's actions on carts and orders (notes, delivery,
lines, payments) are checked by the cart's rules before Temporal is asked
(``tests/test_web_admin_api_carts.py``)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import httpx
from fastapi.routing import APIRoute, iter_route_contexts

from starter.campaign_json import campaign_json
from starter.campaigns import default_campaign
from starter.web import admin_users
from tests import test_web_admin_api_settings as settings_tests
from tests.admin_fixtures import sign_in
from tests.test_web_admin_api import AdminApi, basic, refused
from tests.test_web_admin_api_reminders import NUDGE as REMINDER

PREFIX = "/api/v1/admin"
SHOP = f"{PREFIX}/shops/shop-1"
#: a NUL (PostgreSQL's text cannot hold it) and lone surrogates (no UTF-8 form)
BAD = ["a\x00b", "\ud800", "a\udfffb"]
api = settings_tests.api  # the admin API on SQLite and PostgreSQL
#: the reminders test's reminder, with a variant b (its subject is text too)
NUDGE = {**REMINDER, "b": {"subject": "Still there?", "template": "reminder"}}


def campaign() -> dict[str, Any]:
    document = campaign_json(default_campaign("shop-1"))
    document.update(quiet_start_minute=0, quiet_end_minute=0, sender="shop@example.com")
    return document


#: (method, path, a body the route takes, {a text field's path: the code refusing it}).
#: A field of the campaign document not listed (``shop_id``, ``version``) is ignored by
#: the route (the path names the shop).
BODIES: list[tuple[str, str, Any, dict[tuple[Any, ...], str]]] = [
    (
        "POST",
        f"{SHOP}/statuses",
        {"letter": "J", "name": "Jay", "colour": "#ffffff", "inventory": "none"},
        {
            ("letter",): "invalid_status",
            ("name",): "invalid_status",
            ("colour",): "invalid_status",
            ("inventory",): "invalid_input",
        },
    ),
    (
        "PATCH",
        f"{SHOP}/statuses/P",
        {"letter": "P", "name": "Paid!", "colour": "#ffffff", "inventory": "none"},
        {
            ("letter",): "invalid_status",
            ("name",): "invalid_status",
            ("colour",): "invalid_status",
            ("inventory",): "invalid_input",
        },
    ),
    (
        "POST",
        f"{SHOP}/shipping-methods",
        {"method_id": "m2", "name": "M", "cost": 1, "currency": "EUR", "enabled": True},
        {
            ("method_id",): "invalid_shipping_method",
            ("name",): "invalid_shipping_method",
            ("currency",): "invalid_shipping_method",
        },
    ),
    (
        "PATCH",
        f"{SHOP}/shipping-methods/m1",
        {"name": "M2", "currency": "EUR"},
        {("name",): "invalid_shipping_method", ("currency",): "invalid_shipping_method"},
    ),
    (
        "PATCH",
        f"{SHOP}/order-numbering",
        {"prefix": "A-"},
        {("prefix",): "invalid_order_number_prefix"},
    ),
    (
        "PUT",
        f"{SHOP}/campaign",
        campaign(),
        {
            ("shop_name",): "invalid_shop_name",
            ("sender",): "invalid_sender",
            ("restore_url",): "invalid_restore_url",
            ("restart_rule",): "invalid_restart_rule",
            ("default_time_zone",): "invalid_time_zone",
            **{
                key: code
                for index in range(3)
                for key, code in (
                    (("reminders", index, "id"), "invalid_reminder_id"),
                    (("reminders", index, "name"), "invalid_name"),
                    (("reminders", index, "subject"), "invalid_subject"),
                    (("reminders", index, "template"), "unknown_template"),
                )
            },
            ("reminders", 1, "coupon", "kind"): "invalid_coupon",
            ("reminders", 1, "b", "subject"): "invalid_subject",
            ("reminders", 1, "b", "template"): "unknown_template",
            ("reminders", 1, "b", "coupon", "kind"): "invalid_coupon",
        },
    ),
    (
        "PUT",
        f"{SHOP}/campaign/reminders/nudge",
        NUDGE,
        {
            ("name",): "invalid_name",
            ("subject",): "invalid_subject",
            ("template",): "unknown_template",
            ("coupon", "kind"): "invalid_coupon",
            ("b", "subject"): "invalid_subject",
            ("b", "template"): "unknown_template",
        },
    ),
    (
        "POST",
        f"{SHOP}/campaign/reminders/saved-cart/send",
        {"cart_ids": ["cart-1"], "note": "by hand", "dry_run": True},
        {("cart_ids", 0): "invalid_id", ("note",): "invalid_text"},
    ),
    (
        "POST",
        f"{SHOP}/campaign/reminders/saved-cart/send",
        {"state": "abandoned", "abandoned_since": "2026-11-01T00:00:00Z", "dry_run": True},
        {("state",): "invalid_filter", ("abandoned_since",): "invalid_filter"},
    ),
    (
        "POST",
        f"{PREFIX}/api-keys",
        {"shop_id": "shop-1", "name": "php-shop"},
        {("shop_id",): "invalid_id", ("name",): "invalid_input"},
    ),
    (
        "POST",
        f"{PREFIX}/users",
        {"username": "zed", "password": "a long passphrase", "role": "viewer"},
        {
            ("username",): "invalid_username",
            ("password",): "invalid_password",
            ("role",): "invalid_role",
        },
    ),
    (
        "PUT",
        f"{PREFIX}/users/vic/password",
        {"password": "a long passphrase"},
        {("password",): "invalid_password"},
    ),
]
#: the admin API's writes with a JSON body that act on a cart through Temporal (their
#: text is checked by the cart's rules: ``tests/test_web_admin_api_carts.py``)
THROUGH_TEMPORAL = {
    ("POST", f"{PREFIX}/carts/{{shop_id}}/{{cart_id}}/{action}")
    for action in ("confirm", "unlock", "delete", "resolve", "remind", "status")
} | {
    ("POST", f"{PREFIX}/shops/{{shop_id}}/orders/{{number}}/{action}")
    for action in ("status", "delivery", "lines", "payments", "notes")
}
#: writes whose body holds no text (numbers and flags)
NO_TEXT = {("PUT", f"{PREFIX}/shops/{{shop_id}}/stock/{{sku}}")}


def with_value(body: Any, path: tuple[Any, ...], value: str) -> Any:
    changed = copy.deepcopy(body)
    holder = changed
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    return changed


def text_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every text in a JSON value."""
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from text_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from text_paths(item, (*path, index))


async def send(api: AdminApi, method: str, url: str, body: Any, key: str | None) -> httpx.Response:
    headers = {**basic("ann"), "content-type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    # json.dumps writes a lone surrogate as its JSON escape (as any client would)
    return await api.http.request(method, url, content=json.dumps(body), headers=headers)


async def setup(api: AdminApi) -> None:
    """What the bodies name: shop-1's campaign, a shipping method m1."""
    headers = basic("ann")
    made = await api.http.put(f"{SHOP}/campaign", json=campaign(), headers=headers)
    assert made.status_code == 200, made.text
    method = {"method_id": "m1", "name": "M", "cost": 1, "currency": "EUR", "enabled": True}
    made = await api.http.post(f"{SHOP}/shipping-methods", json=method, headers=headers)
    assert made.status_code == 201, made.text


async def test_each_text_field_refuses_a_nul_and_a_lone_surrogate_with_its_code(
    api: AdminApi,
) -> None:
    await setup(api)
    before = {
        url: (await api.http.get(url, headers=basic("ann"))).json()
        for url in (f"{SHOP}/statuses", f"{SHOP}/shipping-methods", f"{SHOP}/campaign")
    }
    users = await admin_users.list_users(api.sessions)
    sent = 0
    for method, url, body, codes in BODIES:
        ignored = {("shop_id",), ("version",)} if url.endswith("/campaign") else set()
        assert set(text_paths(body)) - ignored == set(codes), (url, "a text field is untested")
        for path, code in codes.items():
            for bad in BAD:
                for key in (None, f"k{sent}"):
                    sent += 1
                    answer = await send(api, method, url, with_value(body, path, bad), key)
                    assert answer.status_code == 422, (method, url, path, bad, answer.text)
                    assert answer.json()["error"]["code"] == code, (url, path, bad, answer.text)
    assert sent > 200
    for url, was in before.items():
        assert (await api.http.get(url, headers=basic("ann"))).json() == was, url
    assert await admin_users.list_users(api.sessions) == users


def test_the_table_names_every_write_with_a_json_body(api: AdminApi) -> None:
    """A write added later with a JSON body must be added to ``BODIES`` (or to the
    routes checked through Temporal)."""
    tested = {(method, url) for method, url, _body, _codes in BODIES}
    for route in iter_route_contexts(api.app.routes):
        if not isinstance(route, APIRoute) or not route.path.startswith(PREFIX):
            continue
        if route.body_field is None:
            continue
        for method in route.methods or ():
            if (method, route.path) in THROUGH_TEMPORAL | NO_TEXT:
                continue
            concrete = (
                route.path.replace("{shop_id}", "shop-1")
                .replace("{letter}", "P")
                .replace("{method_id}", "m1")
                .replace("{username}", "vic")
            )
            concrete = concrete.replace(
                "{reminder_id}", "saved-cart" if "send" in concrete else "nudge"
            )
            assert (method, concrete) in tested, (method, route.path)


async def test_a_password_may_hold_a_nul_or_a_control_character_but_no_lone_surrogate(
    api: AdminApi,
) -> None:
    url = f"{PREFIX}/users"
    for index, password in enumerate(("a long pass\ud800phrase", "\udcff" * 12)):
        for key in (None, f"key-{index}"):
            body = {"username": "zed", "password": password}
            refused(await send(api, "POST", url, body, key), 422, "invalid_password")
            changed = {"password": password}
            answer = await send(api, "PUT", f"{url}/vic/password", changed, key and key + "b")
            refused(answer, 422, "invalid_password")
    assert [u.username for u in await admin_users.list_users(api.sessions)] == ["ann", "vic"]
    # no one can send one: a Basic header is UTF-8, a form's bytes that are not UTF-8 are
    # read as U+FFFD; asked directly, it is a wrong password, not an error
    assert await admin_users.verify_password(api.sessions, "vic", "a long pass\ud800") is None

    for name, password in (("nul", "a long pass\x00phrase"), ("esc", "a long \x1b[2J pass")):
        made = await send(api, "POST", url, {"username": name, "password": password}, None)
        assert made.status_code == 201, made.text
        signed = await api.http.get(url, headers=basic(name, password))
        assert signed.status_code == 200, signed.text
    assert (await sign_in(api.http, "nul", "a long pass\x00phrase")).status_code == 303
