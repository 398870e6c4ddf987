"""How the web app reaches the cart workflows: a ``Signaller``.

``TemporalSignaller`` connects on first use (a web process starts, and answers
``/healthz``, while Temporal is down), keeps the client, and bounds every call: a click
must never wait long for Temporal. A failed connect is tried again by the next request.
Tests inject their own ``Signaller``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Protocol

from temporalio.client import Client

from starter.client_errors import call
from workflows.contract import RECOVERY_LINK_CLICKED, workflow_id
from workflows.parsing import parse_recovery_link_clicked

ClientFactory = Callable[[], Awaitable[Client]]


class TemporalUnavailable(Exception):
    """Temporal cannot be reached (connecting failed or took too long, or it is unhealthy)."""


class Signaller(Protocol):
    async def recovery_link_clicked(
        self, shop_id: str, cart_id: str, reminder_id: str, coupon_code: str | None
    ) -> None:
        """Tell the cart's workflow (fire and forget: delivered, not awaited). A cart
        without a workflow: ``CartkeeperError`` ``cart_not_found``."""

    async def ping(self) -> None:
        """Return when Temporal answers; raise otherwise."""

    async def client(self) -> Client:
        """The Temporal client (connected on first use); ``TemporalUnavailable``."""


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
        self, factory: ClientFactory, *, connect_timeout: float = 5.0, rpc_timeout: float = 5.0
    ) -> None:
        self._factory = factory
        self._connect_timeout = connect_timeout
        self._rpc_timeout = timedelta(seconds=rpc_timeout)
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        async with self._lock:  # one connect at a time: the others get its client
            if self._client is None:
                try:
                    self._client = await asyncio.wait_for(self._factory(), self._connect_timeout)
                except Exception as error:  # TimeoutError included
                    raise TemporalUnavailable(f"cannot connect to Temporal: {error!r}") from None
            return self._client

    async def recovery_link_clicked(
        self, shop_id: str, cart_id: str, reminder_id: str, coupon_code: str | None
    ) -> None:
        payload = recovery_payload(reminder_id, coupon_code)
        handle = (await self.client()).get_workflow_handle(workflow_id(shop_id, cart_id))
        # RPC failures as the client codes them: ``cart_not_found``, ``temporal_unavailable``
        await call(handle.signal(RECOVERY_LINK_CLICKED, payload, rpc_timeout=self._rpc_timeout))

    async def ping(self) -> None:
        client = await self.client()
        if not await client.service_client.check_health(timeout=self._rpc_timeout):
            raise TemporalUnavailable("Temporal's health check failed")
