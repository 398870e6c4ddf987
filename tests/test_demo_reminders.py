"""The reminder demo's parts (``starter.demo_reminders``). The whole demo needs real
minutes (a campaign's shortest delay is one): it runs in ``make run``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from activities.campaign_checks import check_campaign
from starter.demo_reminders import FIRST, SECOND, ZONES, _ended, demo_campaign, zone_at
from workflows.codes import ReminderStatus, SkipReason
from workflows.contract import Cart, CartState, ReminderStep

NOW = datetime(2026, 11, 30, 11, 30, tzinfo=UTC)


def test_the_demo_campaign_is_a_valid_campaign() -> None:
    campaign = demo_campaign("demo")
    check_campaign(campaign)
    assert [r.delay_seconds for r in campaign.reminders] == [60, 120]
    assert campaign.reminders[0].a.coupon is not None


@pytest.mark.parametrize("hours", range(0, 24, 3))
def test_the_customers_zones_are_at_day_and_at_night(hours: int) -> None:
    now = NOW + timedelta(hours=hours)
    day, night = zone_at(12, now), zone_at(2, now)
    assert 9 <= now.astimezone(ZoneInfo(day)).hour <= 15
    assert now.astimezone(ZoneInfo(night)).hour <= 5 or now.astimezone(ZoneInfo(night)).hour == 23
    assert {day, night} <= set(ZONES)


def cart(state: CartState, first: ReminderStatus, second: ReminderStatus, moved: int = 0) -> Cart:
    steps = [
        ReminderStep(reminder_id=FIRST, position=1, name="1", due_at=NOW, status=first),
        ReminderStep(
            reminder_id=SECOND, position=2, name="2", due_at=NOW, status=second, deferrals=moved
        ),
    ]
    if first is ReminderStatus.SKIPPED:
        steps[0].reason = SkipReason.QUIET_HOURS
    return Cart(shop_id="demo", cart_id="c", state=state, reminders=steps)


def test_each_story_ends_where_it_should() -> None:
    sent, skipped, planned = ReminderStatus.SENT, ReminderStatus.SKIPPED, ReminderStatus.PLANNED
    assert _ended("both", cart(CartState.ABANDONED, sent, sent))
    assert not _ended("both", cart(CartState.ABANDONED, sent, planned))
    assert _ended("clicks", cart(CartState.ORDERED, sent, skipped))
    assert not _ended("clicks", cart(CartState.ACTIVE, sent, skipped))
    assert _ended("night", cart(CartState.ABANDONED, skipped, planned, moved=1))
    assert not _ended("night", cart(CartState.ABANDONED, skipped, planned))
    assert not _ended("both", Cart(shop_id="demo", cart_id="c"))
