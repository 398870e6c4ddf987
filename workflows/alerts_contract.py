"""The contract of the admin alerts: the lock alert and the daily digest.

Plain dataclasses and names, importable by workflows (no I/O, no database stack):

- ``send_lock_alert(LockAlertInput) -> AlertResult``: one e-mail to the shop's admins when
  a cart has been locked for ``Settings.lock_alert_after_seconds`` (30 minutes). The cart
  workflow calls it; it is idempotent per (shop, cart, lineage, locked_at).
- ``send_daily_digest(DigestInput) -> AlertResult``: the shop's digest of the day: locked
  carts, payments that need an admin, payments on deleted or expired carts, and the
  previous day's recovered orders. Idempotent per (shop, day). The ``DailyDigest``
  workflow (``workflows.digest_workflow``), started by a Temporal Schedule per shop, calls
  it.

Failures: a relay that is down, answers 4xx or times out raises a retryable
``ApplicationError`` (type ``smtp_unavailable`` / ``smtp_timeout``), so the caller's retry
policy tries again; a database that cannot be reached raises its own error (retryable
too). Everything else is an answer, never an exception: ``AlertResult.status`` says what
happened (``ALERT_*`` below) and ``detail`` why.

Conventions: time is timezone-aware UTC; money is integer minor units plus an ISO 4217
currency; a day is ``YYYY-MM-DD`` in the shop's time zone.
"""

# No ``from __future__ import annotations``: see ``workflows.state``.
from dataclasses import dataclass, field
from datetime import datetime

ACTIVITY_SEND_LOCK_ALERT = "send_lock_alert"
ACTIVITY_SEND_DAILY_DIGEST = "send_daily_digest"
#: the workflow type the digest schedules start
DIGEST_WORKFLOW_NAME = "DailyDigest"

#: ``AlertResult.status``: the e-mail was handed to the relay now
ALERT_SENT = "sent"
#: an earlier attempt (or call) sent it already: nothing was sent now
ALERT_ALREADY_SENT = "already_sent"
#: the shop has no admin addresses (``CARTKEEPER_SHOP_ADMINS``): nothing to send to
ALERT_NO_ADMINS = "no_admins"
#: the lock alert: the read model shows the cart left this lock (confirmed, unlocked...)
ALERT_NO_LONGER_LOCKED = "no_longer_locked"
#: the digest: nothing to report for the day (no e-mail)
ALERT_NOTHING_TO_REPORT = "nothing_to_report"
#: the relay refused the message for good, or it could not be made (``detail``); a later
#: call tries again
ALERT_FAILED = "failed"
#: another process is sending it right now (the digest sent by hand while its schedule
#: sends it): nothing was sent now; ask again shortly. Only a call outside an activity
#: answers it: an activity raises a retryable ``ApplicationError`` of this type instead
ALERT_SENDING = "sending"

#: error types of the retryable ``ApplicationError``s the activities raise
ALERT_RETRYABLE_ERRORS = ("smtp_unavailable", "smtp_timeout", ALERT_SENDING)


@dataclass
class LockAlertInput:
    """Tell the shop's admins that a cart has been locked for a while."""

    shop_id: str
    cart_id: str
    #: ``Cart.lineage`` ("" when the cart has none)
    lineage: str
    #: when the cart was locked (the key of the alert, with shop, cart and lineage)
    locked_at: datetime
    #: ``LockReason`` (``payment_pending``, ``no_payment_result``)
    lock_reason: str | None
    #: the cart's total in minor units of ``currency``
    total: int
    currency: str | None
    #: the ids of the cart's payment attempts, oldest first (to find them at the gateway)
    attempt_ids: list[str] = field(default_factory=list)


@dataclass
class DigestInput:
    """Send the shop's digest of ``day``."""

    shop_id: str
    #: ``YYYY-MM-DD``: the digest's date in the shop's time zone (the day it is sent). Its
    #: "recovered orders" part covers the day before.
    day: str


@dataclass
class DigestWorkflowInput:
    """The ``DailyDigest`` workflow's input (fixed in the shop's schedule)."""

    shop_id: str
    #: the shop's IANA time zone: the digest's day is the scheduled time's date there
    time_zone: str = "UTC"


@dataclass
class AlertResult:
    """What a lock alert or digest call did (no addresses: they stay out of histories)."""

    status: str
    #: the message's Message-ID (the same on every retry), when one was made
    message_id: str | None = None
    #: when it was handed to the relay (now, or by the earlier call)
    sent_at: datetime | None = None
    #: how many admin addresses the relay accepted
    recipients: int = 0
    detail: str | None = None
