"""The console's outbox: messages sent over SMTP (``activities.smtp``) to the local mail
catcher (``starter.mailcatcher``) are listed newest first and shown (headers, text, the
HTML part's links); the HTML part is served alone, sandboxed without scripts, and never
put into a console page; without a mailbox the page says so."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from activities.settings import Settings
from activities.smtp import SmtpConfig, send_message
from starter.mailcatcher import MailCatcher
from starter.web import admin_outbox, admin_users
from starter.web.app import create_app
from tests.admin_fixtures import PASSWORD, browser, sign_in
from tests.conftest_db import ScratchDatabase, scratch_database
from tests.test_web_admin_carts import section
from tests.test_web_links import FakeSignaller

EVIL_HTML = (
    "<html><head><script>document.title='ran'</script></head><body>"
    '<p onclick="steal()">Your cart is <b>waiting</b>.</p>'
    '<img src="https://tracker.example.com/pixel.gif" onerror="alert(1)">'
    '<a href="https://shop.example.com/r/abc?x=1&amp;y=2">Back to your cart</a>'
    '<a href="javascript:alert(2)">not a link</a>'
    '<a href="https://shop.example.com/u/abc">Unsubscribe</a>'
    "</body></html>"
)


@dataclass
class Outbox:
    app: FastAPI
    settings: Settings


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database("sqlite", tmp_path) as database:
        yield database


@pytest.fixture
async def outbox(db: ScratchDatabase, tmp_path: Path) -> Outbox:
    await admin_users.add_user(db.session_factory, "vic", PASSWORD, role="viewer")
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        secret_key=SecretStr("m" * 40),
    )
    app = create_app(settings, signaller=FakeSignaller(), session_factory=db.session_factory)
    return Outbox(app, settings)


@pytest.fixture
async def client(outbox: Outbox) -> AsyncIterator[httpx.AsyncClient]:
    async with browser(outbox.app) as signed_in:
        assert (await sign_in(signed_in, "vic")).status_code == 303
        yield signed_in


def reminder(subject: str, *, html: str | None = EVIL_HTML) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "Demo Shop <shop@example.com>"
    mail["To"] = "Ann Example <ann@example.com>"
    mail["Subject"] = subject
    mail["Message-ID"] = "<cart-7.reminder-1@demo.example.com>"
    mail["List-Unsubscribe"] = "<https://shop.example.com/u/abc>"
    mail.set_content("Your cart is waiting.\nGo back: https://shop.example.com/r/abc")
    if html is not None:
        mail.add_alternative(html, subtype="html")
    return mail


async def catch(settings: Settings, *messages: EmailMessage) -> None:
    """Send ``messages`` through SMTP to a mail catcher on the settings' mailbox."""
    async with MailCatcher(settings.mail_dir, port=0) as catcher:
        smtp = SmtpConfig(host="127.0.0.1", port=catcher.port, timeout_seconds=5)
        for message in messages:
            await send_message(smtp, message)


def listed(html: str) -> list[str]:
    return re.findall(r'<tr data-message="(\d+)">', html)


async def test_without_a_mail_catcher_the_outbox_says_so(
    outbox: Outbox, client: httpx.AsyncClient
) -> None:
    assert not outbox.settings.mail_dir.exists()
    page = await client.get("/admin/outbox")
    assert page.status_code == 200
    assert "No mail catcher is in use" in page.text and str(outbox.settings.mail_dir) in page.text
    for path in ("/admin/outbox/1", "/admin/outbox/1/html"):
        assert (await client.get(path)).status_code == 404


async def test_caught_messages_are_listed_newest_first_and_shown(
    outbox: Outbox, client: httpx.AsyncClient
) -> None:
    await catch(
        outbox.settings,
        reminder("Your cart is waiting"),
        reminder("<b>Text</b> only", html=None),
    )
    page = await client.get("/admin/outbox")
    assert page.status_code == 200 and "No mail catcher" not in page.text
    assert listed(page.text) == ["2", "1"]
    assert "&lt;b&gt;Text&lt;/b&gt; only" in page.text and "<b>Text</b>" not in page.text
    assert "ann@example.com" in page.text and "2 messages" in page.text

    shown = await client.get("/admin/outbox/1")
    assert shown.status_code == 200
    html = shown.text
    headers = section(html, "headers")
    assert "Your cart is waiting" in headers and "Demo Shop &lt;shop@example.com&gt;" in headers
    assert "&lt;https://shop.example.com/u/abc&gt;" in headers  # List-Unsubscribe
    assert "text/plain" in headers and "text/html" in headers
    assert "Go back: https://shop.example.com/r/abc" in section(html, "text")
    # the HTML part is only ever framed, sandboxed; never in the console's page
    assert "document.title" not in html and "onerror" not in html and "steal()" not in html
    frame = re.search(r"<iframe [^>]*>", html)
    assert frame is not None
    assert 'src="/admin/outbox/1/html"' in frame.group(0) and 'sandbox=""' in frame.group(0)
    assert "frame-src 'self'" in shown.headers["content-security-policy"]
    links = section(html, "html")
    assert 'href="https://shop.example.com/r/abc?x=1&amp;y=2"' in links
    assert 'href="https://shop.example.com/u/abc"' in links and "javascript:" not in links

    part = await client.get("/admin/outbox/1/html")
    assert part.status_code == 200 and part.headers["content-type"].startswith("text/html")
    assert "<script>document.title='ran'</script>" in part.text  # as sent, but inert:
    policy = [p.strip() for p in part.headers["content-security-policy"].split(";")]
    assert policy[0] == "sandbox"  # no allow-scripts: nothing in it runs
    assert "default-src 'none'" in policy and "frame-ancestors 'self'" in policy
    assert not any("script" in p or "https:" in p for p in policy)
    assert part.headers["x-content-type-options"] == "nosniff"

    text_only = await client.get("/admin/outbox/2")
    assert text_only.status_code == 200 and "No HTML part." in text_only.text
    assert "<iframe" not in text_only.text
    assert (await client.get("/admin/outbox/2/html")).status_code == 404


async def test_the_outbox_pages_and_refuses_what_it_cannot_read(
    outbox: Outbox, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await catch(outbox.settings, *(reminder(f"Message {n}", html=None) for n in range(1, 6)))
    monkeypatch.setattr(admin_outbox, "PAGE_SIZE", 2)
    seen: list[str] = []
    url: str | None = "/admin/outbox"
    while url is not None:
        page = await client.get(url)
        assert page.status_code == 200
        seen += listed(page.text)
        found = re.search(r'<a href="([^"]+)" rel="next">', page.text)
        url = found.group(1) if found else None
    assert seen == ["5", "4", "3", "2", "1"]
    assert (await client.get("/admin/outbox", params={"before": "x"})).status_code == 400
    for path in ("/admin/outbox/6", "/admin/outbox/0", "/admin/outbox/abc", "/admin/outbox/-1"):
        response = await client.get(path)
        assert response.status_code == 404 and "No such message" in response.text, path


async def test_the_outbox_needs_a_session(outbox: Outbox) -> None:
    await catch(outbox.settings, reminder("Private"))
    async with browser(outbox.app) as anonymous:
        for path in ("/admin/outbox", "/admin/outbox/1", "/admin/outbox/1/html"):
            response = await anonymous.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/admin/login?next=")
            assert "Private" not in response.text
