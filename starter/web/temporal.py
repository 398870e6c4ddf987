"""How the web app reaches the cart workflows: a ``Signaller``.

``TemporalSignaller`` connects on first use (a web process starts, and answers
``/healthz``, while Temporal is down), keeps the client, and bounds every call: a click
must never wait long for Temporal. After a failed connect it does not try again for
``retry_after`` seconds, so an outage costs each request nothing. Tests inject their own
``Signaller``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Protocol

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from workflows.contract import RECOVERY_LINK_CLICKED, workflow_id
from workflows.parsing import parse_recovery_link_clicked

log = logging.getLogger("cartkeeper.web")

ClientFactory = Callable[[], Awaitable[Client]]


class TemporalUnavailable(Exception):
    """Temporal cannot be reached (connecting or calling it failed or took too long)."""


class Signaller(Protocol):
    async def recovery_link_clicked(
        self, shop_id: str, cart_id: str, reminder_id: str, coupon_code: str | None
    ) -> None:
        """Tell the cart's workflow (fire and forget: delivered, not awaited)."""

    async def ping(self) -> None:
        """Return when Temporal answers; raise ``TemporalUnavailable`` otherwise."""


def recovery_payload(reminder_id: str, coupon_code: str | None) -> dict[str, Any]:
    """The ``recovery_link_clicked`` signal's JSON object, checked by the workflow's own
    parser (``CartRefused`` when it would not read it)."""
    payload: dict[str, Any] = {"reminder_id": reminder_id}
    if coupon_code:
        payload["coupon_code"] = coupon_code
    parse_recovery_link_clicked(payload)
    return payload


class TemporalSignaller:
    def __init__(
        self,
        factory: ClientFactory,
        *,
        connect_timeout: float = 5.0,
        rpc_timeout: float = 5.0,
        retry_after: float = 5.0,
    ) -> None:
        self._factory = factory
        self._connect_timeout = connect_timeout
        self._rpc_timeout = timedelta(seconds=rpc_timeout)
        self._retry_after = retry_after
        self._client: Client | None = None
        self._failed_at: float | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is not None:
                return self._client
            if (
                self._failed_at is not None
                and time.monotonic() - self._failed_at < self._retry_after
            ):
                raise TemporalUnavailable("Temporal was unreachable moments ago")
            try:
                self._client = await asyncio.wait_for(self._factory(), self._connect_timeout)
            except Exception as error:  # TimeoutError included
                self._failed_at = time.monotonic()
                raise TemporalUnavailable(f"cannot connect to Temporal: {error!r}") from None
            self._failed_at = None
            return self._client

    async def recovery_link_clicked(
        self, shop_id: str, cart_id: str, reminder_id: str, coupon_code: str | None
    ) -> None:
        payload = recovery_payload(reminder_id, coupon_code)
        client = await self.client()
        handle = client.get_workflow_handle(workflow_id(shop_id, cart_id))
        try:
            await handle.signal(RECOVERY_LINK_CLICKED, payload, rpc_timeout=self._rpc_timeout)
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                raise  # the cart's workflow is gone: not an outage
            raise TemporalUnavailable(f"{error.status.name}: {error.message}") from None

    async def ping(self) -> None:
        client = await self.client()
        try:
            healthy = await client.service_client.check_health(timeout=self._rpc_timeout)
        except RPCError as error:
            raise TemporalUnavailable(f"{error.status.name}: {error.message}") from None
        if not healthy:
            raise TemporalUnavailable("Temporal's health check failed")
