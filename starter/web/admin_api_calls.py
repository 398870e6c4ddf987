"""What every route of the admin JSON API shares: its router (``admin_router``: the
prefix ``/api/v1/admin`` and ``guard``), the call (``Reader`` / ``Writer``: who calls,
how it is answered), the refusals of the read model's stores as coded errors, bodies and
filters.

Answers are JSON: the result of the route's work (dataclasses, enums and times written
as the CLI's ``--json`` writes them, ``starter.output.jsonable``) or a refusal
``{"error": {"code", "message"}}``. The read model's stores refuse with their own codes
(``status_letter_taken``, ``shipping_method_not_found`` ...): each code answers with one
status: ``NOT_FOUND_CODES`` 404, ``CONFLICT_CODES`` 409, a code of the workflows'
``ErrorCode`` its own status, any other 422. Every write honours ``Idempotency-Key``
(``starter.web.idempotency``) in the scope ``admin:<user>``: each user's keys are their
own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict

from activities.admin_mail import BUSY_RETRY_DELAY
from activities.campaign_checks import CampaignRefused
from activities.coupons import CouponRefused
from activities.filter_text import filter_problem
from activities.journal_query import JournalQueryRefused
from activities.order_numbering import NumberingRefused
from activities.order_status_rules import StatusRefused
from activities.orders_query import OrdersQueryRefused
from activities.shipping_methods import ShippingMethodRefused
from activities.stock import StockRefused
from starter.output import jsonable
from starter.web.admin_api_auth import Caller, database, guard
from starter.web.admin_cart_query import CartQueryRefused
from starter.web.admin_users import Account, UserRefused
from starter.web.api_errors import ERROR_RESPONSES, ErrorResponse, error_response
from starter.web.api_keys import ApiKeyRefused
from starter.web.deps import Context, WebContext
from starter.web.idempotency import HEADER, REPLAYED_HEADER, check_key, idempotent, request_digest
from workflows.codes import ErrorCode
from workflows.validation import valid_id

PREFIX = "/api/v1/admin"

NOT_FOUND_CODES = frozenset(
    {
        "order_not_found",
        "journal_not_found",
        "shipping_method_not_found",
        "api_key_not_found",
        "campaign_not_found",
        "reminder_not_found",
        "coupon_not_found",
        "user_not_found",
        "mailbox_not_found",
        "schedule_not_found",
    }
)
#: refusals of a service that is down for now: 503 (try again)
UNAVAILABLE_CODES = frozenset({"mail_unavailable"})
CONFLICT_CODES = frozenset(
    {
        "status_limit_reached",
        "status_letter_taken",
        "status_builtin",
        "shipping_method_exists",
        "order_number_start_too_low",
        "stock_movement_conflict",
        "user_exists",
        "last_admin",
        "empty_cart",
        "digest_sending",
    }
)


class Refused(Exception):
    """A request of this API that cannot be answered (a filter it cannot read ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def check_shop(shop_id: str) -> None:
    """A shop id from the path, refused ``invalid_id`` when it is not one."""
    if not valid_id(shop_id):
        raise Refused("invalid_id", f"{shop_id[:70]!r} is not a shop id")


#: the refusals answered as coded errors (each has ``code`` and ``message``)
REFUSALS = (
    Refused,
    CartQueryRefused,
    OrdersQueryRefused,
    JournalQueryRefused,
    StatusRefused,
    ShippingMethodRefused,
    StockRefused,
    NumberingRefused,
    CampaignRefused,
    ApiKeyRefused,
    CouponRefused,
    UserRefused,
)


def status_of(code: str) -> int:
    """The HTTP status a refusal's code answers with."""
    if code in NOT_FOUND_CODES:
        return 404
    if code in CONFLICT_CODES:
        return 409
    if code in UNAVAILABLE_CODES:
        return 503
    try:
        return ErrorCode(code).http_status
    except ValueError:
        return 422


#: refusals of a moment: answered with ``Retry-After`` (seconds), never kept under an
#: ``Idempotency-Key`` (the same request again is run again)
RETRY_AFTER: dict[str, str] = {
    "digest_sending": str(int(BUSY_RETRY_DELAY.total_seconds())),
}


async def respond(work: Callable[[], Awaitable[Any]], status: int = 200) -> JSONResponse:
    """``work``'s result as JSON with ``status``; a store's refusal as a coded error."""
    try:
        result = await work()
    except REFUSALS as refused:
        retry = RETRY_AFTER.get(refused.code)
        return error_response(
            status_of(refused.code),
            refused.code,
            refused.message,
            headers={"Retry-After": retry} if retry else None,
        )
    return JSONResponse(jsonable(result), status_code=status)


# --------------------------------------------------------------------------- the call


@dataclass
class AdminCall:
    """One authenticated request: who calls, and how it is answered."""

    context: WebContext
    account: Account
    request: Request
    idempotency_key: str | None = None

    @property
    def username(self) -> str:
        """Who acts: what the cart's journal records (``admin:<user>``)."""
        return self.account.username

    @property
    def sessions(self) -> Any:
        return self.context.sessions

    async def read(self, work: Callable[[], Awaitable[Any]]) -> Response:
        async with database():
            return await respond(work)

    async def write(
        self, body: Any, work: Callable[[], Awaitable[Any]], *, status: int = 200
    ) -> Response:
        """``work``'s answer, once per ``Idempotency-Key``."""
        return await self.write_response(body, lambda: respond(work, status))

    async def write_response(
        self, body: Any, action: Callable[[], Awaitable[JSONResponse]]
    ) -> Response:
        url = self.request.url
        path = f"{url.path}?{url.query}" if url.query else url.path
        async with database():
            return await idempotent(
                self.context.sessions,
                f"admin:{self.account.username}",
                self.idempotency_key,
                request_digest(self.request.method, path, body),
                self.context.now,
                action,
            )


async def _reader(request: Request, context: Context, account: Caller) -> AdminCall:
    return AdminCall(context, account, request)


async def _writer(
    request: Request,
    context: Context,
    account: Caller,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=HEADER,
            pattern=r"^[\x20-\x7e]{1,255}$",
            description="Any unique string (1-255 printable ASCII characters, a UUID say):"
            " sent again with the same request, the first answer is given again (header"
            f" `{REPLAYED_HEADER}: true`) instead of acting twice. Kept 24 hours, per user.",
        ),
    ] = None,
) -> AdminCall:
    if idempotency_key is not None:
        check_key(idempotency_key)
    return AdminCall(context, account, request, idempotency_key)


#: a read (any user), and a write (an admin; ``Idempotency-Key`` honoured)
Reader = Annotated[AdminCall, Depends(_reader)]
Writer = Annotated[AdminCall, Depends(_writer)]

#: every route's refusals, and the sign-in limit's
ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    429: {"model": ErrorResponse, "description": "Too many failed sign-ins: wait"},
}


def admin_router(tag: str) -> APIRouter:
    """A router of the admin API: under ``PREFIX``, every route behind ``guard``."""
    return APIRouter(
        prefix=PREFIX, tags=[tag], dependencies=[Depends(guard)], responses=ADMIN_ERRORS
    )


def answers(description: str, example: Any, status: int = 200) -> dict[int | str, dict[str, Any]]:
    """A route's answer for the OpenAPI document, with an example."""
    replayed = {
        "description": f"`true` when this is the kept answer of an earlier request with the"
        f" same `{HEADER}` (writes)",
        "schema": {"type": "string", "enum": ["true"]},
    }
    return {
        status: {
            "description": description,
            "content": {"application/json": {"example": example}},
            "headers": {REPLAYED_HEADER: replayed},
        }
    }


# --------------------------------------------------------------------------- bodies


class JsonBody(BaseModel):
    """A request body: a JSON object of exactly these fields, each of its type (a wrong
    type is refused, never coerced: 422 ``invalid_input``)."""

    model_config = ConfigDict(extra="forbid", strict=True)


def dumped(body: BaseModel | None) -> Any:
    """The body as given (for the idempotency digest)."""
    return body.model_dump(mode="json", exclude_unset=True) if body is not None else None


# --------------------------------------------------------------------------- filters


def text_filter(value: str | None, name: str, *, strip: bool = True) -> str | None:
    """A text filter (stripped unless ``strip`` is false; ``None`` when empty): control
    characters and lone surrogates, which no cart's text holds, are ``invalid_filter``
    (``activities.filter_text``); any other text a cart may hold is taken."""
    if value is None or not value.strip():
        return None
    text = value.strip() if strip else value
    problem = filter_problem(text, name)
    if problem is not None:
        raise Refused("invalid_filter", problem)
    return text


def when(value: str | None, name: str, *, end: bool = False) -> datetime | None:
    """A time filter: a day ``YYYY-MM-DD`` (UTC; with ``end``, up to its end) or an ISO
    8601 time (without an offset: UTC); else ``invalid_filter``."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if end else start
        moment = datetime.fromisoformat(text)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise Refused(
            "invalid_filter",
            f"{name}: {value[:40]!r} is not a day YYYY-MM-DD or a time"
            " YYYY-MM-DDTHH:MM[:SS][+HH:MM]",
        ) from None
