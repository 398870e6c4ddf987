"""``cartkeeper stats``: recovery statistics of the reminder campaigns."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import click

from starter.cli.common import CONTEXT_SETTINGS, echo, load_settings, read_model, run
from starter.cli.root import cli
from starter.errors import EXIT_USAGE, Failure

if TYPE_CHECKING:
    from activities.stats import Figures, RecoveryStats


@cli.group(context_settings=CONTEXT_SETTINGS)
def stats() -> None:
    """Statistics from the read model (no Temporal needed)."""


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        message = f"{option}: {value!r} is not a date YYYY-MM-DD"
        raise Failure("invalid_input", message, EXIT_USAGE) from None


def money(amounts: dict[str, int]) -> str:
    """Amounts per currency, e.g. ``50.00 EUR, 30.00 CHF`` (``-`` for none)."""
    from starter.output import format_money

    if not amounts:
        return "-"
    return ", ".join(format_money(amount, currency) for currency, amount in sorted(amounts.items()))


def _skips(figures: Figures) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in sorted(figures.skipped_by_reason.items()))


def render(result: RecoveryStats) -> str:
    shop = result.shop_id or "every shop"
    last = (result.end - timedelta(days=1)).date()
    lines = [f"Recovery {result.start.date()} .. {last} ({shop})", ""]
    header = (
        f"{'REMINDER':18} {'VAR':3} {'SENT':>5} {'CARTS':>5} {'CUST':>5} {'SKIP':>5}"
        f" {'CLICK':>5} {'ORDER':>5} {'PAID':>5}  REVENUE"
    )
    lines.append(header)
    rows: list[tuple[str, str, Figures]] = [
        (item.reminder_id, item.variant or "", item) for item in result.reminders
    ]
    rows.append(("total", "", result.total))
    for name, variant, f in rows:
        lines.append(
            f"{name[:18]:18} {variant:3} {f.emails_sent:>5} {f.carts_sent:>5}"
            f" {f.customers_sent:>5} {f.skipped:>5} {f.carts_clicked:>5} {f.orders:>5}"
            f" {f.paid_orders:>5}  {money(f.revenue)}"
        )
    lines.append("")
    lines.append("Skipped, by reason:")
    for name, variant, f in rows:
        if f.skipped:
            label = f"{name} {variant}".strip()
            lines.append(f"  {label}: {_skips(f)}")
    if not any(f.skipped for _n, _v, f in rows):
        lines.append("  none")
    lines.append("")
    lines.append("Recovered orders by month:")
    for month in result.months:
        lines.append(
            f"  {month.month} {month.currency}: {month.orders} order(s),"
            f" {money({month.currency: month.revenue})}"
        )
    if not result.months:
        lines.append("  none")
    rate = result.recovery_rate
    lines.append("")
    lines.append(
        "Recovery rate: "
        + (f"{rate:.1%} of carts sent a reminder" if rate is not None else "- (nothing sent)")
    )
    lines.append("(an order counts as recovered only when it came through a recovery link)")
    return "\n".join(lines)


@stats.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--from", "start", metavar="YYYY-MM-DD", help="First day (UTC). Default: 30 days ago."
)
@click.option("--to", "end", metavar="YYYY-MM-DD", help="Last day, included (UTC). Default: today.")
@click.option("--shop", metavar="SHOP", help="One shop (default: every shop).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def recovery(start: str | None, end: str | None, shop: str | None, as_json: bool) -> None:
    """Reminders sent and skipped (by reason), clicks, recovered orders and revenue, per
    reminder and variant and in total, over a date range. An order counts as recovered
    only when the customer came back through a recovery link.

    \b
    Example:
      cartkeeper stats recovery --from 2026-11-01 --to 2026-11-30 --shop demo
    """
    from activities.stats import recovery_stats
    from starter.output import dumps

    settings = load_settings()
    today = datetime.now(UTC).date()
    last = _day(end, "--to") or today
    first = _day(start, "--from") or last - timedelta(days=29)
    if first > last:
        raise Failure("invalid_input", "--from is after --to", EXIT_USAGE)
    begin = datetime(first.year, first.month, first.day, tzinfo=UTC)
    stop = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)

    async def main() -> int:
        engine, sessions = read_model(settings)
        try:
            result = await recovery_stats(sessions, begin, stop, shop)
        finally:
            await engine.dispose()
        echo(dumps(result.as_json()) if as_json else render(result))
        return 0

    run(click.get_current_context(), main)
