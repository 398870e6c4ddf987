"""The SQLite writers of one process queue on an ``asyncio.Lock`` (``activities.db``
``write_session``) instead of polling SQLite's lock through its busy handler: one write
transaction at a time, in the order they came, none refused; each event loop has its
lock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from activities.db import write_session
from activities.models import AdminNotice
from tests.conftest_db import ScratchDatabase, scratch_database

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def notice(key: str) -> AdminNotice:
    return AdminNotice(shop_id="demo", key=key, kind="test", created_at=NOW, sent_at=None)


async def count(db: ScratchDatabase) -> int:
    async with db.session_factory() as session:
        return int(
            (await session.execute(select(func.count()).select_from(AdminNotice))).scalar_one()
        )


async def test_writers_take_turns_in_their_order(tmp_path: Path) -> None:
    async with scratch_database("sqlite", tmp_path) as db:
        inside = 0
        most = 0
        order: list[int] = []

        async def writer(n: int) -> None:
            nonlocal inside, most
            async with write_session(db.session_factory) as session:
                inside += 1
                most = max(most, inside)
                order.append(n)
                session.add(notice(f"k-{n}"))
                await asyncio.sleep(0.005)  # other writers run meanwhile, and wait
                inside -= 1

        tasks = []
        for n in range(40):
            tasks.append(asyncio.create_task(writer(n)))
            await asyncio.sleep(0)  # each writer asks in turn
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        assert most == 1 and order == list(range(40))
        assert await count(db) == 40


def test_each_event_loop_has_its_own_lock(tmp_path: Path) -> None:
    async def write(key: str) -> int:
        async with scratch_database("sqlite", tmp_path / key) as db:
            async with write_session(db.session_factory) as session:
                session.add(notice(key))
            return await count(db)

    assert asyncio.run(write("first")) == 1
    assert asyncio.run(write("second")) == 1
