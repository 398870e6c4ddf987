"""The cartkeeper benchmark: ``python -m bench.run`` (``make bench``). See ``bench/README.md``.

It starts its own Temporal dev server (in memory, our search attributes, log level error)
and the product's worker in a separate process (``starter.workerprocess``, with the
``BenchFloor`` workflow besides the cart's), then measures, through the Python
``CartkeeperClient`` in this process:

- lifecycle: carts taken from creation to an order number (7 updates and 1 signal), back to
  back (throughput) and with 1 s pauses between steps (latency), against the floor, a
  workflow that only accepts 8 updates, interleaved on the same server; with the read
  model on SQLite (``lifecycle``) and on PostgreSQL (``lifecycle_postgres``, a fresh
  database per run), each against a floor measured in the same run;
- idle: the worker's RSS with 10,000 open carts waiting on their timers;
- reminders: 5,000 carts abandoned within one minute, each with a first reminder due 1 s
  later, sent to a local SMTP server: e-mails/s, duplicates, lateness, the worker's RSS;
- orders: 50 admins changing the statuses of 500 orders at once (status changes/s, p99,
  the e-mails and histories checked afterwards) against the same admins adding notes;
- http: cart updates through the HTTP API (``cartkeeper web`` in its own process) by 50
  shoppers while payment webhooks arrive, against the same through the Python client,
  and each webhook's order's time to the admin's orders list;
- admin: the admin's queries (orders list, counts, customer journal) with 100,000 carts and
  100,000 orders in the read model, on SQLite and PostgreSQL (no server or worker: the
  product's query functions in this process, after the server is stopped).

Results go to ``bench/results.json`` (details, breakdowns and diagnostics to
``bench/results.details.json``) and a summary is printed.

Modules: ``plan`` (plans, names, targets), ``processes`` (server and worker through the
``starter`` launchers), ``measure`` (CPU, latencies), ``kinds`` (the two workloads),
``lifecycle``, ``idle``, ``reminders`` (with ``mailsink``, its SMTP server, and
``reminder_timing``, its breakdown), ``orders`` (with ``orders_check``), ``http`` (with
``http_check``), ``admin`` (with
``admin_seed``), ``report``,
``pgdb`` (the scratch PostgreSQL database).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client

from bench.admin import admin_phase
from bench.http import http_part
from bench.idle import idle_phase
from bench.kinds import Kinds
from bench.lifecycle import cpu_per_cart, diagnostics_phase, lifecycle_phase, other_share
from bench.mailsink import MailSink, worker_env
from bench.measure import CpuMeter
from bench.orders import orders_phase
from bench.orders import worker_env as orders_worker_env
from bench.pgdb import check_server, scratch_database
from bench.plan import BENCH_DIR, DEFAULT_POSTGRES_URL, FULL, QUICK, TASK_QUEUE
from bench.processes import bench_server, bench_worker
from bench.reminders import reminders_phase
from bench.report import (
    build_results,
    environment,
    merge_previous,
    print_summary,
    write_outputs,
)
from starter.client import CartkeeperClient
from starter.devserver import DevServer
from starter.workerprocess import WorkerProcess

PARTS = ("lifecycle", "lifecycle_postgres", "idle", "reminders", "orders", "http", "admin")
#: the parts that need the Temporal server (``admin`` reads the read model only)
SERVER_PARTS = frozenset(PARTS) - {"admin"}

Say = Callable[[str], None]


async def _lifecycle_part(
    key: str,
    plan: Any,
    client: Client,
    server: DevServer,
    worker: WorkerProcess,
    run_id: str,
    details: dict[str, Any],
    say: Say,
    *,
    diagnostics: bool,
) -> dict[str, Any]:
    """One lifecycle part on ``worker`` (started here, stopped at the end)."""
    await worker.start()
    try:
        say(f"{key}: server pid {server.pid} on {server.address}; worker pid {worker.pid}")
        kinds = Kinds(client, run_id)
        part = await lifecycle_phase(plan, kinds, CpuMeter(server.ps(), worker), say)
        part["cpu_ms_per_cart"] = cpu_per_cart(part)
        part["other_cpu_share"] = other_share(part)
        details[key] = part
        if diagnostics:
            say("diagnostics: one shopper alone, payload sizes, histories")
            details["diagnostics"] = await diagnostics_phase(plan, kinds, say)
        part["worker_rss_mb_after"] = round(worker.rss_mb(), 1)
        return part
    except BaseException:
        print(worker.log_tail(), file=sys.stderr)
        raise
    finally:
        await worker.stop()


async def _reminders_part(
    plan: Any, client: Client, server: DevServer, state_dir: Path, run_id: str, say: Say
) -> dict[str, Any]:
    """The reminders part: a fresh worker (the product's workflows only) on a fresh SQLite
    read model (the figures do not depend on the carts of the parts before), sending to
    the bench's SMTP server."""
    sink = MailSink()
    await sink.start()
    url = f"sqlite+aiosqlite:///{state_dir / 'readmodel-reminders.db'}"
    worker = bench_worker(
        state_dir,
        server.address,
        url,
        name="worker-reminders",
        floor=False,
        mail_floor=True,
        env=worker_env(sink),
    )
    try:
        await worker.start()
        say(
            f"reminders: worker pid {worker.pid}; SMTP server 127.0.0.1:{sink.port};"
            f" {plan.reminder_carts} carts"
        )
        meter = CpuMeter(server.ps(), worker)
        return await reminders_phase(plan, client, run_id, worker, meter, sink, url, state_dir, say)
    except BaseException:
        print(worker.log_tail(), file=sys.stderr)
        raise
    finally:
        await worker.stop()
        await sink.stop()


async def _orders_part(
    plan: Any, client: Client, server: DevServer, state_dir: Path, run_id: str, say: Say
) -> dict[str, Any]:
    """The orders part: a fresh worker (the product's workflows only) on a fresh SQLite
    read model, its status e-mails sent to the bench's SMTP server."""
    sink = MailSink()
    await sink.start()
    url = f"sqlite+aiosqlite:///{state_dir / 'readmodel-orders.db'}"
    worker = bench_worker(
        state_dir,
        server.address,
        url,
        name="worker-orders",
        floor=False,
        env=orders_worker_env(sink),
    )
    try:
        await worker.start()
        say(f"orders: worker pid {worker.pid}; SMTP server 127.0.0.1:{sink.port}")
        meter = CpuMeter(server.ps(), worker)
        carts = CartkeeperClient(client, task_queue=TASK_QUEUE)
        return await orders_phase(plan, carts, run_id, worker, meter, sink, say)
    except BaseException:
        print(worker.log_tail(), file=sys.stderr)
        raise
    finally:
        await worker.stop()
        await sink.stop()


async def bench_main(args: argparse.Namespace) -> int:
    plan = QUICK if args.quick else FULL
    if args.idle_carts is not None:
        plan = dataclasses.replace(plan, idle_carts=args.idle_carts)
    if args.carts is not None:
        plan = dataclasses.replace(plan, reminder_carts=args.carts)
    parts = [args.only] if args.only else list(PARTS)
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {message}", flush=True)

    state_dir = Path(tempfile.mkdtemp(prefix="cartkeeper-bench-"))
    sqlite_url = f"sqlite+aiosqlite:///{state_dir / 'readmodel.db'}"
    run_id = datetime.now(UTC).strftime("%H%M%S")
    server = bench_server(state_dir)
    env_info = environment(server.binary, plan, args.quick, args.only)
    uses_postgres = {"lifecycle_postgres", "admin"} & set(parts)
    env_info["postgres_url"] = args.postgres_url if uses_postgres else None
    details: dict[str, Any] = {"environment": env_info, "skipped": {}}
    lifecycles: dict[str, dict[str, Any] | None] = {}
    idle = None
    reminders = None
    orders = None
    http = None
    admin = None
    # The lifecycle and idle workers' SMTP relay: the orders' status e-mails go somewhere,
    # as deployed (without it each order's e-mail failed and was retried for the whole run:
    # a database claim, a rendering and a traceback each time, most of the worker's CPU).
    relay = MailSink()
    if SERVER_PARTS & set(parts):
        say(f"starting the dev server ({server.binary}); state in {state_dir}")
        await relay.start()
        try:
            client = await server.launch()
            if "lifecycle" in parts:
                worker = bench_worker(
                    state_dir,
                    server.address,
                    sqlite_url,
                    name="worker-sqlite",
                    env=worker_env(relay),
                )
                lifecycles["lifecycle"] = await _lifecycle_part(
                    "lifecycle",
                    plan,
                    client,
                    server,
                    worker,
                    run_id,
                    details,
                    say,
                    diagnostics=True,
                )
            if "lifecycle_postgres" in parts:
                problem = await check_server(args.postgres_url)
                if problem is not None:
                    details["skipped"]["lifecycle_postgres"] = f"PostgreSQL unavailable: {problem}"
                    say(f"lifecycle_postgres: SKIPPED, PostgreSQL unavailable ({problem})")
                else:
                    async with scratch_database(args.postgres_url, "cartkeeper_bench") as database:
                        say(f"lifecycle_postgres: read model in the database {database.name}")
                        env_info["postgres_database"] = database.name
                        worker = bench_worker(
                            state_dir,
                            server.address,
                            database.url,
                            name="worker-postgres",
                            env=worker_env(relay),
                        )
                        lifecycles["lifecycle_postgres"] = await _lifecycle_part(
                            "lifecycle_postgres",
                            plan,
                            client,
                            server,
                            worker,
                            f"{run_id}-pg",
                            details,
                            say,
                            diagnostics=False,
                        )
            if "idle" in parts:
                # A fresh worker: the RSS is the idle carts' alone, not the lifecycle runs'.
                worker = bench_worker(
                    state_dir, server.address, sqlite_url, name="worker-idle", env=worker_env(relay)
                )
                await worker.start()
                try:
                    meter = CpuMeter(server.ps(), worker)
                    idle = await idle_phase(
                        plan, Kinds(client, run_id), worker, meter, sqlite_url, say
                    )
                    details["idle"] = idle
                except BaseException:
                    print(worker.log_tail(), file=sys.stderr)
                    raise
                finally:
                    await worker.stop()
            if "reminders" in parts:
                reminders = await _reminders_part(plan, client, server, state_dir, run_id, say)
                details["reminders"] = reminders
            if "orders" in parts:
                orders = await _orders_part(plan, client, server, state_dir, run_id, say)
                details["orders"] = orders
            if "http" in parts:
                http = await http_part(plan, client, server, state_dir, run_id, say)
                details["http"] = http
        finally:
            await server.stop()
            await relay.stop()
    if "admin" in parts:
        admin = await admin_phase(plan, state_dir, args.postgres_url, say)
        details["admin"] = admin

    results = build_results(lifecycles, idle, env_info, reminders, admin, orders, http)
    kept = merge_previous(Path(args.output), results, details, parts)
    if kept:
        say(f"kept the figures of {', '.join(kept)} from {args.output} (not run this time)")
    output, details_path = write_outputs(Path(args.output), results, details)
    print_summary(results, details)
    say(f"wrote {output} and {details_path}")
    if not args.keep:
        shutil.rmtree(state_dir, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer carts, 1,000 idle")
    parser.add_argument("--only", choices=PARTS, help="run one part only")
    parser.add_argument("--idle-carts", type=int, help="how many idle carts (default 10,000)")
    parser.add_argument(
        "--carts", type=int, help="how many carts the reminders part abandons (default 5,000)"
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_DATABASE_URL") or DEFAULT_POSTGRES_URL,
        help="the PostgreSQL server of lifecycle_postgres and admin (a fresh database is"
        " created on it and dropped afterwards; default $BENCH_DATABASE_URL, else %(default)s)",
    )
    parser.add_argument(
        "--output", default=str(BENCH_DIR / "results.json"), help="where the results go"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, db)")
    args = parser.parse_args(argv)
    return asyncio.run(bench_main(args))


if __name__ == "__main__":
    sys.exit(main())
