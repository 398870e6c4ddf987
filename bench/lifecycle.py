"""The lifecycle part: throughput and latency of the cart's lifecycle against the floor
(ABBA rounds on one server and worker), and diagnostics (one shopper alone, payload sizes,
histories)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from temporalio.converter import DataConverter

from bench.floor import FloorStep
from bench.kinds import LINE_A, LINE_B, Kinds, run_carts
from bench.measure import CpuMeter, Recorder, cpu_text
from bench.plan import LIFECYCLE_SHOP, Plan
from workflows.contract import CartInput, CartPolicy, CartUpdated, workflow_id


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
                f"{cpu_text(cpu)})" + (f"  ERRORS {dict(rec.errors)}" if rec.errors else "")
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


def cpu_per_cart(lifecycle: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Median CPU ms per cart of each process, by kind, over the throughput rounds."""
    out: dict[str, dict[str, float]] = {}
    for kind in (Kinds.FLOOR, Kinds.LIFECYCLE):
        rows = [r for r in lifecycle["throughput_rounds"] if r["kind"] == kind]
        out[kind] = {
            proc: sorted(r["cpu_ms_per_cart"][proc] for r in rows)[(len(rows) - 1) // 2]
            for proc in ("server", "worker", "client")
        }
    return out


def other_share(lifecycle: dict[str, Any]) -> float:
    """The share of the machine's busy CPU used by processes not ours (all rounds)."""
    rows = lifecycle["throughput_rounds"] + lifecycle["latency_rounds"]
    ours = sum(r["cpu_s"][k] for r in rows for k in ("server", "worker", "client"))
    other = sum(r["cpu_s"]["other"] for r in rows)
    return round(other / (ours + other), 3) if ours + other else 0.0
