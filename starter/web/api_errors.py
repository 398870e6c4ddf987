"""The HTTP API's errors: every refusal is ``{"error": {"code": ..., "message": ...}}``
with the status its code carries (``workflows.codes.ErrorCode.http_status``); the web's
own codes (authentication, idempotency, the database) are here. Never a 500 for bad
input: a request FastAPI cannot read is ``invalid_input`` (422) with what was wrong.

``install(app)`` registers the handlers; routes raise ``ApiError`` (or let a
``CartkeeperError`` through).
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from starter.client_errors import CartkeeperError
from workflows.codes import ErrorCode

log = logging.getLogger("cartkeeper.web")


class WebErrorCode(StrEnum):
    """The web's codes (the workflow never sees them)."""

    #: no credentials, or credentials that are not valid (a revoked key included)
    UNAUTHENTICATED = "unauthenticated"
    #: valid credentials that may not do this (a viewer acting; another shop's cart)
    FORBIDDEN = "forbidden"
    #: a webhook whose signature, timestamp or headers do not verify
    INVALID_SIGNATURE = "invalid_signature"
    #: the same ``Idempotency-Key`` with another request
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    #: the same ``Idempotency-Key`` while the first request still runs
    IDEMPOTENCY_KEY_IN_USE = "idempotency_key_in_use"
    #: the same ``Idempotency-Key`` as a request whose answer was never kept: it may or
    #: may not have been applied, and it is never run again
    IDEMPOTENCY_OUTCOME_UNKNOWN = "idempotency_outcome_unknown"
    NOT_FOUND = "not_found"
    TOO_MANY_ATTEMPTS = "too_many_login_attempts"
    DATABASE_UNAVAILABLE = "database_unavailable"

    @property
    def http_status(self) -> int:
        return _STATUS[self]


_STATUS = {
    WebErrorCode.UNAUTHENTICATED: 401,
    WebErrorCode.FORBIDDEN: 403,
    WebErrorCode.INVALID_SIGNATURE: 401,
    WebErrorCode.IDEMPOTENCY_KEY_REUSED: 422,
    WebErrorCode.IDEMPOTENCY_KEY_IN_USE: 409,
    WebErrorCode.IDEMPOTENCY_OUTCOME_UNKNOWN: 409,
    WebErrorCode.NOT_FOUND: 404,
    WebErrorCode.TOO_MANY_ATTEMPTS: 429,
    WebErrorCode.DATABASE_UNAVAILABLE: 503,
}


class ApiError(Exception):
    """A refusal of the HTTP API."""

    def __init__(
        self,
        code: ErrorCode | WebErrorCode,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.headers = headers
        self.details = details

    @property
    def status(self) -> int:
        return self.code.http_status


class ErrorBody(BaseModel):
    """The body of every refusal (for the OpenAPI document)."""

    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorBody


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = jsonable_encoder(details)
    return JSONResponse({"error": body}, status_code=status, headers=headers)


#: the ``responses=`` of a route: its refusals in the OpenAPI document
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in (
        (401, "Unauthenticated"),
        (403, "Forbidden"),
        (404, "Not found"),
        (
            409,
            "Conflict with the cart's state; or `idempotency_key_in_use` (a request with"
            " this `Idempotency-Key` still runs), `idempotency_outcome_unknown` (its answer"
            " was never kept: read the cart, send what is needed with a new key)",
        ),
        (410, "Gone (expired or deleted)"),
        (422, "Invalid input"),
        (503, "Temporal or the database is unavailable"),
        (504, "Queued: no worker applied it in time; it may still apply"),
    )
}


async def _api_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    return error_response(
        error.status, str(error.code), error.message, details=error.details, headers=error.headers
    )


async def _cartkeeper_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, CartkeeperError)
    if error.code is ErrorCode.INTERNAL:
        log.error("internal error answering a request: %s", error.message)
    return error_response(error.http_status, str(error.code), error.message)


async def _validation_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = [
        {"at": ".".join(str(part) for part in problem.get("loc", ())), "problem": problem["msg"]}
        for problem in error.errors()
    ]
    first = problems[0] if problems else {"at": "", "problem": "invalid request"}
    return error_response(
        422,
        str(ErrorCode.INVALID_INPUT),
        f"{first['at']}: {first['problem']}" if first["at"] else first["problem"],
        details=problems,
    )


def install(app: FastAPI) -> None:
    """Register the API's error handlers on ``app``."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(CartkeeperError, _cartkeeper_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
