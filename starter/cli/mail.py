"""``cartkeeper mail``: the messages the local mail catcher of ``cartkeeper dev`` kept."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

import click

from starter.cli.common import CONTEXT_SETTINGS, echo, load_settings
from starter.cli.root import cli
from starter.errors import EXIT_NOT_FOUND, Failure

if TYPE_CHECKING:
    from starter.mailbox import Mailbox, StoredMail


@cli.group(context_settings=CONTEXT_SETTINGS)
def mail() -> None:
    """The e-mail that `cartkeeper dev` caught (its mail catcher relays nothing).

    Messages are kept in $CARTKEEPER_DATA_DIR/mail (default data/mail), one .eml file
    each, numbered from 1.
    """


def _mailbox() -> Mailbox:
    from starter.mailbox import Mailbox

    return Mailbox(load_settings().mail_dir)


def _found(number: int) -> tuple[Mailbox, StoredMail, EmailMessage]:
    from starter.mailbox import MailNotFound

    mailbox = _mailbox()
    try:
        return (mailbox, *mailbox.load(number))
    except MailNotFound as missing:
        raise Failure("mail_not_found", str(missing), EXIT_NOT_FOUND) from None


@mail.command("list", context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message.")
def list_mail(as_json: bool) -> None:
    """The caught messages, oldest first: number, time, recipients, subject."""
    from starter.output import dumps, safe

    mailbox = _mailbox()
    stored = mailbox.messages()
    if as_json:
        echo(dumps([item.as_json() for item in stored]))
        return
    if not stored:
        echo(f"no messages in {mailbox.directory}")
        return
    echo(f"{'ID':>4}  {'RECEIVED (UTC)':19}  {'TO':30}  SUBJECT")
    for item in stored:
        to = ", ".join(item.envelope_to)
        echo(
            f"{item.id:>4}  {item.received_at:%Y-%m-%d %H:%M:%S}  {safe(to)[:30]:30}"
            f"  {safe(item.subject)}"
        )


@mail.command(context_settings=CONTEXT_SETTINGS)
@click.argument("message_id", metavar="ID", type=click.IntRange(min=1))
@click.option("--html", "show_html", is_flag=True, help="Print the HTML part instead of the text.")
def show(message_id: int, show_html: bool) -> None:
    """Print message ID: its headers and its text (or HTML) part."""
    from starter.mailbox import body
    from starter.output import safe

    _, item, message = _found(message_id)
    for name in (
        "Date",
        "From",
        "To",
        "Subject",
        "Message-ID",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "Content-Language",
    ):
        for value in message.get_all(name, []):
            echo(f"{name}: {safe(value)}")
    echo(f"Envelope: {safe(item.envelope_from)} -> {safe(', '.join(item.envelope_to))}")
    echo()
    text = body(message, "html" if show_html else "plain")
    if text is None:
        kind = "HTML" if show_html else "text"
        echo(f"(no {kind} part; parts: {', '.join(_types(message))})")
        return
    for line in text.splitlines():
        echo(safe(line))


@mail.command("open", context_settings=CONTEXT_SETTINGS)
@click.argument("message_id", metavar="ID", type=click.IntRange(min=1))
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the HTML (default: next to the message, ID.html).",
)
def open_mail(message_id: int, output: Path | None) -> None:
    """Write message ID's HTML part to a file and print the file's path (open it in a
    browser)."""
    from starter.mailbox import body

    _, item, message = _found(message_id)
    html = body(message, "html")
    if html is None:
        raise Failure(
            "no_html_part",
            f"message {message_id} has no HTML part (parts: {', '.join(_types(message))})",
        )
    target = output or item.path.with_suffix(".html")
    try:
        target.write_text(html, encoding="utf-8")
    except OSError as error:
        raise Failure("cannot_write", f"{target}: {error.strerror or error}") from None
    echo(str(target.resolve()))


def _types(message: EmailMessage) -> list[str]:
    return [part.get_content_type() for part in message.walk()]
