"""The console's statistics page on SQLite and PostgreSQL: the recovery table shows what
``activities.stats`` (and so ``cartkeeper stats recovery``) computes for the same range,
skips by reason included; the per-day figures add up to its totals and fall on the
right UTC day; the charts are well-formed SVG with one point per day; bad filters are
shown, never a 500."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from html import unescape
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from activities.db import write_session
from activities.stats import Figures, recovery_stats
from starter.web import admin_users
from starter.web.admin_render import money
from starter.web.admin_stats_query import recovery_by_day
from starter.web.svg_chart import Series, line_chart, nice_ticks
from tests.admin_fixtures import NOW, PASSWORD, Clock, browser, sign_in
from tests.conftest_db import ScratchDatabase, scratch_database
from tests.test_stats import T0, cart_row, fill, send
from tests.test_web_admin_auth import make_app

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
FIRST, LAST = date(2026, 11, 5), date(2026, 12, 31)
SVG_NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


@pytest.fixture
async def app(db: ScratchDatabase, tmp_path: Path) -> FastAPI:
    await admin_users.add_user(db.session_factory, "ann", PASSWORD, role="admin", now=NOW)
    await admin_users.add_user(db.session_factory, "vic", PASSWORD, role="viewer", now=NOW)
    return make_app(db, tmp_path, Clock())


@pytest.fixture
async def viewer(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with browser(app) as client:
        assert (await sign_in(client, "vic")).status_code == 303
        yield client


def row_figures(html: str, reminder: str, variant: str) -> dict[str, str]:
    found = re.search(
        rf'<tr[^>]*data-reminder="{reminder}" data-variant="{variant}">(.*?)</tr>', html, re.S
    )
    assert found is not None, (reminder, variant)
    return {
        name: unescape(value.strip())
        for name, value in re.findall(r'data-figure="(\w+)">(.*?)</td>', found.group(1), re.S)
    }


def expected(figures: Figures) -> dict[str, str]:
    revenue = "<br>".join(money(a, c) for c, a in sorted(figures.revenue.items())) or "-"
    return {
        "emails_sent": str(figures.emails_sent),
        "carts_sent": str(figures.carts_sent),
        "customers_sent": str(figures.customers_sent),
        "skipped": str(figures.skipped),
        "carts_clicked": str(figures.carts_clicked),
        "orders": str(figures.orders),
        "paid_orders": str(figures.paid_orders),
        "revenue": unescape(revenue),
    }


def section(html: str, anchor: str) -> str:
    start = html.index(f'id="{anchor}"')
    return html[start : html.index("</section>", start)]


def svgs(html: str) -> list[ET.Element]:
    return [ET.fromstring(found) for found in re.findall(r"<svg\b.*?</svg>", html, re.S)]


async def test_the_table_shows_what_the_stats_compute(
    db: ScratchDatabase, viewer: httpx.AsyncClient
) -> None:
    await fill(db)
    page = await viewer.get(
        "/admin/statistics", params={"shop": "demo", "from": str(FIRST), "to": str(LAST)}
    )
    assert page.status_code == 200, page.text
    html = page.text
    start = datetime(2026, 11, 5, tzinfo=UTC)
    result = await recovery_stats(
        db.session_factory, start, datetime(2027, 1, 1, tzinfo=UTC), "demo"
    )
    assert len(result.reminders) == 4  # first a, first b, first (no variant), second
    for item in result.reminders:
        assert row_figures(html, item.reminder_id, item.variant or "") == expected(item), item
    assert row_figures(html, "total", "") == expected(result.total)
    assert row_figures(html, "first", "a")["revenue"] == "€50.00"
    assert "We saved your cart" in section(html, "recovery")
    assert "66.7 %" in section(html, "recovery")  # the recovery rate, as the CLI's 66.7%

    skips = section(html, "skips")
    reasons = re.findall(r'<th scope="col" class="num">(\w+)</th>', skips)
    assert reasons == sorted(result.total.skipped_by_reason)
    every: list[tuple[str, str, Figures]] = [
        (r.reminder_id, r.variant or "", r) for r in result.reminders
    ]
    for key, variant, figures in [*every, ("total", "", result.total)]:
        if not figures.skipped:
            continue
        row = re.search(rf'data-reminder="{key}" data-variant="{variant}">(.*?)</tr>', skips, re.S)
        assert row is not None
        cells = dict(re.findall(r'data-reason="(\w+)">(\d+)</td>', row.group(1)))
        assert {r: int(n) for r, n in cells.items() if int(n)} == figures.skipped_by_reason

    months = section(html, "months")
    for month in result.months:
        assert month.month in months and money(month.revenue, month.currency) in unescape(months)


async def test_the_days_add_up_and_the_charts_have_a_point_per_day(
    db: ScratchDatabase, viewer: httpx.AsyncClient
) -> None:
    await fill(db)
    days = await recovery_by_day(db.session_factory, "demo", FIRST, LAST)
    count = (LAST - FIRST).days + 1
    assert [d.day for d in days] == [FIRST + timedelta(days=n) for n in range(count)]
    start, end = datetime(2026, 11, 5, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    total = (await recovery_stats(db.session_factory, start, end, "demo")).total
    assert sum(d.emails_sent for d in days) == total.emails_sent == 4
    assert sum(d.orders for d in days) == total.orders
    assert sum(d.paid_orders for d in days) == total.paid_orders
    for currency, amount in total.revenue.items():
        assert sum(d.revenue.get(currency, 0) for d in days) == amount
    by_day = {d.day: d for d in days}
    assert (by_day[T0.date()].emails_sent, by_day[T0.date()].orders) == (4, 2)
    assert by_day[T0.date()].revenue == {"EUR": 5000}
    assert by_day[date(2026, 12, 1)].revenue == {"CHF": 3000}

    page = await viewer.get(
        "/admin/statistics", params={"shop": "demo", "from": str(FIRST), "to": str(LAST)}
    )
    html = page.text
    charts = svgs(html)
    assert len(charts) == 2  # activity, and revenue in the currency with the most (EUR)
    for chart in charts:
        assert chart.get("role") == "img"
        assert chart.find(f"{SVG_NS}title") is not None and chart.find(f"{SVG_NS}desc") is not None
        assert chart.get("aria-labelledby", "").split() == [
            f"{chart.get('id')}-title",
            f"{chart.get('id')}-desc",
        ]
        axis_text = [t.text for t in chart.iter(f"{SVG_NS}text")]
        assert "day (UTC)" in axis_text and "05 Nov" in axis_text
    series = {
        group.get("data-series", ""): group
        for chart in charts
        for group in chart.iter(f"{SVG_NS}g")
        if group.get("class") == "series"
    }
    assert sorted(series) == ["orders", "revenue", "sent"]
    for group in series.values():
        assert len(group.findall(f"{SVG_NS}circle")) == count
        line = group.find(f"{SVG_NS}polyline")
        assert line is not None and len(line.get("points", "").split()) == count
    points = series["revenue"].findall(f"{SVG_NS}circle")
    titles = [p.findtext(f"{SVG_NS}title") or "" for p in points]
    assert titles[(T0.date() - FIRST).days] == "10 Nov: Recovered revenue (EUR) €50.00"
    assert "Recovered revenue per day in EUR" in (charts[1].findtext(f"{SVG_NS}title") or "")
    # the table fallback has the same numbers, and CHF is a link away
    table = html[html.index('id="days"') :]
    assert table.count("<tr><td><time datetime=") == count
    row = re.search(r'<time datetime="2026-11-10">.*?</tr>', table)
    assert row is not None
    assert re.findall(r'class="num">([^<]*)</td>', unescape(row.group(0))) == [
        "4",
        "2",
        "1",
        "€50.00",
    ]
    assert "currency=CHF" in section(html, "over-time")
    chf = await viewer.get(
        "/admin/statistics",
        params={"shop": "demo", "from": str(FIRST), "to": str(LAST), "currency": "CHF"},
    )
    assert "Recovered revenue per day in CHF" in chf.text


async def test_a_day_is_a_utc_day(db: ScratchDatabase) -> None:
    late = datetime(2026, 11, 10, 23, 59, 59, 999000, tzinfo=UTC)
    async with write_session(db.session_factory) as session:
        session.add_all(
            [
                send("d1", "first", "sent", at=late),
                send("d2", "first", "sent", at=late + timedelta(milliseconds=1)),
                send("d3", "first", "sent", at=datetime(2026, 11, 11, 1, tzinfo=UTC)),
                cart_row("d1", total=1200, ordered_at=late),
            ]
        )
    days = await recovery_by_day(db.session_factory, "demo", date(2026, 11, 10), date(2026, 11, 11))
    assert [(d.day.day, d.emails_sent, d.orders, d.revenue) for d in days] == [
        (10, 1, 1, {"EUR": 1200}),
        (11, 2, 0, {}),
    ]


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"from": "2026-13-01"}, "from: &#39;2026-13-01&#39; is not a date"),
        ({"from": "2026-11-10", "to": "2026-11-01"}, "the first day is after the last"),
        ({"from": "2024-01-01", "to": "2026-11-01"}, "at most 366"),
        ({"from": "9999-12-31", "to": "9999-12-31"}, "from: a day from 1970-01-01 to 9998-12-31"),
        ({"to": "0001-01-02"}, "to: a day from 1970-01-01"),
        ({"shop": "not a shop!"}, "is not a shop id"),
        ({"currency": "XYZ1"}, "is not an ISO 4217 code"),
    ],
)
async def test_filters_it_cannot_read_are_shown(
    viewer: httpx.AsyncClient, params: dict[str, str], problem: str
) -> None:
    page = await viewer.get("/admin/statistics", params=params)
    assert page.status_code == 400
    assert problem in page.text
    assert "<svg" not in page.text and 'id="recovery"' not in page.text


async def test_the_default_range_is_the_last_30_days_and_empty_is_fine(
    viewer: httpx.AsyncClient,
) -> None:
    page = await viewer.get("/admin/statistics")
    assert page.status_code == 200
    today = NOW.date()
    assert f"{today - timedelta(days=29)} to {today} (UTC)" in page.text
    assert "- (nothing sent)" in page.text
    charts = svgs(page.text)
    assert len(charts) == 1, "no currency yet: no revenue chart"
    for group in charts[0].iter(f"{SVG_NS}g"):
        if group.get("class") == "series":
            assert len(group.findall(f"{SVG_NS}circle")) == 30


def test_the_chart_escapes_its_text_and_checks_its_series() -> None:
    chart = line_chart(
        chart_id="c",
        title="<b>&",
        description='"quoted"',
        labels=["a<", "b"],
        series=[Series("s", "x & y", (0, 7), "#000000")],
        y_title="n",
    )
    parsed = ET.fromstring(str(chart))
    assert parsed.findtext(f"{SVG_NS}title") == "<b>&"
    assert nice_ticks(0) == [0, 1] and nice_ticks(7) == [0, 2, 4, 6, 8]
    assert nice_ticks(5000) == [0, 1000, 2000, 3000, 4000, 5000]
    with pytest.raises(ValueError, match="has 1 values"):
        line_chart(
            chart_id="c",
            title="t",
            description="d",
            labels=["a", "b"],
            series=[Series("s", "s", (1,), "#000000")],
            y_title="n",
        )
