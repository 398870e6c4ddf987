"""How Temporal's RPC failures become coded errors (``starter.client_errors``)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from starter.client import CartkeeperClient
from starter.client_errors import CartkeeperError, _RunClosing, call, from_rpc_error
from workflows.contract import ErrorCode


def rpc(status: RPCStatusCode, message: str) -> RPCError:
    return RPCError(message, status, b"")


@pytest.mark.parametrize(
    ("status", "message", "code"),
    [
        (RPCStatusCode.NOT_FOUND, "workflow not found for ID: cart:s:c", ErrorCode.CART_NOT_FOUND),
        (
            RPCStatusCode.NOT_FOUND,
            "workflow not found for ID: cart:namespace-shop:c",
            ErrorCode.CART_NOT_FOUND,
        ),
        (
            RPCStatusCode.NOT_FOUND,
            'Namespace name "shop-prod" is not found.',
            ErrorCode.TEMPORAL_UNAVAILABLE,
        ),
        (RPCStatusCode.UNAVAILABLE, "connection refused", ErrorCode.TEMPORAL_UNAVAILABLE),
        (RPCStatusCode.DEADLINE_EXCEEDED, "deadline", ErrorCode.TEMPORAL_UNAVAILABLE),
        (RPCStatusCode.RESOURCE_EXHAUSTED, "rate limit", ErrorCode.TEMPORAL_UNAVAILABLE),
        (RPCStatusCode.ABORTED, "aborted", ErrorCode.TEMPORAL_UNAVAILABLE),
        (RPCStatusCode.CANCELLED, "cancelled", ErrorCode.TEMPORAL_UNAVAILABLE),
        (RPCStatusCode.INVALID_ARGUMENT, "bad request", ErrorCode.INTERNAL),
        (RPCStatusCode.PERMISSION_DENIED, "no", ErrorCode.INTERNAL),
    ],
)
def test_rpc_errors_are_coded(status: RPCStatusCode, message: str, code: ErrorCode) -> None:
    error = from_rpc_error(rpc(status, message))
    assert error.code is code
    assert not isinstance(error, _RunClosing)
    if code is ErrorCode.TEMPORAL_UNAVAILABLE and status is RPCStatusCode.NOT_FOUND:
        assert "TEMPORAL_NAMESPACE" in error.message


def test_a_closing_run_is_retried_not_shown() -> None:
    error = from_rpc_error(rpc(RPCStatusCode.FAILED_PRECONDITION, "workflow is closing"))
    assert isinstance(error, _RunClosing)


async def test_call_raises_the_coded_error() -> None:
    async def failing() -> None:
        raise rpc(RPCStatusCode.RESOURCE_EXHAUSTED, "namespace rate limit exceeded")

    with pytest.raises(CartkeeperError) as raised:
        await call(failing())
    assert raised.value.code is ErrorCode.TEMPORAL_UNAVAILABLE
    assert raised.value.http_status == 503


@pytest.mark.parametrize(
    ("code", "exit_code"),
    [
        (ErrorCode.STATUSES_UNAVAILABLE, 4),
        (ErrorCode.UPDATE_PENDING, 4),
        (ErrorCode.TEMPORAL_UNAVAILABLE, 4),
        (ErrorCode.CART_NOT_FOUND, 3),
        (ErrorCode.UNKNOWN_STATUS, 1),
        (ErrorCode.CONTENTS_NOT_EDITABLE, 1),
    ],
)
def test_exit_codes_say_whether_to_try_again(code: ErrorCode, exit_code: int) -> None:
    """``statuses_unavailable`` (the registry could not be read) is worth another try,
    like an unreachable Temporal (4); a refusal is not (1)."""
    from starter.errors import exit_code_for

    assert exit_code_for(code) == exit_code


class NoTemporal:
    """A Temporal client no test may reach: any use of it fails the test."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"Temporal was asked ({name}) before the request was checked")


@pytest.mark.parametrize("action", ["confirm", "unlock", "delete", "resolve"])
async def test_an_admin_note_the_validator_would_refuse_is_refused_before_sending(
    action: str,
) -> None:
    """The client checks an admin's name and note as the workflow's validator will
    (``machine.check_admin``): the same code, and Temporal is never asked."""
    carts = CartkeeperClient(cast(Client, NoTemporal()))
    for kwargs, code in (
        ({"note": "n" * 1001}, ErrorCode.INVALID_INPUT),
        ({"note": "bell \x07"}, ErrorCode.INVALID_TEXT),
        ({"admin": ""}, ErrorCode.INVALID_INPUT),
    ):
        with pytest.raises(CartkeeperError) as refused:
            await getattr(carts, action)("shop-1", "cart-1", **kwargs)
        assert refused.value.code is code, (action, kwargs, refused.value)
