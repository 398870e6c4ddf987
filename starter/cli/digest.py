"""``cartkeeper digest``: the daily digest e-mail to a shop's admins (schedule, send now)."""

from __future__ import annotations

from datetime import date, datetime

import click

from starter.cli.common import (
    CONTEXT_SETTINGS,
    Options,
    connect_carts,
    echo,
    load_settings,
    read_model,
    run,
    shop_option,
    shop_or_default,
)
from starter.cli.root import cli
from starter.errors import EXIT_REFUSED, EXIT_UNAVAILABLE, Failure


@cli.group(context_settings=CONTEXT_SETTINGS)
def digest() -> None:
    """The daily digest: one e-mail a day to a shop's admins.

    It lists the locked carts (locked longest first), the payments that need an admin,
    the payments on deleted or expired carts, and the orders the reminders recovered the
    day before, with the revenue per currency. It goes to the shop's admins
    ($CARTKEEPER_SHOP_ADMINS, e.g. '{"demo": ["admin@example.com"]}') at
    $CARTKEEPER_DIGEST_LOCAL_TIME (08:00) in the shop's time zone
    ($CARTKEEPER_SHOP_TIME_ZONES, else UTC), once per shop and day, from a Temporal
    Schedule per shop (digest:SHOP) that the worker creates at start. A digest with
    nothing in it is not sent.
    """


@digest.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--shop",
    metavar="SHOP",
    help="Only this shop (default: every shop with admins in $CARTKEEPER_SHOP_ADMINS).",
)
@click.pass_obj
def schedule(options: Options, shop: str | None) -> None:
    """Create (or update) the digest schedules in Temporal, as the worker does at start.

    One schedule per shop, digest:SHOP, starting the DailyDigest workflow every day at
    $CARTKEEPER_DIGEST_LOCAL_TIME in the shop's time zone on the task queue
    $CARTKEEPER_TASK_QUEUE. Running it again changes nothing unless the settings changed.
    """
    from temporalio.service import RPCError

    from starter.output import safe
    from starter.schedules import digest_shops, ensure_digest_schedule

    settings = load_settings()
    shops = [shop] if shop else digest_shops(settings)

    async def main() -> int:
        if not shops:
            echo("no shop has admin addresses ($CARTKEEPER_SHOP_ADMINS): no digest to schedule")
            return 0
        client = (await connect_carts(options, settings)).client
        for shop_id in shops:
            try:
                outcome = await ensure_digest_schedule(client, settings, shop_id)
            except RPCError as error:
                raise Failure(
                    "temporal_unavailable",
                    f"the digest schedule of shop {safe(shop_id)} could not be made:"
                    f" {safe(error.message)}",
                    EXIT_UNAVAILABLE,
                ) from None
            note = "" if settings.admins_for(shop_id) else " (the shop has no admins: no e-mail)"
            echo(
                safe(
                    f"{outcome.schedule_id}: {outcome.action}, {outcome.schedule.describe()}"
                    f" on task queue {outcome.schedule.task_queue!r}{note}"
                )
            )
        return 0

    run(click.get_current_context(), main)


@digest.command(context_settings=CONTEXT_SETTINGS)
@shop_option
@click.option(
    "--day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    metavar="YYYY-MM-DD",
    help="The digest's date (default: today in the shop's time zone); its recovered"
    " orders are those of the day before.",
)
@click.option(
    "--dry-run", is_flag=True, help="Print the digest (headers and text) instead of sending it."
)
def send(shop: str | None, day: datetime | None, dry_run: bool) -> None:
    """Build the shop's digest now and send it (or print it with --dry-run).

    It is sent once per shop and day: if the day's digest went out already (by its
    schedule or by this command), nothing is sent again; if another process is sending
    it right now, nothing is sent either (error digest_sending, exit 1). Needs the read model
    ($DATABASE_URL) and, to send, the SMTP relay ($CARTKEEPER_SMTP_*).
    """
    from activities.digest import DigestActivities
    from activities.smtp import MailError
    from starter.output import safe
    from workflows.alerts_contract import (
        ALERT_ALREADY_SENT,
        ALERT_FAILED,
        ALERT_NOTHING_TO_REPORT,
        ALERT_SENDING,
    )

    settings = load_settings()
    shop_id = shop_or_default(shop, settings)
    admins = settings.admins_for(shop_id)
    if not admins and not dry_run:
        raise Failure(
            "no_admins",
            f"shop {safe(shop_id)} has no admin addresses: set CARTKEEPER_SHOP_ADMINS, e.g."
            f' \'{{"{safe(shop_id)}": ["admin@example.com"]}}\' (--dry-run prints the digest)',
            EXIT_REFUSED,
        )

    async def main() -> int:
        engine, sessions = read_model(settings)
        try:
            activities = DigestActivities(sessions, settings)
            the_day: date = day.date() if day is not None else activities.today(shop_id)
            if dry_run:
                built = await activities.build(shop_id, the_day)
                rendered = activities.render(built)
                echo(f"From: {safe(settings.alert_sender)}")
                echo(f"To: {safe(', '.join(admins)) if admins else '(no admins configured)'}")
                echo(f"Subject: {safe(rendered.subject)}")
                echo()
                for line in rendered.text.splitlines():
                    echo(safe(line))
                if built.empty:
                    echo()
                    echo("(nothing to report: this digest would not be sent)")
                return 0
            try:
                result = await activities.send(shop_id, the_day)
            except MailError as error:
                raise Failure(
                    error.code,
                    safe(error.message),
                    EXIT_UNAVAILABLE if error.transient else EXIT_REFUSED,
                ) from None
        finally:
            await engine.dispose()
        what = f"the digest of shop {safe(shop_id)} for {the_day}"
        if result.status == ALERT_ALREADY_SENT:
            when = result.sent_at.isoformat() if result.sent_at else "earlier"
            echo(f"{what} was already sent at {when} ({result.message_id}): not sent again")
        elif result.status == ALERT_NOTHING_TO_REPORT:
            echo(f"{what}: nothing to report, not sent ({result.detail})")
        elif result.status == ALERT_FAILED:
            raise Failure("send_failed", safe(result.detail or "not sent"), EXIT_REFUSED)
        elif result.status == ALERT_SENDING:
            raise Failure(
                "digest_sending",
                f"{what} is being sent by another process right now: not sent again"
                " (run this again shortly to see it sent)",
                EXIT_REFUSED,
            )
        else:
            extra = f"; {result.detail}" if result.detail else ""
            echo(f"{what} sent to {result.recipients} admin(s) as {result.message_id}{extra}")
        return 0

    run(click.get_current_context(), main)
