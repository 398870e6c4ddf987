"""The console's outbox: the messages the local mail catcher of ``cartkeeper dev`` received
(``starter.mailcatcher``; kept in ``Settings.mail_dir`` by ``starter.mailbox``, what
``cartkeeper mail list|show`` reads).

    GET /admin/outbox                 the messages, newest first, a page at a time
                                      (``?before=ID``: those received before message ID)
    GET /admin/outbox/{message_id}    one message: its headers, envelope and parts, the
                                      text part, the links of the HTML part, and the HTML
                                      part in a sandboxed frame
    GET /admin/outbox/{message_id}/html   the HTML part alone, for that frame

The HTML part is the e-mail's own markup (reminders show customers' carts): it is never
put into a console page. Its route answers it with a Content-Security-Policy that
``sandbox``es it without scripts (an opaque origin: no cookies, no forms, no script, no
plugin), loads nothing from elsewhere (no remote images: no tracking) and lets only the
console frame it; the frame is ``sandbox``ed too. Without a mailbox directory (no mail
catcher in use: mail goes to a real relay) the page says so.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from starter.mailbox import Mailbox, MailNotFound, StoredMail, body
from starter.web.admin_auth import AdminRefused, Viewer
from starter.web.admin_render import ADMIN_CSP, render_admin, whole_number
from starter.web.deps import Context, WebContext

router = APIRouter(tags=["admin"], include_in_schema=False)

PAGE_SIZE = 50
#: the largest message number the routes read
MAX_ID = 10**9
#: the text part is shown up to this many characters
TEXT_LIMIT = 200_000
#: the links of the HTML part listed at most
MAX_LINKS = 50
#: the headers a message's page shows, in this order
HEADERS = (
    "Date",
    "From",
    "To",
    "Cc",
    "Reply-To",
    "Subject",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Content-Language",
)
#: the HTML part: sandboxed (no scripts, an opaque origin), nothing loaded from
#: elsewhere, framed by the console only
HTML_CSP = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:;"
    " form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
)
HTML_HEADERS = {
    "Content-Security-Policy": HTML_CSP,
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
}
#: a message's page frames its HTML part (the console's own pages frame nothing)
MESSAGE_CSP = ADMIN_CSP + "; frame-src 'self'"


def mailbox_of(context: WebContext) -> Mailbox | None:
    """The mail catcher's mailbox, or ``None`` when there is none (no directory)."""
    settings = context.settings
    if settings is None:
        return None
    directory = settings.mail_dir
    return Mailbox(directory) if directory.is_dir() else None


def _numbers(directory: Path) -> list[int]:
    """The numbers of the stored messages (``NNNNNN.eml``), oldest first."""
    return sorted(int(path.stem) for path in directory.glob("*.eml") if whole_number(path.stem))


# --------------------------------------------------------------------------- the list


@dataclass(frozen=True)
class Listed:
    id: int
    received_at: datetime
    to: str
    sender: str
    subject: str


@dataclass(frozen=True)
class Page:
    items: list[Listed]
    #: ``before`` of the next (older) page, if any
    next_before: int | None
    total: int


def read_page(mailbox: Mailbox, before: int | None, limit: int = PAGE_SIZE) -> Page:
    """Messages newest first, those numbered below ``before`` (blocking: file reads)."""
    numbers = _numbers(mailbox.directory)
    older = [n for n in reversed(numbers) if before is None or n < before]
    items = []
    for number in older[:limit]:
        try:
            stored = mailbox.get(number)
        except (MailNotFound, OSError):  # removed meanwhile
            continue
        items.append(
            Listed(
                stored.id,
                stored.received_at,
                ", ".join(stored.envelope_to),
                stored.sender,
                stored.subject,
            )
        )
    more = len(older) > limit
    return Page(items, older[limit - 1] if more else None, len(numbers))


def _id(raw: str | None) -> int | None:
    return whole_number(raw, 1, MAX_ID)


@router.get("/admin/outbox", summary="Outbox")
async def outbox(request: Request, admin: Viewer, context: Context) -> HTMLResponse:
    mailbox = mailbox_of(context)
    settings = context.settings
    directory = settings.mail_dir if settings else None
    raw = request.query_params.get("before")
    before = _id(raw)
    if raw and before is None:
        return render_admin(
            request,
            "admin/outbox.html",
            400,
            active="outbox",
            directory=directory,
            page=None,
            problem=f"before: {raw[:40]!r} is not a message number",
            before=None,
        )
    page = await asyncio.to_thread(read_page, mailbox, before, PAGE_SIZE) if mailbox else None
    return render_admin(
        request,
        "admin/outbox.html",
        active="outbox",
        directory=directory,
        page=page,
        problem=None,
        before=before,
    )


# --------------------------------------------------------------------------- one message


class _Links(HTMLParser):
    """The ``http(s)`` links (``<a href>``) of an HTML part, in order, once each."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a" or len(self.links) >= MAX_LINKS:
            return
        for name, value in attrs:
            if name == "href" and value:
                link = value.strip()
                if link.lower().startswith(("http://", "https://")) and link not in self.links:
                    self.links.append(link)


def links_of(html: str) -> list[str]:
    parser = _Links()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # malformed markup: the links found so far
        pass
    return parser.links


def _part(message: EmailMessage, subtype: str) -> tuple[str | None, str | None]:
    """The decoded ``text/<subtype>`` part, and why it could not be decoded."""
    try:
        return body(message, subtype), None
    except Exception as error:  # a broken charset or encoding: say so, never a 500
        return None, f"the {subtype} part could not be decoded ({type(error).__name__})"


@dataclass(frozen=True)
class Shown:
    stored: StoredMail
    headers: list[tuple[str, str]]
    parts: list[str]
    text: str | None
    text_cut: bool
    has_html: bool
    links: list[str]
    problems: list[str]


def read_message(mailbox: Mailbox, number: int) -> tuple[Shown, str | None]:
    """Message ``number`` as its page shows it, and its HTML part (blocking)."""
    stored, message = mailbox.load(number)
    headers = []
    for name in HEADERS:
        for value in message.get_all(name, []):
            headers.append((name, str(value)))
    parts = []
    for part in message.walk():
        filename = part.get_filename()
        parts.append(part.get_content_type() + (f" ({filename})" if filename else ""))
    text, text_problem = _part(message, "plain")
    html, html_problem = _part(message, "html")
    cut = text is not None and len(text) > TEXT_LIMIT
    shown = Shown(
        stored=stored,
        headers=headers,
        parts=parts,
        text=text[:TEXT_LIMIT] if text is not None else None,
        text_cut=cut,
        has_html=html is not None,
        links=links_of(html) if html is not None else [],
        problems=[p for p in (text_problem, html_problem) if p],
    )
    return shown, html


def not_found(raw: str) -> AdminRefused:
    return AdminRefused(
        404, "mail_not_found", "No such message", f"The outbox has no message {raw[:20]}."
    )


async def _load(context: WebContext, raw: str) -> tuple[Shown, str | None]:
    mailbox = mailbox_of(context)
    number = _id(raw)
    if mailbox is None or number is None:
        raise not_found(raw)
    try:
        return await asyncio.to_thread(read_message, mailbox, number)
    except MailNotFound:
        raise not_found(raw) from None


@router.get("/admin/outbox/{message_id}", summary="One caught message")
async def message_page(
    message_id: str, request: Request, admin: Viewer, context: Context
) -> HTMLResponse:
    shown, _ = await _load(context, message_id)
    response = render_admin(request, "admin/message.html", active="outbox", mail=shown)
    response.headers["Content-Security-Policy"] = MESSAGE_CSP
    return response


@router.get("/admin/outbox/{message_id}/html", summary="A caught message's HTML part")
async def message_html(
    message_id: str, request: Request, admin: Viewer, context: Context
) -> HTMLResponse:
    _, html = await _load(context, message_id)
    if html is None:
        raise not_found(f"{message_id} HTML part")
    return HTMLResponse(html, headers=HTML_HEADERS)
