"""``cartkeeper campaigns``: a shop's reminder campaign in the read-model database (show,
settings, reminders, load/dump as JSON, the default campaign)."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import IO, TYPE_CHECKING, Any

import click

from starter.cli.campaign_text import (
    parse_cap,
    parse_coupon,
    parse_duration,
    parse_quiet_hours,
    parsed,
    render_campaign,
)
from starter.cli.common import (
    CONTEXT_SETTINGS,
    echo,
    json_option,
    load_settings,
    read_model,
    run,
    shop_option,
    shop_or_default,
)
from starter.cli.root import cli
from starter.errors import EXIT_NOT_FOUND, EXIT_REFUSED, Failure

if TYPE_CHECKING:
    from activities.campaigns import CampaignConfig, CampaignRefused, CouponKind, CouponOffer
    from activities.settings import Settings
    from starter.campaigns import CampaignClient

#: refusals that name something that does not exist, with the exit code of "no such cart"
_NOT_FOUND = {"cart_not_found"}


def refusal(refused: CampaignRefused) -> Failure:
    """A campaign refusal as the CLI reports it: ``error: <code>: <message>``, exit 1
    (``cart_not_found``: 3, like `carts show`)."""
    code = EXIT_NOT_FOUND if refused.code in _NOT_FOUND else EXIT_REFUSED
    return Failure(refused.code, refused.message, code)


def run_campaigns(work: Callable[[CampaignClient, Settings], Awaitable[int | None]]) -> None:
    """Run ``work`` with a campaign client on the read model; exit with its code."""
    from activities.campaigns import CampaignRefused
    from starter.campaigns import CampaignClient

    settings = load_settings()

    async def main() -> int:
        engine, sessions = read_model(settings)
        try:
            return await work(CampaignClient(sessions), settings) or 0
        except CampaignRefused as refused:
            raise refusal(refused) from None
        finally:
            await engine.dispose()

    run(click.get_current_context(), main)


def edit_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--shop``, ``--admin`` and ``--json``: the options of every command that edits."""
    func = json_option(func)
    func = click.option(
        "--admin",
        default=lambda: os.environ.get("USER") or "admin",
        show_default="$USER",
        metavar="NAME",
        help="Who edits (kept as the campaign's last editor).",
    )(func)
    return shop_option(func)


# --------------------------------------------------------------------------- output


def _print_campaign(config: CampaignConfig, as_json: bool, line: str) -> None:
    from starter.campaign_json import campaign_json
    from starter.output import dumps, safe

    if as_json:
        echo(dumps(campaign_json(config, include_removed=True)))
    else:
        echo(safe(line))


# --------------------------------------------------------------------------- commands


@cli.group(context_settings=CONTEXT_SETTINGS)
def campaigns() -> None:
    """A shop's reminder campaign: settings and reminders, kept in the read model ($DATABASE_URL).

    Every edit is checked (a refusal prints `error: <code>: <message>` and exits 1) and
    bumps the campaign's version. Carts read the campaign when they plan their reminders
    and when they send one: a cart already in a sequence keeps the reminders and times it
    planned; what a reminder says is read when it is sent; a removed reminder is skipped.

    \b
    Examples:
      cartkeeper campaigns init                       # the default 3-reminder campaign
      cartkeeper campaigns show
      cartkeeper campaigns set --sender hello@shop.example --quiet-hours 22:00-07:30
      cartkeeper campaigns reminder-set nudge --name Nudge --position 3 --delay 30m \\
          --subject "Still thinking?" --template reminder
      cartkeeper campaigns dump > campaign.json && cartkeeper campaigns load campaign.json
    """


@campaigns.command(context_settings=CONTEXT_SETTINGS)
@shop_option
@json_option
def show(shop: str | None, as_json: bool) -> None:
    """Show the shop's campaign: settings and reminders (removed ones too, flagged).

    \b
    Examples:
      cartkeeper campaigns show
      cartkeeper campaigns show --shop acme --json
    """
    from starter.campaign_json import campaign_json
    from starter.output import dumps

    async def work(client: CampaignClient, settings: Settings) -> int:
        config = await client.show(shop_or_default(shop, settings))
        echo(
            dumps(campaign_json(config, include_removed=True))
            if as_json
            else render_campaign(config)
        )
        return 0

    run_campaigns(work)


@campaigns.command("set", context_settings=CONTEXT_SETTINGS)
@edit_options
@click.option("--enable/--disable", "enabled", default=None, help="Send reminders, or not.")
@click.option("--shop-name", metavar="TEXT", help="The shop's name in the e-mail.")
@click.option("--sender", metavar="ADDRESS", help="The From address (hello@shop.example).")
@click.option(
    "--restore-url",
    metavar="URL",
    help="Where a recovery link takes the customer: an absolute http(s) URL that may hold"
    " {cart_id} and {coupon}.",
)
@click.option(
    "--consent-required/--no-consent-required",
    "requires_consent",
    default=None,
    help="Remind only customers who gave marketing consent.",
)
@click.option(
    "--restart-rule",
    type=click.Choice(["continue", "once"]),
    help="A cart abandoned again: continue (gets the reminders not sent yet) or once (none).",
)
@click.option(
    "--quiet-hours",
    metavar="HH:MM-HH:MM",
    callback=parsed(parse_quiet_hours),
    help="No reminder in these hours of the customer's time: 21:00-08:00, or none.",
)
@click.option(
    "--time-zone",
    metavar="ZONE",
    help="The time zone of customers who gave none (Europe/Berlin, UTC).",
)
@click.option(
    "--cap",
    metavar="N/Dd",
    callback=parsed(parse_cap),
    help="At most COUNT reminders per customer (e-mail address) in DAYS days: 3/7d.",
)
def set_command(
    shop: str | None,
    enabled: bool | None,
    shop_name: str | None,
    sender: str | None,
    restore_url: str | None,
    requires_consent: bool | None,
    restart_rule: str | None,
    quiet_hours: tuple[int, int] | None,
    time_zone: str | None,
    cap: tuple[int, int] | None,
    admin: str,
    as_json: bool,
) -> None:
    """Change the shop-level settings given; the others stay as they are.

    A shop without a campaign gets one (default settings, no reminders).

    \b
    Examples:
      cartkeeper campaigns set --disable
      cartkeeper campaigns set --sender hello@shop.example --shop-name "Tea & Mugs"
      cartkeeper campaigns set --restore-url "https://shop.example/cart/{cart_id}?c={coupon}"
      cartkeeper campaigns set --quiet-hours 22:00-07:30 --time-zone Europe/Berlin --cap 2/7d
    """
    changes: dict[str, Any] = {
        "enabled": enabled,
        "shop_name": shop_name,
        "sender": sender,
        "restore_url": restore_url,
        "requires_consent": requires_consent,
        "restart_rule": restart_rule,
        "default_time_zone": time_zone,
    }
    if quiet_hours is not None:
        changes["quiet_start_minute"], changes["quiet_end_minute"] = quiet_hours
    if cap is not None:
        changes["cap_count"], changes["cap_period_days"] = cap
    if all(value is None for value in changes.values()):
        raise click.UsageError("nothing to set: give at least one setting (see --help)")

    async def work(client: CampaignClient, settings: Settings) -> int:
        shop_id = shop_or_default(shop, settings)
        config = await client.set_settings(shop_id, by=admin, **changes)
        _print_campaign(
            config, as_json, f"shop {shop_id}: settings saved (version {config.version})"
        )
        return 0

    run_campaigns(work)


def _offer(value: tuple[CouponKind, int] | None, days: int) -> CouponOffer | None:
    from activities.campaigns import CouponOffer

    return None if value is None else CouponOffer(*value, expiry_days=days)


@campaigns.command("reminder-set", context_settings=CONTEXT_SETTINGS)
@click.argument("reminder_id", metavar="ID")
@edit_options
@click.option("--name", required=True, metavar="TEXT", help="The reminder's name (admin only).")
@click.option(
    "--position",
    required=True,
    type=int,
    metavar="N",
    help="Its place in the sequence (0, 1, ...), unique among the campaign's reminders.",
)
@click.option(
    "--delay",
    required=True,
    metavar="DURATION",
    callback=parsed(parse_duration),
    help="How long after the cart was abandoned: 90m, 1h, 24h, 3d or seconds (60 s to 365 d).",
)
@click.option("--manual", is_flag=True, help="Only sent by an admin, never scheduled.")
@click.option("--subject", required=True, metavar="TEXT", help="The e-mail's subject.")
@click.option(
    "--template",
    required=True,
    metavar="NAME",
    help="The template (activities/mail_templates/<locale>/NAME.*; 'reminder').",
)
@click.option(
    "--coupon",
    metavar="COUPON",
    callback=parsed(parse_coupon),
    help="A coupon: 10% (percent) or 500 (a fixed amount in MINOR units of the cart's"
    " currency: 500 is 5.00 EUR or 500 JPY); none for no coupon (the default).",
)
@click.option(
    "--coupon-days",
    type=int,
    metavar="DAYS",
    help="How long the coupon is valid (1-365 days; default 7).",
)
@click.option("--b-subject", metavar="TEXT", help="Variant b's subject (default: --subject).")
@click.option("--b-template", metavar="NAME", help="Variant b's template (default: --template).")
@click.option(
    "--b-coupon",
    metavar="COUPON",
    # in a list: `--b-coupon none` (no coupon) is not the option left out (a's coupon)
    callback=parsed(lambda text: [parse_coupon(text)]),
    help="Variant b's coupon, as --coupon (default: --coupon; none for no coupon).",
)
@click.option(
    "--b-coupon-days",
    type=int,
    metavar="DAYS",
    help="How long variant b's coupon is valid (default: --coupon-days, else 7).",
)
def reminder_set(
    reminder_id: str,
    shop: str | None,
    name: str,
    position: int,
    delay: int,
    manual: bool,
    subject: str,
    template: str,
    coupon: tuple[CouponKind, int] | None,
    coupon_days: int | None,
    b_subject: str | None,
    b_template: str | None,
    b_coupon: list[tuple[CouponKind, int] | None] | None,
    b_coupon_days: int | None,
    admin: str,
    as_json: bool,
) -> None:
    """Add reminder ID, or replace it entirely (a removed one comes back).

    A variant b is made when any --b-* option is given: carts are split between a and
    b, each option of b defaulting to a's. Fixed coupon amounts are in minor units of
    the cart's currency (the campaign does not know the currency).

    \b
    Examples:
      cartkeeper campaigns reminder-set saved-cart --name "We saved your cart" \\
          --position 0 --delay 1h --subject "We saved your cart" --template reminder
      cartkeeper campaigns reminder-set coupon-24h --name "A coupon" --position 1 \\
          --delay 24h --subject "10 % off your cart" --template reminder \\
          --coupon 10% --coupon-days 7 --b-subject "5.00 off your cart" --b-coupon 500
      cartkeeper campaigns reminder-set call-me --name "Manual" --position 9 --delay 2d \\
          --manual --subject "Can we help?" --template reminder
    """
    from activities.campaigns import ReminderDefinition, ReminderVariant

    if coupon_days is not None and coupon is None:
        raise click.UsageError("--coupon-days needs --coupon")
    b_offer = coupon if b_coupon is None else b_coupon[0]
    if b_coupon_days is not None and b_offer is None:
        raise click.UsageError("--b-coupon-days needs a coupon for variant b")
    days = coupon_days if coupon_days is not None else 7
    b_days = b_coupon_days if b_coupon_days is not None else days
    a = ReminderVariant(subject=subject, template=template, coupon=_offer(coupon, days))
    b = None
    if any(value is not None for value in (b_subject, b_template, b_coupon, b_coupon_days)):
        b = ReminderVariant(
            subject=b_subject if b_subject is not None else subject,
            template=b_template if b_template is not None else template,
            coupon=_offer(b_offer, b_days),
        )
    reminder = ReminderDefinition(
        reminder_id=reminder_id,
        position=position,
        name=name,
        delay_seconds=delay,
        automatic=not manual,
        a=a,
        b=b,
    )

    async def work(client: CampaignClient, settings: Settings) -> int:
        shop_id = shop_or_default(shop, settings)
        config = await client.set_reminder(shop_id, reminder, by=admin)
        _print_campaign(
            config,
            as_json,
            f"shop {shop_id}: reminder {reminder_id} saved (version {config.version})",
        )
        return 0

    run_campaigns(work)


@campaigns.command("reminder-remove", context_settings=CONTEXT_SETTINGS)
@click.argument("reminder_id", metavar="ID")
@edit_options
def reminder_remove(reminder_id: str, shop: str | None, admin: str, as_json: bool) -> None:
    """Remove reminder ID from the campaign.

    It is kept, flagged removed, so statistics and the carts that planned it still name
    it; those carts skip it. `reminder-set ID ...` brings it back.

    \b
    Example:
      cartkeeper campaigns reminder-remove last-chance
    """

    async def work(client: CampaignClient, settings: Settings) -> int:
        shop_id = shop_or_default(shop, settings)
        config = await client.remove_reminder(shop_id, reminder_id, by=admin)
        _print_campaign(
            config,
            as_json,
            f"shop {shop_id}: reminder {reminder_id} removed (version {config.version})",
        )
        return 0

    run_campaigns(work)


@campaigns.command(context_settings=CONTEXT_SETTINGS)
@click.argument("file", type=click.File("r", encoding="utf-8"))
@edit_options
def load(file: IO[str], shop: str | None, admin: str, as_json: bool) -> None:
    """Replace the shop's whole campaign with a JSON document (FILE, or - for stdin).

    The document is what `campaigns dump` prints: every setting and the reminders. It is
    written in one edit (one new version). THE SHOP'S REMINDERS THAT THE DOCUMENT DOES NOT
    LIST ARE REMOVED (kept, flagged removed). The shop is --shop, else the document's
    "shop_id", else the default shop; the document's "version" is ignored.

    \b
    Examples:
      cartkeeper campaigns dump > campaign.json     # edit it, then:
      cartkeeper campaigns load campaign.json
      cartkeeper campaigns dump --shop demo | cartkeeper campaigns load - --shop acme
    """
    import json

    async def work(client: CampaignClient, settings: Settings) -> int:
        try:
            document = json.load(file)
        except json.JSONDecodeError as error:
            raise Failure("invalid_document", f"{file.name} is not JSON ({error})") from None
        except UnicodeDecodeError as error:
            raise Failure("invalid_document", f"{file.name} is not UTF-8 ({error})") from None
        named = document.get("shop_id") if isinstance(document, dict) else None
        shop_id = shop_or_default(shop or (named if isinstance(named, str) else None), settings)
        before = await client.get(shop_id)
        was_active = {item.reminder_id for item in before.active_reminders} if before else set()
        config = await client.load(shop_id, document, by=admin)
        now_active = {item.reminder_id for item in config.active_reminders}
        removed = sorted(was_active - now_active)
        line = (
            f"shop {shop_id}: campaign loaded (version {config.version}),"
            f" {len(now_active)} reminder{'s' if len(now_active) != 1 else ''}"
        )
        if removed:
            line += f"; removed: {', '.join(removed)}"
        _print_campaign(config, as_json, line)
        return 0

    run_campaigns(work)


@campaigns.command(context_settings=CONTEXT_SETTINGS)
@shop_option
def dump(shop: str | None) -> None:
    """Print the shop's campaign as a JSON document for `campaigns load`.

    Active reminders only; fixed coupon amounts in minor units of the cart's currency.

    \b
    Example:
      cartkeeper campaigns dump --shop demo > campaign.json
    """
    from starter.output import dumps

    async def work(client: CampaignClient, settings: Settings) -> int:
        echo(dumps(await client.dump(shop_or_default(shop, settings))))
        return 0

    run_campaigns(work)


@campaigns.command(context_settings=CONTEXT_SETTINGS)
@edit_options
def init(shop: str | None, admin: str, as_json: bool) -> None:
    """Give the shop the default campaign, if it has none (else change nothing).

    Three automatic reminders with the 'reminder' template: after 1 hour "We saved your
    cart"; after 24 hours a 10 % coupon valid 7 days (variant b: a fixed coupon of 500
    minor units, 5.00 EUR); after 72 hours "Last chance". Running it again changes nothing.

    \b
    Example:
      cartkeeper campaigns init --shop acme && cartkeeper campaigns show --shop acme
    """
    from starter.output import format_duration

    async def work(client: CampaignClient, settings: Settings) -> int:
        shop_id = shop_or_default(shop, settings)
        config, created = await client.init(shop_id, by=admin)
        if created:
            steps = ", ".join(
                f"{item.reminder_id} after {format_duration(item.delay_seconds)}"
                for item in config.active_reminders
            )
            line = f"shop {shop_id}: default campaign written (version {config.version}): {steps}"
        else:
            line = (
                f"shop {shop_id} has a campaign already (version {config.version}): nothing changed"
            )
        _print_campaign(config, as_json, line)
        return 0

    run_campaigns(work)
