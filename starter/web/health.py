"""``/healthz`` (the process answers) and ``/readyz`` (the database answers ``SELECT 1``
and Temporal its health check; 503 naming what failed)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from starter.web.deps import Context, WebContext

log = logging.getLogger("cartkeeper.web")

router = APIRouter(tags=["health"])

NO_STORE = {"Cache-Control": "no-store"}


@router.get("/healthz", summary="The process is up")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


@router.get("/readyz", summary="The database and Temporal answer")
async def readyz(context: Context) -> JSONResponse:
    database, temporal = await asyncio.gather(
        _check(context, "database", lambda: _database(context)),
        _check(context, "temporal", context.signaller.ping),
    )
    checks = {"database": database, "temporal": temporal}
    failed = [name for name, state in checks.items() if state != "ok"]
    return JSONResponse(
        {"status": "unavailable" if failed else "ok", "checks": checks, "failed": failed},
        status_code=503 if failed else 200,
        headers=NO_STORE,
    )


async def _database(context: WebContext) -> None:
    async with context.sessions() as session:
        await session.execute(text("SELECT 1"))


async def _check(context: WebContext, name: str, probe: Callable[[], Awaitable[None]]) -> str:
    try:
        await asyncio.wait_for(probe(), context.check_timeout)
    except Exception as error:  # TimeoutError included
        # the detail goes to the log only: it may name hosts or users
        log.warning("readyz: %s unavailable: %r", name, error)
        return "unavailable"
    return "ok"
