"""The http part's measuring and figures (``bench.http``): every update's wall time by way
(``Updates``), the gateway posting the payment webhooks (``Gateway``), the admin's orders
list watched for their orders (``OrderWatcher``), the web process's own view of its
requests (``server_side``, from its ``/metrics``), its log's problems, and the
``results.json`` section, targets and summary lines."""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks.webhooks import Webhook

from activities.settings import Settings
from bench.kinds import TOTAL
from bench.measure import percentile, rounded
from bench.plan import HTTP_SHOP, TARGET_HTTP_OVERHEAD_P50_MS, TARGET_WEBHOOK_VISIBLE_P99_MS
from starter.orders import OrdersClient

#: how often the admin's orders list is read while webhooks' orders are awaited
POLL_S = 0.1
#: a webhook's order not on the list's first page this long after it was accepted is
#: looked for by its customer's address (the first page holds the newest 50 orders)
FALLBACK_AFTER_S = 3.0
#: an order not visible this long after its webhook was accepted counts as not visible
#: (and with this latency in the percentiles)
VISIBLE_TIMEOUT_S = 60.0
#: examples kept of each kind of failure
EXAMPLES = 10
#: the gateway's name in the webhook's URL and in ``CARTKEEPER_WEBHOOK_SECRETS``
SOURCE = "benchpay"
WEBHOOK_PATH = f"/api/v1/webhooks/payments/{SOURCE}"
#: the customers' addresses of the webhooks' carts
CUSTOMER_DOMAIN = "customers.example.com"

#: ``results.json``'s ``http`` keys
RESULT_KEYS = (
    "update_p50_ms",
    "update_p99_ms",
    "client_update_p50_ms",
    "client_update_p99_ms",
    "webhook_to_order_visible_p99_ms",
)


@dataclass
class Updates:
    """Each update's wall time (ms) by way and kind (``start``: the cart's first, an
    update-with-start), refusals and errors by way, answers not matching the update."""

    samples: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    mismatches: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    #: a shopper's HTTP update minus its client update next to it (same step, same load)
    differences: list[float] = field(default_factory=list)

    def paired(self, http_minus_client_ms: float) -> None:
        self.differences.append(http_minus_client_ms)

    def answered(self, via: str, kind: str, ms: float) -> None:
        self.samples[f"{via} {kind}"].append(ms)

    def failed(self, via: str, what: str, error: BaseException) -> None:
        # a refusal by its code (HTTP: with its status), anything else by its type
        code = getattr(error, "code", None)
        status = getattr(error, "status", None)
        name = type(error).__name__ if code is None else f"{status or ''} {code}".strip()
        self.errors[f"{via} {name}"] += 1
        self._example(f"{what} -> {type(error).__name__}: {error}"[:300])

    def wrong(self, via: str, text: str) -> None:
        self.mismatches[via] += 1
        self._example(f"{via} answer does not match the update: {text}"[:300])

    def _example(self, text: str) -> None:
        if len(self.examples) < EXAMPLES:
            self.examples.append(text)

    def samples_of(self, via: str) -> list[float]:
        return [
            ms for key, values in self.samples.items() if key.startswith(f"{via} ") for ms in values
        ]

    def all(self) -> list[float]:
        return [ms for values in self.samples.values() for ms in values]

    @staticmethod
    def figures(values: list[float]) -> dict[str, Any]:
        return {
            "n": len(values),
            "p50_ms": rounded(percentile(values, 50)),
            "p90_ms": rounded(percentile(values, 90)),
            "p99_ms": rounded(percentile(values, 99)),
            "max_ms": rounded(max(values) if values else None),
            "mean_ms": rounded(sum(values) / len(values) if values else None),
        }

    def summary(self, seconds: float) -> dict[str, Any]:
        ways = sorted({key.split(" ")[0] for key in self.samples})
        return {
            "by_way": {via: self.figures(self.samples_of(via)) for via in ways},
            "by_way_and_kind": {key: self.figures(v) for key, v in sorted(self.samples.items())},
            "paired_http_minus_client_ms": self.figures(self.differences),
            "per_s": round(len(self.all()) / seconds, 2) if seconds else None,
            "errors": dict(self.errors),
            "answers_not_matching": dict(self.mismatches),
            "examples": self.examples,
        }


class OrderWatcher:
    """The admin's orders list (``OrdersClient.list``, the shop's first page, newest
    first, as the console shows it), read every ``POLL_S`` while webhooks' orders are
    awaited. An order is visible at the end of the first read, begun after its webhook
    was accepted, that lists it with its number."""

    def __init__(self, sessions: Any, shop: str, settings: Settings) -> None:
        self.orders = OrdersClient(sessions, not_finished_when=settings.not_finished_for)
        self.shop = shop
        #: cart id -> (accepted at, the customer's address)
        self.pending: dict[str, tuple[float, str]] = {}
        self.visible_ms: dict[str, float] = {}
        #: cart id -> the wall time its webhook was accepted (``bench.http_webhooks``)
        self.accepted_at: dict[str, datetime] = {}
        self.not_visible: list[str] = []
        self.read_ms: list[float] = []
        self.found_by_address = 0
        self.read_errors: Counter[str] = Counter()
        self._stopped = False
        #: set when nothing is pending any more
        self._settled = asyncio.Event()

    def expect(self, cart_id: str, email: str, accepted: float) -> None:
        self.pending[cart_id] = (accepted, email)
        self._settled.clear()

    def stop(self) -> None:
        self._stopped = True

    async def drain(self) -> None:
        """Wait until every accepted webhook's order is visible or timed out."""
        if self.pending:  # (each times out after VISIBLE_TIMEOUT_S: this is a safety net)
            await asyncio.wait_for(self._settled.wait(), VISIBLE_TIMEOUT_S + 30)

    async def run(self) -> None:
        while not self._stopped:
            if not self.pending:
                await asyncio.sleep(POLL_S / 2)
                continue
            began = time.perf_counter()
            try:
                seen = await self._read(began)
            except Exception as error:  # (SQLite busy, say: counted, read again)
                self.read_errors[f"{type(error).__name__}: {error}"[:120]] += 1
                seen = set()
            done = time.perf_counter()
            self.read_ms.append((done - began) * 1000)
            for cart_id, (accepted, _email) in list(self.pending.items()):
                if accepted <= began and cart_id in seen:
                    self.visible_ms[cart_id] = (done - accepted) * 1000
                    del self.pending[cart_id]
                elif done - accepted > VISIBLE_TIMEOUT_S:
                    self.not_visible.append(cart_id)
                    del self.pending[cart_id]
            if not self.pending:
                self._settled.set()
            await asyncio.sleep(max(POLL_S - (time.perf_counter() - began), 0.0))

    async def _read(self, began: float) -> set[str]:
        """The pending carts the list shows as numbered orders."""
        page = await self.orders.list(self.shop)
        seen = {row.cart_id for row in page.rows if row.number is not None}
        for cart_id, (accepted, email) in list(self.pending.items()):
            if cart_id in seen or began - accepted < FALLBACK_AFTER_S:
                continue
            rows = (await self.orders.list(self.shop, email=email)).rows
            if any(row.cart_id == cart_id and row.number is not None for row in rows):
                seen.add(cart_id)
                self.found_by_address += 1
        return seen

    def latencies(self) -> list[float]:
        """Every accepted webhook's: a timed-out one counts as ``VISIBLE_TIMEOUT_S``."""
        timed_out = [VISIBLE_TIMEOUT_S * 1000] * len(self.not_visible)
        return list(self.visible_ms.values()) + timed_out

    def summary(self) -> dict[str, Any]:
        slowest = sorted(self.visible_ms.items(), key=lambda item: -item[1])[:EXAMPLES]
        return {
            "visible": len(self.visible_ms),
            "not_visible": len(self.not_visible),
            "not_visible_examples": self.not_visible[:EXAMPLES],
            "to_order_visible_ms": Updates.figures(self.latencies()),
            "slowest": [(cart_id, round(ms, 1)) for cart_id, ms in slowest],
            "list_reads": len(self.read_ms),
            "list_read_ms": Updates.figures(self.read_ms),
            "found_by_address": self.found_by_address,
            "list_read_errors": dict(self.read_errors),
        }


# --------------------------------------------------------------------------- the gateway


def email_of(cart_id: str) -> str:
    return f"{cart_id}@{CUSTOMER_DOMAIN}"


@dataclass
class Gateway:
    """Sends the payment webhooks (Standard Webhooks) and notes each one's fate."""

    http: httpx.AsyncClient
    secret: str
    watcher: OrderWatcher
    response_ms: list[float] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    async def deliver(self, cart_id: str, measured: bool) -> None:
        body = json.dumps(
            {
                "shop_id": HTTP_SHOP,
                "cart_id": cart_id,
                "attempt_id": f"{cart_id}-pay1",
                "status": "succeeded",
                "amount": TOTAL,
                "currency": "EUR",
                "card_last4": "4242",
                "gateway": SOURCE,
            }
        )
        msg_id = f"msg_{cart_id}"
        now = datetime.now(UTC)
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(math.floor(now.timestamp())),
            "webhook-signature": Webhook(self.secret).sign(msg_id, now, body),
            "content-type": "application/json",
        }
        start = time.perf_counter()
        try:
            response = await self.http.post(WEBHOOK_PATH, content=body, headers=headers)
        except httpx.HTTPError as error:
            self._note(f"{type(error).__name__}", f"{cart_id}: {error!r}")
            return
        accepted = time.perf_counter()
        accepted_at = datetime.now(UTC)
        status = response.json().get("status") if response.status_code == 200 else None
        if status != "delivered":
            self._note(f"{response.status_code} {status}", f"{cart_id}: {response.text[:200]}")
            return
        if measured:
            self.answers["delivered"] += 1
            self.response_ms.append((accepted - start) * 1000)
            self.watcher.expect(cart_id, email_of(cart_id), accepted)
            self.watcher.accepted_at[cart_id] = accepted_at

    def _note(self, answer: str, example: str) -> None:
        self.answers[answer] += 1
        if len(self.examples) < 10:
            self.examples.append(example)

    async def send(self, carts: list[str], per_s: float, deadline: float, measured: bool) -> int:
        """One webhook every ``1 / per_s`` s until ``deadline`` (or the carts run out);
        each in its own task, as a gateway's deliveries do not wait for each other."""
        t0 = time.perf_counter()
        sent: list[asyncio.Task[None]] = []
        for n, cart_id in enumerate(carts):
            due = t0 + n / per_s
            if due >= deadline:
                break
            await asyncio.sleep(max(due - time.perf_counter(), 0.0))
            sent.append(asyncio.create_task(self.deliver(cart_id, measured)))
        await asyncio.gather(*sent)
        return len(sent)


# --------------------------------------------------------------------------- the web's view


def _histograms(text: str) -> dict[tuple[str, str, str], dict[str, float]]:
    """``cartkeeper_http_request_duration_seconds`` by (method, route, status): count,
    sum and cumulative buckets."""
    out: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        if family.name != "cartkeeper_http_request_duration_seconds":
            continue
        for sample in family.samples:
            labels = sample.labels
            key = (labels.get("method", ""), labels.get("route", ""), labels.get("status", ""))
            if sample.name.endswith("_bucket"):
                out[key][f"le {labels['le']}"] = sample.value
            elif sample.name.endswith("_count"):
                out[key]["count"] = sample.value
            elif sample.name.endswith("_sum"):
                out[key]["sum"] = sample.value
    return out


def _bucket_bound(buckets: dict[str, float], count: float, p: float) -> str | None:
    """The histogram's upper bound under which ``p`` % of the requests were answered."""
    for name, value in sorted(buckets.items(), key=lambda item: float(item[0][3:])):
        if value >= count * p / 100:
            return name[3:]
    return None


def server_side(before: str, after: str) -> dict[str, Any]:
    """The web process's own time per request during the window (its ``/metrics``
    histogram: from the request's arrival to its answer, inside the process), by route."""
    if not before or not after:
        return {"unavailable": "no /metrics"}
    first, last = _histograms(before), _histograms(after)
    out: dict[str, Any] = {}
    for key, values in last.items():
        earlier = first.get(key, {})
        count = values.get("count", 0.0) - earlier.get("count", 0.0)
        if count <= 0:
            continue
        total = values.get("sum", 0.0) - earlier.get("sum", 0.0)
        buckets = {
            name: value - earlier.get(name, 0.0)
            for name, value in values.items()
            if name.startswith("le ")
        }
        out[" ".join(key)] = {
            "requests": int(count),
            "mean_ms": round(total * 1000 / count, 2),
            "p50_at_most_s": _bucket_bound(buckets, count, 50),
            "p99_at_most_s": _bucket_bound(buckets, count, 99),
        }
    return out


_LEVEL = re.compile(r"\b(ERROR|CRITICAL|WARNING)\b|Traceback")


def log_problems(path: Path) -> dict[str, Any]:
    """A process log's warnings, errors and tracebacks: counts and the first few."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {"unavailable": str(path)}
    counts: Counter[str] = Counter()
    examples: list[str] = []
    for line in lines:
        found = _LEVEL.search(line)
        if found is None:
            continue
        counts[found.group(1) or "Traceback"] += 1
        if len(examples) < EXAMPLES:
            examples.append(line[:300])
    return {"lines": len(lines), "counts": dict(counts), "examples": examples}


# --------------------------------------------------------------------------- results


def results_section(part: dict[str, Any] | None) -> dict[str, Any]:
    """The ``http`` figures of ``results.json`` (``None`` where not measured)."""
    out: dict[str, Any] = dict.fromkeys(RESULT_KEYS)
    if part is None:
        return out
    ways = part["updates"]["by_way"]
    out.update(
        update_p50_ms=ways["http"]["p50_ms"],
        update_p99_ms=ways["http"]["p99_ms"],
        client_update_p50_ms=ways["client"]["p50_ms"],
        client_update_p99_ms=ways["client"]["p99_ms"],
        webhook_to_order_visible_p99_ms=part["webhooks"]["to_order_visible_ms"]["p99_ms"],
    )
    return out


def targets_of(section: dict[str, Any], target: Any) -> dict[str, Any]:
    """The part's targets (``target`` is ``bench.report.target``): HTTP adds at most
    ``TARGET_HTTP_OVERHEAD_P50_MS`` to the client's p50 in the same run; webhook to
    visible order p99 at most ``TARGET_WEBHOOK_VISIBLE_P99_MS``."""
    http, client = section["update_p50_ms"], section["client_update_p50_ms"]
    limit = round(client + TARGET_HTTP_OVERHEAD_P50_MS, 1) if client is not None else None
    overhead = round(http - client, 1) if http is not None and client is not None else None
    update = target(http, limit, "<=")
    update["rule"] = f"<= client_update_p50_ms + {TARGET_HTTP_OVERHEAD_P50_MS:g} ms"
    update["http_adds_ms"] = overhead
    visible = target(
        section["webhook_to_order_visible_p99_ms"], TARGET_WEBHOOK_VISIBLE_P99_MS, "<="
    )
    return {"http.update_p50_ms": update, "http.webhook_to_order_visible_p99_ms": visible}


def print_http(results: dict[str, Any], details: dict[str, Any], mark: Any) -> None:
    """The part's lines of the summary."""
    section = results.get("http") or {}
    if section.get("update_p50_ms") is None:
        return
    part = details.get("http", {})
    kept = results["environment"].get("kept_from_previous", {}).get("http")
    ways = part.get("updates", {}).get("by_way", {})
    adds = results["targets"].get("http.update_p50_ms", {}).get("http_adds_ms")
    print("-" * 78)
    print(
        f"http         {part.get('shoppers', '?')} shoppers, {ways.get('http', {}).get('n', '?')}"
        f" updates by HTTP and {ways.get('client', {}).get('n', '?')} by the client"
        + (f" (kept from the run of {kept['date']})" if kept else "")
    )
    print(
        f"             HTTP p50 {section['update_p50_ms']} ms, p99 {section['update_p99_ms']} ms;"
        f" client p50 {section['client_update_p50_ms']} ms, p99"
        f" {section['client_update_p99_ms']} ms; HTTP adds {adds} ms at p50"
        f" (<= {TARGET_HTTP_OVERHEAD_P50_MS:g}: {mark('http.update_p50_ms')})"
    )
    paired = part.get("updates", {}).get("paired_http_minus_client_ms", {})
    if paired.get("n"):
        print(
            f"             a shopper's HTTP update minus its client update next to it: p50"
            f" {paired['p50_ms']} ms, mean {paired['mean_ms']} ms ({paired['n']} pairs)"
        )
    for key, client in (("alone", "aiohttp"), ("alone_httpx", "httpx")):
        alone = part.get(key, {})
        if not alone:
            continue
        quiet = alone["updates"]
        print(
            f"             one shopper alone ({client}): HTTP p50"
            f" {quiet['by_way']['http']['p50_ms']} ms, client"
            f" {quiet['by_way']['client']['p50_ms']} ms (pairs' difference p50"
            f" {quiet['paired_http_minus_client_ms']['p50_ms']} ms); /healthz"
            f" {alone['healthz_ms']['p50_ms']} ms, unknown key (401)"
            f" {alone['unknown_key_401_ms']['p50_ms']} ms"
        )
    hooks = part.get("webhooks", {})
    print(
        f"             webhooks {hooks.get('visible', '?')} orders visible,"
        f" {hooks.get('not_visible', '?')} not; accepted -> in the orders list p99"
        f" {section['webhook_to_order_visible_p99_ms']} ms (<= {TARGET_WEBHOOK_VISIBLE_P99_MS:g}:"
        f" {mark('http.webhook_to_order_visible_p99_ms')})"
    )
    errors = part.get("updates", {}).get("errors")
    cpu = part.get("cpu_ms_per_update")
    if cpu:
        print(
            f"             cpu ms/update server {cpu['server']}, worker {cpu['worker']}, web"
            f" {cpu['web']}, bench {cpu['client']}, other {cpu['other']}"
            + (f"; ERRORS {errors}" if errors else "")
        )
