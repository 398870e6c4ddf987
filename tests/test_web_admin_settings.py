"""The console's settings on SQLite and PostgreSQL: order statuses added, edited and
deleted through their forms, and each refusal shown with its code; shipping methods with
decimal costs stored in minor units and bad costs refused; API keys created (shown once,
working with ``verify_key``) and revoked; the campaign's settings and reminders edited
and a reminder previewed in a sandboxed frame with a CSP that forbids scripts; the shop's
effective policy with its sources; viewers reading without acting."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from activities.campaigns import load_campaign
from activities.db import write_session
from activities.models import Campaign, CartRecord
from activities.order_statuses import list_statuses, load_registry
from activities.read_model import cart_values
from activities.shipping_methods import get_method, list_methods
from starter.web import admin_users
from starter.web.api_keys import list_keys, verify_key
from tests.admin_fixtures import NOW, PASSWORD, Clock, browser, page_token, sign_in
from tests.conftest_db import ScratchDatabase, scratch_database
from tests.test_web_admin_auth import make_app
from workflows.contract import Cart, CartLine, CartState, CustomerInfo

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
SHOP = "demo"
STATUSES = f"/admin/settings/statuses?shop={SHOP}"
SHIPPING = f"/admin/settings/shipping?shop={SHOP}"
CAMPAIGN = f"/admin/settings/campaign?shop={SHOP}"
KEYS = f"/admin/settings/api-keys?shop={SHOP}"
_FLASH = re.compile(r'<p class="flash (ok|error)" role="status">(.*?)</p>', re.S)
_KEY = re.compile(r"ck_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


@pytest.fixture
async def app(db: ScratchDatabase, tmp_path: Path) -> FastAPI:
    await admin_users.add_user(db.session_factory, "ann", PASSWORD, role="admin", now=NOW)
    await admin_users.add_user(db.session_factory, "vic", PASSWORD, role="viewer", now=NOW)
    return make_app(db, tmp_path, Clock())


@pytest.fixture
async def admin(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with browser(app) as client:
        assert (await sign_in(client, "ann")).status_code == 303
        yield client


@pytest.fixture
async def viewer(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with browser(app) as client:
        assert (await sign_in(client, "vic")).status_code == 303
        yield client


def flash(html: str) -> tuple[str, str]:
    found = _FLASH.search(html)
    assert found is not None, "no flash message on the page"
    return found.group(1), unescape(found.group(2).strip())


async def act(client: httpx.AsyncClient, page: str, action: str, **data: str) -> tuple[str, str]:
    """Post a form of ``page`` to ``action`` (with the shop, as the page's forms do); the
    redirect goes back to ``page``: its flash message."""
    token = await page_token(client, page)
    response = await client.post(action, data={"csrf_token": token, "shop": SHOP, **data})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == page
    return flash((await client.get(page)).text)


def refused(result: tuple[str, str], code: str) -> str:
    kind, message = result
    assert kind == "error" and message.startswith(f"{code}: "), result
    return message


# --------------------------------------------------------------------------- statuses


async def test_statuses_are_added_edited_and_deleted(
    db: ScratchDatabase, admin: httpx.AsyncClient
) -> None:
    sessions = db.session_factory
    page = (await admin.get(STATUSES)).text
    assert "14 of 26 statuses" in page and 'fill="#43a047"' in page  # P's colour

    added = await act(
        admin,
        STATUSES,
        "/admin/settings/statuses/add",
        letter="g",
        name="Gift wrapping",
        colour="#FF4081",
        position="",
        inventory="none",
        flags="1",
        contents_editable="1",
    )
    assert added[0] == "ok" and added[1].startswith("Status added: G Gift wrapping (#ff4081")
    by = {s.letter: s for s in await list_statuses(sessions, SHOP)}
    assert by["G"].colour == "#ff4081" and by["G"].position == 150
    assert by["G"].contents_editable and not by["G"].paid and not by["G"].builtin
    assert (await load_registry(sessions, SHOP)).updated_by == "ann"
    assert 'fill="#ff4081"' in (await admin.get(STATUSES)).text

    edited = await act(
        admin,
        STATUSES,
        "/admin/settings/statuses/G/edit",
        name="Gift wrap",
        new_letter="W",
        colour="#00aa00",
        position="65",
        inventory="increase",
        flags="1",
        final="1",
    )
    assert edited[0] == "ok", edited
    by = {s.letter: s for s in await list_statuses(sessions, SHOP)}
    assert "G" not in by
    w = by["W"]
    assert (w.name, w.colour, w.position, w.inventory) == ("Gift wrap", "#00aa00", 65, "increase")
    assert w.final and not w.contents_editable, "an unchecked box turns its flag off"

    # P's form as the page has it (paid cannot be unticked: a hidden field keeps it)
    p = await act(
        admin,
        STATUSES,
        "/admin/settings/statuses/P/edit",
        name="Paid",
        colour="#43a047",
        position="20",
        inventory="decrease",
        flags="1",
        paid="1",
        notify_customer="1",
        notify_department="1",
    )
    assert p == ("ok", p[1]) and "P Paid" in p[1]
    # the hidden N: its form holds name, colour and position only
    n = await act(
        admin, STATUSES, "/admin/settings/statuses/N/edit", name="Waiting", position="140"
    )
    assert n[0] == "ok" and "N Waiting" in n[1]
    same = await act(admin, STATUSES, "/admin/settings/statuses/W/edit", name="Gift wrap")
    assert same[0] == "ok" and same[1].startswith("Nothing changed")

    deleted = await act(admin, STATUSES, "/admin/settings/statuses/W/delete")
    assert deleted == ("ok", "Status W (Gift wrap) deleted: orders that had it keep its name")
    assert "W" not in {s.letter for s in await list_statuses(sessions, SHOP)}


async def test_status_refusals_are_shown_with_their_code(
    db: ScratchDatabase, admin: httpx.AsyncClient
) -> None:
    sessions = db.session_factory
    add = "/admin/settings/statuses/add"
    taken = refused(
        await act(admin, STATUSES, add, letter="p", name="Paid twice"), "status_letter_taken"
    )
    assert "P is already the status 'Processed'" in taken
    refused(await act(admin, STATUSES, "/admin/settings/statuses/P/delete"), "status_builtin")
    refused(
        await act(admin, STATUSES, "/admin/settings/statuses/P/edit", flags="1"),
        "status_builtin",  # P always counts as paid
    )
    refused(
        await act(admin, STATUSES, "/admin/settings/statuses/O/edit", position="first"),
        "invalid_status",
    )
    refused(await act(admin, STATUSES, add, letter="7", name="Seven"), "invalid_status")
    refused(await act(admin, STATUSES, "/admin/settings/statuses/Q/delete"), "unknown_status")
    before = await load_registry(sessions, SHOP)
    assert not before.customised, "no refusal wrote anything"

    for letter in "EGJKLMQTUXZ":  # the 12 letters the 14 defaults leave, but W
        kind, message = await act(admin, STATUSES, add, letter=letter, name=f"Status {letter}")
        assert kind == "ok", message
    kind, message = await act(admin, STATUSES, add, letter="W", name="The 26th")
    assert kind == "ok", message
    assert len(await list_statuses(sessions, SHOP)) == 26
    full = refused(
        await act(admin, STATUSES, add, letter="A", name="The 27th"), "status_limit_reached"
    )
    assert "at most 26" in full
    assert len(await list_statuses(sessions, SHOP)) == 26
    assert "0 letters left" in (await admin.get(STATUSES)).text


# --------------------------------------------------------------------------- shipping


async def test_shipping_costs_are_decimal_amounts_stored_in_minor_units(
    db: ScratchDatabase, admin: httpx.AsyncClient
) -> None:
    sessions = db.session_factory
    add = "/admin/settings/shipping/add"
    for method_id, cost, currency, minor in (
        ("courier", "4.90", "EUR", 490),
        ("pick-up", "0", "EUR", 0),
        ("yen", "490", "jpy", 490),
        ("dinar", "1,250", "KWD", 1250),
        ("express", "12.5", "EUR", 1250),
    ):
        kind, message = await act(
            admin,
            SHIPPING,
            add,
            method_id=method_id,
            name=method_id.title(),
            cost=cost,
            currency=currency,
            enabled="1",
        )
        assert kind == "ok", message
        method = await get_method(sessions, SHOP, method_id)
        assert (method.cost, method.currency, method.enabled) == (minor, currency.upper(), True)
    page = (await admin.get(SHIPPING)).text
    assert "€4.90" in page and 'data-cost="490"' in page and 'value="4.90"' in page
    assert 'value="1.250"' in page, "a KWD cost is written back with its 3 decimals"

    for cost, currency, why in (
        ("4.905", "EUR", "EUR amounts have 2 decimals"),
        ("4.5", "JPY", "JPY amounts have no decimals"),
        ("-1", "EUR", "is not an amount"),
        ("1,234.50", "EUR", "is not an amount"),
        ("4.90 €", "EUR", "is not an amount"),
        ("", "EUR", "give the cost"),
        ("4.90", "EURO", "the currency"),
        ("4.90", "", "give the cost's currency"),
        ("99999999999999.99", "EUR", "minor units"),
    ):
        message = refused(
            await act(
                admin, SHIPPING, add, method_id="bad", name="Bad", cost=cost, currency=currency
            ),
            "invalid_shipping_method",
        )
        assert why in message, (cost, currency, message)
    refused(
        await act(admin, SHIPPING, add, method_id="courier", name="C", cost="1", currency="EUR"),
        "shipping_method_exists",
    )
    assert "bad" not in {m.method_id for m in await list_methods(sessions, SHOP)}

    edit = "/admin/settings/shipping/courier/edit"
    kind, message = await act(
        admin, SHIPPING, edit, name="DHL courier", cost="5,90", currency="EUR", position="10"
    )
    assert kind == "ok", message
    method = await get_method(sessions, SHOP, "courier")
    assert (method.name, method.cost, method.position) == ("DHL courier", 590, 10)
    refused(await act(admin, SHIPPING, edit, cost="5.999"), "invalid_shipping_method")
    assert (await get_method(sessions, SHOP, "courier")).cost == 590
    assert (await act(admin, SHIPPING, "/admin/settings/shipping/courier/disable"))[0] == "ok"
    assert not (await get_method(sessions, SHOP, "courier")).enabled
    assert (await act(admin, SHIPPING, "/admin/settings/shipping/courier/enable"))[0] == "ok"
    assert (await get_method(sessions, SHOP, "courier")).enabled
    assert (await act(admin, SHIPPING, "/admin/settings/shipping/courier/delete"))[0] == "ok"
    refused(
        await act(admin, SHIPPING, "/admin/settings/shipping/courier/delete"),
        "shipping_method_not_found",
    )


# --------------------------------------------------------------------------- API keys


async def test_an_api_key_is_shown_once_works_and_is_revoked(
    db: ScratchDatabase, admin: httpx.AsyncClient
) -> None:
    sessions = db.session_factory
    token = await page_token(admin, KEYS)
    created = await admin.post(
        "/admin/settings/api-keys", data={"csrf_token": token, "shop": SHOP, "name": "php-shop"}
    )
    assert created.status_code == 200, "shown in the answer, not after a redirect"
    assert created.headers["cache-control"] == "no-store"
    keys = _KEY.findall(created.text)
    assert len(set(keys)) == 1
    plain = keys[0]
    key = await verify_key(sessions, plain, now=NOW)
    assert key is not None and key.shop_id == SHOP and key.name == "php-shop"
    assert key.created_by == "ann"

    listed = await admin.get(KEYS)
    assert listed.status_code == 200 and listed.headers["cache-control"] == "no-store"
    assert plain not in listed.text and plain.split("_", 2)[2] not in listed.text
    assert _KEY.search(listed.text) is None
    assert f"ck_{key.prefix}_" in listed.text and "php-shop" in listed.text

    refused(await act(admin, KEYS, "/admin/settings/api-keys", name="  "), "invalid_input")
    revoked = await act(admin, KEYS, f"/admin/settings/api-keys/{key.prefix}/revoke")
    assert revoked[0] == "ok" and key.prefix in revoked[1]
    assert await verify_key(sessions, plain, now=NOW + timedelta(minutes=5)) is None
    [stored] = await list_keys(sessions, SHOP)
    assert stored.revoked
    page = (await admin.get(KEYS)).text
    assert f"/admin/settings/api-keys/{key.prefix}/revoke" not in page
    refused(await act(admin, KEYS, "/admin/settings/api-keys/nope/revoke"), "invalid_input")


# --------------------------------------------------------------------------- campaign


def abandoned_cart(cart_id: str, **changes: Any) -> CartRecord:
    values: dict[str, Any] = {
        "shop_id": SHOP,
        "cart_id": cart_id,
        "state": CartState.ABANDONED,
        "currency": "EUR",
        "lines": [CartLine("mug", "Blue mug", 2, 1200)],
        "customer": CustomerInfo(email="ann@example.com", name="Ann"),
        "created_at": NOW - timedelta(hours=3),
        "updated_at": NOW - timedelta(hours=2),
        "abandoned_at": NOW - timedelta(hours=1),
        "lineage": "run-1",
    }
    values.update(changes)
    return CartRecord(**cart_values(Cart(**values), NOW))


async def test_the_campaign_is_edited_through_its_forms(
    db: ScratchDatabase, admin: httpx.AsyncClient
) -> None:
    sessions = db.session_factory
    assert "No campaign yet" in (await admin.get(CAMPAIGN)).text
    kind, message = await act(admin, CAMPAIGN, "/admin/settings/campaign/init")
    assert kind == "ok" and "saved-cart, coupon-24h, last-chance" in message
    async with sessions() as session:
        assert await session.scalar(select(Campaign.updated_by)) == "ann"
    again = await act(admin, CAMPAIGN, "/admin/settings/campaign/init")
    assert again == ("ok", "The shop has a campaign already (version 1)")

    form = {
        "checkboxes": "1",
        "enabled": "1",
        "shop_name": "Tea & Mugs",
        "sender": "hello@shop.example.com",
        "restore_url": "https://shop.example/cart/{cart_id}?c={coupon}",
        "restart_rule": "continue",
        "quiet_hours": "22:00-07:30",
        "default_time_zone": "Europe/Berlin",
        "cap_count": "2",
        "cap_period_days": "7",
    }
    kind, message = await act(admin, CAMPAIGN, "/admin/settings/campaign", **form)
    assert kind == "ok", message
    config = await load_campaign(sessions, SHOP)
    assert config is not None and config.version == 2 and config.enabled
    assert (config.shop_name, config.sender, config.cap_count) == (
        "Tea & Mugs",
        "hello@shop.example.com",
        2,
    )
    assert (config.quiet_start_minute, config.quiet_end_minute) == (22 * 60, 7 * 60 + 30)
    assert config.default_time_zone == "Europe/Berlin"
    page = (await admin.get(CAMPAIGN)).text
    assert 'value="22:00-07:30"' in page and "Tea &amp; Mugs" in page
    for field, value, code in (
        ("sender", "not an address", "invalid_sender"),
        ("quiet_hours", "25:00-01:00", "invalid_quiet_hours"),
        ("cap_count", "0", "invalid_cap"),
        ("default_time_zone", "Mars/Olympus", "invalid_time_zone"),
    ):
        refused(
            await act(admin, CAMPAIGN, "/admin/settings/campaign", **{**form, field: value}), code
        )
    unchanged = await act(admin, CAMPAIGN, "/admin/settings/campaign", **form)
    assert unchanged == ("ok", "Nothing changed")
    off = await act(admin, CAMPAIGN, "/admin/settings/campaign", **{**form, "enabled": ""})
    assert off[0] == "ok"  # an empty value still holds the box: the browser sends none
    config = await load_campaign(sessions, SHOP)
    assert config is not None and config.version == 2, "a present field is a checked box"
    del form["enabled"]
    assert (await act(admin, CAMPAIGN, "/admin/settings/campaign", **form))[0] == "ok"
    config = await load_campaign(sessions, SHOP)
    assert config is not None and not config.enabled and config.version == 3

    reminder = "/admin/settings/campaign/reminders/saved-cart"
    kind, message = await act(
        admin, CAMPAIGN, reminder, mode="1", delay="2h", subject="Your cart is waiting"
    )
    assert kind == "ok", message
    config = await load_campaign(sessions, SHOP)
    assert config is not None
    saved = config.reminder("saved-cart")
    assert saved is not None and saved.delay_seconds == 7200 and not saved.automatic
    assert saved.a.subject == "Your cart is waiting" and saved.a.template == "reminder"
    refused(await act(admin, CAMPAIGN, reminder, delay="soon"), "invalid_delay")
    refused(await act(admin, CAMPAIGN, reminder, delay="30s"), "invalid_delay")
    refused(
        await act(admin, CAMPAIGN, "/admin/settings/campaign/reminders/nope", delay="1h"),
        "reminder_not_found",
    )


async def test_a_reminder_preview_is_served_sandboxed_without_scripts(
    db: ScratchDatabase, app: FastAPI, admin: httpx.AsyncClient
) -> None:
    await act(admin, CAMPAIGN, "/admin/settings/campaign/init")
    async with write_session(db.session_factory) as session:
        session.add(abandoned_cart("c-1"))
        session.add(abandoned_cart("c-guest", customer=None, updated_at=NOW - timedelta(hours=9)))
    page = await admin.get(
        "/admin/settings/campaign/preview", params={"shop": SHOP, "reminder": "coupon-24h"}
    )
    assert page.status_code == 200, page.text
    assert "frame-src 'self'" in page.headers["content-security-policy"]
    html = unescape(page.text)
    assert "10 % off the cart you left" in html and "Ann <ann@example.com>" in html
    assert "a sample" in html and "c-1" in html and "XXXX-XXXX" in html
    assert "Blue mug" in html  # the text part
    frame = re.search(r'<iframe src="([^"]+)"[^>]*sandbox=""', page.text)
    assert frame is not None
    served = await admin.get(unescape(frame.group(1)))
    assert served.status_code == 200 and served.headers["content-type"].startswith("text/html")
    csp = served.headers["content-security-policy"]
    directives = dict([*part.split(" ", 1), ""][:2] for part in (p.strip() for p in csp.split(";")))
    assert directives["script-src"] == "'none'" and directives["default-src"] == "'none'"
    assert "sandbox" in directives and directives["frame-ancestors"] == "'self'"
    assert served.headers["cache-control"] == "no-store"
    assert "Blue mug" in served.text and "<script" not in served.text.lower()

    # the preview's links are signed with a throwaway key: following one records nothing
    recovery = re.search(r'href="https?://[^/"]+(/r/[^"]+)"', served.text)
    assert recovery is not None
    followed = await admin.post(recovery.group(1))
    assert followed.status_code == 400 and "link_invalid" in followed.text
    assert app.state.context.signaller.calls == []

    variant_b = await admin.get(
        "/admin/settings/campaign/preview",
        params={"shop": SHOP, "reminder": "coupon-24h", "variant": "b", "cart": "c-1"},
    )
    assert "A discount on the cart you left" in variant_b.text
    for params, status, code in (
        ({"reminder": "nope"}, 404, "reminder_not_found"),
        ({"reminder": "saved-cart", "variant": "b"}, 400, "no_variant_b"),
        ({"reminder": "saved-cart", "cart": "c-guest"}, 400, "no_address"),
        ({"reminder": "saved-cart", "cart": "c-nope"}, 404, "cart_not_found"),
        ({"variant": "c"}, 400, "invalid_variant"),
    ):
        refusal = await admin.get(
            "/admin/settings/campaign/preview", params={"shop": SHOP, **params}
        )
        assert refusal.status_code == status and code in refusal.text, params
        alone = await admin.get(
            "/admin/settings/campaign/preview/html", params={"shop": SHOP, **params}
        )
        assert alone.status_code == status and code in alone.text, params


# --------------------------------------------------------------------------- policy


async def test_the_policy_page_shows_each_value_and_where_it_comes_from(
    db: ScratchDatabase, tmp_path: Path
) -> None:
    await admin_users.add_user(db.session_factory, "vic", PASSWORD, role="viewer", now=NOW)
    app = make_app(
        db,
        tmp_path,
        Clock(),
        policy={"abandon_after_seconds": 900, "journal_limit": 50},
        shop_policies={SHOP: {"lock_after_seconds": 600, "journal_limit": 70}},
    )
    async with browser(app) as client:
        assert (await sign_in(client, "vic")).status_code == 303

        async def rows(shop: str) -> dict[str, tuple[str, str]]:
            page = await client.get("/admin/settings/policy", params={"shop": shop})
            assert page.status_code == 200
            found = re.findall(
                r'data-field="(\w+)">.*?<td class="num">([^<]*)</td>.*?data-source="([^"]*)"',
                page.text,
                re.S,
            )
            return {name: (value, unescape(source)) for name, value, source in found}

        demo = await rows(SHOP)
        assert demo["abandon_after_seconds"] == ("900", "CARTKEEPER_POLICY")
        assert demo["lock_after_seconds"] == ("600", "CARTKEEPER_SHOP_POLICIES (demo)")
        assert demo["journal_limit"] == ("70", "CARTKEEPER_SHOP_POLICIES (demo)")
        assert demo["lock_alert_after_seconds"] == ("1800", "CARTKEEPER_LOCK_ALERT_AFTER_SECONDS")
        assert demo["retire_after_seconds"] == ("86400", "default")
        assert len(demo) == 10
        other = await rows("acme")
        assert other["lock_after_seconds"] == ("1800", "default")
        assert other["journal_limit"] == ("50", "CARTKEEPER_POLICY")
        overview = await client.get("/admin/settings", params={"shop": SHOP})
        assert overview.status_code == 200 and "abandoned after 15m" in overview.text


# --------------------------------------------------------------------------- viewers


async def test_a_viewer_reads_every_settings_page_but_cannot_act(
    db: ScratchDatabase, viewer: httpx.AsyncClient
) -> None:
    for path in (
        "/admin/settings",
        STATUSES,
        SHIPPING,
        CAMPAIGN,
        KEYS,
        "/admin/settings/policy",
        "/admin/settings/campaign/preview",
        "/admin/statistics",
    ):
        page = await viewer.get(path)
        assert page.status_code == 200, (path, page.status_code)
        forms = re.findall(r'<form method="post" action="([^"]+)"', page.text)
        assert forms == ["/admin/logout"], (path, forms)
    token = await page_token(viewer, STATUSES)
    for action, data in (
        ("/admin/settings/statuses/add", {"letter": "G", "name": "Gift"}),
        ("/admin/settings/api-keys", {"name": "sneaky"}),
        (
            "/admin/settings/shipping/add",
            {"method_id": "x", "name": "X", "cost": "1", "currency": "EUR"},
        ),
        ("/admin/settings/campaign/init", {}),
    ):
        response = await viewer.post(action, data={"csrf_token": token, "shop": SHOP, **data})
        assert response.status_code == 403 and "only an admin" in response.text, action
    assert not (await load_registry(db.session_factory, SHOP)).customised
    assert await list_keys(db.session_factory, SHOP) == []
    assert await list_methods(db.session_factory, SHOP) == []
    assert await load_campaign(db.session_factory, SHOP) is None
