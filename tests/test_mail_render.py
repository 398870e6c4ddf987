"""Customer e-mail (``activities.mail_render``): templates per locale with a fallback,
amounts in the cart's currency and the customer's locale, autoescaped HTML with inlined
CSS, and the headers (List-Unsubscribe one-click, a stable Message-ID, Date); the whole
message through a real SMTP server and back."""

from __future__ import annotations

from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from activities.mail_render import (
    MailContent,
    MailCoupon,
    MailLine,
    MailRenderer,
    TemplateMissing,
    build_message,
    candidates,
    message_id,
    money,
)
from activities.smtp import SmtpConfig, send_message
from starter.mailbox import Mailbox, body
from starter.mailcatcher import MailCatcher

NOW = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)
LONG_LINK = "https://shop.example.com/unsubscribe?token=" + "a1B2c3D4" * 16


def content(locale: str = "en", currency: str = "EUR", **changes: object) -> MailContent:
    values: dict[str, object] = {
        "shop_name": "Demo Shop",
        "customer_name": "Ann",
        "locale": locale,
        "currency": currency,
        "lines": (MailLine("Blue mug", 2, 2400), MailLine("Tea, 100 g", 1, 650)),
        "total": 3050,
        "recovery_url": "https://shop.example.com/cart/restore?t=abc",
        "unsubscribe_url": "https://shop.example.com/unsubscribe?t=xyz",
        "coupon": MailCoupon("BACK10", amount=1000, expires_at=datetime(2026, 12, 3, tzinfo=UTC)),
    }
    values.update(changes)
    return MailContent(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "expected"),
    [
        (3050, "EUR", "en", "€30.50"),
        (3050, "EUR", "de", "30,50\xa0€"),
        (3050, "USD", "en_US", "$30.50"),
        (3050, "JPY", "ja", "￥3,050"),  # no minor units: 3050 yen
        (3050, "KWD", "en", "KWD3.050"),  # three decimals
        (123456789, "EUR", "de", "1.234.567,89\xa0€"),
        # ISO 4217's decimals, not babel's cash rounding (HUF 2, IQD 3)
        (123456, "HUF", "hu", "1\xa0234,56\xa0Ft"),
        (123456, "IQD", "en", "IQD123.456"),
    ],
)
def test_money_in_the_carts_currency_and_the_customers_locale(
    amount: int, currency: str, locale: str, expected: str
) -> None:
    assert money(amount, currency, locale) == expected


def test_an_unknown_currency_is_refused() -> None:
    for currency in ("XYZ", "eur", ""):
        with pytest.raises(ValueError):
            money(100, currency, "en")


def test_locales_fall_back() -> None:
    assert candidates("de_AT") == ["de_AT", "de", "en"]
    assert candidates("de-CH") == ["de_CH", "de", "en"]
    assert candidates("en") == ["en"]
    assert candidates("DE") == candidates("de.UTF-8") == ["de", "en"]
    assert candidates("sr_Latn_RS") == ["sr_Latn_RS", "sr_Latn", "sr_RS", "sr", "en"]
    for junk in ("", "zz", "/etc", "en/../de", "x" * 300):
        assert candidates(junk) == ["en"]
    renderer = MailRenderer()
    assert renderer.render("reminder", content("de_AT")).locale == "de"
    assert renderer.render("reminder", content("fr")).locale == "en"
    with pytest.raises(TemplateMissing):
        renderer.render("no-such-template", content())


def test_the_reminder_in_english() -> None:
    mail = MailRenderer().render("reminder", content())
    assert mail.subject == "Ann, your cart at Demo Shop is waiting"
    assert "- 2 \u00d7 Blue mug: €24.00" in mail.text
    assert "Total: €30.50" in mail.text
    assert "Use the code BACK10 for €10.00 off (valid until December 3, 2026)." in mail.text
    assert "https://shop.example.com/cart/restore?t=abc" in mail.text
    assert "Unsubscribe: https://shop.example.com/unsubscribe?t=xyz" in mail.text
    assert 'href="https://shop.example.com/cart/restore?t=abc"' in mail.html
    # CSS inlined for mail clients
    assert "<style>" not in mail.html
    assert 'style="' in mail.html and "background: #1a73e8" in mail.html


def test_the_reminder_in_german_in_the_carts_currency() -> None:
    mail = MailRenderer().render(
        "reminder", content("de", "CHF", coupon=MailCoupon("ZURUECK", percent=15))
    )
    assert mail.subject == "Ann, Ihr Warenkorb bei Demo Shop wartet"
    assert "Summe: 30,50\xa0CHF" in mail.text
    assert "Mit dem Code ZURUECK sparen Sie 15\xa0%." in mail.text


def test_html_is_escaped_and_text_is_not() -> None:
    mail = MailRenderer().render(
        "reminder",
        content(customer_name="<script>alert(1)</script>", coupon=None),
    )
    assert "<script>" not in mail.html and "&lt;script&gt;" in mail.html
    assert "Hello <script>alert(1)</script>," in mail.text
    assert "code" not in mail.text.lower().split("total")[1]  # no coupon paragraph
    anonymous = MailRenderer().render("reminder", content(customer_name=None))
    assert anonymous.subject.startswith("Hello, your cart")


def test_headers_and_a_stable_message_id() -> None:
    rendered = MailRenderer().render("reminder", content())
    kwargs = {
        "sender": ("Demo Shop", "shop@example.com"),
        "recipient": ("Ann", "ann@example.com"),
        "shop_id": "demo",
        "cart_id": "c-1",
        "unsubscribe_url": "https://shop.example.com/unsubscribe?t=xyz",
        "domain": "shop.example.com",
        "date": NOW,
    }
    first = build_message(rendered, key="reminder-1", **kwargs)  # type: ignore[arg-type]
    again = build_message(rendered, key="reminder-1", **kwargs)  # type: ignore[arg-type]
    other = build_message(rendered, key="reminder-2", **kwargs)  # type: ignore[arg-type]
    assert first["Message-ID"] == again["Message-ID"] != other["Message-ID"]
    assert first["Message-ID"] == message_id("demo", "c-1", "reminder-1", "shop.example.com")
    assert first["List-Unsubscribe"] == "<https://shop.example.com/unsubscribe?t=xyz>"
    assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert first["Date"] == "Mon, 30 Nov 2026 09:30:00 +0000"
    assert first["From"] == "Demo Shop <shop@example.com>"
    with pytest.raises(ValueError):
        build_message(rendered, key="k", **{**kwargs, "date": NOW.replace(tzinfo=None)})  # type: ignore[arg-type]


def test_what_cannot_go_into_a_header_is_refused_or_cleaned() -> None:
    rendered = MailRenderer().render("reminder", content())
    kwargs = {
        "sender": ("Demo Shop", "shop@example.com"),
        "shop_id": "demo",
        "cart_id": "c-1",
        "key": "reminder-1",
        "domain": "shop.example.com",
        "date": NOW,
    }
    for link in (
        "https://shop.example.com/u?t=1>, <mailto:evil@example.com",
        "javascript:alert(1)",
        "/relative/unsubscribe",
        "https://shop.example.com/u?t=a b",
    ):
        with pytest.raises(ValueError):
            build_message(
                rendered,
                recipient=("Ann", "ann@example.com"),
                unsubscribe_url=link,
                **kwargs,  # type: ignore[arg-type]
            )
    message = build_message(
        rendered,
        recipient=("Ann\r\nBcc: evil@example.com", "jürgen@exämple.de"),
        unsubscribe_url="https://shop.example.com/u?t=1",
        **kwargs,  # type: ignore[arg-type]
    )
    assert "Bcc" not in message and "\n" not in str(message["To"])
    assert message["To"].addresses[0].domain == "exämple.de"


async def test_the_whole_message_through_smtp(tmp_path: Path) -> None:
    rendered = MailRenderer().render("reminder", content("de"))
    message = build_message(
        rendered,
        sender=("Demo Shop", "shop@example.com"),
        recipient=("Ann Müller", "ann@example.com"),
        shop_id="demo",
        cart_id="c-1",
        key="reminder-1",
        unsubscribe_url=LONG_LINK,
        domain="shop.example.com",
        date=NOW,
    )
    async with MailCatcher(tmp_path, port=0) as catcher:
        await send_message(SmtpConfig(port=catcher.port, timeout_seconds=5), message)
    (stored,) = Mailbox(tmp_path).messages()
    raw = stored.path.read_bytes()
    # Sent as it is: one line, never folded or encoded (mail providers read it raw).
    assert f"List-Unsubscribe: <{LONG_LINK}>\r\n".encode() in raw
    received = BytesParser(policy=policy.default).parsebytes(raw)
    assert received["To"] == "Ann Müller <ann@example.com>"
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert received["Message-ID"] == message["Message-ID"]
    assert received["Content-Language"] == "de"
    text = body(received, "plain")  # type: ignore[arg-type]
    assert text is not None and "Summe: 30,50\xa0€" in text
    html = body(received, "html")  # type: ignore[arg-type]
    assert html is not None and "Bestellung abschließen" in html
