"""The idle part: the worker's RSS with many open carts waiting on their timers."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from bench.kinds import LINE_A, Kinds
from bench.measure import CpuMeter
from bench.plan import IDLE_SHOP, Plan
from starter.workerprocess import WorkerProcess
from workflows import search_attributes as sa
from workflows.contract import WORKFLOW_NAME


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
