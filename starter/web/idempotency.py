"""``Idempotency-Key`` on the HTTP API's writes: a request sent again (the client timed
out, the network dropped the answer) is answered again, not applied again.

    answer = await idempotent(sessions, scope, key, request_digest(...), clock, action)

``action`` answers a ``JSONResponse``. Before it runs, the key is claimed: a row of
``idempotency_keys`` per (scope, key) (``scope`` is who sent it, ``key:<api key id>``),
inserted with ``ON CONFLICT DO NOTHING``, so of two concurrent requests one claims and
the other finds the claim. Then:

- the answer (status and body) is kept on the row, and a repeat with the same method,
  path and body gets it back with ``Idempotent-Replayed: true``;
- a repeat with another request under the same key: 422 ``idempotency_key_reused``;
- a repeat while the first still runs: 409 ``idempotency_key_in_use``;
- an answer of 500 or more is not kept (the claim is released): the client may retry,
  and the retry runs (a ``CartkeeperError`` or ``ApiError`` of 5xx is re-raised for the
  app's handlers to answer);
- a record older than ``RETENTION`` (24 h) is replaced by the next request with its key;
  expired records are deleted now and then (``PURGE_EVERY``).

A cart event is never applied twice under one key. Two rules make it so (the rules of
Stripe's keys: a request that may have changed something is never run again blindly,
and the key goes with the request to the system that makes the change):

- **The key goes to Temporal.** ``action`` runs within
  ``starter.client.idempotent_updates``: each update it sends a cart has an id derived
  from (scope, key, request digest), the cart, the update and its payload. The retry of
  a 5xx (Temporal unavailable, ``update_pending``: the first attempt may have reached
  the cart, or still be waiting for a worker) sends the same update id, and Temporal,
  which keeps one outcome per update id in a run, answers the first attempt's outcome
  instead of applying the event again.
- **A request whose answer was not kept is never run again.** A claim whose answer was
  never recorded (its process died, or the database failed as the answer was being
  kept) is 409 ``idempotency_key_in_use`` for ``IN_FLIGHT_LIMIT`` (the longest request,
  ``await_order``, waits 300 s), then 409 ``idempotency_outcome_unknown`` until the
  record expires (``RETENTION``): the event may or may not have been applied, so the
  client reads the cart (``GET``) and sends what is still needed under a new key. The
  claim is never taken over by a retry (that retry could land on a later run of the
  cart, after a continue-as-new or a closed cart brought back, where Temporal no longer
  knows the first update id). An answer the database failed to keep is still given to
  the client that asked.

Keys are 1 to 255 printable ASCII characters (``check_key``), else 422 ``invalid_input``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi.responses import JSONResponse, Response
from sqlalchemy import delete, select, update

from activities.db import SessionFactory, insert_for, write_session
from activities.web_models import CLIENT_KEY_LENGTH, IdempotencyRecord
from starter.client import idempotent_updates
from starter.client_errors import CartkeeperError
from starter.web.api_errors import ApiError, WebErrorCode, error_response
from workflows.codes import ErrorCode

log = logging.getLogger("cartkeeper.web")

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
#: how long an answer is kept for its key
RETENTION = timedelta(hours=24)
#: a claim older than this whose request never finished will not answer: its outcome is
#: unknown (the longest request, ``await_order``, waits 300 s)
IN_FLIGHT_LIMIT = timedelta(minutes=10)
#: the code of a repeat of a request whose answer was never kept (409)
OUTCOME_UNKNOWN = WebErrorCode.IDEMPOTENCY_OUTCOME_UNKNOWN
#: how often (per database, per process) expired records are deleted
PURGE_EVERY = timedelta(minutes=10)

_last_purge: weakref.WeakKeyDictionary[SessionFactory, datetime] = weakref.WeakKeyDictionary()


def check_key(key: str) -> str:
    """``key`` if it is 1 to 255 printable ASCII characters; else ``ApiError``
    ``invalid_input``."""
    if not 0 < len(key) <= CLIENT_KEY_LENGTH or not all(" " <= char <= "~" for char in key):
        raise ApiError(
            ErrorCode.INVALID_INPUT,
            f"{HEADER} must be 1 to {CLIENT_KEY_LENGTH} printable ASCII characters",
        )
    return key


def request_digest(method: str, path: str, body: Any) -> str:
    """The hex SHA-256 of a request: its method, path (with the query) and JSON body,
    written canonically (key order and spacing do not count, types do: ``2`` is not
    ``2.0``). A lone surrogate (valid JSON, ``"\\ud800"``) is hashed as it came
    (``surrogatepass``): the request is answered (``invalid_text``), never a 500."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    data = f"{method.upper()}\n{path}\n{text}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class _Found:
    """The record that holds the key (another request's)."""

    request_digest: str
    status_code: int | None
    response_body: str | None
    created_at: datetime


async def idempotent(
    sessions: SessionFactory,
    scope: str,
    key: str | None,
    digest: str,
    clock: Callable[[], datetime],
    action: Callable[[], Awaitable[JSONResponse]],
) -> Response:
    """``action``'s answer, run once per (scope, key); without a key, simply run.
    ``clock``: the time records are stamped with (tests set it)."""
    if key is None:
        return await action()
    check_key(key)
    now = clock()
    await _purge_now_and_then(sessions, now)
    found = await _claim(sessions, scope, key, digest, now)
    if found is not None:
        return _answer_again(found, digest, now)
    try:
        with idempotent_updates(update_base(scope, key, digest)):
            response = await action()
    except (ApiError, CartkeeperError) as error:
        status = error.status if isinstance(error, ApiError) else error.http_status
        if status >= 500:
            await _release(sessions, scope, key, now)
            raise
        if isinstance(error, ApiError):
            response = error_response(status, str(error.code), error.message, details=error.details)
        else:
            response = error_response(status, str(error.code), error.message)
    except BaseException:
        await _release(sessions, scope, key, now)
        raise
    if response.status_code >= 500:
        await _release(sessions, scope, key, now)
    else:
        try:
            await _complete(sessions, scope, key, now, clock(), response)
        except Exception as error:
            # The event is applied: its answer goes to the client all the same. The claim
            # stays (a repeat is 409, never run again: see the module's doc).
            log.error("could not keep the answer of an idempotency key: %r", error)
    return response


def update_base(scope: str, key: str, digest: str) -> str:
    """What the Temporal update ids of a request under ``key`` derive from (hashed: the
    client's key never shows in the cart's history)."""
    return hashlib.sha256(f"{scope}\n{key}\n{digest}".encode()).hexdigest()


def _answer_again(found: _Found, digest: str, now: datetime) -> Response:
    if found.request_digest != digest:
        raise ApiError(
            WebErrorCode.IDEMPOTENCY_KEY_REUSED,
            f"this {HEADER} was used for another request (method, path or body)",
        )
    if found.status_code is None or found.response_body is None:
        if now - found.created_at < IN_FLIGHT_LIMIT:
            raise ApiError(
                WebErrorCode.IDEMPOTENCY_KEY_IN_USE,
                f"a request with this {HEADER} is still running: try again when it has answered",
            )
        return error_response(
            OUTCOME_UNKNOWN.http_status,
            str(OUTCOME_UNKNOWN),
            f"a request with this {HEADER} started but its answer was never recorded: it"
            " may or may not have been applied. Read the cart, and send what is still"
            f" needed with a new {HEADER}",
            details={"started_at": found.created_at.isoformat()},
        )
    return Response(
        found.response_body,
        status_code=found.status_code,
        media_type="application/json",
        headers={REPLAYED_HEADER: "true"},
    )


def _reclaimable(now: datetime) -> Any:
    """The records a new request may take over: expired ones only (never a claim whose
    answer was not kept: its request may have been applied)."""
    return IdempotencyRecord.created_at <= now - RETENTION


async def _claim(
    sessions: SessionFactory, scope: str, key: str, digest: str, now: datetime
) -> _Found | None:
    """Claim (scope, key) for this request: ``None`` when claimed, else the record of
    the request that holds it."""
    for _attempt in range(3):
        async with write_session(sessions) as session:
            inserted = await session.execute(
                insert_for(session, IdempotencyRecord)
                .values(scope=scope, key=key, request_digest=digest, created_at=now)
                .on_conflict_do_nothing(index_elements=["scope", "key"])
            )
            if getattr(inserted, "rowcount", 0) == 1:
                return None
            where = (IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
            taken = await session.execute(
                update(IdempotencyRecord)
                .where(*where, _reclaimable(now))
                .values(
                    request_digest=digest,
                    status_code=None,
                    response_body=None,
                    created_at=now,
                    completed_at=None,
                )
                .execution_options(synchronize_session=False)
            )
            if getattr(taken, "rowcount", 0) == 1:
                return None
            row = (
                await session.execute(
                    select(
                        IdempotencyRecord.request_digest,
                        IdempotencyRecord.status_code,
                        IdempotencyRecord.response_body,
                        IdempotencyRecord.created_at,
                    ).where(*where)
                )
            ).one_or_none()
        if row is not None:
            return _Found(*row)
        # released between the insert and the read (its request failed): claim again
    raise ApiError(
        WebErrorCode.IDEMPOTENCY_KEY_IN_USE,
        f"requests with this {HEADER} keep failing at the same time: try again",
    )


def _ours(scope: str, key: str, claimed_at: datetime) -> tuple[Any, ...]:
    return (
        IdempotencyRecord.scope == scope,
        IdempotencyRecord.key == key,
        IdempotencyRecord.created_at == claimed_at,
        IdempotencyRecord.completed_at.is_(None),
    )


async def _complete(
    sessions: SessionFactory,
    scope: str,
    key: str,
    claimed_at: datetime,
    now: datetime,
    response: Response,
) -> None:
    body = bytes(response.body).decode("utf-8")
    async with write_session(sessions) as session:
        await session.execute(
            update(IdempotencyRecord)
            .where(*_ours(scope, key, claimed_at))
            .values(status_code=response.status_code, response_body=body, completed_at=now)
            .execution_options(synchronize_session=False)
        )


async def _release(sessions: SessionFactory, scope: str, key: str, claimed_at: datetime) -> None:
    """Give the key back (the request failed with a 5xx, or did not finish)."""
    try:
        async with write_session(sessions) as session:
            await session.execute(
                delete(IdempotencyRecord)
                .where(*_ours(scope, key, claimed_at))
                .execution_options(synchronize_session=False)
            )
    except Exception as error:  # the request's own failure matters more
        log.warning("could not release an idempotency key (free again later): %r", error)


async def _purge_now_and_then(sessions: SessionFactory, now: datetime) -> None:
    last = _last_purge.get(sessions)
    if last is not None and now - last < PURGE_EVERY and last <= now:
        return
    _last_purge[sessions] = now
    async with write_session(sessions) as session:
        await session.execute(
            delete(IdempotencyRecord)
            .where(IdempotencyRecord.created_at <= now - RETENTION)
            .execution_options(synchronize_session=False)
        )
