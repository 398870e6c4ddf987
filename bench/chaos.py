"""The chaos run: ``python -m bench.chaos`` (``make chaos``). See ``bench/README.md``.

500 checkouts by 50 shoppers (online and offline payments; duplicated, reordered and late
gateway results; cart changes during payment; admin actions) while:

- the worker (a separate process, ``starter.workerprocess``) is killed with SIGKILL every
  10 s and restarted at once;
- the read model's PostgreSQL database (a fresh ``chaos_<stamp>`` database) refuses every
  connection for 60 s once (``ALLOW_CONNECTIONS false`` and its sessions terminated);
- the Temporal dev server (file-backed) is restarted once.

The worker's SMTP relay is ``bench.mailsink.MailSink`` (in memory, in this process): a
deployment has a relay, and the orders' status e-mails go through it (without one every
order's e-mail would retry for a day and keep its workflow busy: not what is measured).

Then an invariant checker reads every workflow and the read model (``bench.chaos_check``)
and writes ``bench/chaos.json``. It is a benchmark, not a test: it exits 1 when a count is
not 0 or the timer lateness misses its target.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from activities.db import make_engine, make_session_factory, upgrade_database
from bench.chaos_check import catch_up, check, timer_lateness
from bench.chaos_queue import QueueWatch
from bench.chaos_shoppers import BEHAVIOURS, GaveUp, Traffic, pick_behaviours
from bench.mailsink import MailSink, worker_env
from bench.pgdb import ScratchDatabase, check_server, scratch_database
from bench.plan import BENCH_DIR, DEFAULT_POSTGRES_URL
from bench.processes import bench_server, bench_worker, quiet_sdk_logs
from starter.client import CartkeeperClient, CartkeeperError
from starter.devserver import DevServer
from starter.workerprocess import WorkerProcess, WorkerStartError
from workflows.contract import CartPolicy

TASK_QUEUE = "cartkeeper-chaos"
TARGET_LATENESS_P99_S = 5.0
COUNTS = (
    "lost_payments",
    "duplicate_orders",
    "duplicate_numbers",
    "paid_flag_wrong",
    "read_model_mismatches",
    "orders_without_number",
    "stuck_workflows",
)

#: Short timers, so that they fire during the run: a silent gateway locks the cart after
#: 5 s, an idle cart is abandoned after 20 s; carts stay open (retire after 2 h, expire
#: after 30 days) until the checker has read them; the read model and search attributes
#: are written as the product's default says (5 s after a change, at once when urgent).
POLICY = CartPolicy(
    abandon_after_seconds=20,
    lock_after_seconds=5,
    retire_after_seconds=2 * 60 * 60,
    journal_limit=1_000,
)

Say = Callable[[str], None]


def worker_log_problems(log_paths: list[Path]) -> dict[str, Any]:
    """Workflow-task failures in the workers' logs: nondeterminism (by run id) and others."""
    import re

    texts = []
    for log_path in log_paths:
        try:
            texts.append(log_path.read_text(errors="replace"))
        except OSError:
            continue
    if not texts:
        return {}
    text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(texts))
    nondeterminism: dict[str, str] = {}
    failing_tasks = 0
    for line in text.splitlines():
        if "Failing workflow task" in line:
            failing_tasks += 1
        if "[TMPRL1100] Nondeterminism" in line:
            run = re.search(r"run_id=(\S+)", line)
            message = re.search(r"Nondeterminism error: ([^\"]+)", line)
            if run:
                nondeterminism.setdefault(run.group(1), message.group(1) if message else "")
    return {
        "failing_workflow_tasks": failing_tasks,
        "nondeterminism_runs": nondeterminism,
        "activity_failures_logged": text.count("Completing activity as failed"),
    }


async def save_histories(client: Any, shop: str, cart_ids: list[str], directory: Path) -> list[str]:
    """Save the histories of stuck workflows (``python -m bench.replay_history`` replays
    them)."""
    from workflows.contract import workflow_id

    saved = []
    for cart_id in cart_ids:
        try:
            history = await client.get_workflow_handle(workflow_id(shop, cart_id)).fetch_history()
        except Exception:
            continue
        saved.append(_save(directory / f"{cart_id}.json", history.to_json()))
    return saved


def _save(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


@dataclass(frozen=True)
class Schedule:
    checkouts: int = 500
    shoppers: int = 50
    kill_every_s: float = 10.0
    outage_at_s: float = 25.0
    outage_s: float = 60.0
    restart_at_s: float = 110.0
    catch_up_s: float = 240.0


QUICK = Schedule(checkouts=100, shoppers=20, outage_at_s=15.0, outage_s=15.0, restart_at_s=45.0)


@dataclass
class Timeline:
    """What happened when (wall clock, for the timer windows; seconds since the start)."""

    started: float = field(default_factory=time.monotonic)
    events: list[dict[str, Any]] = field(default_factory=list)
    windows: dict[str, list[tuple[datetime, datetime]]] = field(default_factory=dict)

    def mark(self, what: str, **info: Any) -> datetime:
        now = datetime.now(UTC)
        self.events.append({"t_s": round(time.monotonic() - self.started, 2), "what": what, **info})
        return now

    def window(self, name: str, start: datetime, end: datetime) -> None:
        self.windows.setdefault(name, []).append((start, end))


# =========================================================================== faults


@dataclass
class WorkerChaos:
    """SIGKILL a worker every ``every`` seconds on average and start it again at once (a
    start that fails, e.g. while the database is down, is retried with a short backoff).
    With several workers the kills go round them: one worker is down at a time.

    The interval is drawn from ``every`` +- 10%: with an exact period that is a multiple of
    the workflow task timeout (5 s, ``starter.client.TASK_TIMEOUT``), a task lost with a
    killed worker could time out just as the next kill comes and be handed to the dying
    worker again, run after run (a resonance of the harness, not of crashes)."""

    workers: list[WorkerProcess]
    timeline: Timeline
    say: Say
    every: float
    seed: int = 0
    kills: int = 0
    skipped: int = 0
    start_failures: int = 0
    down_s: float = 0.0
    starting: bool = False

    @property
    def starts(self) -> int:
        return sum(worker.starts for worker in self.workers)

    async def ensure_running(self) -> None:
        """Every worker runs (each killed one is started again)."""
        for worker in self.workers:
            await self._start(worker)

    async def _start(self, worker: WorkerProcess, killed_at: datetime | None = None) -> None:
        """Start ``worker`` (retried until it runs); after a kill at ``killed_at``, the
        time it was down is the timeline's window ``worker_down``."""
        began = time.monotonic()
        backoff = 1.0
        self.starting = True
        try:
            while not worker.running:
                try:
                    await worker.start(within=90)
                except WorkerStartError as error:
                    self.start_failures += 1
                    lines = [ln for ln in str(error).splitlines() if "Error" in ln]
                    reason = lines[-1].strip()[:200] if lines else str(error)[:200]
                    self.timeline.mark("worker_start_failed", reason=reason)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
            started_at = self.timeline.mark("worker_started", pid=worker.pid, name=worker.name)
            if killed_at is not None:
                self.timeline.window("worker_down", killed_at, started_at)
        finally:
            self.starting = False
            self.down_s += time.monotonic() - began

    @staticmethod
    def _cpu_share(worker: WorkerProcess) -> dict[str, float]:
        """The worker's CPU seconds in its life and the share of one core it used (1.0: one
        core the whole time; a Python worker's workflow tasks cannot use more)."""
        try:
            process = worker.ps()
            alive = max(time.time() - process.create_time(), 1e-3)
            cpu = worker.cpu_s()
        except Exception:  # it died by itself
            return {}
        return {
            "alive_s": round(alive, 2),
            "cpu_s": round(cpu, 2),
            "core_share": round(cpu / alive, 2),
        }

    async def run(self, stop: asyncio.Event) -> None:
        import random

        rng = random.Random(self.seed)
        next_kill = time.monotonic() + self.every
        restarting: asyncio.Task[None] | None = None
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), max(next_kill - time.monotonic(), 0))
                break
            except TimeoutError:
                pass
            next_kill += self.every * rng.uniform(0.9, 1.1)
            if restarting is not None and not restarting.done():
                self.skipped += 1  # still starting after the last kill
                continue
            victim = self.workers[self.kills % len(self.workers)]
            used = self._cpu_share(victim)
            await victim.kill_and_wait()
            self.kills += 1
            killed_at = self.timeline.mark("worker_killed", name=victim.name, **used)
            restarting = asyncio.create_task(self._start(victim, killed_at))
        if restarting is not None:
            await restarting


async def db_outage(
    database: ScratchDatabase, timeline: Timeline, at: float, seconds: float, say: Say
) -> float:
    """Take the read model's database away for ``seconds``; the measured outage."""
    await asyncio.sleep(at)
    say(f"read model DOWN for {seconds:.0f} s ({database.name}: connections refused)")
    start = timeline.mark("db_outage_start")
    began = time.monotonic()
    await database.down()
    try:
        await asyncio.sleep(seconds)
    finally:
        await database.up()
    lasted = time.monotonic() - began
    end = timeline.mark("db_outage_end")
    timeline.window("db_outage", start, end)
    say(f"read model UP again after {lasted:.1f} s")
    return lasted


async def server_restart(server: DevServer, timeline: Timeline, at: float, say: Say) -> float:
    """Restart the dev server once (same state file, same port); how long it was away."""
    await asyncio.sleep(at)
    say("Temporal dev server: restarting")
    start = timeline.mark("server_stop")
    began = time.monotonic()
    await server.restart()
    lasted = time.monotonic() - began
    end = timeline.mark("server_ready")
    timeline.window("server_restart", start, end)
    say(f"Temporal dev server back after {lasted:.1f} s")
    return lasted


# =========================================================================== the run


async def shoppers(traffic: Traffic, schedule: Schedule, run_id: str, say: Say) -> dict[str, Any]:
    behaviours = iter(enumerate(pick_behaviours(traffic.rng, schedule.checkouts)))
    failed: dict[str, int] = {}

    async def shopper() -> None:
        for n, behaviour in behaviours:
            cart_id = f"{run_id}-{n:04d}"
            try:
                await traffic.checkout_flow(cart_id, behaviour)
            except (GaveUp, CartkeeperError) as error:
                key = f"{behaviour}: {type(error).__name__}: {error}"[:200]
                failed[key] = failed.get(key, 0) + 1
            if (n + 1) % 100 == 0:
                say(f"  {traffic.checkouts_done} checkouts done, {len(traffic.background)} late")
            await traffic.think(0.5, 2.0)

    began = time.monotonic()
    await asyncio.gather(*(shopper() for _ in range(schedule.shoppers)))
    shopping_s = time.monotonic() - began
    say(f"shoppers done in {shopping_s:.0f} s; waiting for {len(traffic.background)} late events")
    await traffic.drain()
    return {
        "shopping_s": round(shopping_s, 1),
        "load_s": round(time.monotonic() - began, 1),
        "failed": failed,
    }


async def chaos_main(args: argparse.Namespace) -> int:
    quiet_sdk_logs()
    schedule = QUICK if args.quick else Schedule()
    if args.checkouts:
        schedule = dataclasses.replace(schedule, checkouts=args.checkouts)
    timeline = Timeline()

    def say(message: str) -> None:
        print(f"[{time.monotonic() - timeline.started:7.1f}s] {message}", flush=True)

    problem = await check_server(args.postgres_url)
    if problem is not None:
        print(f"error: PostgreSQL unavailable at {args.postgres_url}: {problem}", file=sys.stderr)
        return 2
    state_dir = Path(tempfile.mkdtemp(prefix="cartkeeper-chaos-"))
    run_id = datetime.now(UTC).strftime("%H%M%S")
    shop = f"chaos-{run_id}"
    server = bench_server(state_dir, db_file=state_dir / "temporal.db")
    faults: list[asyncio.Task[Any]] = []
    sink = MailSink()
    await sink.start()
    async with scratch_database(args.postgres_url, "chaos") as database:
        await upgrade_database(database.url)
        engine = make_engine(database.url)
        workers: list[WorkerProcess] = []
        try:
            client = await server.launch()
            for n in range(args.workers):
                worker = bench_worker(
                    state_dir,
                    server.address,
                    database.url,
                    name="worker" if n == 0 else f"worker{n + 1}",
                    task_queue=TASK_QUEUE,
                    floor=False,
                    env=worker_env(sink),
                )
                workers.append(worker)
                await worker.start()
            pids = ", ".join(str(worker.pid) for worker in workers)
            say(
                f"server {server.address} (file-backed, {state_dir}); worker pid {pids};"
                f" read model {database.name}; {schedule.checkouts} checkouts by"
                f" {schedule.shoppers} shoppers"
            )
            carts = CartkeeperClient(
                client, task_queue=TASK_QUEUE, policy_for=lambda _shop: POLICY, update_timeout=15
            )
            traffic = Traffic(carts, shop, args.seed, timeline.started, wait_with=args.wait_with)
            chaos = WorkerChaos(workers, timeline, say, schedule.kill_every_s, seed=args.seed)
            stop_killing = asyncio.Event()
            killer = asyncio.create_task(chaos.run(stop_killing))
            outage = asyncio.create_task(
                db_outage(database, timeline, schedule.outage_at_s, schedule.outage_s, say)
            )
            restart = asyncio.create_task(
                server_restart(server, timeline, schedule.restart_at_s, say)
            )
            watch = QueueWatch(client, TASK_QUEUE, timeline.started)
            stop_watching = asyncio.Event()
            watching = asyncio.create_task(watch.run(stop_watching))
            faults += [killer, outage, restart, watching]
            load = await shoppers(traffic, schedule, run_id, say)
            outage_s, restart_s = await asyncio.gather(outage, restart)
            stop_killing.set()
            await killer
            stop_watching.set()
            await watching
            await chaos.ensure_running()
            say(
                f"load done: {traffic.checkouts_done} checkouts; {chaos.kills} worker kills;"
                " the checker reads every workflow and the read model"
            )

            sessions = make_session_factory(engine)
            snapshot, catch = await catch_up(
                lambda cart_id: traffic.get(cart_id, deadline_s=20),
                traffic.behaviour_of,
                sessions,
                shop,
                schedule.catch_up_s,
                say,
            )
            counts, check_details = check(snapshot, traffic.delivered)
            counts["stuck_workflows"] = len(snapshot.unreadable)
            lateness = await timer_lateness(client, shop, snapshot.carts, timeline.windows)
            saved = await save_histories(
                client, shop, snapshot.unreadable, Path(args.output).with_suffix(".histories")
            )
        except BaseException:
            for worker in workers:
                print(worker.log_tail(), file=sys.stderr)
            raise
        finally:
            for task in faults:
                task.cancel()
            await asyncio.gather(*faults, return_exceptions=True)
            for worker in workers:
                await worker.stop()
            await server.stop()
            await engine.dispose()
            await sink.stop()

    out = {
        "checkouts": traffic.checkouts_done,
        "worker_kills": chaos.kills,
        "db_outage_s": round(outage_s, 1),
        "server_restarts": server.restarts,
        **{key: counts[key] for key in COUNTS},
        "timer_lateness_p99_s": lateness["p99_s"],
    }
    targets = {key: {"value": out[key], "target": "== 0", "met": out[key] == 0} for key in COUNTS}
    p99 = out["timer_lateness_p99_s"]
    targets["timer_lateness_p99_s"] = {
        "value": p99,
        "target": f"<= {TARGET_LATENESS_P99_S}",
        "met": p99 is not None and p99 <= TARGET_LATENESS_P99_S,
    }
    targets["checkouts"] = {
        "value": out["checkouts"],
        "target": f"== {schedule.checkouts}",
        "met": out["checkouts"] == schedule.checkouts,
    }
    all_met = all(t["met"] for t in targets.values())
    out["targets"] = targets
    out["all_met"] = all_met
    out["details"] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "wait_with": args.wait_with,
        "schedule": schedule.__dict__,
        "policy": POLICY.__dict__,
        "shop": shop,
        "database": database.name,
        "behaviours": dict(sorted(_count(traffic.behaviour_of.values()).items())),
        "behaviour_weights": BEHAVIOURS,
        "load": load,
        "server_restart_s": round(restart_s, 1),
        "worker": {
            "kills": chaos.kills,
            "kills_skipped_while_starting": chaos.skipped,
            "processes": args.workers,
            "starts": chaos.starts,
            "start_failures": chaos.start_failures,
            "down_s": round(chaos.down_s, 1),
        },
        "catch_up": catch,
        "mails_received": len(sink.received),
        "stuck_histories": saved,
        "worker_log": worker_log_problems([worker.log_path for worker in workers]),
        "check": check_details,
        "timer_lateness": lateness,
        "task_queue": watch.summary(),
        "client_errors_retried": dict(traffic.errors.most_common()),
        "refusals": dict(traffic.refusals.most_common()),
        "gave_up": dict(traffic.gave_up),
        "outcomes": dict(traffic.outcomes),
        "timeline": timeline.events,
        "cpu_count": os.cpu_count(),
    }
    output = _write(Path(args.output), out)
    _summary(out)
    say(f"wrote {output}")
    if args.keep:
        say(f"kept {state_dir} (server and worker logs)")
    else:
        shutil.rmtree(state_dir, ignore_errors=True)
    return 0 if all_met else 1


def _write(output: Path, out: dict[str, Any]) -> Path:
    output.write_text(json.dumps(out, indent=2, default=str) + "\n")
    return output


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def _summary(out: dict[str, Any]) -> None:
    print()
    print("=" * 78)
    print(f"cartkeeper chaos run {out['details']['date']} ({out['details']['mode']})")
    print("-" * 78)
    for key in ("checkouts", "worker_kills", "db_outage_s", "server_restarts"):
        print(f"{key:24s} {out[key]}")
    print("-" * 78)
    for key, target in out["targets"].items():
        if key == "checkouts":
            continue
        mark = "met" if target["met"] else "MISSED"
        print(f"{key:24s} {target['value']!s:>8}   ({target['target']}: {mark})")
    lateness = out["details"]["timer_lateness"]
    inside, untouched = lateness["in_db_outage"], lateness["not_pending_during_db_outage"]
    print(
        f"{'':24s} timers measured {lateness['measured']['n']}; deadline in the outage"
        f" {inside['n']} (p99 {inside['p99_s']} s); never pending during the outage"
        f" {untouched['n']} (p99 {untouched['p99_s']} s); unmeasured {lateness['unmeasured']}"
    )
    print("-" * 78)
    print("all targets met" if out["all_met"] else "targets MISSED")
    print("=" * 78)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 100 checkouts, a 15 s outage"
    )
    parser.add_argument("--checkouts", type=int, help="how many checkouts (default 500)")
    parser.add_argument("--seed", type=int, default=7, help="the traffic's random seed")
    parser.add_argument(
        "--wait-with",
        choices=("query", "visibility"),
        default="visibility",
        help="how shoppers and admins wait for a cart to lock: its CartState search"
        " attribute, as ops find locked carts (default), or get_cart every second (see"
        " bench/known_issues/README.md)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_DATABASE_URL") or DEFAULT_POSTGRES_URL,
        help="the PostgreSQL server (a database chaos_<stamp> is created on it and dropped"
        " afterwards; default $BENCH_DATABASE_URL, else %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (default 1, the issue's chaos run); the kills go round them,"
        " one down at a time",
    )
    parser.add_argument("--output", default=str(BENCH_DIR / "chaos.json"))
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args(argv)
    return asyncio.run(chaos_main(args))


if __name__ == "__main__":
    sys.exit(main())
