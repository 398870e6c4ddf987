"""The console's dashboard (``GET /admin``), one shop at a time (``?shop=``, default the
settings' ``default_shop``), from the read model alone:

1. locked carts first (seed 004's first widget), the longest waiting at the top;
2. payments needing an admin: carts with open attention items;
3. not finished orders (seed 000): how many, linking to the orders list;
4. abandoned carts, the latest first;
5. orders per status, with the shop's status names and colours;
6. recovered revenue this month (UTC), per currency (``activities.stats``: an order counts
   as recovered only when the customer came back through a reminder's recovery link).

The shop switcher lists every shop with carts and how many of its carts are locked, so a
locked cart of another shop is never out of sight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import case, func, select

from activities.db import SessionFactory
from activities.models import CartRecord
from activities.order_status_rules import OrderStatusDef, StatusRefused
from activities.order_statuses import list_statuses
from activities.orders_query import NOT_FINISHED, count_by_status
from activities.read_model import CartRow
from activities.stats import Figures, recovery_stats
from starter.web.admin_auth import Viewer
from starter.web.admin_cart_query import ROW_COLUMNS
from starter.web.admin_render import render_admin
from starter.web.deps import Context
from workflows.contract import CartState
from workflows.validation import valid_id

router = APIRouter(tags=["admin"], include_in_schema=False)

#: how many carts each list widget shows (the count says how many there are)
WIDGET_ROWS = 20
#: how many shops the switcher lists
MAX_SHOPS = 100


@dataclass(frozen=True)
class Widget:
    """A list of carts and how many there are in all."""

    rows: tuple[CartRow, ...]
    total: int


@dataclass(frozen=True)
class StatusCount:
    letter: str
    name: str
    colour: str
    count: int


async def _widget(
    sessions: SessionFactory, shop_id: str, where: list[Any], order: list[Any]
) -> Widget:
    conditions = [CartRecord.shop_id == shop_id, *where]
    async with sessions() as session:
        rows = await session.execute(
            select(*ROW_COLUMNS).where(*conditions).order_by(*order).limit(WIDGET_ROWS)
        )
        total = await session.scalar(
            select(func.count()).select_from(CartRecord).where(*conditions)
        )
    return Widget(tuple(CartRow.from_mapping(row) for row in rows.mappings()), int(total or 0))


async def shops_with_locked(sessions: SessionFactory) -> list[tuple[str, int]]:
    """Every shop with carts (at most ``MAX_SHOPS``), with its number of locked carts."""
    locked = func.sum(case((CartRecord.state == str(CartState.LOCKED), 1), else_=0))
    query = (
        select(CartRecord.shop_id, locked)
        .group_by(CartRecord.shop_id)
        .order_by(CartRecord.shop_id)
        .limit(MAX_SHOPS)
    )
    async with sessions() as session:
        return [(shop, int(count or 0)) for shop, count in (await session.execute(query)).all()]


async def _statuses(sessions: SessionFactory, shop_id: str) -> dict[str, OrderStatusDef]:
    try:
        return {status.letter: status for status in await list_statuses(sessions, shop_id)}
    except StatusRefused:
        return {}


def month_range(now: datetime) -> tuple[datetime, datetime]:
    """This month in UTC: its first instant and the next month's."""
    now = now.astimezone(UTC)
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    end = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


@dataclass(frozen=True)
class Dashboard:
    shop_id: str
    shops: list[tuple[str, int]]
    locked: Widget
    attention: Widget
    abandoned: Widget
    not_finished: int
    statuses: list[StatusCount]
    recovered: Figures
    month: str


async def load_dashboard(
    sessions: SessionFactory, shop_id: str, now: datetime, not_finished_when: Any
) -> Dashboard:
    locked = await _widget(
        sessions,
        shop_id,
        [CartRecord.state == str(CartState.LOCKED)],
        [CartRecord.locked_at.asc(), CartRecord.cart_id],
    )
    attention = await _widget(
        sessions,
        shop_id,
        [CartRecord.attention.is_not(None)],
        [CartRecord.updated_at.desc(), CartRecord.cart_id],
    )
    abandoned = await _widget(
        sessions,
        shop_id,
        [CartRecord.state == str(CartState.ABANDONED)],
        [CartRecord.abandoned_at.desc(), CartRecord.cart_id],
    )
    counts = await count_by_status(sessions, shop_id, not_finished_when=not_finished_when)
    names = await _statuses(sessions, shop_id)
    statuses = []
    for letter, count in sorted(counts.items(), key=lambda item: _position(names, item[0])):
        if letter == NOT_FINISHED:
            continue
        known = names.get(letter)
        statuses.append(
            StatusCount(
                letter,
                known.name if known else letter,
                known.colour if known else "#71717a",
                count,
            )
        )
    start, end = month_range(now)
    recovered = (await recovery_stats(sessions, start, end, shop_id)).total
    return Dashboard(
        shop_id=shop_id,
        shops=await shops_with_locked(sessions),
        locked=locked,
        attention=attention,
        abandoned=abandoned,
        not_finished=counts.get(NOT_FINISHED, 0),
        statuses=statuses,
        recovered=recovered,
        month=f"{start:%B %Y}",
    )


def _position(names: dict[str, OrderStatusDef], letter: str) -> tuple[int, str]:
    known = names.get(letter)
    return (known.position if known else 10_000, letter)


@router.get("/admin", summary="Dashboard")
async def dashboard(request: Request, admin: Viewer, context: Context) -> HTMLResponse:
    settings = context.settings
    default = settings.default_shop if settings else "demo"
    asked = request.query_params.get("shop") or default
    shop_id = asked if valid_id(asked) else default
    conditions = settings.not_finished_for(shop_id) if settings else ("no_return",)
    board = await load_dashboard(context.sessions, shop_id, context.now(), conditions)
    return render_admin(request, "admin/dashboard.html", active="dashboard", board=board)
