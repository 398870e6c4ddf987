"""What the benchmark runs: its names, targets and plans (full and ``--quick``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
TASK_QUEUE = "cartkeeper-bench"
LIFECYCLE_SHOP = "bench"
IDLE_SHOP = "bench-idle"
#: the reminders part: the shop with the campaign, and the shop of its calibration carts
REMINDERS_SHOP = "bench-remind"
REMINDERS_CALIBRATION_SHOP = "bench-remind-cal"
#: the orders part's shop (its orders department is the bench's SMTP sink)
ORDERS_SHOP = "bench-orders"
#: the http part's shop (its API key, its carts and the webhooks' orders)
HTTP_SHOP = "bench-http"

TARGET_RATIO = 0.8
TARGET_LATENCY_FACTOR = 1.5
TARGET_RSS_MB = 400.0
#: reminders (issue 6 point 12): X-Cart's cron sends at most 100 per minute
TARGET_EMAILS_PER_S = 100.0
TARGET_REMINDER_LATENESS_P99_S = 5.0
#: the admin queries (point 14 of the "Orders" issue): p95 per call
TARGET_ADMIN_P95_MS = 50.0
#: the web (issue 8 point 4): what HTTP adds to an update at p50 over the Python client,
#: and a payment webhook accepted -> its order in the admin's orders list, p99
TARGET_HTTP_OVERHEAD_P50_MS = 5.0
TARGET_WEBHOOK_VISIBLE_P99_MS = 1000.0

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
    #: reminders: carts whose abandonment is spread evenly at ``abandon_rate`` carts/s
    #: (5,000 carts: 40 s, within one minute), the first reminder due 1 s after it; created
    #: ``reminder_concurrency`` at a time (few: the abandonment counts from a cart's second
    #: call, so the wait between its two calls shifts it)
    reminder_carts: int = 5_000
    reminder_concurrency: int = 20
    abandon_rate: float = 125.0
    #: carts are first created for this long (another shop, no campaign) to measure the
    #: creation rate, which tells when the abandonment can start: once every cart is
    #: created (with a margin), plus the lead
    reminder_calibration_s: float = 14.0
    reminder_lead_s: float = 10.0
    #: how long to wait for the e-mails after the last one is due (then: carts lost)
    reminder_wait_s: float = 1200.0
    #: carts whose histories break the lateness down (spread over the due times)
    reminder_history_samples: int = 60
    #: admin: carts that are not orders (active, abandoned, locked) and orders in the read
    #: model, their customers' addresses, template carts per kind (9 kinds), rows per
    #: ``INSERT``; each query's calls measured, after the warm-up calls
    admin_carts: int = 100_000
    admin_orders: int = 100_000
    admin_customers: int = 30_000
    admin_templates_per_kind: int = 40
    admin_batch: int = 5_000
    admin_runs: int = 200
    admin_warmup: int = 20
    #: orders: orders taken through a payment before the measured windows, the admins
    #: changing their statuses at once (and sending notes, the baseline), the longest
    #: status window, and how long to wait for the orders' e-mails and stock moves
    orders: int = 500
    orders_admins: int = 50
    orders_max_window_s: float = 300.0
    orders_settle_s: float = 300.0
    #: http: shoppers updating carts (each alternating HTTP and the Python client, with
    #: ``pause_s`` between updates) for ``http_seconds`` after ``http_warmup_s``, a new
    #: pair of carts every ``http_updates_per_cart`` updates of each; meanwhile payment
    #: webhooks arrive at ``http_webhooks_per_s`` for carts waiting at the gateway
    http_shoppers: int = 50
    http_seconds: float = 120.0
    http_warmup_s: float = 10.0
    http_updates_per_cart: int = 8
    http_webhooks_per_s: float = 2.0


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
    reminder_carts=300,
    reminder_calibration_s=10.0,
    reminder_history_samples=30,
    admin_carts=5_000,
    admin_orders=5_000,
    admin_customers=2_000,
    admin_templates_per_kind=10,
    admin_runs=50,
    admin_warmup=5,
    orders=150,
    http_seconds=30.0,
    http_warmup_s=5.0,
)
