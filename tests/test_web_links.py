"""The web endpoint's links (``starter.web``): recovery and unsubscribe on SQLite and
PostgreSQL, health checks, the embedded server, and one click on the real dev server."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from itsdangerous import TimestampSigner
from sqlalchemy import func, select
from temporalio.client import Client

from activities.campaigns import CampaignConfig, save_campaign
from activities.coupons import CouponTerms, issue
from activities.db import write_session
from activities.links import Links, RecoveryClaim, UnsubscribeClaim
from activities.models import CartRecord, RecoveryClick, ReminderSend, Suppression
from activities.settings import Settings
from starter.web.app import create_app
from starter.web.links import form_action_source, restore_target
from starter.web.server import WebServer, bind, start_web_server
from starter.web.temporal import TemporalSignaller, TemporalUnavailable
from tests.conftest_db import ScratchDatabase, scratch_database
from tests.test_workflow_dev import eventually

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
KEY = "web-test-key-" + "k" * 40
LINKS = Links(KEY)
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
SHOP = "shop-1"
#: markup in the shop's name must come out escaped
SHOP_NAME = "Tea & <b>Cups</b>"
RESTORE = "https://shop.example/cart/{cart_id}?coupon={coupon}&src=reminder"
EMAIL = "Ann.Customer@Example.com"
TEN_EUR = CouponTerms(kind="fixed", amount=1000, currency="EUR", valid_days=3)


class FakeSignaller:
    """Records the signals; ``error`` makes every call fail, ``delay`` makes it slow."""

    def __init__(self, error: Exception | None = None, delay: float = 0.0) -> None:
        self.calls: list[tuple[str, str, str, str | None]] = []
        self.error = error
        self.delay = delay

    async def recovery_link_clicked(
        self, shop_id: str, cart_id: str, reminder_id: str, coupon_code: str | None
    ) -> None:
        self.calls.append((shop_id, cart_id, reminder_id, coupon_code))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error

    async def ping(self) -> None:
        if self.error is not None:
            raise self.error

    async def client(self) -> Client:
        raise TemporalUnavailable("the link tests have no Temporal")


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


def web_settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        **values,
    )


def make_app(
    db: ScratchDatabase, tmp_path: Path, signaller: Any = None, **settings: Any
) -> FastAPI:
    return create_app(
        web_settings(tmp_path, **settings),
        signaller=signaller or FakeSignaller(),
        session_factory=db.session_factory,
        links_signer=LINKS,
        now=lambda: NOW,
    )


@asynccontextmanager
async def client_of(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client,
    ):
        yield client


def recovery(cart_id: str = "cart-1", reminder: str = "first", shop: str = SHOP) -> str:
    return f"/r/{LINKS.recovery_token(RecoveryClaim(shop, cart_id, reminder))}"


def unsubscribe(email: str = EMAIL, shop: str = SHOP) -> str:
    return f"/u/{LINKS.unsubscribe_token(UnsubscribeClaim(shop, email))}"


def tampered(path: str) -> str:
    """``path`` with its signature changed: its first character (the last one may carry
    only base64 padding bits, and changing those changes nothing)."""
    head, signature = path.rsplit(".", 1)
    return f"{head}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"


@pytest.fixture
def signed_long_ago(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``signed_long_ago(days, make)``: a token made as if ``days`` ago."""

    def make(days: int, maker: Any) -> str:
        with monkeypatch.context() as patch:
            patch.setattr(
                TimestampSigner, "get_timestamp", lambda _self: int(time.time()) - days * 86400
            )
            return str(maker())

    yield make


async def add_cart(db: ScratchDatabase, cart_id: str, lineage: str | None) -> None:
    async with write_session(db.session_factory) as session:
        session.add(
            CartRecord(
                shop_id=SHOP,
                cart_id=cart_id,
                state="abandoned",
                version=3,
                currency="EUR",
                total=3050,
                item_count=2,
                order_paid=False,
                needs_admin=False,
                lineage=lineage,
                created_at=NOW - timedelta(hours=2),
                updated_at=NOW - timedelta(hours=1),
                projected_at=NOW - timedelta(hours=1),
                snapshot={},
            )
        )


async def add_campaign(db: ScratchDatabase, restore_url: str = RESTORE) -> None:
    config = CampaignConfig(shop_id=SHOP, shop_name=SHOP_NAME, restore_url=restore_url)
    await save_campaign(db.session_factory, config, NOW - timedelta(days=1))


async def count(db: ScratchDatabase, model: Any) -> int:
    async with db.session_factory() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def clicks(db: ScratchDatabase) -> list[RecoveryClick]:
    async with db.session_factory() as session:
        rows = await session.execute(select(RecoveryClick).order_by(RecoveryClick.id))
        return list(rows.scalars())


async def suppressions(db: ScratchDatabase) -> list[Suppression]:
    async with db.session_factory() as session:
        rows = await session.execute(select(Suppression).order_by(Suppression.email))
        return list(rows.scalars())


def html_of(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("text/html")
    assert "no-store" in response.headers["cache-control"]
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    # no external assets: nothing is loaded from anywhere
    assert not re.search(r"(src|href)=", response.text)
    return response.text


# --------------------------------------------------------------------------- refused links


async def test_bad_and_expired_links_are_refused_and_change_nothing(
    db: ScratchDatabase, tmp_path: Path, signed_long_ago: Any
) -> None:
    await add_cart(db, "cart-1", "run-1")
    await add_campaign(db)
    signaller = FakeSignaller()
    old_recovery = signed_long_ago(
        31, lambda: LINKS.recovery_token(RecoveryClaim(SHOP, "cart-1", "first"))
    )
    old_unsubscribe = signed_long_ago(
        3651, lambda: LINKS.unsubscribe_token(UnsubscribeClaim(SHOP, EMAIL))
    )
    foreign = Links("another-key-" + "x" * 40)
    async with client_of(make_app(db, tmp_path, signaller)) as client:
        for method, path in [
            ("GET", tampered(recovery())),
            ("GET", "/r/not-a-token"),
            ("GET", "/r/" + "a" * 5000),
            ("GET", f"/r/{foreign.recovery_token(RecoveryClaim(SHOP, 'cart-1', 'first'))}"),
            ("GET", "/r/" + unsubscribe().removeprefix("/u/")),  # the other purpose
            ("POST", tampered(recovery())),
            ("POST", "/r/" + unsubscribe().removeprefix("/u/")),
            ("GET", tampered(unsubscribe())),
            ("POST", tampered(unsubscribe())),
            ("POST", "/u/" + recovery().removeprefix("/r/")),
        ]:
            response = await client.request(
                method, path, data={"List-Unsubscribe": "One-Click"} if method == "POST" else None
            )
            assert response.status_code == 400, (method, path)
            assert "link_invalid" in html_of(response)
        for method, path in [
            ("GET", f"/r/{old_recovery}"),
            ("POST", f"/r/{old_recovery}"),
            ("POST", f"/u/{old_unsubscribe}"),
        ]:
            response = await client.request(method, path)
            assert response.status_code == 410, (method, path)
            assert "link_expired" in html_of(response)
        # a recovery link of 29 days still works, an unsubscribe link of 9 years too
        fresh_enough = signed_long_ago(
            29, lambda: LINKS.recovery_token(RecoveryClaim(SHOP, "cart-1", "first"))
        )
        assert (await client.post(f"/r/{fresh_enough}")).status_code == 303
        still_valid = signed_long_ago(
            9 * 365, lambda: LINKS.unsubscribe_token(UnsubscribeClaim(SHOP, EMAIL))
        )
        assert (await client.get(f"/u/{still_valid}")).status_code == 200
    assert len(signaller.calls) == 1, "only the good link reached the cart"
    assert len(await clicks(db)) == 1
    assert await count(db, Suppression) == 0


# --------------------------------------------------------------------------- recovery


async def test_a_click_is_recorded_signalled_and_redirected_with_the_coupon(
    db: ScratchDatabase, tmp_path: Path
) -> None:
    await add_cart(db, "cart-1", "run-1")
    await add_campaign(db)
    coupon = await issue(db.session_factory, SHOP, "cart-1", "first", TEN_EUR, NOW)
    signaller = FakeSignaller()
    async with client_of(make_app(db, tmp_path, signaller)) as client:
        first = await client.post(recovery("cart-1", "first"))
        again = await client.post(recovery("cart-1", "first"))
    for response in (first, again):
        assert response.status_code == 303
        assert response.headers["location"] == (
            f"https://shop.example/cart/cart-1?coupon={quote(coupon.code)}&src=reminder"
        )
        assert response.headers["cache-control"] == "no-store"
    recorded = await clicks(db)
    assert [(c.shop_id, c.cart_id, c.lineage, c.reminder_id) for c in recorded] == [
        (SHOP, "cart-1", "run-1", "first")
    ] * 2, "every click is kept, with the cart's lineage"
    assert all(c.clicked_at == NOW for c in recorded)
    assert signaller.calls == [(SHOP, "cart-1", "first", coupon.code)] * 2


async def test_opening_a_recovery_link_changes_nothing_until_the_browser_posts_it(
    db: ScratchDatabase, tmp_path: Path
) -> None:
    """Mail scanners fetch every link: the GET is a page that posts itself (a script with
    the page's nonce, a button without scripts); only the POST is a click."""
    await add_cart(db, "cart-1", "run-1")
    await add_campaign(db)
    signaller = FakeSignaller()
    async with client_of(make_app(db, tmp_path, signaller)) as client:
        fetched = [await client.get(recovery("cart-1", "first")) for _ in range(3)]
        head = await client.head(recovery("cart-1", "first"))
        assert await clicks(db) == [] and signaller.calls == [], "fetches are not clicks"
        clicked = await client.post(recovery("cart-1", "first"))
    page = fetched[0]
    assert page.status_code == 200 and head.status_code in (200, 405)
    html = html_of(page)
    assert '<form method="post" id="restore">' in html and "Continue to your cart" in html
    nonce = re.search(r'<script nonce="([^"]+)">', html)
    assert nonce is not None
    policy = page.headers["content-security-policy"]
    assert f"script-src 'nonce-{nonce.group(1)}'" in policy
    # the POST redirects to the shop: a form's redirect must be allowed by form-action
    assert "form-action 'self' https://shop.example;" in policy
    assert page.headers["cache-control"] == "no-store"
    assert len({html_of(r) for r in fetched}) == 3, "a new nonce for every page"
    assert clicked.status_code == 303
    assert len(await clicks(db)) == 1 and len(signaller.calls) == 1


async def test_the_ledger_names_the_coupon_and_an_unusable_one_is_not_handed_out(
    db: ScratchDatabase, tmp_path: Path
) -> None:
    await add_campaign(db)
    sessions = db.session_factory
    # the e-mail carried the coupon of the reminder's ledger row (this lineage)
    await add_cart(db, "cart-2", "run-2")
    sent = await issue(sessions, SHOP, "cart-2", "first:run-2", TEN_EUR, NOW)
    async with write_session(sessions) as session:
        for lineage, code in (("run-2", sent.code), ("run-old", "ZZZZ-ZZZZ")):
            session.add(
                ReminderSend(
                    shop_id=SHOP,
                    cart_id="cart-2",
                    lineage=lineage,
                    reminder_id="first",
                    status="sent",
                    coupon_code=code,
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
    # an expired coupon, and a cart without a row in the read model
    await issue(sessions, SHOP, "cart-3", "first", TEN_EUR, NOW - timedelta(days=4))
    signaller = FakeSignaller()
    async with client_of(make_app(db, tmp_path, signaller)) as client:
        ledger = await client.post(recovery("cart-2", "first"))
        expired = await client.post(recovery("cart-3", "first"))
        none = await client.post(recovery("cart-9", "second"))
    assert ledger.headers["location"].startswith(
        f"https://shop.example/cart/cart-2?coupon={sent.code}&"
    )
    assert expired.headers["location"] == "https://shop.example/cart/cart-3?coupon=&src=reminder"
    assert none.headers["location"] == "https://shop.example/cart/cart-9?coupon=&src=reminder"
    assert signaller.calls == [
        (SHOP, "cart-2", "first", sent.code),
        (SHOP, "cart-3", "first", None),
        (SHOP, "cart-9", "second", None),
    ]
    assert [c.lineage for c in await clicks(db)] == ["run-2", "", ""]


async def test_temporal_down_or_slow_still_redirects_and_keeps_the_click(
    db: ScratchDatabase, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await add_cart(db, "cart-1", "run-1")
    await add_campaign(db)
    for signaller in (
        FakeSignaller(error=TemporalUnavailable("cannot connect")),
        FakeSignaller(delay=30),
        TemporalSignaller(_unreachable),
    ):
        app = make_app(db, tmp_path, signaller)
        app.state.context.signal_timeout = 0.3
        started = time.monotonic()
        async with client_of(app) as client:
            response = await client.post(recovery())
        assert response.status_code == 303
        assert time.monotonic() - started < 5
    assert len(await clicks(db)) == 3
    assert "recovery click recorded, not signalled" in caplog.text
    assert "/r/" not in caplog.text, "tokens are never logged"


async def test_a_shop_without_a_campaign_gets_the_saved_page(
    db: ScratchDatabase, tmp_path: Path
) -> None:
    async with client_of(make_app(db, tmp_path)) as client:
        response = await client.post(recovery(shop="no-campaign"))
    assert response.status_code == 200
    assert "Your cart is saved" in html_of(response)
    assert len(await clicks(db)) == 1


def test_the_form_action_source_is_an_ascii_origin_without_credentials() -> None:
    assert form_action_source("https://shop.example/c/1?x=y") == "https://shop.example"
    assert form_action_source("http://shop.example:8443/c") == "http://shop.example:8443"
    assert form_action_source("https://例え.jp/cart") == "https://xn--r8jz45g.jp"
    assert form_action_source("https://user:pw@Shop.Example/c") == "https://shop.example"
    # what cannot be one origin: every http(s) origin, never a header injection
    assert form_action_source("https://shop.example;sandbox/c") == "https: http:"
    assert form_action_source("https://shop.example:99999/c") == "https: http:"


def test_restore_target_fills_in_encoded_values_and_refuses_other_schemes() -> None:
    template = "https://shop.example/c/{cart_id}?coupon={coupon}"
    assert restore_target(template, "a b/ü&x", "AB&C") == (
        "https://shop.example/c/a%20b%2F%C3%BC%26x?coupon=AB%26C"
    )
    assert restore_target(template, "c", None) == "https://shop.example/c/c?coupon="
    assert restore_target("javascript:alert(1)//{cart_id}", "c", None) is None
    assert restore_target("/relative/{cart_id}", "c", None) is None


# --------------------------------------------------------------------------- unsubscribe


async def test_unsubscribe_get_asks_and_changes_nothing(
    db: ScratchDatabase, tmp_path: Path
) -> None:
    await add_campaign(db)
    async with client_of(make_app(db, tmp_path)) as client:
        response = await client.get(unsubscribe())
    page = html_of(response)
    assert response.status_code == 200
    assert '<form method="post">' in page
    assert "Tea &amp; &lt;b&gt;Cups&lt;/b&gt;" in page and "<b>Cups" not in page
    assert EMAIL.lower() not in page.lower(), "the page never shows the address"
    assert await count(db, Suppression) == 0


async def test_unsubscribe_post_records_once_from_the_form_or_one_click(
    db: ScratchDatabase, tmp_path: Path
) -> None:
    await add_campaign(db)
    async with client_of(make_app(db, tmp_path)) as client:
        form = await client.post(unsubscribe(EMAIL), data={"confirm": "yes"})
        # the same address again, now by one-click: the first row stays
        repeat = await client.post(unsubscribe(EMAIL), data={"List-Unsubscribe": "One-Click"})
        # RFC 8058: one-click as form-urlencoded, and as multipart/form-data
        urlencoded = await client.post(
            unsubscribe("bob@example.com"),
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        multipart = await client.post(
            unsubscribe("carol@example.com"), files={"List-Unsubscribe": (None, "One-Click")}
        )
        empty = await client.post(unsubscribe("dan@example.com"))
    for response in (form, repeat, urlencoded, multipart, empty):
        assert response.status_code == 200
        page = html_of(response)
        assert "no more reminders from Tea &amp; &lt;b&gt;Cups&lt;/b&gt;" in page
        assert "@" not in page
    rows = {row.email: row for row in await suppressions(db)}
    assert {email: (row.source, row.reason) for email, row in rows.items()} == {
        "ann.customer@example.com": ("link", "unsubscribed"),
        "bob@example.com": ("one_click", "unsubscribed"),
        "carol@example.com": ("one_click", "unsubscribed"),
        "dan@example.com": ("link", "unsubscribed"),
    }
    assert all(row.shop_id == SHOP and row.created_at == NOW for row in rows.values())


async def test_concurrent_unsubscribes_record_one_row(db: ScratchDatabase, tmp_path: Path) -> None:
    async with client_of(make_app(db, tmp_path)) as client:
        answers = await asyncio.gather(
            *(client.post(unsubscribe(), data={"List-Unsubscribe": "One-Click"}) for _ in range(6))
        )
    assert [answer.status_code for answer in answers] == [200] * 6
    assert await count(db, Suppression) == 1


# --------------------------------------------------------------------------- health


async def _unreachable() -> Any:
    raise RuntimeError("Failed client connect: connection refused")


async def test_healthz_and_readyz(db: ScratchDatabase, tmp_path: Path) -> None:
    async with client_of(make_app(db, tmp_path)) as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ok",
        "checks": {"database": "ok", "temporal": "ok"},
        "failed": [],
    }
    app = make_app(db, tmp_path, TemporalSignaller(_unreachable))
    async with client_of(app) as client:
        down = await client.get("/readyz")
    assert down.status_code == 503
    assert down.json()["failed"] == ["temporal"]


async def test_readyz_and_links_when_the_database_is_unreachable(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = web_settings(tmp_path).model_copy(
        update={"database_url": f"postgresql+asyncpg://nobody@127.0.0.1:{port}/none"}
    )
    signaller = FakeSignaller()
    app = create_app(settings, signaller=signaller, links_signer=LINKS)
    async with client_of(app) as client:
        ready = await client.get("/readyz")
        click = await client.post(recovery())
        post = await client.post(unsubscribe())
        health = await client.get("/healthz")
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "unavailable",
        "checks": {"database": "unavailable", "temporal": "ok"},
        "failed": ["database"],
    }
    assert "nobody" not in ready.text, "no connection details in the answer"
    for response in (click, post):
        assert response.status_code == 503
        assert "database_unavailable" in html_of(response)
    assert signaller.calls == [], "nothing is signalled for a click that was not recorded"
    assert health.status_code == 200


# --------------------------------------------------------------------------- the server


async def test_the_embedded_server_serves_and_stops(tmp_path: Path, session_factory: Any) -> None:
    sock = bind("127.0.0.1", 0)
    app = create_app(
        web_settings(tmp_path),
        signaller=FakeSignaller(),
        session_factory=session_factory,
        links_signer=LINKS,
    )
    server = WebServer(app, sock)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/healthz")).json() == {"status": "ok"}
            assert (await client.get(recovery(shop="no-campaign"))).status_code == 200
    finally:
        await server.stop()
    assert server.task is not None and server.task.done()
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=server.url) as client:
            await client.get("/healthz")


async def test_the_server_answers_without_waiting_for_a_delayed_ack() -> None:
    """``bind`` gives a TCP socket whose connections asyncio sets ``TCP_NODELAY`` on:
    uvicorn writes a response's head and body separately, and with Nagle's algorithm on
    the body waited for the client's delayed ACK (~40 ms on every request)."""
    server_sock = bind("127.0.0.1", 0)
    assert server_sock.proto == socket.IPPROTO_TCP
    accepted: list[bool] = []

    async def on_connect(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        accepted.append(bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))
        writer.close()

    server = await asyncio.start_server(on_connect, sock=server_sock)
    try:
        _reader, writer = await asyncio.open_connection(*server_sock.getsockname()[:2])
        writer.close()
        for _ in range(100):
            if accepted:
                break
            await asyncio.sleep(0.01)
    finally:
        server.close()
        await server.wait_closed()
    assert accepted == [True]


async def test_dev_moves_off_a_taken_default_port_and_keeps_a_chosen_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import starter.web.server as web_server

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = web_settings(tmp_path, web_port=port)
        kept, same = await start_web_server(settings, client=None)  # type: ignore[arg-type]
        assert kept is None and same is settings, "a chosen port that is taken: not started"
        monkeypatch.setattr(web_server, "DEFAULT_WEB_PORT", port)
        moved, updated = await start_web_server(settings, client=None)  # type: ignore[arg-type]
        assert moved is not None
        try:
            assert updated.web_port == moved.port != port
            assert updated.public_url == moved.url == f"http://127.0.0.1:{moved.port}"
        finally:
            await moved.stop()
        explicit = web_settings(tmp_path, web_port=port, public_url="https://links.example")
        moved, updated = await start_web_server(explicit, client=None)  # type: ignore[arg-type]
        assert moved is not None
        await moved.stop()
        assert updated.public_url == "https://links.example", "a public_url you set is kept"


def test_public_url_is_checked() -> None:
    assert Settings(public_url="https://shop.example/links/").public_url == (
        "https://shop.example/links"
    )
    for bad in ("shop.example", "ftp://shop.example", "https://shop.example/?a=1"):
        with pytest.raises(ValueError):
            Settings(public_url=bad)


# --------------------------------------------------------------------------- the real workflow


async def test_a_click_brings_an_abandoned_cart_back(
    dev_env: Any, carts_with: Any, session_factory: Any, tmp_path: Path
) -> None:
    from temporalio import workflow as temporal_workflow

    from tests.conftest import new_id
    from workflows.cart_workflow import CartWorkflow
    from workflows.contract import (
        RECOVERY_LINK_CLICKED,
        Cart,
        CartLine,
        CartPolicy,
        CartState,
    )

    definition = temporal_workflow._Definition.must_from_class(CartWorkflow)
    if RECOVERY_LINK_CLICKED not in definition.signals:
        pytest.fail(f"the cart workflow has no {RECOVERY_LINK_CLICKED!r} signal handler yet")
    carts = carts_with(CartPolicy(abandon_after_seconds=1, projection_interval_seconds=0))
    shop, cart_id = "web-shop", new_id()
    await carts.update_cart(shop, cart_id, [CartLine("sku-1", "Tea", 2, 450)], "EUR")

    async def state() -> CartState:
        cart: Cart = await carts.get_cart(shop, cart_id)
        return cart.state

    await eventually(lambda: _is(state, CartState.ABANDONED), within=15)

    async def dev_client() -> Any:
        return dev_env.client

    app = create_app(
        web_settings(tmp_path),
        temporal_client_factory=dev_client,
        session_factory=session_factory,
        links_signer=LINKS,
    )
    async with client_of(app) as client:
        response = await client.post(recovery(cart_id, "first", shop=shop))
        ready = await client.get("/readyz")
    assert response.status_code == 200  # this shop has no campaign: the saved page
    assert ready.status_code == 200, ready.json()
    await eventually(lambda: _is(state, CartState.ACTIVE), within=15)
    cart = await carts.get_cart(shop, cart_id)
    assert cart.recovered_via == "first"
    async with session_factory() as session:
        lineages = (
            await session.execute(
                select(RecoveryClick.lineage).where(
                    RecoveryClick.shop_id == shop, RecoveryClick.cart_id == cart_id
                )
            )
        ).scalars()
        assert list(lineages) == [cart.lineage]


async def _is(read: Any, expected: Any) -> bool:
    return bool(await read() == expected)
