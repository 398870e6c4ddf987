"""Measuring: CPU per process (``CpuMeter``), client-side latencies (``Recorder``) and the
nearest-rank ``percentile``."""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import psutil

from starter.workerprocess import WorkerProcess


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


def rounded(value: float | None, digits: int = 1) -> float | None:
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
            "update_p50_ms": rounded(percentile(updates, 50)),
            "update_p90_ms": rounded(percentile(updates, 90)),
            "update_p99_ms": rounded(percentile(updates, 99)),
            "update_max_ms": rounded(max(updates) if updates else None),
            "by_step": {
                label: {
                    "n": len(values),
                    "p50_ms": rounded(percentile(values, 50)),
                    "p99_ms": rounded(percentile(values, 99)),
                    "mean_ms": rounded(sum(values) / len(values)),
                }
                for label, values in sorted(self.samples.items())
            },
            "errors": dict(self.errors),
        }


def cpu_text(cpu: dict[str, float]) -> str:
    return (
        f"cpu s server {cpu['server']:.1f} worker {cpu['worker']:.1f} "
        f"client {cpu['client']:.1f} other {cpu['other']:.1f}"
    )
