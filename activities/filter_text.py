"""The text a list is filtered by (a customer's e-mail ...): refused before it reaches the
database unless both databases can compare it.

PostgreSQL's text cannot hold NUL (asyncpg refuses the query: the request failed as if
the database were down, a 503), and neither driver can send a lone surrogate (what
Python makes of a command-line argument that is not valid UTF-8). No stored e-mail holds
a control character either (addresses are validated when a customer gives them). So a
list checks each of its text filters with ``filter_problem`` where it reads them
(``starter.web.admin_cart_query``, ``activities.orders_query``: the console, the admin
JSON API and the CLI all go through them) and refuses with its own ``invalid_filter``:
the same coded refusal on SQLite and PostgreSQL, never a 5xx.
"""

from __future__ import annotations


def filter_problem(value: str, name: str) -> str | None:
    """Why ``value`` cannot be the text filter ``name`` (``None`` when it can): it holds a
    character that is not printable (a control character such as NUL, a line break, a
    lone surrogate, an unassigned code point; the ASCII space is printable)."""
    if value.isprintable():
        return None
    return f"{name}: control characters are not allowed"
