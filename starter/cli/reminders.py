"""``cartkeeper reminders``: reminder e-mails of a shop's campaign (``preview``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from starter.cli.campaigns import run_campaigns
from starter.cli.common import CONTEXT_SETTINGS, echo, json_option, shop_option, shop_or_default
from starter.cli.root import cli
from starter.errors import EXIT_USAGE, Failure

if TYPE_CHECKING:
    from activities.settings import Settings
    from starter.campaigns import CampaignClient, ReminderPreview


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
