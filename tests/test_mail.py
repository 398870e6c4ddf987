"""The local mail catcher (``starter.mailcatcher``) and ``cartkeeper mail list|show|open``:
messages sent with ``activities.smtp`` to the catcher are kept on disk and read back by
the CLI (a subprocess, as a user runs it)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest

from activities.smtp import SmtpConfig, send_message
from starter.mailbox import Mailbox
from starter.mailcatcher import MailCatcher

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "starter.cli"]


def reminder(subject: str, *, html: bool = True) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "Demo Shop <shop@example.com>"
    mail["To"] = "Ann Example <ann@example.com>"
    mail["Subject"] = subject
    mail["Message-ID"] = "<cart-7.reminder-1@demo.example.com>"
    mail["List-Unsubscribe"] = "<https://shop.example.com/u/abc>"
    mail.set_content("Your cart is waiting.\nIt holds 2 items.")
    if html:
        mail.add_alternative("<p>Your cart is <b>waiting</b>.</p>", subtype="html")
    return mail


def page_text(path: str) -> str:
    return Path(path).read_text()


async def cartkeeper(data_dir: Path, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTKEEPER_")}
    env["CARTKEEPER_DATA_DIR"] = str(data_dir)
    process = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_caught_mail_is_listed_shown_and_opened(tmp_path: Path) -> None:
    async with MailCatcher(tmp_path / "mail", port=0) as catcher:
        smtp = SmtpConfig(host="127.0.0.1", port=catcher.port, timeout_seconds=5)
        sent = await send_message(smtp, reminder("Your cart is waiting"))
        await send_message(smtp, reminder("Text only \x1b[31mred", html=False))
    assert sent.recipients == ("ann@example.com",)
    stored = Mailbox(tmp_path / "mail").messages()
    assert [item.id for item in stored] == [1, 2]
    assert stored[0].envelope_to == ("ann@example.com",)

    code, out, err = await cartkeeper(tmp_path, "mail", "list")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "RECEIVED", "(UTC)", "TO", "SUBJECT"]
    assert "Your cart is waiting" in lines[1] and lines[1].lstrip().startswith("1 ")
    assert "\x1b" not in out and "\\x1b[31mred" in lines[2]

    code, out, _ = await cartkeeper(tmp_path, "mail", "list", "--json")
    listed = json.loads(out)
    assert listed[0]["subject"] == "Your cart is waiting"
    assert listed[0]["envelope_to"] == ["ann@example.com"]

    code, out, _ = await cartkeeper(tmp_path, "mail", "show", "1")
    assert code == 0
    assert "Message-ID: <cart-7.reminder-1@demo.example.com>" in out
    assert "List-Unsubscribe: <https://shop.example.com/u/abc>" in out
    assert "Your cart is waiting.\nIt holds 2 items." in out

    code, out, _ = await cartkeeper(tmp_path, "mail", "show", "1", "--html")
    assert "<p>Your cart is <b>waiting</b>.</p>" in out

    code, out, _ = await cartkeeper(tmp_path, "mail", "open", "1")
    assert code == 0
    assert "<b>waiting</b>" in page_text(out.strip())

    code, _, err = await cartkeeper(tmp_path, "mail", "open", "2")
    assert code == 1 and err.startswith("error: no_html_part: message 2 has no HTML part")

    code, _, err = await cartkeeper(
        tmp_path, "mail", "open", "1", "--output", str(tmp_path / "no" / "such" / "dir.html")
    )
    assert code == 1 and err.startswith("error: cannot_write: ")

    code, _, err = await cartkeeper(tmp_path, "mail", "show", "9")
    assert code == 3 and err.startswith("error: mail_not_found: no message 9")


async def test_an_international_address_is_caught(tmp_path: Path) -> None:
    mail = reminder("Grüße")
    del mail["To"]
    mail["To"] = "Jürgen <jürgen@exämple.de>"
    async with MailCatcher(tmp_path / "mail", port=0) as catcher:
        sent = await send_message(SmtpConfig(port=catcher.port, timeout_seconds=5), mail)
    assert sent.recipients == ("jürgen@exämple.de",)
    (stored,) = Mailbox(tmp_path / "mail").messages()
    assert stored.envelope_to == ("jürgen@exämple.de",) and stored.subject == "Grüße"


async def test_an_empty_mailbox(tmp_path: Path) -> None:
    code, out, _ = await cartkeeper(tmp_path, "mail", "list")
    assert code == 0 and out.startswith("no messages in ")
    code, out, _ = await cartkeeper(tmp_path, "mail", "list", "--json")
    assert json.loads(out) == []


async def test_dev_starts_the_catcher_on_a_free_port_when_its_own_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from activities.settings import Settings
    from starter import dev
    from starter.dev import start_mail_catcher

    async with MailCatcher(tmp_path / "other", port=0) as occupant:
        # the default port (1025 outside this test) is taken by something else
        monkeypatch.setattr(dev, "DEFAULT_SMTP_PORT", occupant.port)
        settings = Settings(data_dir=tmp_path, smtp_port=occupant.port)
        catcher, used = await start_mail_catcher(settings)
        assert catcher is not None
        try:
            assert catcher.port != occupant.port and used.smtp_port == catcher.port
            await send_message(SmtpConfig.from_settings(used), reminder("to the worker's relay"))
        finally:
            await catcher.stop()
    assert [item.subject for item in Mailbox(tmp_path / "mail").messages()] == [
        "to the worker's relay"
    ]


async def test_dev_leaves_a_local_relay_on_a_port_of_your_choice_alone(tmp_path: Path) -> None:
    from activities.settings import Settings
    from starter.dev import start_mail_catcher

    async with MailCatcher(tmp_path / "relay", port=0) as relay:
        settings = Settings(data_dir=tmp_path, smtp_port=relay.port)
        catcher, used = await start_mail_catcher(settings)
    assert catcher is None and used is settings


async def test_dev_catches_nothing_when_a_real_relay_is_configured(tmp_path: Path) -> None:
    from activities.settings import Settings
    from starter.dev import start_mail_catcher

    settings = Settings(data_dir=tmp_path, smtp_host="smtp.example.com", smtp_port=587)
    catcher, used = await start_mail_catcher(settings)
    assert catcher is None and used is settings
