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
- an answer of 500 or more, or a refusal that asks for a retry (a 4xx with
  ``Retry-After``: a digest another process is sending right now) is not kept (the
  claim is released): the client may retry,
  and the retry runs (a ``CartkeeperError`` or ``ApiError`` of 5xx is re-raised for the
  app's handlers to answer). The record is deleted, unless the retry must send new
  update ids (below): then it stays, released (``released_at``), with the generation of
  those ids (``update_generation``); a retry of the same request takes it over with that
  generation, another request under the key as a new one (generation 0);
- a record older than ``RETENTION`` (24 h since its last attempt) is replaced by the
  next request with its key, a new request; expired records are deleted now and then
  (``PURGE_EVERY``).

A cart event is applied at most once under one key (within the limits below). Three
rules make it so (the rules of Stripe's keys: a request that may have changed something
is never run again blindly, and the key goes with the request to the system that makes
the change):

- **The key goes to Temporal.** ``action`` runs within
  ``starter.client.idempotent_updates``: each update it sends a cart has an id
  ``idem-<hex>`` derived from ``update_base`` (scope, key, request digest and the
  record's generation), the cart, the update and its payload. The retry of a 5xx whose
  outcome is unknown (``temporal_unavailable``, ``update_pending``, ``internal`` from
  Temporal: the first attempt may have reached the cart, or still be waiting for a
  worker) sends the same update id. In the run that has it, Temporal answers the first
  attempt's outcome instead of applying the event again; in a later run of the cart
  (after a continue-as-new, or a closed cart brought back), where Temporal no longer
  knows the id, the cart does: it remembers the ``idem-`` ids it applied and answers
  their retry with its view as it is now (``workflows.keyed_updates``, patch
  ``keyed-updates-remembered``).
- **A failure is not answered for ever.** When the attempt sent updates and every one
  failed for sure (the update completed with an error, or its validator refused it:
  ``CartkeeperError.update_failed``; of the 5xx codes, ``statuses_unavailable`` and an
  ``internal`` that was the update's own outcome), nothing was applied, and Temporal
  would answer the same ids with the same failure for the rest of the run: the record's
  generation goes up and the retry sends new update ids, so it succeeds once the cause
  is gone (the registry readable again). An attempt with an update of unknown outcome,
  or one that applied, keeps its generation.
- **A request whose answer was not kept is never run again.** A claim whose answer was
  never recorded (its process died, or the database failed as the answer was being
  kept) is 409 ``idempotency_key_in_use`` for ``IN_FLIGHT_LIMIT`` (the longest request,
  ``await_order``, waits 300 s), then 409 ``idempotency_outcome_unknown`` until the
  record expires (``RETENTION``): the event may or may not have been applied, so the
  client reads the cart (``GET``) and sends what is still needed under a new key. The
  claim is never taken over by a retry (its request may have been applied, and not every
  write is a cart's update that a retry would be answered by: an API key, a status, a
  campaign ...). An answer the database failed to keep is still given to the client
  that asked.

What is not covered: the cart remembers the last 64 keyed updates it applied, for 24 h
of workflow time (a few kB of its state); a retry that lands in a later run than the one
that applied its event, after those, applies the event again. A cart brought back from
the read model (the restore's last resort, when Temporal cannot give the closed run's
state) knows the keyed updates of its last projection only (one restored from nothing,
none). Updates applied before the
patch are not remembered. The same request sent again under a key whose record expired
is a new request, but it sends generation 0's ids, the ids its first attempt sent, so a
cart that still holds them (the same run, or within the cart's 24 h) answers them
instead of applying them.

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
from sqlalchemy import and_, case, delete, not_, or_, select, update

from activities.db import SessionFactory, insert_for, write_session
from activities.web_models import CLIENT_KEY_LENGTH, IdempotencyRecord
from starter.client import KeyedUpdates, idempotent_updates
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
    claimed = await _claim(sessions, scope, key, digest, now)
    if isinstance(claimed, _Found):
        return _answer_again(claimed, digest, now)
    updates = KeyedUpdates(update_base(scope, key, digest, claimed))

    async def release() -> None:
        next_generation = claimed + 1 if updates.all_failed else claimed
        await _release(sessions, scope, key, now, clock(), next_generation)

    try:
        with idempotent_updates(updates):
            response = await action()
    except (ApiError, CartkeeperError) as error:
        status = error.status if isinstance(error, ApiError) else error.http_status
        if status >= 500:
            await release()
            raise
        if isinstance(error, ApiError):
            response = error_response(
                status, str(error.code), error.message, details=error.details, headers=error.headers
            )
        else:
            response = error_response(status, str(error.code), error.message)
    except BaseException:
        await release()
        raise
    if response.status_code >= 500 or (
        response.status_code >= 400 and "retry-after" in response.headers
    ):
        await release()
    else:
        try:
            await _complete(sessions, scope, key, now, clock(), response)
        except Exception as error:
            # The event is applied: its answer goes to the client all the same. The claim
            # stays (a repeat is 409, never run again: see the module's doc).
            log.error("could not keep the answer of an idempotency key: %r", error)
    return response


def update_base(scope: str, key: str, digest: str, generation: int = 0) -> str:
    """What the Temporal update ids of a request under ``key`` derive from (hashed: the
    client's key never shows in the cart's history). ``generation``: how many attempts
    of the request ended with every update failed for sure; generation 0 is what the
    ids always derived from."""
    text = f"{scope}\n{key}\n{digest}" + (f"\n{generation}" if generation else "")
    return hashlib.sha256(text.encode()).hexdigest()


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


def _expired(now: datetime) -> Any:
    return IdempotencyRecord.created_at <= now - RETENTION


def _reclaimable(now: datetime) -> Any:
    """The records a new request may take over: expired ones, and those whose request
    failed with a 5xx and gave the key back (released). Never a claim whose answer was
    not kept: its request may have been applied."""
    return or_(_expired(now), IdempotencyRecord.released_at.is_not(None))


async def _claim(
    sessions: SessionFactory, scope: str, key: str, digest: str, now: datetime
) -> _Found | int:
    """Claim (scope, key) for this request: the generation of its update ids when
    claimed (a released record of the same request keeps its own), else the record of
    the request that holds it."""
    for _attempt in range(3):
        async with write_session(sessions) as session:
            inserted = await session.execute(
                insert_for(session, IdempotencyRecord)
                .values(scope=scope, key=key, request_digest=digest, created_at=now)
                .on_conflict_do_nothing(index_elements=["scope", "key"])
            )
            if getattr(inserted, "rowcount", 0) == 1:
                return 0
            where = (IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
            retried = and_(
                IdempotencyRecord.released_at.is_not(None),
                IdempotencyRecord.request_digest == digest,
                not_(_expired(now)),
            )
            taken = await session.execute(
                update(IdempotencyRecord)
                .where(*where, _reclaimable(now))
                .values(
                    request_digest=digest,
                    status_code=None,
                    response_body=None,
                    created_at=now,
                    completed_at=None,
                    released_at=None,
                    update_generation=case((retried, IdempotencyRecord.update_generation), else_=0),
                )
                .execution_options(synchronize_session=False)
            )
            if getattr(taken, "rowcount", 0) == 1:
                generation = await session.scalar(
                    select(IdempotencyRecord.update_generation).where(*where)
                )
                return int(generation or 0)
            row = (
                await session.execute(
                    select(
                        IdempotencyRecord.request_digest,
                        IdempotencyRecord.status_code,
                        IdempotencyRecord.response_body,
                        IdempotencyRecord.created_at,
                        IdempotencyRecord.released_at,
                    ).where(*where)
                )
            ).one_or_none()
        if row is not None and row.released_at is None:
            return _Found(*row[:4])
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
        IdempotencyRecord.released_at.is_(None),
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


async def _release(
    sessions: SessionFactory,
    scope: str,
    key: str,
    claimed_at: datetime,
    now: datetime,
    next_generation: int,
) -> None:
    """Give the key back (the request failed with a 5xx, or did not finish); the next
    attempt of the request sends the update ids of ``next_generation``. Generation 0: the
    record is deleted (as if the key was never used); a later one: the record stays,
    released, with it."""
    ours = _ours(scope, key, claimed_at)
    try:
        async with write_session(sessions) as session:
            if next_generation == 0:
                await session.execute(
                    delete(IdempotencyRecord)
                    .where(*ours)
                    .execution_options(synchronize_session=False)
                )
            else:
                await session.execute(
                    update(IdempotencyRecord)
                    .where(*ours)
                    .values(released_at=now, update_generation=next_generation)
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
