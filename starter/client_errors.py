"""How the client turns Temporal's outcomes into coded errors (``CartkeeperError``), and
retries a request that met a run that was ending."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from temporalio.client import (
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from workflows.contract import ErrorCode

T = TypeVar("T")


class CartkeeperError(Exception):
    """A request was refused or could not be carried out. ``update_failed``: the error is
    the outcome of a cart's update (it completed with it, or its validator refused it):
    the update applied nothing, for sure (unlike ``update_pending`` or a failed call to
    Temporal, whose update may or may not have been applied)."""

    def __init__(self, code: ErrorCode, message: str, *, update_failed: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.update_failed = update_failed

    @property
    def http_status(self) -> int:
        return self.code.http_status


class _RunClosing(CartkeeperError):
    """The run was ending (continue-as-new, retirement) as the request reached it: the
    next run takes it. Retried by the client, never shown."""


#: how often (and after how long) a request that met a closing run is sent again
CLOSING_RETRIES = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)


async def call(awaitable: Awaitable[T]) -> T:
    """``await awaitable``, its failures as ``CartkeeperError``s."""
    try:
        return await awaitable
    except WorkflowUpdateFailedError as error:
        failure = _from_failure(error.cause)
        failure.update_failed = True
        raise failure from None
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        raise CartkeeperError(
            ErrorCode.UPDATE_PENDING,
            "no worker applied the request in time; it is queued and may still be applied",
        ) from None
    except WorkflowQueryFailedError as error:
        raise CartkeeperError(ErrorCode.INTERNAL, str(error)) from None
    except RPCError as error:
        raise from_rpc_error(error) from None


#: RPC outcomes that pass: the request may be sent again (exit 4, HTTP 503)
TRANSIENT = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,  # rate limited
        RPCStatusCode.ABORTED,
        RPCStatusCode.CANCELLED,
    }
)


def from_rpc_error(error: RPCError) -> CartkeeperError:
    """A failed call to Temporal as a coded error."""
    if error.status == RPCStatusCode.NOT_FOUND:
        if error.message.lower().startswith("namespace"):
            # Not the cart: the client is configured for a namespace the server lacks.
            return CartkeeperError(
                ErrorCode.TEMPORAL_UNAVAILABLE,
                f"{error.message} (check TEMPORAL_NAMESPACE)",
            )
        return CartkeeperError(ErrorCode.CART_NOT_FOUND, "no such cart")
    if _closing(error):
        return _RunClosing(ErrorCode.TEMPORAL_UNAVAILABLE, error.message)
    if error.status in TRANSIENT:
        return CartkeeperError(
            ErrorCode.TEMPORAL_UNAVAILABLE, f"{error.message} [{error.status.name}]"
        )
    return CartkeeperError(ErrorCode.INTERNAL, f"{error.message} [{error.status.name}]")


def _closing(error: RPCError) -> bool:
    """The request met a run that was ending: continue-as-new or completion."""
    message = error.message.lower()
    return (
        "workflow is closing" in message
        or "workflow task failure" in message
        or ("workflow task in failed state" in message)
    )


async def retry_closing(call: Callable[[], Awaitable[T]]) -> T:
    """``call()``, sent again (a few times, briefly) while it meets a closing run."""
    for pause in CLOSING_RETRIES:
        try:
            return await call()
        except _RunClosing:
            await asyncio.sleep(pause)
    try:
        return await call()
    except _RunClosing as error:
        raise CartkeeperError(
            error.code, f"the cart's workflow kept closing: {error.message}"
        ) from None


def _from_failure(cause: BaseException | None) -> CartkeeperError:
    """An update's ``ApplicationError`` (type = error code) as a ``CartkeeperError``."""
    if isinstance(cause, ApplicationError):
        try:
            return CartkeeperError(ErrorCode(cause.type or ""), cause.message)
        except ValueError:
            return CartkeeperError(ErrorCode.INTERNAL, cause.message)
    return CartkeeperError(ErrorCode.INTERNAL, str(cause))
