"""The console's statistics (``GET /admin/statistics?shop=S&from=D&to=D``): how the
shop's reminder campaign recovers carts, from the read model alone.

1. The recovery table per reminder and variant, and in total: what
   ``cartkeeper stats recovery`` shows (``activities.stats.recovery_stats``): e-mails
   sent, carts and customers reached, skips (by reason, in a table of their own), carts
   that clicked, recovered orders, paid ones and their revenue per currency; recovered
   orders per month; the recovery rate.
2. A chart over time, one point per UTC day (``admin_stats_query.recovery_by_day``):
   reminders sent and recovered orders, and the recovered revenue in the shop's currency
   (``currency=``, else the currency with the most recovered revenue in the range, else
   the one most of the shop's carts use). Inline SVG drawn here (``svg_chart``), with a
   title and a description; the same numbers in a table below it for readers without
   images.

An order counts as recovered only when the customer came back through a recovery link.
The range is ``from`` to ``to`` (days, UTC, both included; default the last 30 days up
to today), at most ``MAX_DAYS`` days. A filter it cannot read is shown on the page (400).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from activities.stats import Figures, RecoveryStats, recovery_stats
from starter.web.admin_auth import Viewer
from starter.web.admin_dashboard import shops_with_locked
from starter.web.admin_render import money, render_admin
from starter.web.admin_stats_query import DayFigures, day_start, recovery_by_day, shop_currencies
from starter.web.deps import Context
from starter.web.svg_chart import Series, line_chart
from workflows.codes import ISO_4217
from workflows.validation import valid_id

router = APIRouter(tags=["admin"], include_in_schema=False)

#: the longest range the page shows (a year and a day)
MAX_DAYS = 366
DEFAULT_DAYS = 30
#: the days a range may start or end on (far from the ends of ``date``'s range)
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9998, 12, 31)
SENT_COLOUR = "#1d4ed8"
ORDERS_COLOUR = "#15803d"
REVENUE_COLOUR = "#b45309"


@dataclass(frozen=True)
class Row:
    """A line of the recovery table: a reminder's variant, or the total."""

    reminder_id: str
    name: str | None
    variant: str | None
    figures: Figures
    total: bool = False


@dataclass(frozen=True)
class Query:
    shop_id: str
    first: date
    last: date
    currency: str | None


def _day(value: str, name: str, problems: list[str]) -> date | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        problems.append(f"{name}: {value[:40]!r} is not a date YYYY-MM-DD")
        return None
    if not FIRST_DAY <= day <= LAST_DAY:
        problems.append(f"{name}: a day from {FIRST_DAY} to {LAST_DAY}")
        return None
    return day


def read_query(params: dict[str, str], default_shop: str, today: date) -> tuple[Query, list[str]]:
    """The page's filters from the query string, and what could not be read."""
    problems: list[str] = []
    shop = params.get("shop") or default_shop
    if not valid_id(shop):
        problems.append(f"shop: {shop[:80]!r} is not a shop id")
        shop = default_shop
    last = _day(params.get("to", ""), "to", problems) or today
    first = _day(params.get("from", ""), "from", problems)
    if first is None:
        first = last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        problems.append("from: the first day is after the last (to)")
    elif (last - first).days + 1 > MAX_DAYS:
        problems.append(f"the range has {(last - first).days + 1} days; at most {MAX_DAYS}")
    currency = params.get("currency") or None
    if currency is not None and currency not in ISO_4217:
        problems.append(f"currency: {currency[:10]!r} is not an ISO 4217 code")
        currency = None
    return Query(shop, first, last, currency), problems


def table_rows(result: RecoveryStats) -> list[Row]:
    rows = [Row(r.reminder_id, r.name, r.variant, r) for r in result.reminders]
    rows.append(Row("total", None, None, result.total, total=True))
    return rows


def skip_reasons(rows: list[Row]) -> list[str]:
    return sorted({reason for row in rows for reason in row.figures.skipped_by_reason})


def chart_currency(
    asked: str | None, result: RecoveryStats, days: list[DayFigures], carts: list[str]
) -> str | None:
    """The currency the revenue chart is drawn in (see the module's doc)."""
    if asked:
        return asked
    revenue = result.total.revenue
    if revenue:
        return max(sorted(revenue), key=lambda currency: revenue[currency])
    for day in days:
        if day.revenue:
            return sorted(day.revenue)[0]
    return carts[0] if carts else None


def _short(day: date) -> str:
    return f"{day:%d %b}"


def charts(shop_id: str, days: list[DayFigures], currency: str | None) -> list[Any]:
    """The activity chart, and the revenue chart when there is a currency to draw."""
    labels = [_short(day.day) for day in days]
    span = f"{days[0].day} to {days[-1].day}" if days else ""
    sent = tuple(day.emails_sent for day in days)
    orders = tuple(day.orders for day in days)
    drawn = [
        line_chart(
            chart_id="chart-activity",
            title=f"Reminders sent and recovered orders per day, shop {shop_id}",
            description=(
                f"Daily counts from {span}: {sum(sent)} reminders sent (peak {max(sent)}),"
                f" {sum(orders)} recovered orders (peak {max(orders)}). The table below lists"
                " every day."
            ),
            labels=labels,
            series=[
                Series("sent", "Reminders sent", sent, SENT_COLOUR),
                Series("orders", "Recovered orders", orders, ORDERS_COLOUR),
            ],
            y_title="per day",
        )
    ]
    if currency is not None:
        revenue = tuple(day.revenue.get(currency, 0) for day in days)
        drawn.append(
            line_chart(
                chart_id="chart-revenue",
                title=f"Recovered revenue per day in {currency}, shop {shop_id}",
                description=(
                    f"Revenue of paid recovered orders from {span}:"
                    f" {money(sum(revenue), currency)} in all, the best day"
                    f" {money(max(revenue), currency)}. The table below lists every day."
                ),
                labels=labels,
                series=[
                    Series("revenue", f"Recovered revenue ({currency})", revenue, REVENUE_COLOUR)
                ],
                y_title=currency,
                value_label=lambda minor: money(minor, currency),
            )
        )
    return drawn


@router.get("/admin/statistics", summary="Recovery statistics")
async def statistics(request: Request, admin: Viewer, context: Context) -> HTMLResponse:
    settings = context.settings
    default_shop = settings.default_shop if settings else "demo"
    params = {name: request.query_params.get(name, "").strip() for name in ("shop", "from", "to")}
    params["currency"] = request.query_params.get("currency", "").strip().upper()
    query, problems = read_query(params, default_shop, context.now().date())
    values: dict[str, Any] = {
        "query": query,
        "params": params,
        "problems": problems,
        "shops": [shop for shop, _locked in await shops_with_locked(context.sessions)],
        "result": None,
    }
    if not problems:
        start = day_start(query.first)
        end = day_start(query.last) + timedelta(days=1)
        result = await recovery_stats(context.sessions, start, end, query.shop_id)
        days = await recovery_by_day(context.sessions, query.shop_id, query.first, query.last)
        carts = await shop_currencies(context.sessions, query.shop_id)
        currency = chart_currency(query.currency, result, days, carts)
        others = sorted({*result.total.revenue, *(c for d in days for c in d.revenue), *carts})
        base = {"shop": query.shop_id, "from": str(query.first), "to": str(query.last)}
        rows = table_rows(result)
        values.update(
            result=result,
            rows=rows,
            reasons=skip_reasons(rows),
            days=days,
            currency=currency,
            charts=charts(query.shop_id, days, currency),
            currency_links=[
                (c, "/admin/statistics?" + urlencode({**base, "currency": c}))
                for c in others
                if c != currency
            ],
        )
    return render_admin(
        request,
        "admin/statistics.html",
        400 if problems else 200,
        active="statistics",
        **values,
    )
