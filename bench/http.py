"""The http part (issue 8 point 4): cart updates through the HTTP API by 50 concurrent
shoppers while payment webhooks arrive, against the same updates through the Python
client in the same run (the baseline), and the time from a webhook accepted to its order
in the admin's orders list.

Processes, as deployed: the dev server (``bench_server``), the product's worker
(``bench_worker``, the product's workflows only, a fresh SQLite read model) and
``cartkeeper web`` (``WebProcess``: ``python -m starter.cli web``, configured by its
environment only: ``DATABASE_URL``, ``TEMPORAL_ADDRESS``, ``CARTKEEPER_TASK_QUEUE``,
``CARTKEEPER_WEB_PORT``, ``CARTKEEPER_WEBHOOK_SECRETS``). The shoppers, the gateway and
the admin's orders list run in the bench process.

1. Setup (not timed): an API key of shop ``bench-http`` (``starter.web.api_keys.create_key``
   on the read model), and the carts the webhooks pay, taken to the gateway through the
   client (``update_cart``, ``identify_customer``, ``start_checkout``, ``start_payment``).
2. Shoppers: ``plan.http_shoppers`` asyncio tasks, each with a cart of its own for each
   way (``http``: ``PUT /api/v1/carts/{id}/lines`` on one shared aiohttp session with
   keep-alive, ``bench.http_clients``; ``client``: ``CartkeeperClient.update_cart``),
   alternating the two ways update after update (which comes first alternates too),
   ``plan.pause_s`` between updates, a new pair of carts every
   ``plan.http_updates_per_cart`` updates of each (the first one of a cart is an
   update-with-start). So both ways see the same load. Each
   update's wall time is taken in the bench process, from the call to its answer.
3. Webhooks: meanwhile the gateway posts a success for one waiting cart every
   ``1 / plan.http_webhooks_per_s`` s (``POST /api/v1/webhooks/payments/benchpay``, signed
   with ``standardwebhooks``); accepted is its 200 ``delivered``. The admin's orders list
   (``starter.orders.OrdersClient.list``: the shop's first page, newest first) is polled
   every ``POLL_S``; an order is visible at the end of the first poll, begun after its
   webhook was accepted, that shows it with its number (a webhook accepted more than
   ``FALLBACK_AFTER_S`` before and not on the first page is looked for by its customer's
   address).
4. A warm-up of the same load (``plan.http_warmup_s``) first, not measured; after the
   window, once every order is visible, one shopper alone (``alone``): where the time of
   an HTTP update goes without contention.

The worker's SMTP relay is the bench's sink (``bench.mailsink``): the orders' status
e-mails are sent, as deployed. Measuring, figures and targets: ``bench.http_check``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import math
import os
import random
import secrets
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from temporalio.client import Client

from activities.db import make_engine, make_session_factory
from activities.settings import Settings
from bench.http_check import (
    FALLBACK_AFTER_S,
    POLL_S,
    SOURCE,
    VISIBLE_TIMEOUT_S,
    Gateway,
    OrderWatcher,
    Updates,
    email_of,
    log_problems,
    server_side,
)
from bench.http_clients import AiohttpStorefront, HttpxStorefront, StorefrontHttp
from bench.http_webhooks import breakdown
from bench.kinds import LINE_A, LINE_B, TOTAL
from bench.mailsink import MailSink
from bench.mailsink import worker_env as relay_env
from bench.measure import CpuMeter
from bench.plan import HTTP_SHOP, REPO, TASK_QUEUE, Plan
from bench.processes import bench_worker
from starter.cli.webhooks import new_secret
from starter.client import CartkeeperClient
from starter.devserver import DevServer
from starter.web.api_keys import create_key
from starter.web.deps import UPDATE_TIMEOUT
from starter.workerprocess import WorkerProcess
from workflows.contract import CartLine, CustomerInfo

Say = Callable[[str], None]

LINES_PATH = "/api/v1/carts/{cart_id}/lines"
#: the two ways an update goes
HTTP, CLIENT = "http", "client"
WAYS = (HTTP, CLIENT)
#: between the warm-up and the measured window
GAP_S = 3.0
#: webhooks sent during the warm-up (not measured)
WARMUP_WEBHOOKS = 4
#: carts taken to the gateway at once in the setup
SETUP_CONCURRENCY = 25
#: connections of the shoppers' HTTP client (one per shopper, and to spare)
MAX_CONNECTIONS = 100
#: after the load, before the shopper alone (the last carts' projections are written)
SETTLE_S = 8.0
#: the shopper alone: updates each way, and the pause after each
ALONE_PAIRS = 40
ALONE_PAUSE_S = 0.1


# --------------------------------------------------------------------------- the web process


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (``cartkeeper web`` takes no port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WebProcess:
    """``cartkeeper web`` in a process of its own (``python -m starter.cli web``), as it is
    deployed; its output in ``<state_dir>/<name>.log``."""

    def __init__(self, state_dir: Path, env: Mapping[str, str], port: int, name: str = "web"):
        self.log_path = state_dir / f"{name}.log"
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        self.url = f"http://127.0.0.1:{port}"
        self.proc: asyncio.subprocess.Process | None = None
        self._ps: psutil.Process | None = None

    async def start(self, within: float = 60.0) -> None:
        """Start it and return once ``/readyz`` answers 200 (database and Temporal up)."""
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "starter.cli",
                "web",
                cwd=str(REPO),
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self._ps = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(base_url=self.url, timeout=5.0) as http:
            while True:
                if self.proc.returncode is not None:
                    raise RuntimeError(
                        f"cartkeeper web exited with code {self.proc.returncode}:\n"
                        + self.log_tail()
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/readyz")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    await self.stop()
                    raise RuntimeError(f"cartkeeper web not ready in {within:.0f} s")
                await asyncio.sleep(0.1)

    async def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM (uvicorn stops gracefully), SIGKILL after ``grace`` seconds."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return proc.returncode if proc else None
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            return await proc.wait()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def cpu_s(self) -> float:
        assert self._ps is not None
        times = self._ps.cpu_times()
        return float(times.user + times.system)

    def rss_mb(self) -> float:
        assert self._ps is not None
        return float(self._ps.memory_info().rss) / 2**20

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no web log)"


def web_env(
    address: str, database_url: str, port: int, state_dir: Path, webhook_secret: str, key: str
) -> dict[str, str]:
    """``cartkeeper web``'s settings, all from the environment as in a deployment."""
    return {
        "TEMPORAL_ADDRESS": address,
        "TEMPORAL_NAMESPACE": "default",
        "DATABASE_URL": database_url,
        "CARTKEEPER_TASK_QUEUE": TASK_QUEUE,
        "CARTKEEPER_WEB_HOST": "127.0.0.1",
        "CARTKEEPER_WEB_PORT": str(port),
        "CARTKEEPER_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "CARTKEEPER_WEBHOOK_SECRETS": json.dumps({SOURCE: webhook_secret}),
        "CARTKEEPER_DATA_DIR": str(state_dir),
        "CARTKEEPER_SECRET_KEY": key,
        # as the bench's workers: a log line per request would be the bench's own cost
        "CARTKEEPER_LOG_LEVEL": "WARNING",
    }


# --------------------------------------------------------------------------- shoppers


def lines_for(step: int) -> list[CartLine]:
    """The cart's whole lines at its ``step``-th update (each changes the cart)."""
    lines = [dataclasses.replace(LINE_A, quantity=step + 1)]
    return [*lines, dataclasses.replace(LINE_B, quantity=step)] if step else lines


def total_of(lines: list[CartLine]) -> int:
    return sum(line.quantity * line.unit_price for line in lines)


class HttpRefused(Exception):
    """A non-200 answer: its status and error code."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code


def _refusal(status: int, answer: Any) -> HttpRefused:
    try:
        code = str(answer["error"]["code"])
    except (KeyError, TypeError):
        code = str(answer)[:80]
    return HttpRefused(status, code)


@dataclass
class Shoppers:
    """The two ways of updating a cart, and what each update answered."""

    http: StorefrontHttp
    carts: CartkeeperClient

    async def update(self, via: str, cart_id: str, lines: list[CartLine]) -> tuple[str, int]:
        """One update; the cart id and total it answered."""
        if via == HTTP:
            body = {"lines": [dataclasses.asdict(line) for line in lines], "currency": "EUR"}
            status, answer = await self.http.put_json(LINES_PATH.format(cart_id=cart_id), body)
            if status != 200:
                raise _refusal(status, answer)
            return str(answer["cart_id"]), int(answer["total"])
        view = await self.carts.update_cart(HTTP_SHOP, cart_id, lines, "EUR")
        return view.cart_id, view.total

    async def timed(self, via: str, cart_id: str, step: int, updates: Updates) -> float | None:
        """The ``step``-th update of a cart, timed (ms; ``None``: it failed)."""
        lines = lines_for(step)
        start = time.perf_counter()
        try:
            answered_id, total = await self.update(via, cart_id, lines)
        except Exception as error:
            updates.failed(via, f"{via} {cart_id} step {step}", error)
            return None
        ms = (time.perf_counter() - start) * 1000
        updates.answered(via, "start" if step == 0 else "update", ms)
        if answered_id != cart_id or total != total_of(lines):
            updates.wrong(via, f"{cart_id}: {answered_id} total {total}")
        return ms

    async def shopper(
        self, plan: Plan, index: int, tag: str, deadline: float, updates: Updates
    ) -> None:
        """Updates until ``deadline``: a pair of carts (one per way) at a time."""
        await asyncio.sleep(random.uniform(0, plan.pause_s))  # spread the starts
        pair = 0
        while True:
            carts = {via: f"{tag}-s{index:02d}-{pair:03d}{via[0]}" for via in WAYS}
            for step in range(plan.http_updates_per_cart):
                took: dict[str, float] = {}
                for via in WAYS if (index + step) % 2 == 0 else WAYS[::-1]:
                    if time.perf_counter() >= deadline:
                        return
                    ms = await self.timed(via, carts[via], step, updates)
                    if ms is not None:
                        took[via] = ms
                    await asyncio.sleep(plan.pause_s)
                if len(took) == len(WAYS):
                    updates.paired(took[HTTP] - took[CLIENT])
            pair += 1


async def alone(shoppers: Shoppers, tag: str) -> dict[str, Any]:
    """Where the time goes without contention, after the load: one shopper alternating
    HTTP and client updates of its two carts (plain updates, the start left out), and
    two requests that do not reach Temporal: ``/healthz`` (the HTTP round trip alone)
    and an update with an unknown key (the round trip and the key's check, 401)."""
    probe = Updates()
    carts = {via: f"{tag}-{via[0]}" for via in WAYS}
    for via in WAYS:
        await shoppers.update(via, carts[via], lines_for(0))
    for n in range(ALONE_PAIRS):
        took: dict[str, float] = {}
        for via in WAYS if n % 2 == 0 else WAYS[::-1]:
            ms = await shoppers.timed(via, carts[via], 1 + n % 7, probe)
            if ms is not None:
                took[via] = ms
            await asyncio.sleep(ALONE_PAUSE_S)
        if len(took) == len(WAYS):
            probe.paired(took[HTTP] - took[CLIENT])
    health: list[float] = []
    refused: list[float] = []
    unknown = {"Authorization": f"Bearer ck_{'0' * 12}_{'A' * 43}"}
    body = {"lines": [dataclasses.asdict(LINE_A)], "currency": "EUR"}
    for _ in range(ALONE_PAIRS):
        start = time.perf_counter()
        status, answer = await shoppers.http.get("/healthz")
        health.append((time.perf_counter() - start) * 1000)
        if status != 200:
            probe.failed(HTTP, "GET /healthz", _refusal(status, answer))
        start = time.perf_counter()
        path = LINES_PATH.format(cart_id=f"{tag}-x")
        status, answer = await shoppers.http.put_json(path, body, headers=unknown)
        refused.append((time.perf_counter() - start) * 1000)
        if status != 401:
            probe.failed(HTTP, "PUT with an unknown key", _refusal(status, answer))
        await asyncio.sleep(ALONE_PAUSE_S)
    return {
        "updates": probe.summary(0.0),
        "healthz_ms": Updates.figures(health),
        "unknown_key_401_ms": Updates.figures(refused),
    }


# --------------------------------------------------------------------------- the carts paid


async def to_gateway(carts: CartkeeperClient, cart_id: str) -> None:
    """A cart at the gateway, waiting for its payment's result."""
    customer = CustomerInfo(email=email_of(cart_id), name="Bench Customer", locale="en")
    await carts.update_cart(
        HTTP_SHOP, cart_id, [dataclasses.replace(LINE_A, quantity=2), LINE_B], "EUR"
    )
    await carts.identify_customer(HTTP_SHOP, cart_id, customer)
    await carts.start_checkout(HTTP_SHOP, cart_id)
    await carts.start_payment(
        HTTP_SHOP,
        cart_id,
        attempt_id=f"{cart_id}-pay1",
        method="online",
        gateway=SOURCE,
        amount=TOTAL,
        currency="EUR",
    )


async def _limited(calls: list[Callable[[], Awaitable[None]]], limit: int) -> Counter[str]:
    """Run ``calls`` ``limit`` at a time; the errors."""
    gate = asyncio.Semaphore(limit)
    errors: Counter[str] = Counter()

    async def one(call: Callable[[], Awaitable[None]]) -> None:
        async with gate:
            try:
                await call()
            except Exception as error:
                errors[f"{type(error).__name__}: {error}"[:160]] += 1

    await asyncio.gather(*(one(call) for call in calls))
    return errors


# --------------------------------------------------------------------------- the part


async def load(
    plan: Plan,
    shoppers: Shoppers,
    gateway: Gateway,
    tag: str,
    seconds: float,
    webhook_carts: list[str],
    measured: bool,
) -> tuple[Updates, int, float]:
    """The shoppers and the gateway for ``seconds``: the updates, the webhooks sent and
    the seconds it took (to the last answer)."""
    updates = Updates()
    t0 = time.perf_counter()
    deadline = t0 + seconds
    per_s = plan.http_webhooks_per_s if measured else WARMUP_WEBHOOKS / seconds
    sending = asyncio.create_task(gateway.send(webhook_carts, per_s, deadline, measured))
    await asyncio.gather(
        *(shoppers.shopper(plan, i, tag, deadline, updates) for i in range(plan.http_shoppers))
    )
    sent = await sending
    return updates, sent, time.perf_counter() - t0


async def http_phase(
    plan: Plan,
    client: Client,
    server: DevServer,
    worker: WorkerProcess,
    web: WebProcess,
    database_url: str,
    webhook_secret: str,
    run_id: str,
    say: Say,
) -> dict[str, Any]:
    started = time.perf_counter()
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    settings = Settings(task_queue=TASK_QUEUE)
    carts = CartkeeperClient(
        client, task_queue=TASK_QUEUE, policy_for=settings.policy_for, update_timeout=UPDATE_TIMEOUT
    )
    out: dict[str, Any] = {
        "shop": HTTP_SHOP,
        "read_model": "sqlite",
        "processes": {"server": server.pid, "worker": worker.pid, "web": web.pid},
        "shoppers": plan.http_shoppers,
        "pause_s": plan.pause_s,
        "updates_per_cart": plan.http_updates_per_cart,
        "webhooks_per_s": plan.http_webhooks_per_s,
        "poll_s": POLL_S,
        "fallback_after_s": FALLBACK_AFTER_S,
        "visible_timeout_s": VISIBLE_TIMEOUT_S,
    }
    try:
        _key, plain = await create_key(sessions, HTTP_SHOP, "bench", now=datetime.now(UTC))
        warm = [f"{run_id}-w{n:02d}" for n in range(WARMUP_WEBHOOKS)]
        count = math.ceil(plan.http_seconds * plan.http_webhooks_per_s) + 1
        paid = [f"{run_id}-g{n:04d}" for n in range(count)]
        say(f"http: setup, {len(warm) + count} carts to the gateway; web {web.url}")
        t0 = time.perf_counter()
        errors = await _limited(
            [functools.partial(to_gateway, carts, c) for c in warm + paid], SETUP_CONCURRENCY
        )
        out["setup"] = {
            "gateway_carts": len(warm) + count,
            "seconds": round(time.perf_counter() - t0, 1),
            "errors": dict(errors),
        }
        if errors:
            raise RuntimeError(f"http: setup failed: {dict(errors)}")
        limits = httpx.Limits(
            max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
        )
        auth = {"Authorization": f"Bearer {plain}"}
        watcher = OrderWatcher(sessions, HTTP_SHOP, settings)
        async with (
            AiohttpStorefront(web.url, auth, MAX_CONNECTIONS) as storefront,
            httpx.AsyncClient(base_url=web.url, headers=auth, limits=limits, timeout=30.0) as http,
            httpx.AsyncClient(base_url=web.url, timeout=30.0) as gateway_http,
        ):
            shoppers = Shoppers(storefront, carts)
            gateway = Gateway(gateway_http, webhook_secret, watcher)
            watching = asyncio.create_task(watcher.run())
            try:
                say(f"http: warm-up {plan.http_warmup_s:.0f} s")
                warm_updates, _, _ = await load(
                    plan, shoppers, gateway, f"{run_id}-w", plan.http_warmup_s, warm, False
                )
                out["warmup"] = warm_updates.summary(plan.http_warmup_s)
                await asyncio.sleep(GAP_S)
                say(
                    f"http: {plan.http_shoppers} shoppers for {plan.http_seconds:.0f} s,"
                    f" {plan.http_webhooks_per_s:g} webhooks/s"
                )
                metrics_before = await _metrics(http)
                cpu0, web0 = CpuMeter(server.ps(), worker).snapshot(), web.cpu_s()
                updates, sent, seconds = await load(
                    plan, shoppers, gateway, f"{run_id}-m", plan.http_seconds, paid, True
                )
                cpu = CpuMeter.delta(cpu0, CpuMeter(server.ps(), worker).snapshot())
                cpu["web"] = round(web.cpu_s() - web0, 3)
                cpu["other"] = round(max(cpu["other"] - cpu["web"], 0.0), 3)
                metrics_after = await _metrics(http)
                say("http: waiting for the webhooks' orders in the orders list")
                await watcher.drain()
            finally:
                watcher.stop()
                await watching
            await asyncio.sleep(SETTLE_S)
            say(f"http: one shopper alone, {ALONE_PAIRS} updates each way")
            before = await _metrics(http)
            out["alone"] = await alone(shoppers, f"{run_id}-a")
            out["alone"]["server_side"] = server_side(before, await _metrics(http))
            say("http: the shopper alone again, through httpx (the client's own cost)")
            out["alone_httpx"] = await alone(Shoppers(HttpxStorefront(http), carts), f"{run_id}-x")
        say("http: where the webhooks' time went (their carts' histories)")
        webhook_parts = await breakdown(client, HTTP_SHOP, watcher.accepted_at, watcher.visible_ms)
        out["updates"] = updates.summary(seconds)
        out["seconds"] = round(seconds, 2)
        out["cpu_s"] = cpu
        calls = max(len(updates.all()), 1)
        out["cpu_ms_per_update"] = {k: round(v * 1000 / calls, 2) for k, v in cpu.items()}
        out["cpu_utilisation"] = {k: round(v / seconds, 2) for k, v in cpu.items()}
        out["web_cpu_ms_per_request"] = round(
            cpu["web"] * 1000 / max(len(updates.samples_of(HTTP)) + sent, 1), 2
        )
        out["webhooks"] = watcher.summary() | {
            "sent": sent,
            "answers": dict(gateway.answers),
            "examples": gateway.examples,
            "response_ms": Updates.figures(gateway.response_ms),
            "breakdown": webhook_parts,
        }
        out["server_side"] = server_side(metrics_before, metrics_after)
        out["web_rss_mb"] = round(web.rss_mb(), 1)
        out["worker_rss_mb"] = round(worker.rss_mb(), 1)
        out["logs"] = {
            "web": log_problems(web.log_path),
            "worker": log_problems(worker.log_path),
        }
        out["part_s"] = round(time.perf_counter() - started, 1)
        return out
    finally:
        await engine.dispose()


async def _metrics(http: httpx.AsyncClient) -> str:
    """The web process's ``/metrics`` (its own view of the requests' times)."""
    response = await http.get("/metrics")
    return response.text if response.status_code == 200 else ""


async def http_part(
    plan: Plan, client: Client, server: DevServer, state_dir: Path, run_id: str, say: Say
) -> dict[str, Any]:
    """The part on a fresh worker and a fresh SQLite read model, with ``cartkeeper web``
    in its own process beside them (started after the worker, which migrates the read
    model), both stopped at the end."""
    url = f"sqlite+aiosqlite:///{state_dir / 'readmodel-http.db'}"
    key = secrets.token_urlsafe(32)
    sink = MailSink()  # the orders' e-mails (status P) go somewhere, as deployed
    await sink.start()
    worker = bench_worker(
        state_dir,
        server.address,
        url,
        name="worker-http",
        floor=False,
        env={"CARTKEEPER_SECRET_KEY": key, **relay_env(sink)},
    )
    webhook_secret = new_secret()
    port = free_port()
    web = WebProcess(
        state_dir, web_env(server.address, url, port, state_dir, webhook_secret, key), port
    )
    try:
        await worker.start()
        await web.start()
        say(f"http: worker pid {worker.pid}; cartkeeper web pid {web.pid} on {web.url}")
        out = await http_phase(plan, client, server, worker, web, url, webhook_secret, run_id, say)
        out["emails_received"] = len(sink.received)  # (the orders' status e-mails)
        return out
    except BaseException:
        print(worker.log_tail(), file=sys.stderr)
        print(web.log_tail(), file=sys.stderr)
        raise
    finally:
        await web.stop()
        await worker.stop()
        await sink.stop()
