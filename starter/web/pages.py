"""HTML pages from the Jinja2 templates in ``starter/web/templates`` (autoescaped; no
external assets: styles are inline, nothing is loaded from elsewhere). Every value a page
shows is ``shown``: a cart stored before the text rules may hold a NUL, another control
character or a lone surrogate (no UTF-8 form: the page could not be sent), shown escaped
(``\\x00``, ``\\ud800``; ``starter.output.readable``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from starter.output import readable

TEMPLATES = Path(__file__).resolve().parent / "templates"

#: sent with every page: nothing loads from elsewhere, no page is framed, cached, indexed,
#: or tells the next site where the customer came from (the URL holds the token)
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self';"
        " base-uri 'none'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
}


def shown(value: Any) -> Any:
    """Each ``{{ ... }}``'s value as a page writes it (Jinja's ``finalize``, before the
    autoescape): a text ``readable`` (markup stays markup: escaping those characters adds
    no HTML)."""
    if not isinstance(value, str):
        return value
    text = readable(value)
    if text is value or text == value:
        return value
    return Markup(text) if isinstance(value, Markup) else text


#: each template is read and compiled once (no ``auto_reload``: no file check per request)
PAGES = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=True,  # every template, whatever its name
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,
    finalize=shown,
)


def render(
    template: str, status_code: int = 200, *, csp: str | None = None, **context: Any
) -> HTMLResponse:
    """``csp``: the page's own Content-Security-Policy instead of ``PAGE_HEADERS``'s."""
    html = PAGES.get_template(template).render(**context)
    headers = PAGE_HEADERS if csp is None else {**PAGE_HEADERS, "Content-Security-Policy": csp}
    return HTMLResponse(html, status_code=status_code, headers=headers)


def error_page(status_code: int, code: str, title: str, message: str) -> HTMLResponse:
    return render("error.html", status_code, code=code, title=title, message=message)
