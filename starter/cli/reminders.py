"""``cartkeeper reminders``: reminder e-mails of a shop's campaign (``preview``, and
``send`` by hand to chosen carts, with a dry run)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from starter.cli.campaigns import run_campaigns
from starter.cli.common import (
    CONTEXT_SETTINGS,
    WORKER_WAIT,
    Options,
    connect_carts,
    echo,
    ensure_worker,
    json_option,
    load_settings,
    read_model,
    run,
    shop_option,
    shop_or_default,
)
from starter.cli.root import cli
from starter.errors import EXIT_USAGE, Failure
from workflows.codes import CartState

if TYPE_CHECKING:
    from activities.settings import Settings
    from starter.campaigns import CampaignClient, ReminderPreview
    from starter.reminder_sending import CartResult, CartSelection, SendReport

STATES = [str(state) for state in CartState]


@cli.group(context_settings=CONTEXT_SETTINGS)
def reminders() -> None:
    """Reminder e-mails of a shop's campaign (`cartkeeper campaigns` edits the campaign)."""


@reminders.command(context_settings=CONTEXT_SETTINGS)
@click.argument("reminder_id", metavar="REMINDER")
@click.option("--cart", "cart_id", required=True, metavar="CART", help="The cart to remind.")
@shop_option
@click.option(
    "--variant",
    type=click.Choice(["a", "b"]),
    default="a",
    show_default=True,
    help="Which variant of the reminder (b: only for reminders that have one).",
)
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Also write the HTML part to FILE (and print its path); open it in a browser.",
)
@json_option
def preview(
    reminder_id: str,
    cart_id: str,
    shop: str | None,
    variant: str,
    html_file: Path | None,
    as_json: bool,
) -> None:
    """Show what REMINDER would say to a cart now: From, To, subject and text.

    The cart is read from the read model (its last projection). Nothing is sent or
    recorded and no coupon is issued: a coupon shows a sample code. The links are signed
    as in a real e-mail, under $CARTKEEPER_PUBLIC_URL (default http://127.0.0.1:8080).
    Refused (exit 1) for a cart without an e-mail address (no_address), an unknown or
    removed reminder (reminder_not_found) or a variant the reminder lacks (no_variant_b);
    an unknown cart exits 3.

    \b
    Examples:
      cartkeeper reminders preview coupon-24h --cart sim-8wt08t-004
      cartkeeper reminders preview coupon-24h --cart sim-8wt08t-004 --variant b --html b.html
    """

    async def work(client: CampaignClient, settings: Settings) -> int:
        from activities.links import Links

        try:
            links = Links.from_settings(settings)
        except ValueError as error:
            raise Failure("invalid_settings", str(error), EXIT_USAGE) from None
        shown = await client.preview(
            shop_or_default(shop, settings),
            reminder_id,
            cart_id,
            links=links,
            base_url=settings.public_url,
            variant="b" if variant == "b" else "a",
        )
        written = _write_html(shown.html, html_file) if html_file is not None else None
        _print_preview(shown, written, as_json)
        return 0

    run_campaigns(work)


def _write_html(html: str, target: Path) -> Path:
    try:
        target.write_text(html, encoding="utf-8")
    except OSError as error:
        raise Failure("cannot_write", f"{target}: {error.strerror or error}") from None
    return target.resolve()


def _print_preview(shown: ReminderPreview, html_path: Path | None, as_json: bool) -> None:
    from starter.campaigns import PREVIEW_COUPON_CODE
    from starter.output import dumps, jsonable, safe

    if as_json:
        data = jsonable(shown)
        data.pop("html")
        data["html_file"] = str(html_path) if html_path is not None else None
        echo(dumps(data))
        return
    coupon = shown.coupon
    if coupon is None:
        offer = "no coupon"
    else:
        value = f"{coupon.amount} %" if coupon.kind == "percent" else f"{coupon.amount} minor units"
        offer = (
            f"coupon {value} for {coupon.expiry_days} days (sample code {PREVIEW_COUPON_CODE};"
            " none is issued)"
        )
    echo(f"From: {safe(shown.sender)}")
    echo(f"To: {safe(shown.recipient)}")
    echo(f"Subject: {safe(shown.subject)}")
    echo(
        safe(
            f'(reminder {shown.reminder_id} "{shown.reminder_name}", variant {shown.variant},'
            f" template {shown.template}, locale {shown.locale}; cart {shown.cart_id} is"
            f" {shown.cart_state}; {offer})"
        )
    )
    echo()
    for line in shown.text.splitlines():
        echo(safe(line))
    if html_path is not None:
        echo()
        echo(f"HTML: {safe(str(html_path))}")


# --------------------------------------------------------------------------- send


def _since(value: str | None) -> datetime | None:
    """``--since``: an ISO 8601 time (a date is its midnight; no offset: UTC)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        message = f"{value!r} is not an ISO 8601 time (e.g. 2026-11-22T10:00:00Z)"
        raise click.BadParameter(message, param_hint="--since") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


@reminders.command(context_settings=CONTEXT_SETTINGS)
@click.argument("reminder_id", metavar="REMINDER")
@click.option(
    "--cart",
    "cart_ids",
    multiple=True,
    metavar="CART",
    help="A cart to remind (repeat for several). Not with --state/--since.",
)
@click.option(
    "--state",
    type=click.Choice(STATES),
    help="With --since: the carts in this state (default: abandoned).",
)
@click.option(
    "--since",
    metavar="ISO-TIME",
    help="The carts abandoned at or after this time (e.g. 2026-11-22T10:00:00Z; no offset: UTC).",
)
@shop_option
@click.option(
    "--admin",
    default=lambda: os.environ.get("USER") or "admin",
    show_default="$USER",
    metavar="NAME",
    help="Who sends (kept in each cart's journal).",
)
@click.option("--note", metavar="TEXT", help="Why (kept in each cart's journal).")
@click.option("--dry-run", is_flag=True, help="Only say who would get it, and why not the others.")
@json_option
@click.pass_obj
def send(
    options: Options,
    reminder_id: str,
    cart_ids: tuple[str, ...],
    state: str | None,
    since: str | None,
    shop: str | None,
    admin: str,
    note: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Send REMINDER of the shop's campaign now to the chosen carts, once per cart.

    The carts are read from the read model: those named by --cart, or every cart in
    --state (default abandoned) abandoned since --since. Each is checked as the cart's
    workflow and the sending would check it (abandoned, an address, not sent yet; the
    campaign has the reminder, consent, not unsubscribed or bounced, no newer cart or
    order of the customer, the cap, quiet hours in the customer's time zone: a manual
    reminder then is skipped, not moved). --dry-run prints who would get it and why the
    others would not, and sends nothing. Otherwise the carts that pass are sent the request
    (a few at a time); for each the output says whether it was sent (or skipped, or is
    still being sent) or what the workflow refused.

    Exit 0 when every chosen cart was sent or gets nothing for a reason (shown), 1 when a
    cart's workflow refused the request (the read model lagged it), 3 when a --cart is not
    in the read model, 4 when Temporal or a worker did not answer.

    \b
    Examples:
      cartkeeper reminders send winback --since 2026-11-22 --dry-run
      cartkeeper reminders send winback --cart sim-8wt08t-004 --cart sim-8wt08t-007
    """
    from starter.reminder_sending import (
        PROBLEMS,
        CartSelection,
        check_carts,
        exit_status,
        send_checked,
    )

    if cart_ids and (state is not None or since is not None):
        raise click.UsageError("give either --cart CART ... or --since TIME [--state S], not both")
    if not cart_ids and since is None:
        raise click.UsageError("give --cart CART ... or --since TIME [--state S]")
    settings = load_settings()
    shop_id = shop_or_default(shop, settings)
    selection = CartSelection(
        shop_id,
        state=CartState(state) if state else CartState.ABANDONED,
        abandoned_since=_since(since),
        cart_ids=cart_ids or None,
    )

    async def main() -> int:
        engine, sessions = read_model(settings)
        try:
            report = await check_carts(sessions, selection, reminder_id, admin=admin, note=note)
        finally:
            await engine.dispose()
        if not dry_run and any(result.status == "would_send" for result in report.results):
            client = await connect_carts(options, settings)
            await ensure_worker(client)
            report = await send_checked(
                client,
                report,
                admin=admin,
                note=note,
                outcome_wait=WORKER_WAIT,
                request_timeout=WORKER_WAIT + 15,
            )
        elif not dry_run:
            from dataclasses import replace

            report = replace(report, dry_run=False)
        _print_report(report, selection, as_json)
        code, decided = exit_status(report.results)
        if decided is not None:
            from starter.output import safe

            problems = report.with_status(*PROBLEMS)
            more = f" (and {len(problems) - 1} more: see above)" if len(problems) > 1 else ""
            line = f"error: {decided.reason}: cart {decided.cart_id}: {decided.detail}{more}"
            click.echo(safe(line), err=True)
        return code

    run(click.get_current_context(), main)


#: how each status reads in the text output
_STATUS_WORDS = {
    "would_send": "would send",
    "sent": "sent",
    "skipped": "skipped",
    "sending": "sending",
    "refused": "refused",
    "failed": "failed",
    "not_found": "not found",
    "not_sent": "not sent",
}


def _why(result: CartResult) -> str:
    """The last column: why not, or what the e-mail has."""
    if result.reason is not None:
        return f"{result.reason}: {result.detail}" if result.detail else result.reason
    parts = []
    if result.variant:
        parts.append(f"variant {result.variant}")
    if result.coupon_code:
        parts.append(f"coupon {result.coupon_code}")
    elif result.offer:
        parts.append(f"coupon {result.offer}")
    if result.message_id:
        parts.append(result.message_id)
    if result.status == "sending" and result.detail:
        parts.append(result.detail)
    return ", ".join(parts)


def _print_report(report: SendReport, selection: CartSelection, as_json: bool) -> None:
    from starter.output import dumps, format_time, jsonable, safe, table

    if as_json:
        data = jsonable(report)
        data["counts"] = report.counts()
        data["reasons"] = report.reasons()
        echo(dumps(data))
        return
    counts = report.counts()
    total = len(report.results)
    head = f"reminder {report.reminder_id}, shop {report.shop_id}"
    if report.dry_run:
        would = counts.get("would_send", 0)
        summary = f"{head} (dry run, nothing sent): {would} of {total} carts would get it"
    else:
        done = ", ".join(
            f"{counts[status]} {_STATUS_WORDS[status]}"
            for status in _STATUS_WORDS
            if status in counts
        )
        summary = f"{head}: {done or 'no carts'}"
    echo(safe(summary))
    if not report.results:
        since = selection.abandoned_since
        after = f" abandoned since {since.isoformat()}" if since is not None else ""
        echo(f"no carts selected ({selection.state or 'any state'}{after})")
        return
    rows = [
        [
            result.cart_id,
            str(result.state) if result.state else "-",
            result.email or "-",
            format_time(result.abandoned_at),
            _STATUS_WORDS[result.status],
            _why(result),
        ]
        for result in report.results
    ]
    echo(table(["CART", "STATE", "CUSTOMER", "ABANDONED (UTC)", "OUTCOME", "WHY"], rows))
    reasons = report.reasons()
    if reasons:
        text = ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items()))
        echo(safe(f"by reason: {text}"))
