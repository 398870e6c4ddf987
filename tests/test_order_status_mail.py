"""The order status e-mail (``activities.order_activities.send_order_status_mail``): once
per (shop, cart, lineage, entry, recipient) through a real SMTP server (aiosmtpd),
whatever the retries; to the customer in their locale, or to the orders department (else
the admins); the template per status and locale; hostile names escaped; the relay's
refusals and outages. On SQLite and PostgreSQL (``TEST_DATABASE_URL``)."""

from __future__ import annotations

import dataclasses
import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.exceptions import ApplicationError

from activities import admin_mail
from activities.campaigns import update_campaign
from activities.mail_render import TEMPLATES, TemplateMissing
from activities.models import AdminNotice
from activities.order_activities import OrderActivities, status_mail_key
from activities.order_mail import StatusTemplates
from activities.settings import Settings
from starter.devserver import free_port
from tests import admin_mail_fixtures
from tests.admin_mail_fixtures import ADMINS, mail_activity_env, parts, received, settings_for
from tests.conftest_db import ScratchDatabase
from tests.test_smtp import Handler, smtp_server
from workflows.events import CartLine
from workflows.order_contract import StatusMailInput
from workflows.order_state import MAIL_SENT, MAIL_SKIPPED, Delivery

db = admin_mail_fixtures.db  # the read model, on SQLite and PostgreSQL

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
CUSTOMER = "ann.customer@example.org"
DEPARTMENT = ["orders@shop.example", "packing@shop.example"]


def mail_input(**changes: Any) -> StatusMailInput:
    values: dict[str, Any] = {
        "shop_id": "demo",
        "cart_id": "c-1",
        "lineage": "run-1",
        "entry": 2,
        "recipient": "customer",
        "letter": "P",
        "status_name": "Processed",
        "order_number": 1042,
        "total": 5400,
        "currency": "EUR",
        "amount_paid": 5400,
        "lines": [CartLine("mug", "Mug", 2, 1200), CartLine("tee", "Tee", 1, 2500)],
        "customer_email": CUSTOMER,
        "customer_name": "Ann Customerova",
        "locale": "en",
        "delivery": Delivery(
            method="DHL",
            cost=500,
            tracking_code="JJD0099887766",
            recipient_name="Ann Customerova",
            country="DE",
            city="Berlin",
            postal_code="10115",
            address="Invalidenstr. 1",
        ),
        "set_by": "ann-admin",
        "note": "paid by bank transfer",
    }
    values.update(changes)
    return StatusMailInput(**values)


def acts(db: ScratchDatabase, port: int, tmp_path: Path, **changes: Any) -> OrderActivities:
    return OrderActivities(
        db.session_factory, settings_for(port, tmp_path, **changes), clock=lambda: NOW
    )


def ours(caplog: pytest.LogCaptureFixture) -> str:
    """What cartkeeper and the SDK logged (the test relay logs whole messages)."""
    return "\n".join(
        record.getMessage() for record in caplog.records if not record.name.startswith("mail.log")
    )


async def send(activities: OrderActivities, request: StatusMailInput) -> Any:
    return await mail_activity_env().run(activities.send_order_status_mail, request)


async def test_the_customer_mail_is_sent_once_per_key(db: ScratchDatabase, tmp_path: Path) -> None:
    handler = Handler()
    async with smtp_server(handler) as port:
        activities = acts(db, port, tmp_path)
        first = await send(activities, mail_input())
        again = await send(activities, mail_input())  # a retry, a replay
        # another entry, another recipient, another lineage: other e-mails
        other_entry = await send(activities, mail_input(entry=3))
        other_lineage = await send(activities, mail_input(lineage="run-2"))
    assert first.outcome == again.outcome == MAIL_SENT
    assert (first.entry, first.recipient, first.reason) == (2, "customer", None)
    assert again.message_id == first.message_id
    assert len({first.message_id, other_entry.message_id, other_lineage.message_id}) == 3
    assert len(handler.received) == 3
    message = received(handler)[0]
    assert handler.received[0].rcpt_tos == [CUSTOMER]
    assert message["Message-ID"] == first.message_id
    assert message["To"] == f"Ann Customerova <{CUSTOMER}>"
    assert message["From"] == "demo <alerts@shop.example.com>"  # no campaign: id and sender
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Content-Language"] == "en"
    assert str(message["Subject"]) == "demo: order 1042 is now Processed"
    text, html = parts(message)
    for body in (text, html):
        assert "Hello Ann Customerova" in body and "Processed" in body and "1042" in body
        assert "€24.00" in body and "€25.00" in body and "€54.00" in body  # lines, total
        assert "€5.00" in body and "DHL" in body  # delivery
        assert "Invalidenstr. 1" in body and "10115 Berlin" in body
        assert "paid by bank transfer" not in body, "the admin's note is not the customer's"
    async with db.session_factory() as session:
        notice = await session.get(AdminNotice, ("demo", status_mail_key(mail_input())))
        assert notice is not None and notice.kind == "order_status_mail"
        assert notice.sent_at == NOW


async def test_the_shop_signs_with_its_campaign_name_and_sender(
    db: ScratchDatabase, tmp_path: Path
) -> None:
    await update_campaign(
        db.session_factory,
        "demo",
        {"shop_name": "Mugs & More", "sender": "hello@mugs.example"},
        now=NOW,
    )
    handler = Handler()
    async with smtp_server(handler) as port:
        await send(acts(db, port, tmp_path), mail_input())
    (message,) = received(handler)
    assert message["From"] == "Mugs & More <hello@mugs.example>"
    assert str(message["Subject"]).startswith("Mugs & More: order 1042")


@pytest.mark.parametrize("email", [None, "", "   "])
async def test_a_customer_without_an_address_is_skipped(
    db: ScratchDatabase, tmp_path: Path, email: str | None
) -> None:
    handler = Handler()
    async with smtp_server(handler) as port:
        result = await send(acts(db, port, tmp_path), mail_input(customer_email=email))
    assert (result.outcome, result.reason) == (MAIL_SKIPPED, "no_address")
    assert handler.received == []


async def test_an_address_that_is_not_one_is_skipped(db: ScratchDatabase, tmp_path: Path) -> None:
    handler = Handler()
    async with smtp_server(handler) as port:
        result = await send(
            acts(db, port, tmp_path), mail_input(customer_email="ann\r\nBcc: x@evil.example")
        )
    assert (result.outcome, result.reason) == (MAIL_SKIPPED, "invalid_address")
    assert handler.received == []


async def test_the_department_gets_its_own_mail_without_personal_data(
    db: ScratchDatabase, tmp_path: Path
) -> None:
    handler = Handler()
    async with smtp_server(handler) as port:
        activities = acts(db, port, tmp_path, order_departments={"demo": DEPARTMENT})
        to_department = mail_input(recipient="department")
        first = await send(activities, to_department)
        again = await send(activities, to_department)
        to_customer = await send(activities, mail_input())
    assert first.outcome == again.outcome == to_customer.outcome == MAIL_SENT
    assert first.message_id == again.message_id != to_customer.message_id
    assert len(handler.received) == 2
    assert sorted(handler.received[0].rcpt_tos) == sorted(DEPARTMENT)
    message = received(handler)[0]
    assert str(message["Subject"]) == "[cartkeeper] demo: order 1042 is now Processed (P)"
    assert message["Content-Language"] == "en"
    text, html = parts(message)
    for body in (text, html):
        assert "c-1" in body and "ann-admin" in body and "paid by bank transfer" in body
        assert "€54.00" in body and "DHL" in body and "JJD0099887766" in body
        assert "cartkeeper carts show c-1 --shop demo" in body
    raw = handler.received[0].content
    assert isinstance(raw, bytes)
    for personal in (CUSTOMER, "Ann Customerova", "Invalidenstr", "Berlin"):
        assert personal not in raw.decode() and personal not in text and personal not in html


async def test_the_department_falls_back_to_the_admins(db: ScratchDatabase, tmp_path: Path) -> None:
    handler = Handler()
    async with smtp_server(handler) as port:
        result = await send(acts(db, port, tmp_path), mail_input(recipient="department"))
    assert result.outcome == MAIL_SENT
    assert sorted(handler.received[0].rcpt_tos) == sorted(ADMINS)


async def test_no_department_and_no_admins_is_skipped(db: ScratchDatabase, tmp_path: Path) -> None:
    handler = Handler()
    async with smtp_server(handler) as port:
        activities = acts(db, port, tmp_path, shop_admins={"other": ["a@example.com"]})
        result = await send(activities, mail_input(recipient="department"))
    assert (result.outcome, result.reason) == (MAIL_SKIPPED, "no_department")
    assert handler.received == []


def test_the_departments_setting_is_checked(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        order_departments={"demo": [" orders@shop.example", "orders@shop.example"], "x": []},
        shop_admins={"x": ["admin@x.example"]},
    )
    assert settings.department_for("demo") == ["orders@shop.example"]
    assert settings.department_for("x") == ["admin@x.example"]  # empty: the admins
    assert settings.department_for("nobody") == []
    with pytest.raises(ValidationError, match="is not an e-mail address"):
        Settings(data_dir=tmp_path, order_departments={"demo": ["orders <o@shop.example>"]})


# --------------------------------------------------------------------------- templates


@pytest.mark.parametrize(
    ("changes", "subject", "language", "says"),
    [
        (
            {"letter": "S", "status_name": "Shipped"},
            "demo: order 1042 is on its way (Shipped)",
            "en",
            ["Tracking code", "JJD0099887766", "€54.00"],
        ),
        (
            {"letter": "S", "status_name": "Versandt", "locale": "de-AT"},
            "demo: Bestellung 1042 ist unterwegs (Versandt)",
            "de",
            ["Sendungsnummer", "JJD0099887766", "54,00"],
        ),
        (
            {"letter": "I", "status_name": "Storniert", "locale": "de"},
            "demo: Bestellung 1042 ist storniert (Storniert)",
            "de",
            ["erstatten wir Ihnen", "Die Bestellung war"],
        ),
        (
            {"letter": "I", "status_name": "Cancelled", "locale": None},
            "demo: order 1042 is cancelled (Cancelled)",
            "en",
            ["will be refunded", "The order was"],
        ),
        (
            {"letter": "C", "status_name": "Abgeschlossen", "locale": "de_DE"},
            "demo: Bestellung 1042 ist jetzt Abgeschlossen",
            "de",
            ["der Status Ihrer Bestellung", "54,00"],
        ),
        (
            {"letter": "S", "status_name": "Expédiée", "locale": "fr"},
            "demo: order 1042 is on its way (Expédiée)",  # no French S: the English one
            "en",
            ["Tracking code", "54,00"],  # amounts still in the customer's locale
        ),
    ],
)
async def test_the_template_per_status_and_locale(
    db: ScratchDatabase,
    tmp_path: Path,
    changes: dict[str, Any],
    subject: str,
    language: str,
    says: list[str],
) -> None:
    handler = Handler()
    async with smtp_server(handler) as port:
        result = await send(acts(db, port, tmp_path), mail_input(**changes))
    assert result.outcome == MAIL_SENT
    (message,) = received(handler)
    assert str(message["Subject"]) == subject
    assert message["Content-Language"] == language
    text, html = parts(message)
    for body in (text, html):
        for words in says:
            assert words in body


def test_the_lookup_order_of_the_templates(tmp_path: Path) -> None:
    root = tmp_path / "templates"
    shutil.copytree(TEMPLATES, root)
    folder = root / "status"

    def add(name: str) -> None:
        for suffix in (".subject.txt", ".txt", ".html"):
            (folder / f"{name}{suffix}").write_text("{{ status_name }}\n")

    templates = StatusTemplates(root)
    assert templates.choose("S", "de_AT") == ("S.de", "de")
    assert templates.choose("S", "pt") == ("S.en", "en")
    assert templates.choose("B", "de") == ("default.de", "de")
    assert templates.choose("B", "pt_BR") == ("default.en", "en")
    assert templates.choose("B", None) == ("default.en", "en")
    assert templates.choose("B", "nonsense!") == ("default.en", "en")
    add("S.de_AT")
    add("S")  # one template in every language: before English, after the customer's
    add("default")
    assert templates.choose("S", "de_AT") == ("S.de_AT", "de_AT")
    assert templates.choose("S", "de_CH") == ("S.de", "de")
    assert templates.choose("S", "pt") == ("S", None)
    assert templates.choose("S", "en_GB") == ("S.en", "en")
    assert templates.choose("B", "pt") == ("default", None)
    assert templates.choose("B", "de") == ("default.de", "de")
    with pytest.raises(TemplateMissing):
        templates.choose("../x", "en")
    for name in ("default.en", "default.de", "default"):
        for suffix in (".subject.txt", ".txt", ".html"):
            (folder / f"{name}{suffix}").unlink()
    with pytest.raises(TemplateMissing):
        templates.choose("B", "en")


async def test_hostile_names_are_escaped_in_html_and_kept_out_of_headers(
    db: ScratchDatabase, tmp_path: Path
) -> None:
    hostile = '<script>alert("x")</script>'
    handler = Handler()
    async with smtp_server(handler) as port:
        result = await send(
            acts(db, port, tmp_path),
            mail_input(
                customer_name=f"Ann\r\nBcc: victim@example.org {hostile}",
                status_name=f"Paid {hostile}",
                lines=[CartLine("x", f"Mug {hostile}", 1, 5400)],
                delivery=Delivery(recipient_name=hostile, tracking_code=hostile),
                letter="S",
            ),
        )
    assert result.outcome == MAIL_SENT
    assert handler.received[0].rcpt_tos == [CUSTOMER], "no address slipped in from a name"
    (message,) = received(handler)
    assert message["Bcc"] is None
    text, html = parts(message)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert hostile in text  # the text part is not HTML: shown as it is
    assert "\n" not in str(message["Subject"]) and "\n" not in str(message["To"])


# --------------------------------------------------------------------------- the relay


async def test_a_relay_refusal_is_a_skip_without_the_address(
    db: ScratchDatabase, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    handler = Handler(refuse=frozenset({CUSTOMER}))
    caplog.set_level(logging.DEBUG)
    async with smtp_server(handler) as port:
        result = await send(acts(db, port, tmp_path), mail_input())
    assert (result.outcome, result.reason) == (MAIL_SKIPPED, "send_failed")
    assert result.detail is not None and "smtp_refused" in result.detail
    assert "550" in result.detail and CUSTOMER not in result.detail
    assert handler.received == []
    for personal in (CUSTOMER, "Ann Customerova", "Invalidenstr"):
        assert personal not in ours(caplog), "no personal data in logs"


async def test_a_relay_that_is_down_is_retried_and_sends_once(
    db: ScratchDatabase, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    activities = acts(db, free_port(), tmp_path)
    with pytest.raises(ApplicationError) as down:
        await send(activities, mail_input())
    assert down.value.type == "smtp_unavailable" and not down.value.non_retryable
    assert CUSTOMER not in str(down.value)
    handler = Handler(rcpt_answer="451 4.3.0 try again later")
    async with smtp_server(handler) as port:
        activities.smtp = dataclasses.replace(activities.smtp, port=port)
        with pytest.raises(ApplicationError) as later:
            await send(activities, mail_input())
        assert later.value.type == "smtp_unavailable" and not later.value.non_retryable
        assert CUSTOMER not in str(later.value)
        handler.rcpt_answer = None  # the relay is back: Temporal's retry
        sent = await send(activities, mail_input())
        again = await send(activities, mail_input())
    assert sent.outcome == again.outcome == MAIL_SENT
    assert len(handler.received) == 1
    for personal in (CUSTOMER, "Ann Customerova"):
        assert personal not in ours(caplog)


async def test_a_retry_after_the_relay_accepted_resends_the_same_message(
    db: ScratchDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ledger lost after the relay took the message (a crash, the database): its
    claim holds (the message may be out: a retry meanwhile raises a retryable ``sending``);
    once it has expired the retry sends it again, with the same Message-ID, and then
    records it."""
    real_mark_sent = admin_mail.mark_sent
    failures = [RuntimeError("the database went away")]

    async def mark_sent_failing_once(*args: Any) -> None:
        if failures:
            raise failures.pop()
        await real_mark_sent(*args)

    monkeypatch.setattr(admin_mail, "mark_sent", mark_sent_failing_once)
    handler = Handler()
    async with smtp_server(handler) as port:
        activities = acts(db, port, tmp_path)
        with pytest.raises(RuntimeError):
            await send(activities, mail_input())
        with pytest.raises(ApplicationError) as held:
            await send(activities, mail_input())
        assert held.value.type == "sending" and not held.value.non_retryable
        activities.clock = lambda: NOW + admin_mail.CLAIM_FOR  # Temporal's later retry
        retried = await send(activities, mail_input())
        again = await send(activities, mail_input())
    first, second = received(handler)
    assert first["Message-ID"] == second["Message-ID"] == retried.message_id == again.message_id
    assert len(handler.received) == 2, "the window no SMTP client can close, nothing more"


async def test_an_order_without_a_currency_is_a_skip(db: ScratchDatabase, tmp_path: Path) -> None:
    handler = Handler()
    async with smtp_server(handler) as port:
        result = await send(acts(db, port, tmp_path), mail_input(currency=None))
    assert (result.outcome, result.reason) == (MAIL_SKIPPED, "send_failed")
    assert result.detail is not None and "no currency" in result.detail
    assert handler.received == []


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"letter": "../S"}, "invalid_status_mail"),
        ({"letter": "s"}, "invalid_status_mail"),
        ({"recipient": "everyone"}, "invalid_status_mail"),
        ({"entry": 0}, "invalid_status_mail"),
        ({"cart_id": "a b"}, "invalid_status_mail"),
        ({"lineage": "x" * 129}, "invalid_status_mail"),
        ({"lineage": "run 1"}, "invalid_status_mail"),
        ({"shop_id": "bad shop"}, "invalid_shop_id"),
    ],
)
async def test_an_invalid_request_is_refused_for_good(
    db: ScratchDatabase, tmp_path: Path, changes: dict[str, Any], code: str
) -> None:
    handler = Handler()
    async with smtp_server(handler) as port:
        with pytest.raises(ApplicationError) as refused:
            await send(acts(db, port, tmp_path), mail_input(**changes))
    assert refused.value.type == code and refused.value.non_retryable
    assert handler.received == []


async def test_the_longest_ids_fit_the_ledger(db: ScratchDatabase, tmp_path: Path) -> None:
    longest = mail_input(cart_id="c" * 64, lineage="0123abcd-" * 14 + "xy", entry=10**9 - 1)
    assert len(longest.lineage) == 128
    handler = Handler()
    async with smtp_server(handler) as port:
        activities = acts(db, port, tmp_path, order_departments={"demo": DEPARTMENT})
        first = await send(activities, dataclasses.replace(longest, recipient="department"))
        again = await send(activities, dataclasses.replace(longest, recipient="department"))
    assert first.outcome == again.outcome == MAIL_SENT and len(handler.received) == 1
