"""The text a list is filtered by (a customer's e-mail ...): refused before it reaches the
database only when no cart could hold it, so that whatever a cart holds can be searched
for.

A filter takes every text a cart can take (``workflows.validation``'s rule for outside
text): a no-break space, a zero-width joiner, a right-to-left mark, an unassigned code
point all pass. It refuses what no cart holds, control characters (a NUL, a line break:
the filter is one line) and lone surrogates (what Python makes of a command-line argument
that is not valid UTF-8), which are also what a database cannot compare (PostgreSQL's
text cannot hold NUL: asyncpg refuses the query, as if the database were down, a 503;
neither driver can send a lone surrogate). A list checks each of its text filters with
``filter_problem`` where it reads them (``starter.web.admin_cart_query``,
``activities.orders_query``, ``activities.journal_query``, the admin API's
``text_filter``: the console, the admin JSON API and the CLI all go through them) and
refuses with its own ``invalid_filter``: the same coded refusal on SQLite and
PostgreSQL, never a 5xx.
"""

from __future__ import annotations

from workflows.validation import outside_text_problem


def filter_problem(value: str, name: str) -> str | None:
    """Why ``value`` cannot be the text filter ``name`` (``None`` when it can): it holds
    a control character or a lone surrogate, which no cart's text holds."""
    return outside_text_problem(value, name)
