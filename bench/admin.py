"""The ``admin`` part (point 14 of the "Orders" issue, the admin queries): with
``admin_carts`` carts and ``admin_orders`` orders in the read model (100,000 + 100,000),
the admin's queries on SQLite and on PostgreSQL, through the product's functions
(``activities.orders_query``, and ``activities.journal_query.customer_journal`` once it
exists) with a session factory, as the CLI calls them.

Seeding: ``bench.admin_seed`` (templates built with the state machine, rows written in
bulk). SQLite: a fresh file in the bench's state dir; PostgreSQL: a scratch database
(``bench.pgdb.scratch_database``), skipped with its reason when the server is not there.
Both are migrated to head first (``upgrade_database``: the product's indexes).

Each query runs ``admin_warmup`` times, then ``admin_runs`` times with parameters drawn
from the seeded rows (seeded ``random``, the same on both databases), one call at a time;
wall time per call (``time.perf_counter``); p50/p95/p99 (nearest rank). The queries ask
for the largest shop (``adm-main``: 60 % of the rows): the worst case. SQLite's and
PostgreSQL's plan of one call of each list query are kept in the details.
"""

from __future__ import annotations

import importlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import ClauseElement

from activities.db import make_engine, make_session_factory, upgrade_database
from activities.orders_query import (
    NOT_FINISHED,
    count_by_status,
    encode_cursor,
    get_order,
    list_orders,
    list_statements,
)
from bench.admin_seed import LETTERS, MAIN_SHOP, YEAR, YEAR_START, Seed, plan_seed, write_seed
from bench.measure import percentile, rounded
from bench.pgdb import check_server, scratch_database
from bench.plan import TARGET_ADMIN_P95_MS, Plan

Say = Callable[[str], None]
#: the queries measured, in this order (``customer_journal`` only once it is built)
QUERIES = (
    "orders_page",
    "orders_by_status",
    "orders_by_date_range",
    "orders_by_email",
    "orders_by_number",
    "orders_next_page",
    "not_finished",
    "not_finished_payment_step",
    "not_finished_payment_failed",
    "counts_by_status",
    "counts_with_payment_step",
)
#: the not finished conditions of a shop that lists every cart at the payment step
AT_PAYMENT_STEP = ("payment_step", "no_return")
JOURNAL = "customer_journal"
DATABASES = ("sqlite", "postgresql")
NOT_MEASURED = {
    "orders.status_changes_per_s": "not measured here: the orders part (bench/orders.py)"
    " measures it",
}

Call = Callable[[Any], Awaitable[Any]]


@dataclass(frozen=True)
class Query:
    """A query: one argument set per call (``args[i]``), and how to call it."""

    name: str
    args: list[dict[str, Any]]
    call: Callable[[Any, dict[str, Any]], Awaitable[Any]]


def journal_function() -> Callable[..., Awaitable[Any]] | None:
    """``activities.journal_query.customer_journal``, if it exists (another helper builds
    it)."""
    try:
        module = importlib.import_module("activities.journal_query")
    except ImportError:
        return None
    found = getattr(module, "customer_journal", None)
    return found if callable(found) else None


def _queries(seed: Seed, calls: int, rng: random.Random) -> list[Query]:
    """The queries with ``calls`` argument sets each, drawn from the seeded rows."""
    main = [i for i in range(len(seed.rows)) if seed.shop(i) == MAIN_SHOP]
    orders = [i for i in main if seed.numbers[i]]
    customers = [i for i in main if seed.rows[i][3] >= 0]
    orders.sort(key=lambda i: (seed.when(i, "ordered_at"), seed.cart_ids[i]))
    letters = [letter for letter, _ in LETTERS] + ["N"]
    sorts = ("newest", "oldest")

    def email(row: int) -> str:
        _t, _s, _shop, customer, _caps = seed.rows[row]
        return seed.email(customer, rng.random() < 0.2)

    def deep_cursor() -> str:
        # from 10 % to 90 % down the list (newest first)
        row = orders[int(len(orders) * rng.uniform(0.1, 0.9))]
        at = seed.when(row, "ordered_at")
        assert at is not None
        return encode_cursor("newest", at, seed.cart_ids[row])

    def date_range() -> dict[str, Any]:
        days = rng.choice((1, 7, 30))
        since = YEAR_START + timedelta(
            seconds=rng.uniform(0, (YEAR - timedelta(days=days)).total_seconds())
        )
        return {"since": since, "until": since + timedelta(days=days), "sort": rng.choice(sorts)}

    def listed(sessions: Any, args: dict[str, Any]) -> Awaitable[Any]:
        return list_orders(sessions, MAIN_SHOP, **args)

    def rng_args(make: Callable[[], dict[str, Any]]) -> list[dict[str, Any]]:
        return [make() for _ in range(calls)]

    queries = [
        Query("orders_page", rng_args(lambda: {"sort": rng.choice(sorts)}), listed),
        Query(
            "orders_by_status",
            rng_args(lambda: {"status": rng.choice(letters), "sort": rng.choice(sorts)}),
            listed,
        ),
        Query("orders_by_date_range", rng_args(date_range), listed),
        Query("orders_by_email", rng_args(lambda: {"email": email(rng.choice(customers))}), listed),
        Query(
            "orders_by_number",
            rng_args(lambda: {"number": seed.numbers[rng.choice(orders)]}),
            lambda s, a: get_order(s, MAIN_SHOP, a["number"]),
        ),
        Query("orders_next_page", rng_args(lambda: {"after": deep_cursor()}), listed),
        Query(
            "not_finished",
            rng_args(lambda: {"status": NOT_FINISHED, "sort": rng.choice(sorts)}),
            listed,
        ),
        Query(
            "not_finished_payment_step",
            rng_args(
                lambda: {
                    "status": NOT_FINISHED,
                    "sort": rng.choice(sorts),
                    "not_finished_when": AT_PAYMENT_STEP,
                }
            ),
            listed,
        ),
        Query(
            "not_finished_payment_failed",
            rng_args(
                lambda: {
                    "status": NOT_FINISHED,
                    "sort": rng.choice(sorts),
                    "not_finished_when": ("payment_failed",),
                }
            ),
            listed,
        ),
        Query(
            "counts_by_status",
            rng_args(dict),
            lambda s, _a: count_by_status(s, MAIN_SHOP),
        ),
        Query(
            "counts_with_payment_step",
            rng_args(dict),
            lambda s, _a: count_by_status(s, MAIN_SHOP, not_finished_when=AT_PAYMENT_STEP),
        ),
    ]
    journal = journal_function()
    if journal is not None:
        queries.append(
            Query(
                JOURNAL,
                rng_args(lambda: {"email": email(rng.choice(customers))}),
                lambda s, a: journal(s, MAIN_SHOP, a["email"]),
            )
        )
    return queries


def _size(result: Any) -> int:
    """Rows a call returned (a page's rows, a dict's or a sequence's length, else 1)."""
    rows = getattr(result, "rows", None)
    if rows is None:
        rows = getattr(result, "items", None)
    if rows is not None and not callable(rows):
        return len(rows)
    return len(result) if isinstance(result, dict | list | tuple) else 1


async def _measure(query: Query, sessions: Any, warmup: int) -> dict[str, Any]:
    for args in query.args[:warmup]:
        await query.call(sessions, args)
    samples: list[float] = []
    returned: list[int] = []
    for args in query.args[warmup:]:
        start = time.perf_counter()
        result = await query.call(sessions, args)
        samples.append((time.perf_counter() - start) * 1000)
        returned.append(_size(result))
    return {
        "calls": len(samples),
        "p50_ms": rounded(percentile(samples, 50), 2),
        "p95_ms": rounded(percentile(samples, 95), 2),
        "p99_ms": rounded(percentile(samples, 99), 2),
        "max_ms": rounded(max(samples), 2),
        "mean_ms": rounded(sum(samples) / len(samples), 2),
        "rows_mean": round(sum(returned) / len(returned), 1),
    }


class Explain(Executable, ClauseElement):
    """``EXPLAIN QUERY PLAN`` (SQLite) / ``EXPLAIN (ANALYZE, BUFFERS)`` (PostgreSQL) of a
    statement, its parameters bound as the statement's own (JSON paths included)."""

    inherit_cache = False

    def __init__(self, statement: Any) -> None:
        self.statement = statement


@compiles(Explain)
def _compile_explain(element: Explain, compiler: Any, **kw: Any) -> str:
    prefix = "EXPLAIN QUERY PLAN " if compiler.dialect.name == "sqlite" else "EXPLAIN (ANALYZE) "
    return prefix + str(compiler.process(element.statement, **kw))


async def _explain(engine: AsyncEngine, query: Query) -> list[str] | None:
    """The database's plan of the query's first call (list queries and the counts)."""
    dialect = engine.dialect.name
    if query.name == "counts_by_status":
        statements: list[Any] = [
            text(
                "SELECT order_status, count(*) FROM carts WHERE shop_id = :shop"
                " AND state = 'ordered' GROUP BY order_status"
            ).bindparams(shop=MAIN_SHOP),
            text(
                "SELECT count(*) FROM carts WHERE shop_id = :shop AND state = 'locked'"
                " AND locked_at IS NOT NULL"
            ).bindparams(shop=MAIN_SHOP),
        ]
    elif query.name == "counts_with_payment_step":
        return None  # the counts' plan is the one above, per kind
    elif query.name in QUERIES and query.name != "orders_by_number":
        statements = list_statements(dialect, MAIN_SHOP, **query.args[0])
    elif query.name == "orders_by_number":
        statements = list_statements(dialect, MAIN_SHOP, limit=1, **query.args[0])
    else:
        return None
    lines: list[str] = []
    async with engine.connect() as connection:
        for statement in statements:
            raw = await connection.execute(Explain(statement))
            lines += [" | ".join(str(v) for v in row) for row in raw.all()]
            lines.append("--")
    return lines


async def _database(
    name: str, url: str, seed: Seed, plan: Plan, say: Say, explain: bool
) -> dict[str, Any]:
    """Migrate, seed and measure one database."""
    await upgrade_database(url)
    engine = make_engine(url)
    try:
        say(f"admin: {name}: writing {len(seed.rows):,} rows")
        seeding = await write_seed(engine, seed, plan.admin_batch)
        say(
            f"admin: {name}: seeded in {seeding['seed_s']} s ({seeding['rows_per_s']:,} rows/s,"
            f" analyze {seeding['analyze_s']} s)"
        )
        sessions = make_session_factory(engine)
        queries = _queries(seed, plan.admin_warmup + plan.admin_runs, random.Random(7))
        measured: dict[str, Any] = {}
        plans: dict[str, Any] = {}
        for query in queries:
            measured[query.name] = await _measure(query, sessions, plan.admin_warmup)
            slow = (measured[query.name]["p95_ms"] or 0) > TARGET_ADMIN_P95_MS
            say(
                f"admin: {name}: {query.name:22s} p50 {measured[query.name]['p50_ms']:7.2f} ms"
                f"  p95 {measured[query.name]['p95_ms']:7.2f} ms"
                f"  p99 {measured[query.name]['p99_ms']:7.2f} ms" + ("  SLOW" if slow else "")
            )
            found = await _explain(engine, query) if explain or slow else None
            if found is not None:
                plans[query.name] = found
        return {"seeding": seeding, "queries": measured, "plans": plans}
    finally:
        await engine.dispose()


async def admin_phase(plan: Plan, state_dir: Path, postgres_url: str, say: Say) -> dict[str, Any]:
    """The part: its details (``results_section`` makes its figures)."""
    started = time.perf_counter()
    say(
        f"admin: planning {plan.admin_carts:,} carts + {plan.admin_orders:,} orders"
        f" ({plan.admin_customers:,} customers)"
    )
    seed = plan_seed(
        plan.admin_carts, plan.admin_orders, plan.admin_customers, plan.admin_templates_per_kind
    )
    part: dict[str, Any] = {
        "carts": plan.admin_carts,
        "orders": plan.admin_orders,
        "customers": plan.admin_customers,
        "templates": len(seed.templates),
        "orders_per_shop": seed.orders_per_shop,
        "shop_queried": MAIN_SHOP,
        "runs": plan.admin_runs,
        "warmup": plan.admin_warmup,
        "plan_s": round(time.perf_counter() - started, 1),
        "not_measured": dict(NOT_MEASURED),
        "skipped": {},
    }
    if journal_function() is None:
        part[JOURNAL] = "not built yet"
        say("admin: customer_journal: not built yet (activities.journal_query)")
    sqlite_url = f"sqlite+aiosqlite:///{state_dir / 'readmodel-admin.db'}"
    part["sqlite"] = await _database("sqlite", sqlite_url, seed, plan, say, explain=True)
    problem = await check_server(postgres_url)
    if problem is not None:
        part["skipped"]["postgresql"] = f"PostgreSQL unavailable: {problem}"
        say(f"admin: postgresql: SKIPPED ({problem})")
    else:
        async with scratch_database(postgres_url, "cartkeeper_admin") as database:
            say(f"admin: postgresql: database {database.name}")
            part["postgres_database"] = database.name
            part["postgresql"] = await _database(
                "postgresql", database.url, seed, plan, say, explain=True
            )
    part["elapsed_s"] = round(time.perf_counter() - started, 1)
    return part


def results_section(part: dict[str, Any] | None) -> dict[str, Any]:
    """The ``admin`` figures of ``results.json``: ``<query>.<database>.{p50,p95,p99}_ms``
    and ``seed_s.<database>`` (``None`` where not measured; ``customer_journal`` only
    once it is built)."""
    names = list(QUERIES)
    if part is not None and JOURNAL in part.get("sqlite", {}).get("queries", {}):
        names.append(JOURNAL)
    out: dict[str, Any] = {}
    for name in names:
        out[name] = {}
        for database in DATABASES:
            measured = (part or {}).get(database, {}).get("queries", {}).get(name, {})
            out[name][database] = {key: measured.get(key) for key in ("p50_ms", "p95_ms", "p99_ms")}
    out["seed_s"] = {
        database: (part or {}).get(database, {}).get("seeding", {}).get("seed_s")
        for database in DATABASES
    }
    return out


def p95_values(section: dict[str, Any]) -> dict[str, Any]:
    """``admin.<query>.<database>.p95_ms`` -> value, for the targets table."""
    return {
        f"admin.{name}.{database}.p95_ms": figures[database]["p95_ms"]
        for name, figures in section.items()
        if name != "seed_s"
        for database in DATABASES
    }


def print_admin(results: dict[str, Any], details: dict[str, Any], mark: Any) -> None:
    """The part's lines of the summary."""
    section = results.get("admin") or {}
    values = p95_values(section)
    if all(value is None for value in values.values()):
        return
    part = details.get("admin", {})
    kept = results["environment"].get("kept_from_previous", {}).get("admin")
    print("-" * 78)
    print(
        f"admin        {part.get('carts', '?'):,} carts + {part.get('orders', '?'):,} orders,"
        f" shop {part.get('shop_queried')}; p95 per call (<= {TARGET_ADMIN_P95_MS:.0f} ms)"
        + (f" (kept from the run of {kept['date']})" if kept else "")
    )
    seeds = section.get("seed_s", {})
    print(
        f"             seeded in: SQLite {seeds.get('sqlite')} s,"
        f" PostgreSQL {seeds.get('postgresql')} s"
    )
    for name, figures in section.items():
        if name == "seed_s":
            continue
        cells = []
        for database in DATABASES:
            p95 = figures[database]["p95_ms"]
            key = f"admin.{name}.{database}.p95_ms"
            cells.append(f"{database} {p95 if p95 is not None else '-':>7} ({mark(key)})")
        print(f"             {name:22s} " + "  ".join(cells))
    if isinstance(part.get(JOURNAL), str):
        print(f"             {JOURNAL}: {part[JOURNAL]}")
    for key, why in part.get("not_measured", {}).items():
        print(f"             {key}: {why}")
    for database, why in part.get("skipped", {}).items():
        print(f"             {database}: {why}")
