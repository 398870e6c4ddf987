"""The ``DailyDigest`` workflow: one shop's daily digest e-mail, started by the shop's
Temporal Schedule (``starter.schedules``) at the configured local time.

Deterministic: the digest's day is the date, in the shop's time zone, of the time the
schedule meant to start it (``TemporalScheduledStartTime``; a run started late, e.g.
caught up after an outage, still reports its own day), else of the workflow's start. It
only calls the ``send_daily_digest`` activity, which is idempotent per (shop, day): a
repeated or retried run sends nothing twice.
"""

# No ``from __future__ import annotations``: see ``workflows.state``.
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey

from workflows.alerts_contract import (
    ACTIVITY_SEND_DAILY_DIGEST,
    DIGEST_WORKFLOW_NAME,
    AlertResult,
    DigestInput,
    DigestWorkflowInput,
)

#: set by Temporal on every workflow a schedule starts
SCHEDULED_START_TIME = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")

#: one attempt: read the read model, render, hand the message to the relay
DIGEST_ATTEMPT_TIMEOUT = timedelta(minutes=2)
#: give up on the day's digest after this long (a relay down all day)
DIGEST_GIVE_UP_AFTER = timedelta(hours=12)
DIGEST_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=10),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
)


def digest_day(at: datetime, time_zone: str) -> str:
    """``YYYY-MM-DD``: the date of ``at`` in ``time_zone`` (UTC if it is unknown)."""
    try:
        zone = ZoneInfo(time_zone)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        zone = ZoneInfo("UTC")
    return at.astimezone(zone).date().isoformat()


@workflow.defn(name=DIGEST_WORKFLOW_NAME)
class DailyDigest:
    @workflow.run
    async def run(self, request: DigestWorkflowInput) -> AlertResult:
        scheduled = workflow.info().typed_search_attributes.get(SCHEDULED_START_TIME)
        day = digest_day(scheduled or workflow.now(), request.time_zone)
        result: AlertResult = await workflow.execute_activity(
            ACTIVITY_SEND_DAILY_DIGEST,
            DigestInput(shop_id=request.shop_id, day=day),
            result_type=AlertResult,
            start_to_close_timeout=DIGEST_ATTEMPT_TIMEOUT,
            schedule_to_close_timeout=DIGEST_GIVE_UP_AFTER,
            retry_policy=DIGEST_RETRY,
        )
        workflow.logger.info(
            "digest of shop %s for %s: %s%s",
            request.shop_id,
            day,
            result.status,
            f" ({result.detail})" if result.detail else "",
        )
        return result
