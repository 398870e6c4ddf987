"""What every router shares: the app's ``WebContext`` (database, links, Temporal, clock,
settings), kept on ``app.state`` by ``create_app`` and handed to routes by ``Depends``.
``await context.carts()`` is the ``CartkeeperClient`` every cart action goes through (the
same client, validation and error codes as the CLI)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request

from activities.db import SessionFactory
from activities.links import Links
from activities.settings import Settings
from starter.client import CartkeeperClient
from starter.web.api_keys import VerifiedKeys
from starter.web.temporal import Signaller
from workflows.contract import TASK_QUEUE

#: how long an HTTP request waits for a worker to apply an update (then 504
#: ``update_pending``: queued, it may still apply)
UPDATE_TIMEOUT = 10.0


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class WebContext:
    sessions: SessionFactory
    links: Links
    signaller: Signaller
    #: the clock (tests set it)
    now: Callable[[], datetime] = field(default=utc_now)
    #: seconds a click waits for Temporal before the customer is redirected anyway
    signal_timeout: float = 5.0
    #: seconds ``/readyz`` waits for each check
    check_timeout: float = 3.0
    settings: Settings | None = None
    #: the storefront's recently verified API keys
    api_keys: VerifiedKeys = field(default_factory=VerifiedKeys)
    _carts: CartkeeperClient | None = field(default=None, repr=False)

    async def carts(self) -> CartkeeperClient:
        """The cart client over the signaller's Temporal client (connected on first use;
        ``CartkeeperError`` ``temporal_unavailable`` when it cannot be)."""
        if self._carts is None:
            from starter.client_errors import CartkeeperError
            from starter.web.temporal import TemporalUnavailable
            from workflows.codes import ErrorCode

            try:
                client = await self.signaller.client()
            except TemporalUnavailable as error:
                raise CartkeeperError(ErrorCode.TEMPORAL_UNAVAILABLE, str(error)) from None
            settings = self.settings
            self._carts = CartkeeperClient(
                client,
                task_queue=settings.task_queue if settings else TASK_QUEUE,
                policy_for=settings.policy_for if settings else None,
                update_timeout=UPDATE_TIMEOUT,
            )
        return self._carts

    async def acting_carts(self) -> CartkeeperClient:
        """The cart client for an admin's action on a cart. While Temporal cannot be
        reached, a cart client over ``Unreachable``: it checks the action as always, so
        a bad request gets its own 4xx, and anything that needs Temporal is
        ``temporal_unavailable``. (Only for actions on an existing cart: a storefront's
        update-with-start, or a batch, keeps ``carts()``.)"""
        from starter.client_errors import CartkeeperError
        from workflows.codes import ErrorCode

        try:
            return await self.carts()
        except CartkeeperError as error:
            if error.code is not ErrorCode.TEMPORAL_UNAVAILABLE:
                raise
            return CartkeeperClient(Unreachable(error))  # type: ignore[arg-type]


class Unreachable:
    """Stands for the Temporal client while it cannot be reached: any use of it raises
    the error that said so (``temporal_unavailable``)."""

    def __init__(self, error: Exception) -> None:
        self._error = error

    def __getattr__(self, name: str) -> Any:
        raise self._error


async def get_context(request: Request) -> WebContext:
    """(``async``: FastAPI runs a plain ``def`` dependency in a worker thread, a hop of
    the whole request through the thread pool.)"""
    context: WebContext = request.app.state.context
    return context


Context = Annotated[WebContext, Depends(get_context)]
