"""What the benchmark runs: its names, targets and plans (full and ``--quick``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
TASK_QUEUE = "cartkeeper-bench"
LIFECYCLE_SHOP = "bench"
IDLE_SHOP = "bench-idle"

TARGET_RATIO = 0.8
TARGET_LATENCY_FACTOR = 1.5
TARGET_RSS_MB = 400.0

#: the read model of ``lifecycle_postgres`` (a fresh database per run is created on it)
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


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
