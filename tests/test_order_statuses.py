"""Order statuses (``activities.order_statuses``) on SQLite and PostgreSQL: the defaults,
adding, editing and deleting, every refusal code, the limit of 26 (also when admins race
for the last slots), defaults that cannot be deleted, the hidden ``N``, snapshots that
stay readable, and random edit sequences (hypothesis) against the pure rules."""

from __future__ import annotations

import asyncio
import dataclasses
import string
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st
from sqlalchemy import func, select

from activities.models import OrderStatusRecord, OrderStatusRegistry
from activities.order_status_rules import deleted_status, edited_status, new_status
from activities.order_statuses import (
    DEFAULT_LETTERS,
    DEFAULT_STATUSES,
    MAX_STATUSES,
    OrderStatusDef,
    StatusRefused,
    add_status,
    delete_status,
    edit_status,
    find_status,
    list_statuses,
    load_registry,
    status_for_admin,
    status_snapshot,
)
from starter.order_statuses import OrderStatusClient
from tests.conftest_db import ScratchDatabase, scratch_database

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SHOP = "shop-1"
#: the letters no default has (12 of them)
#: a store call, made when the test awaits it
Call = Callable[[], Awaitable[Any]]
FREE = [letter for letter in string.ascii_uppercase if letter not in DEFAULT_LETTERS]


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


async def refused(call: Any, code: str) -> StatusRefused:
    with pytest.raises(StatusRefused) as caught:
        await call
    assert caught.value.code == code, caught.value
    return caught.value


async def stored_count(db: ScratchDatabase, shop_id: str = SHOP) -> int:
    async with db.session_factory() as session:
        count = await session.scalar(
            select(func.count()).where(OrderStatusRecord.shop_id == shop_id)
        )
    return int(count or 0)


# --------------------------------------------------------------------------- defaults


def by_letter(statuses: tuple[OrderStatusDef, ...]) -> dict[str, OrderStatusDef]:
    return {status.letter: status for status in statuses}


def letters_where(statuses: tuple[OrderStatusDef, ...], field: str, value: Any = True) -> str:
    return "".join(sorted(s.letter for s in statuses if getattr(s, field) == value))


async def test_a_shop_starts_with_the_defaults(db: ScratchDatabase) -> None:
    registry = await load_registry(db.session_factory, SHOP)
    assert (registry.version, registry.customised, registry.updated_by) == (0, False, None)
    statuses = registry.statuses
    assert [s.letter for s in statuses] == list("OPCAHRSVBYFDIN")
    assert [s.position for s in statuses] == list(range(10, 150, 10))
    names = {s.letter: s.name for s in statuses}
    assert names == {
        "O": "Open",
        "P": "Processed",
        "C": "Complete",
        "A": "Awaiting",
        "H": "Awaiting (has payments)",
        "R": "Preparing shipment",
        "S": "Shipped",
        "V": "Delivered",
        "B": "Backordered",
        "Y": "Awaiting call",
        "F": "Failed",
        "D": "Declined",
        "I": "Cancelled",
        "N": "Incomplete",
    }
    assert letters_where(statuses, "paid") == "CP"
    assert letters_where(statuses, "final") == "CDFIV"
    assert letters_where(statuses, "contents_editable") == "AHR"
    assert letters_where(statuses, "inventory", "decrease") == "ACHOPRSV"
    assert letters_where(statuses, "inventory", "increase") == "DFI"
    assert letters_where(statuses, "inventory", "none") == "BNY"
    assert letters_where(statuses, "hidden") == "N"
    assert letters_where(statuses, "builtin") == "".join(sorted(DEFAULT_LETTERS))
    hidden = by_letter(statuses)["N"]
    assert not (hidden.paid or hidden.final or hidden.notify_customer or hidden.notify_department)
    assert await list_statuses(db.session_factory, SHOP) == statuses
    assert await stored_count(db) == 0, "reading writes nothing"


# --------------------------------------------------------------------------- editing


async def test_add_edit_delete(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    gift = await add_status(
        sessions,
        SHOP,
        "G",
        "Gift wrapping",
        now=T0,
        by="ann",
        colour="#ff4081",
        contents_editable=True,
        inventory="decrease",
    )
    assert gift == OrderStatusDef(
        letter="G",
        name="Gift wrapping",
        colour="#ff4081",
        position=150,  # after the last
        inventory="decrease",
        contents_editable=True,
    )
    registry = await load_registry(sessions, SHOP)
    assert (registry.version, registry.customised, registry.updated_by) == (1, True, "ann")
    assert registry.updated_at == T0
    assert [s.letter for s in registry.statuses][-2:] == ["N", "G"]
    assert len(registry.statuses) == 15 and await stored_count(db) == 15

    later = T0 + timedelta(minutes=1)
    edited = await edit_status(
        sessions, SHOP, "G", {"name": "Gift wrap", "position": 65, "paid": True}, now=later
    )
    assert edited == dataclasses.replace(gift, name="Gift wrap", position=65, paid=True)
    registry = await load_registry(sessions, SHOP)
    assert registry.version == 2 and registry.updated_by is None
    assert [s.letter for s in registry.statuses][:8] == list("OPCAHRGS"), "by position"

    # a default: renamed, recoloured, re-flagged; it stays a default with its letter
    processed = await edit_status(
        sessions, SHOP, "P", {"name": "Paid", "colour": "#00A000", "final": True}, now=later
    )
    assert (processed.letter, processed.name, processed.colour) == ("P", "Paid", "#00a000")
    assert processed.builtin and processed.paid and processed.final

    # an admin's status changes letter
    moved = await edit_status(sessions, SHOP, "g", {"letter": "w"}, now=later)
    assert moved == dataclasses.replace(edited, letter="W")
    await refused(find_status(sessions, SHOP, "G"), "unknown_status")
    assert await find_status(sessions, SHOP, "W") == moved

    deleted = await delete_status(sessions, SHOP, "w", now=later)
    assert deleted == moved
    registry = await load_registry(sessions, SHOP)
    assert registry.version == 5 and len(registry.statuses) == 14
    await refused(find_status(sessions, SHOP, "W"), "unknown_status")
    # the deleted letter is free again
    again = await add_status(sessions, SHOP, "W", "Waiting for stock", now=later)
    assert again.name == "Waiting for stock" and not again.contents_editable


async def test_an_edit_that_changes_nothing_writes_nothing(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    same = await edit_status(sessions, SHOP, "O", {"name": "Open"}, now=T0)
    assert same == DEFAULT_STATUSES[0]
    registry = await load_registry(sessions, SHOP)
    assert (registry.version, registry.customised) == (0, False)
    await edit_status(sessions, SHOP, "O", {"name": "Opened"}, now=T0)
    await edit_status(sessions, SHOP, "O", {"name": "Opened", "colour": "#1E88E5"}, now=T0)
    assert (await load_registry(sessions, SHOP)).version == 1


async def test_shops_have_their_own_statuses(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    await add_status(sessions, "shop-a", "G", "Gift", now=T0)
    await edit_status(sessions, "shop-b", "P", {"name": "Paid"}, now=T0)
    a, b = await list_statuses(sessions, "shop-a"), await list_statuses(sessions, "shop-b")
    assert "G" in by_letter(a) and "G" not in by_letter(b)
    assert by_letter(a)["P"].name == "Processed" and by_letter(b)["P"].name == "Paid"
    assert by_letter(await list_statuses(sessions, "shop-c")) == by_letter(DEFAULT_STATUSES)


async def test_letters_are_upper_cased_and_colours_lower_cased(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    added = await add_status(sessions, SHOP, "g", "Gift", now=T0, colour="#FF40AB")
    assert (added.letter, added.colour) == ("G", "#ff40ab")
    assert (await find_status(sessions, SHOP, "g")).letter == "G"
    assert (await status_for_admin(sessions, SHOP, "p")).letter == "P"
    await refused(add_status(sessions, SHOP, "G", "Again", now=T0), "status_letter_taken")
    await refused(add_status(sessions, SHOP, "p", "Paid twice", now=T0), "status_letter_taken")
    assert (await edit_status(sessions, SHOP, "g", {"name": "Gifts"}, now=T0)).letter == "G"
    assert (await delete_status(sessions, SHOP, "g", now=T0)).letter == "G"


# --------------------------------------------------------------------------- refusals


async def test_every_refusal_code(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    await add_status(sessions, SHOP, "G", "Gift", now=T0)
    version = (await load_registry(sessions, SHOP)).version

    def add(letter: Any = "X", name: Any = "New", **values: Any) -> Call:
        return partial(add_status, sessions, SHOP, letter, name, now=T0, **values)

    def edit(target: Any, **changes: Any) -> Call:
        return partial(edit_status, sessions, SHOP, target, changes, now=T0)

    def delete(target: Any) -> Call:
        return partial(delete_status, sessions, SHOP, target, now=T0)

    def for_admin(target: Any) -> Call:
        return partial(status_for_admin, sessions, SHOP, target)

    cases: list[tuple[Call, str]] = [
        (add("G"), "status_letter_taken"),
        (add("N"), "status_letter_taken"),
        (edit("G", letter="P"), "status_letter_taken"),
        (delete("P"), "status_builtin"),
        (delete("N"), "status_builtin"),
        (edit("P", letter="Q"), "status_builtin"),
        (edit("P", paid=False), "status_builtin"),
        (edit("C", paid=False), "status_builtin"),
        (edit("Q", name="Nope"), "unknown_status"),
        (delete("Q"), "unknown_status"),
        (for_admin("Q"), "unknown_status"),
        (for_admin("N"), "status_hidden"),
        (for_admin("n"), "status_hidden"),
        (edit("N", paid=True), "status_hidden"),
        (edit("N", inventory="decrease"), "status_hidden"),
        (edit("N", notify_customer=True), "status_hidden"),
        (edit("N", hidden=False), "status_hidden"),
        (edit("G", hidden=True), "invalid_status"),
        (edit("G", builtin=True), "invalid_status"),
        (edit("G"), "invalid_status"),  # nothing to change
        (edit("G", letter="GG"), "invalid_status"),
        (edit("GG", name="Gift"), "invalid_status"),
        (delete("7"), "invalid_status"),
        (for_admin(""), "invalid_status"),
        (add(hidden=True), "invalid_status"),
        (add(shop="x"), "invalid_status"),
        (partial(add_status, sessions, "bad shop!", "X", "New", now=T0), "invalid_shop_id"),
        (partial(list_statuses, sessions, ""), "invalid_shop_id"),
        (add(by=""), "invalid_admin"),
        (add(by="a\x1b"), "invalid_admin"),
    ]
    for letter in ("", "AB", "1", "é", "Ä", " A", "-", None, 7):
        cases.append((add(letter), "invalid_status"))
    for name in ("", " ", "x" * 65, " Gift", "Gift ", "a\nb", "a\x1b[2Jb", "a\u202eb", None, 3):
        cases.append((add(name=name), "invalid_status"))
        cases.append((edit("G", name=name), "invalid_status"))
    for colour in ("red", "#12345", "#1234567", "#12345g", "123456", "", None):
        cases.append((add(colour=colour), "invalid_status"))
    for position in (-1, 1_000_001, 1.5, "10", True, None):
        cases.append((add(position=position), "invalid_status"))
    for flag in ("paid", "final", "notify_customer", "notify_department", "contents_editable"):
        cases.append((add(**{flag: "yes"}), "invalid_status"))
        cases.append((edit("G", **{flag: 1}), "invalid_status"))
    for inventory in ("down", "Decrease", "", None):
        cases.append((add(inventory=inventory), "invalid_status"))
    for call, code in cases:
        await refused(call(), code)
    assert (await load_registry(sessions, SHOP)).version == version, "nothing was changed"
    assert await stored_count(db) == 15
    # a name of exactly 64 characters is fine; a naive time is a bug, not a refusal
    assert (await add("X", "x" * 64)()).name == "x" * 64
    with pytest.raises(ValueError, match="timezone-aware"):
        await add_status(sessions, SHOP, "Z", "Naive", now=datetime(2026, 12, 1))


async def test_a_default_is_never_deleted(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    for letter in sorted(DEFAULT_LETTERS):  # before and after the first edit
        error = await refused(delete_status(sessions, SHOP, letter, now=T0), "status_builtin")
        assert "cannot be deleted" in error.message
    await edit_status(sessions, SHOP, "B", {"name": "Out of stock"}, now=T0)
    for letter in sorted(DEFAULT_LETTERS):
        await refused(delete_status(sessions, SHOP, letter.lower(), now=T0), "status_builtin")
    assert set(by_letter(await list_statuses(sessions, SHOP))) >= DEFAULT_LETTERS


async def test_n_is_never_settable_nor_visible(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    renamed = await edit_status(
        sessions, SHOP, "N", {"name": "Waiting for the bank", "colour": "#000000"}, now=T0
    )
    assert renamed.hidden and renamed.name == "Waiting for the bank"
    for changes in ({"hidden": False}, {"final": True}, {"contents_editable": True}):
        await refused(edit_status(sessions, SHOP, "N", changes, now=T0), "status_hidden")
    await refused(status_for_admin(sessions, SHOP, "N"), "status_hidden")
    (only,) = [s for s in await list_statuses(sessions, SHOP) if s.hidden]
    assert only.letter == "N" and only.inventory == "none" and not only.paid
    # the order phase can still find it (the checkout sets it)
    assert (await find_status(sessions, SHOP, "N")).name == "Waiting for the bank"
    # every other status is settable by an admin
    for status in await list_statuses(sessions, SHOP):
        if status.letter != "N":
            assert await status_for_admin(sessions, SHOP, status.letter) == status


async def test_a_snapshot_stays_readable_after_renames_and_deletes(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    await add_status(sessions, SHOP, "G", "Gift wrapping", now=T0, colour="#ff4081")
    processed = status_snapshot(await status_for_admin(sessions, SHOP, "P"))
    gift = status_snapshot(await status_for_admin(sessions, SHOP, "G"))
    assert processed == ("P", "Processed", "#43a047")
    assert (gift.letter, gift.name, gift.colour) == ("G", "Gift wrapping", "#ff4081")

    await edit_status(sessions, SHOP, "P", {"name": "Paid", "colour": "#000000"}, now=T0)
    await delete_status(sessions, SHOP, "G", now=T0)
    await add_status(sessions, SHOP, "G", "Gone to the post office", now=T0)
    # what the orders recorded is unchanged: their history still reads as it did
    assert processed == ("P", "Processed", "#43a047")
    assert gift == ("G", "Gift wrapping", "#ff4081")
    assert status_snapshot(await find_status(sessions, SHOP, "P")).name == "Paid"


# --------------------------------------------------------------------------- the limit


async def fill(db: ScratchDatabase, count: int, shop_id: str = SHOP) -> list[str]:
    """Add ``count`` statuses (free letters in order); the letters still free."""
    for letter in FREE[:count]:
        await add_status(db.session_factory, shop_id, letter, f"Custom {letter}", now=T0)
    return FREE[count:]


async def test_26_statuses_and_no_27th(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    assert len(DEFAULT_STATUSES) + len(FREE) == MAX_STATUSES == 26
    await fill(db, len(FREE))
    statuses = await list_statuses(sessions, SHOP)
    assert len(statuses) == 26 and {s.letter for s in statuses} == set(string.ascii_uppercase)
    error = await refused(
        add_status(sessions, SHOP, "G", "The 27th", now=T0), "status_limit_reached"
    )
    assert "at most 26" in error.message
    assert await stored_count(db) == 26
    # room again after a delete
    await delete_status(sessions, SHOP, "Z", now=T0)
    await add_status(sessions, SHOP, "Z", "Back", now=T0)
    assert len(await list_statuses(sessions, SHOP)) == 26


async def test_admins_racing_for_the_last_slot_end_with_26(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    (last,) = await fill(db, len(FREE) - 1)  # 25 statuses
    outcomes = await asyncio.gather(
        *(add_status(sessions, SHOP, last, f"Racer {n}", now=T0) for n in range(6)),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if isinstance(o, OrderStatusDef)]
    losers = [o for o in outcomes if not isinstance(o, OrderStatusDef)]
    assert len(winners) == 1, outcomes
    assert all(isinstance(o, StatusRefused) for o in losers), losers
    assert {o.code for o in losers if isinstance(o, StatusRefused)} == {"status_limit_reached"}
    assert await stored_count(db) == 26
    assert by_letter(await list_statuses(sessions, SHOP))[last].name == winners[0].name


async def test_admins_racing_for_the_last_two_slots_end_with_26(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    free = await fill(db, len(FREE) - 2)  # 24 statuses, two letters free
    wanted = [*free, *free, *free, free[0], free[0]]
    outcomes = await asyncio.gather(
        *(
            add_status(sessions, SHOP, letter, f"Racer {n}", now=T0)
            for n, letter in enumerate(wanted)
        ),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if isinstance(o, OrderStatusDef)]
    assert sorted(w.letter for w in winners) == sorted(free), outcomes
    codes = {o.code for o in outcomes if isinstance(o, StatusRefused)}
    assert codes <= {"status_limit_reached", "status_letter_taken"}
    assert len(winners) + sum(isinstance(o, StatusRefused) for o in outcomes) == len(wanted)
    assert await stored_count(db) == 26
    assert (await load_registry(sessions, SHOP)).version == len(FREE)


async def test_first_edits_racing_write_the_defaults_once(db: ScratchDatabase) -> None:
    sessions = db.session_factory
    added = await asyncio.gather(
        *(add_status(sessions, "fresh", letter, f"Custom {letter}", now=T0) for letter in FREE[:6])
    )
    assert [s.letter for s in added] == FREE[:6]
    registry = await load_registry(sessions, "fresh")
    assert registry.version == 6 and len(registry.statuses) == 20
    assert await stored_count(db, "fresh") == 20
    async with sessions() as session:
        rows = await session.scalar(
            select(func.count()).where(OrderStatusRegistry.shop_id == "fresh")
        )
    assert rows == 1


async def test_the_client(db: ScratchDatabase) -> None:
    clock = iter(T0 + timedelta(seconds=n) for n in range(100))
    client = OrderStatusClient(db.session_factory, clock=lambda: next(clock))
    added = await client.add(SHOP, "g", "Gift", contents_editable=True, by="ann")
    assert added.letter == "G" and added.colour == "#9e9e9e" and added.inventory == "none"
    edited = await client.edit(SHOP, "G", new_letter="W", final=True)
    assert (edited.letter, edited.final, edited.contents_editable) == ("W", True, True)
    assert await client.get(SHOP, "w") == edited
    assert await client.for_admin(SHOP, "W") == edited
    assert (await client.delete(SHOP, "W")).letter == "W"
    registry = await client.list(SHOP)
    assert registry.version == 3 and registry.updated_at == T0 + timedelta(seconds=2)
    with pytest.raises(StatusRefused) as nothing:
        await client.edit(SHOP, "P")
    assert nothing.value.code == "invalid_status"


# --------------------------------------------------------------------------- properties

# mostly valid values, so that sequences reach 26 statuses; some wrong ones
LETTERS = st.sampled_from([*string.ascii_uppercase, "a", "n", "p", "1"])
NAMES = st.sampled_from(["Gift", "Paid", "Gone", "x" * 64, "Gift", "Paid", "", " pad"])
CHANGES = st.fixed_dictionaries(
    {},
    optional={
        "letter": LETTERS,
        "name": NAMES,
        "colour": st.sampled_from(["#ABCDEF", "#000000", "#12ab9f", "red"]),
        "position": st.sampled_from([0, 55, 150, 10**7]),
        "paid": st.booleans(),
        "final": st.booleans(),
        "inventory": st.sampled_from(["decrease", "increase", "none", "up"]),
        "contents_editable": st.booleans(),
    },
)
#: a sequence starts with this many statuses added (so that some reach the limit)
PREFILL = st.integers(0, len(FREE)) | st.integers(len(FREE) - 2, len(FREE))
ADD = st.tuples(st.just("add"), st.sampled_from([*FREE, "a", "N", "p", "1"]), NAMES, CHANGES)
OPERATIONS = st.lists(
    st.one_of(
        ADD,
        ADD,
        st.tuples(st.just("edit"), LETTERS, CHANGES),
        st.tuples(st.just("delete"), LETTERS),
    ),
    max_size=80,
)


def model_step(
    statuses: tuple[OrderStatusDef, ...], operation: tuple[Any, ...]
) -> tuple[tuple[OrderStatusDef, ...], OrderStatusDef | str]:
    """One operation on the pure rules: the statuses after it, and its answer (the status,
    or the refusal's code)."""
    try:
        if operation[0] == "add":
            _, letter, name, values = operation
            values = {k: v for k, v in values.items() if k not in ("letter", "name")}
            added = new_status(statuses, letter, name, **values)
            return (*statuses, added), added
        if operation[0] == "edit":
            _, letter, changes = operation
            before, after = edited_status(statuses, letter, changes)
            return tuple(after if s == before else s for s in statuses), after
        deleted = deleted_status(statuses, operation[1])
        return tuple(s for s in statuses if s != deleted), deleted
    except StatusRefused as refusal:
        return statuses, refusal.code


def check_invariants(statuses: tuple[OrderStatusDef, ...]) -> None:
    letters = [s.letter for s in statuses]
    assert len(statuses) <= MAX_STATUSES
    assert len(set(letters)) == len(letters)
    assert all(len(letter) == 1 and letter in string.ascii_uppercase for letter in letters)
    present = by_letter(statuses)
    for default in DEFAULT_STATUSES:
        assert present[default.letter].builtin
    assert [s.letter for s in statuses if s.hidden] == ["N"]
    hidden = present["N"]
    assert (hidden.paid, hidden.final, hidden.inventory, hidden.contents_editable) == (
        False,
        False,
        "none",
        False,
    )
    assert present["P"].paid and present["C"].paid
    assert not any(s.builtin for s in statuses if s.letter not in DEFAULT_LETTERS)


def prefilled(count: int) -> list[tuple[Any, ...]]:
    return [("add", letter, f"Custom {letter}", {}) for letter in FREE[:count]]


@settings(max_examples=400, deadline=None)
@given(PREFILL, OPERATIONS)
def test_the_rules_keep_their_invariants(prefill: int, operations: list[tuple[Any, ...]]) -> None:
    statuses = DEFAULT_STATUSES
    for operation in [*prefilled(prefill), *operations]:
        statuses, answer = model_step(statuses, operation)
        check_invariants(statuses)
        hypothesis_event(f"{operation[0]}: {answer if isinstance(answer, str) else 'done'}")
    hypothesis_event(f"ends with {len(statuses) // 5 * 5}+ statuses")
    hypothesis_event(f"ends with 26: {len(statuses) == MAX_STATUSES}")


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(prefill=PREFILL, operations=OPERATIONS)
async def test_the_store_does_what_the_rules_say(
    db: ScratchDatabase, prefill: int, operations: list[tuple[Any, ...]]
) -> None:
    shop = f"shop-{uuid.uuid4().hex[:12]}"  # every example on a shop of its own
    sessions = db.session_factory
    model = DEFAULT_STATUSES
    for operation in [*prefilled(prefill), *operations]:
        model, expected = model_step(model, operation)
        try:
            if operation[0] == "add":
                _, letter, name, values = operation
                values = {k: v for k, v in values.items() if k not in ("letter", "name")}
                answer: OrderStatusDef | str = await add_status(
                    sessions, shop, letter, name, now=T0, **values
                )
            elif operation[0] == "edit":
                answer = await edit_status(sessions, shop, operation[1], operation[2], now=T0)
            else:
                answer = await delete_status(sessions, shop, operation[1], now=T0)
        except StatusRefused as refusal:
            answer = refusal.code
        assert answer == expected, operation
    stored = await list_statuses(sessions, shop)
    check_invariants(stored)
    assert by_letter(stored) == by_letter(model)
