"""``/metrics`` in the Prometheus text format (``prometheus-client``).

Two kinds of figures:

- the app's own requests, counted by a middleware (``MetricsMiddleware``) in a registry
  of the app's own (``install``; never the process-wide default registry: every app,
  in tests many, counts for itself): ``cartkeeper_http_requests_total`` and the
  ``cartkeeper_http_request_duration_seconds`` histogram, by method, route template
  (``/api/v1/carts/{cart_id}``, never the path with its ids; ``unmatched`` for a path no
  route serves) and status class (``2xx``, ``4xx`` ...);
- the read model's, read at scrape time: ``cartkeeper_carts`` by shop and state,
  ``cartkeeper_carts_needing_admin`` by shop, ``cartkeeper_payments_flagged`` (the open
  attention items: payments flagged for an admin) by shop and kind, and the reminder
  ledger's ``cartkeeper_reminders_sent_total`` by shop and
  ``cartkeeper_reminders_skipped_total`` by shop and reason.

``cartkeeper_read_model_up`` says whether the read model answered: when it does not (or
not within the readiness timeout), the scrape still answers, with the request figures
and ``cartkeeper_read_model_up 0``.

Who may scrape. With ``CARTKEEPER_METRICS_TOKEN`` set (``Settings.metrics_token``), a
scrape must carry ``Authorization: Bearer <token>`` (Prometheus: ``authorization:
{credentials: <token>}`` in the scrape config); anything else is 401 ``unauthenticated``
with ``WWW-Authenticate: Bearer``, before the read model is asked. The token is compared
in constant time (both sides hashed first, so not even its length shows). Unset,
``/metrics`` is open to anyone who reaches it: keep it off the public network then (its
labels name shops).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client import Counter as CounterMetric
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from activities.models import CartRecord, ReminderSend
from starter.web.api_errors import ERROR_RESPONSES, ApiError, WebErrorCode
from starter.web.deps import Context, WebContext
from workflows.codes import CartState, ReminderStatus

log = logging.getLogger("cartkeeper.web")

router = APIRouter(tags=["health"])

#: the route label of a request no route serves (a 404): never the raw path
UNMATCHED = "unmatched"
#: methods counted by name; any other is ``OTHER`` (a client cannot grow the labels)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: seconds; ``await_order`` may wait minutes
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
LABELS = ("method", "route", "status")


class RequestMetrics:
    """The app's request counter and latency histogram, in the app's own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = CounterMetric(
            "cartkeeper_http_requests",
            "HTTP requests answered, by method, route template and status class",
            LABELS,
            registry=self.registry,
        )
        self.latency = Histogram(
            "cartkeeper_http_request_duration_seconds",
            "Time to answer HTTP requests, by method, route template and status class",
            LABELS,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (
            method if method in METHODS else "OTHER",
            route,
            f"{status // 100}xx",
        )
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)


def route_template(scope: Scope) -> str:
    """The template of the route that served the request (set by the router)."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class MetricsMiddleware:
    """Counts every HTTP request (a plain ASGI middleware: streaming answers pass
    through untouched). A request that fails with an exception counts as 5xx."""

    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.metrics.observe(
                str(scope.get("method", "")).upper(),
                route_template(scope),
                status,
                time.perf_counter() - started,
            )


def install(app: FastAPI) -> None:
    """Give ``app`` its own request metrics (``app.state.metrics``) and the middleware."""
    metrics = RequestMetrics()
    app.state.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics)


# --------------------------------------------------------------------------- read model


@dataclass
class ReadModelFigures:
    #: (shop, state) → carts
    carts: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: shop → carts that need an admin (locked, or flagged)
    needing_admin: Counter[str] = field(default_factory=Counter)
    #: (shop, attention kind) → open attention items
    flagged: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: shop → reminders sent
    sent: Counter[str] = field(default_factory=Counter)
    #: (shop, reason) → reminders skipped
    skipped: Counter[tuple[str, str]] = field(default_factory=Counter)


async def read_model_figures(context: WebContext) -> ReadModelFigures:
    """The read model's figures: a few grouped counts, each served by an index of
    ``carts`` (the reminder ledger is read whole, grouped)."""
    figures = ReadModelFigures()
    carts, sends = CartRecord, ReminderSend
    async with context.sessions() as session:
        for shop, state, count in await session.execute(
            select(carts.shop_id, carts.state, func.count()).group_by(carts.shop_id, carts.state)
        ):
            figures.carts[shop, state] += count
        for shop, attention, count in await session.execute(
            select(carts.shop_id, carts.attention, func.count())
            .where(carts.needs_admin.is_(True))
            .group_by(carts.shop_id, carts.attention)
        ):
            figures.needing_admin[shop] += count
            for kind in (attention or "").split(","):
                if kind:
                    figures.flagged[shop, kind] += count
        for shop, status, reason, count in await session.execute(
            select(sends.shop_id, sends.status, sends.reason, func.count())
            .where(sends.status.in_((ReminderStatus.SENT, ReminderStatus.SKIPPED)))
            .group_by(sends.shop_id, sends.status, sends.reason)
        ):
            if status == ReminderStatus.SENT:
                figures.sent[shop] += count
            else:
                figures.skipped[shop, reason or "unknown"] += count
    return figures


class _Scrape:
    """One scrape: the app's request metrics, then the read model's figures (``None``:
    the read model did not answer)."""

    def __init__(self, metrics: RequestMetrics, figures: ReadModelFigures | None) -> None:
        self.metrics = metrics
        self.figures = figures

    def collect(self) -> Iterable[Metric]:
        yield from self.metrics.registry.collect()
        up = GaugeMetricFamily(
            "cartkeeper_read_model_up", "Whether the read model answered this scrape (1) or not (0)"
        )
        up.add_metric([], 0 if self.figures is None else 1)
        yield up
        if self.figures is not None:
            yield from _read_model_families(self.figures)


def _read_model_families(figures: ReadModelFigures) -> Iterable[Metric]:
    carts = GaugeMetricFamily(
        "cartkeeper_carts", "Carts in the read model, by shop and state", labels=["shop", "state"]
    )
    shops = sorted({shop for shop, _state in figures.carts})
    states = [str(state) for state in CartState]
    extra = sorted({state for _shop, state in figures.carts} - set(states))
    for shop in shops:
        for state in states + extra:  # every known state, 0 included: no gaps in a graph
            carts.add_metric([shop, state], figures.carts.get((shop, state), 0))
    yield carts
    needing = GaugeMetricFamily(
        "cartkeeper_carts_needing_admin",
        "Carts an admin must look at (locked, or with a payment flagged), by shop",
        labels=["shop"],
    )
    for shop in shops:
        needing.add_metric([shop], figures.needing_admin.get(shop, 0))
    yield needing
    flagged = GaugeMetricFamily(
        "cartkeeper_payments_flagged",
        "Open attention items (payments flagged for an admin), by shop and kind",
        labels=["shop", "kind"],
    )
    for (shop, kind), count in sorted(figures.flagged.items()):
        flagged.add_metric([shop, kind], count)
    yield flagged
    sent = CounterMetricFamily(
        "cartkeeper_reminders_sent", "Reminder e-mails sent, by shop", labels=["shop"]
    )
    for shop, count in sorted(figures.sent.items()):
        sent.add_metric([shop], count)
    yield sent
    skipped = CounterMetricFamily(
        "cartkeeper_reminders_skipped",
        "Reminders not sent, by shop and reason",
        labels=["shop", "reason"],
    )
    for (shop, reason), count in sorted(figures.skipped.items()):
        skipped.add_metric([shop, reason], count)
    yield skipped


# --------------------------------------------------------------------------- the scrape

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="MetricsBearer",
    description="`CARTKEEPER_METRICS_TOKEN`, when it is set: `Authorization: Bearer <token>`.",
)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def token_matches(presented: str, expected: str) -> bool:
    """Whether ``presented`` is ``expected``, in constant time (hashed first: the
    comparison takes as long whatever their lengths)."""
    return hmac.compare_digest(_digest(presented), _digest(expected))


async def scraper(
    context: Context,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Let the scrape through: ``metrics_token`` unset, or presented as a bearer token;
    else 401 ``unauthenticated``."""
    expected = context.settings.metrics_token if context.settings is not None else None
    if expected is None:
        return
    if bearer is None or not token_matches(bearer.credentials, expected.get_secret_value()):
        raise ApiError(
            WebErrorCode.UNAUTHENTICATED,
            "/metrics needs its token: Authorization: Bearer <CARTKEEPER_METRICS_TOKEN>",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )


@router.get(
    "/metrics",
    summary="Prometheus metrics: requests, latencies, carts, reminders, flagged payments",
    description="With `CARTKEEPER_METRICS_TOKEN` set, only with `Authorization: Bearer"
    " <token>` (else 401); unset, open: keep it off the public network.",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
        401: ERROR_RESPONSES[401],
    },
    dependencies=[Depends(scraper)],
)
async def metrics(request: Request, context: Context) -> Response:
    figures: ReadModelFigures | None
    try:
        figures = await asyncio.wait_for(read_model_figures(context), context.check_timeout)
    except Exception as error:  # TimeoutError included: the scrape answers anyway
        log.warning("metrics: the read model is unavailable: %r", error)
        figures = None
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    body = encode(_Scrape(request.app.state.metrics, figures))
    return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})
