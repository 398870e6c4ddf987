"""The reminders part's floor: the cheapest per-cart workflow that sends one e-mail at a
due time.

``BenchMailFloor`` sleeps until its due time (a durable timer), runs one activity that
hands a small prebuilt message to the SMTP relay (the product's sender,
``activities.smtp.send_message``, one connection per message) and completes. No checks,
no ledger, no template, no read model, no search attributes. Any design with one workflow
per cart and a durable timer per reminder pays at least this, on the same server, worker
process, relay and machine: the reminders part measures it in the same run, on the same
worker, before the carts (``mail_floor_phase``), so the carts' figures can be read
against it (``reminders.floor_emails_per_s``, ``reminders.floor_lateness_p99_s``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy

MAIL_FLOOR_WORKFLOW_NAME = "BenchMailFloor"
MAIL_FLOOR_ACTIVITY = "bench_floor_send"
FLOOR_DOMAIN = "floor.example.com"


@dataclass
class MailFloorInput:
    key: str
    #: when the e-mail is due (``time.time()``)
    due: float


@workflow.defn(name=MAIL_FLOOR_WORKFLOW_NAME)
class BenchMailFloor:
    @workflow.run
    async def run(self, job: MailFloorInput) -> None:
        wait = job.due - workflow.now().timestamp()
        if wait > 0:
            await workflow.sleep(wait)
        await workflow.execute_activity(
            MAIL_FLOOR_ACTIVITY,
            job.key,
            start_to_close_timeout=timedelta(seconds=60),
            # as the product's send: retried, but not forever
            schedule_to_close_timeout=timedelta(minutes=5),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200)),
        )


def floor_message(key: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"shop@{FLOOR_DOMAIN}"
    message["To"] = f"{key}@{FLOOR_DOMAIN}"
    message["Subject"] = "You left something in your cart"
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = f"<{key}@{FLOOR_DOMAIN}>"
    message.set_content("Your cart is waiting.\n")
    return message


def mail_floor_activities() -> list[Any]:
    """The floor's activity, bound to the worker's SMTP relay (``Settings``)."""
    from activities.settings import get_settings
    from activities.smtp import SmtpConfig, send_message

    config = SmtpConfig.from_settings(get_settings())

    @activity.defn(name=MAIL_FLOOR_ACTIVITY)
    async def send_floor_mail(key: str) -> None:
        await send_message(config, floor_message(key))

    return [send_floor_mail]


async def start_floor(
    client: Client, task_queue: str, keys: list[str], dues: list[float], concurrency: int
) -> tuple[float, dict[str, int]]:
    """Start one ``BenchMailFloor`` per key, ``concurrency`` at a time; the seconds it
    took and the errors by type."""
    errors: dict[str, int] = {}
    jobs = iter(zip(keys, dues, strict=True))
    started = time.perf_counter()

    async def starter() -> None:
        for key, due in jobs:
            for _attempt in range(3):
                try:
                    await client.start_workflow(
                        MAIL_FLOOR_WORKFLOW_NAME,
                        MailFloorInput(key=key, due=due),
                        id=f"mailfloor:{key}",
                        task_queue=task_queue,
                    )
                    break
                except Exception as error:  # counted, retried
                    name = type(error).__name__
                    errors[name] = errors.get(name, 0) + 1

    await asyncio.gather(*(starter() for _ in range(concurrency)))
    return time.perf_counter() - started, errors
