"""Reminder campaigns: the checks of ``activities.campaigns`` (every refusal code), the
store on SQLite and PostgreSQL (versions, removed reminders kept, partial settings, whole
campaigns) and the Python client of ``starter.campaigns`` (default campaign, JSON load and
dump, preview of a reminder for a cart of the read model)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from activities import campaign_checks
from activities.campaigns import (
    CampaignConfig,
    CampaignRefused,
    CouponOffer,
    ReminderDefinition,
    ReminderVariant,
    check_campaign,
    check_reminder,
    check_settings,
    load_campaign,
    remove_reminder,
    save_campaign,
    save_reminder,
    update_campaign,
)
from activities.db import write_session
from activities.links import Links
from activities.mail_render import TEMPLATES, MailContent, RenderedMail
from activities.models import CartRecord
from activities.read_model import cart_values
from starter.campaigns import (
    PREVIEW_COUPON_CODE,
    CampaignClient,
    campaign_from_json,
    campaign_json,
    default_campaign,
)
from tests.conftest_db import ScratchDatabase, scratch_database
from workflows.contract import Cart, CartLine, CartState, CustomerInfo
from workflows.reminders import MAX_REMINDERS

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
SHOP = "shop-1"
KEY = "k" * 40


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def client(db: ScratchDatabase) -> CampaignClient:
    return CampaignClient(db.session_factory, clock=Clock())


def reminder(reminder_id: str = "r1", position: int = 0, **changes: Any) -> ReminderDefinition:
    base = ReminderDefinition(
        reminder_id=reminder_id,
        position=position,
        name="We saved your cart",
        delay_seconds=3600,
        automatic=True,
        a=ReminderVariant(subject="Your cart", template="reminder"),
    )
    return dataclasses.replace(base, **changes)


def variant(**changes: Any) -> ReminderVariant:
    return dataclasses.replace(ReminderVariant(subject="Your cart", template="reminder"), **changes)


def refused_code(call: Any, *args: Any) -> str:
    with pytest.raises(CampaignRefused) as refused:
        call(*args)
    assert refused.value.message and str(refused.value).startswith(refused.value.code + ": ")
    return refused.value.code


# --------------------------------------------------------------------------- the checks


REMINDER_REFUSALS = [
    ({"reminder_id": ""}, "invalid_reminder_id"),
    ({"reminder_id": "two words"}, "invalid_reminder_id"),
    ({"reminder_id": "-dash-first"}, "invalid_reminder_id"),
    ({"reminder_id": "x" * 65}, "invalid_reminder_id"),
    ({"name": ""}, "invalid_name"),
    ({"name": "   "}, "invalid_name"),
    ({"name": "x" * 201}, "invalid_name"),
    ({"name": "two\nlines"}, "invalid_name"),
    ({"position": -1}, "invalid_position"),
    ({"position": 10_000}, "invalid_position"),
    ({"position": True}, "invalid_position"),
    ({"delay_seconds": 59}, "invalid_delay"),
    ({"delay_seconds": 365 * 86_400 + 1}, "invalid_delay"),
    ({"delay_seconds": 3600.0}, "invalid_delay"),
    ({"automatic": 1}, "invalid_automatic"),
    ({"a": variant(subject="")}, "invalid_subject"),
    ({"a": variant(subject="Hi\r\nBcc: everyone@example.com")}, "invalid_subject"),
    ({"a": variant(subject="x" * 301)}, "invalid_subject"),
    ({"a": variant(template="nope")}, "unknown_template"),
    ({"a": variant(template="../en/reminder")}, "unknown_template"),
    ({"a": variant(template="")}, "unknown_template"),
    ({"a": variant(coupon=CouponOffer("gift", 10, 7))}, "invalid_coupon"),  # type: ignore[arg-type]
    ({"a": variant(coupon=CouponOffer("percent", 0, 7))}, "invalid_coupon"),
    ({"a": variant(coupon=CouponOffer("percent", 101, 7))}, "invalid_coupon"),
    ({"a": variant(coupon=CouponOffer("fixed", 0, 7))}, "invalid_coupon"),
    ({"a": variant(coupon=CouponOffer("fixed", -500, 7))}, "invalid_coupon"),
    ({"a": variant(coupon=CouponOffer("percent", 10, 0))}, "invalid_coupon_expiry"),
    ({"a": variant(coupon=CouponOffer("fixed", 500, 366))}, "invalid_coupon_expiry"),
    ({"b": variant(subject=" ")}, "invalid_subject"),
    ({"b": variant(subject="B", template="nope")}, "unknown_template"),
    ({"b": variant(coupon=CouponOffer("percent", 150, 7))}, "invalid_coupon"),
    ({"b": variant(coupon=CouponOffer("fixed", 500, 400))}, "invalid_coupon_expiry"),
    ({"b": variant()}, "invalid_variant"),  # the same as a
]


@pytest.mark.parametrize(("changes", "code"), REMINDER_REFUSALS)
def test_a_reminder_is_refused_with_a_code(changes: dict[str, Any], code: str) -> None:
    assert refused_code(check_reminder, reminder(**changes)) == code


def test_a_reminder_at_the_limits_is_accepted() -> None:
    check_reminder(
        reminder(
            reminder_id="a.b_c-9",
            position=0,
            name="x" * 200,
            delay_seconds=60,
            a=variant(subject="x" * 300, coupon=CouponOffer("percent", 100, 365)),
            b=variant(coupon=CouponOffer("fixed", 1, 1)),
        )
    )
    check_reminder(reminder(delay_seconds=365 * 86_400, automatic=False))


SETTING_REFUSALS = [
    ({"shop_id": "two words"}, "invalid_shop_id"),
    ({"enabled": "yes"}, "invalid_setting"),
    ({"requires_consent": 0}, "invalid_setting"),
    ({"shop_name": ""}, "invalid_shop_name"),
    ({"shop_name": "x" * 201}, "invalid_shop_name"),
    ({"shop_name": "Shop\r\n"}, "invalid_shop_name"),
    ({"sender": "not-an-address"}, "invalid_sender"),
    ({"sender": "Shop <shop@example.com>"}, "invalid_sender"),
    ({"sender": "shop@localhost"}, "invalid_sender"),
    ({"restore_url": "ftp://shop.example/{cart_id}"}, "invalid_restore_url"),
    ({"restore_url": "/cart/{cart_id}"}, "invalid_restore_url"),
    ({"restore_url": "https:///cart/{cart_id}"}, "invalid_restore_url"),
    ({"restore_url": "https://shop.example/{cart}"}, "invalid_restore_url"),
    ({"restore_url": "https://shop.example/{cart_id!r}"}, "invalid_restore_url"),
    ({"restore_url": "https://shop.example/{coupon:>10}"}, "invalid_restore_url"),
    ({"restore_url": "https://shop.example/{0}"}, "invalid_restore_url"),
    ({"restore_url": "https://shop.example/{cart_id"}, "invalid_restore_url"),
    ({"restore_url": "https://shop.example/a b"}, "invalid_restore_url"),
    ({"restore_url": "https://shop.example:port/"}, "invalid_restore_url"),
    ({"restart_rule": "always"}, "invalid_restart_rule"),
    ({"quiet_start_minute": 1440}, "invalid_quiet_hours"),
    ({"quiet_end_minute": -1}, "invalid_quiet_hours"),
    ({"default_time_zone": "Mars/Olympus_Mons"}, "invalid_time_zone"),
    ({"default_time_zone": "../../etc/passwd"}, "invalid_time_zone"),
    ({"default_time_zone": ""}, "invalid_time_zone"),
    ({"cap_count": 0}, "invalid_cap"),
    ({"cap_count": 101}, "invalid_cap"),
    ({"cap_period_days": 0}, "invalid_cap"),
    ({"cap_period_days": 366}, "invalid_cap"),
]


@pytest.mark.parametrize(("changes", "code"), SETTING_REFUSALS)
def test_settings_are_refused_with_a_code(changes: dict[str, Any], code: str) -> None:
    config = dataclasses.replace(CampaignConfig(shop_id=SHOP), **changes)
    assert refused_code(check_settings, config) == code


def test_good_settings_are_accepted() -> None:
    check_settings(CampaignConfig(shop_id=SHOP))  # the defaults
    check_settings(
        CampaignConfig(
            shop_id=SHOP,
            enabled=False,
            sender="hello@shop.example.com",
            restore_url="https://shop.example/c/{cart_id}?coupon={coupon}&x={{literal}}",
            restart_rule="once",
            quiet_start_minute=0,
            quiet_end_minute=1439,
            default_time_zone="Europe/Berlin",
            cap_count=100,
            cap_period_days=365,
        )
    )
    check_settings(CampaignConfig(shop_id=SHOP, restore_url="http://127.0.0.1:8000/cart"))


def test_a_campaign_is_checked_as_a_whole() -> None:
    check_campaign(default_campaign(SHOP))
    same_position = (*default_campaign(SHOP).reminders, reminder("r9", position=1))
    config = CampaignConfig(shop_id=SHOP, reminders=same_position)
    assert refused_code(check_campaign, config) == "duplicate_position"
    twice = CampaignConfig(shop_id=SHOP, reminders=(reminder("r1", 0), reminder("r1", 1)))
    assert refused_code(check_campaign, twice) == "duplicate_reminder"
    many = tuple(reminder(f"r{i}", i) for i in range(MAX_REMINDERS + 1))
    assert refused_code(check_campaign, CampaignConfig(SHOP, reminders=many)) == (
        "too_many_reminders"
    )
    # removed reminders count for neither positions nor the limit
    removed = dataclasses.replace(reminder("old", 0), removed=True)
    check_campaign(CampaignConfig(SHOP, reminders=(*many[:-1], removed)))


def test_a_campaign_renders_each_template_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default campaign's four variants share one template: it is rendered with and
    without a coupon, once each, not for every variant."""
    real = campaign_checks.renderer_for(TEMPLATES)
    rendered: list[str] = []

    class Counting:
        def render(self, name: str, content: MailContent) -> RenderedMail:
            rendered.append(name)
            return real.render(name, content)

    monkeypatch.setattr(campaign_checks, "renderer_for", lambda templates: Counting())
    check_campaign(default_campaign(SHOP))
    assert rendered == ["reminder", "reminder"]


def test_a_template_that_does_not_render_is_refused(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    for suffix, text in (
        ("subject.txt", "Hello"),
        ("txt", "{{ no_such_token }}"),
        ("html", "<p>{{ shop_name }}</p>"),
    ):
        (tmp_path / "en" / f"broken.{suffix}").write_text(text)
    with pytest.raises(CampaignRefused) as refused:
        check_reminder(reminder(a=variant(template="broken")), tmp_path)
    assert refused.value.code == "invalid_template"
    with pytest.raises(CampaignRefused) as missing:
        check_reminder(reminder(), tmp_path)  # no "reminder" in this folder
    assert missing.value.code == "unknown_template"
    assert "broken" in missing.value.message  # names the templates there are


# --------------------------------------------------------------------------- the store


async def test_every_edit_bumps_the_version_and_a_refused_one_changes_nothing(
    db: ScratchDatabase,
) -> None:
    sessions = db.session_factory
    assert await load_campaign(sessions, SHOP) is None
    versions = [
        await save_campaign(sessions, CampaignConfig(shop_id=SHOP, shop_name="Tea"), T0, "ann"),
        await update_campaign(sessions, SHOP, {"cap_count": 2}, T0, "bob"),
        await save_reminder(sessions, SHOP, reminder("r1", 0), T0),
        await save_reminder(sessions, SHOP, reminder("r1", 0, name="Renamed"), T0),
        await save_reminder(sessions, SHOP, reminder("r2", 1), T0),
        await remove_reminder(sessions, SHOP, "r1", T0),
    ]
    assert versions == [1, 2, 3, 4, 5, 6]
    before = await load_campaign(sessions, SHOP)
    refusals = [
        save_reminder(sessions, SHOP, reminder("r3", 1), T0),  # r2 has position 1
        save_reminder(sessions, SHOP, reminder("r3", 2, delay_seconds=10), T0),
        remove_reminder(sessions, SHOP, "r1", T0),  # removed already
        remove_reminder(sessions, SHOP, "nope", T0),
        update_campaign(sessions, SHOP, {"sender": "nope"}, T0),
        update_campaign(sessions, SHOP, {"colour": "red"}, T0),
        save_campaign(sessions, CampaignConfig(shop_id=SHOP, cap_count=0), T0),
        save_campaign(sessions, CampaignConfig(shop_id=SHOP), T0, by="x" * 65),
    ]
    codes = []
    for refusal in refusals:
        with pytest.raises(CampaignRefused) as refused:
            await refusal
        codes.append(refused.value.code)
    assert codes == [
        "duplicate_position",
        "invalid_delay",
        "reminder_not_found",
        "reminder_not_found",
        "invalid_sender",
        "invalid_setting",
        "invalid_cap",
        "invalid_admin",
    ]
    assert await load_campaign(sessions, SHOP) == before


async def test_partial_settings_change_only_what_is_given(db: ScratchDatabase) -> None:
    campaigns = client(db)
    created = await campaigns.set_settings(SHOP, sender="hello@shop.example.com", by="ann")
    assert created.version == 1 and created.sender == "hello@shop.example.com"
    assert dataclasses.replace(created, sender="shop@example.com", version=0) == CampaignConfig(
        shop_id=SHOP
    ), "a new campaign: the defaults and the change"
    changed = await campaigns.set_settings(
        SHOP, enabled=False, quiet_start_minute=22 * 60, cap_count=2, cap_period_days=14
    )
    assert changed == dataclasses.replace(
        created,
        version=2,
        enabled=False,
        quiet_start_minute=22 * 60,
        cap_count=2,
        cap_period_days=14,
    )
    with pytest.raises(ValueError):
        await campaigns.set_settings(SHOP)


async def test_removed_reminders_are_kept_and_flagged(db: ScratchDatabase) -> None:
    campaigns = client(db)
    config, created = await campaigns.init(SHOP, by="ann")
    assert created and config.version == 1
    removed = await campaigns.remove_reminder(SHOP, "coupon-24h")
    kept = removed.reminder("coupon-24h")
    assert kept is not None and kept.removed
    original = config.reminder("coupon-24h")
    assert original is not None and kept == dataclasses.replace(original, removed=True)
    assert [item.reminder_id for item in removed.active_reminders] == ["saved-cart", "last-chance"]
    # its position is free for another reminder; the limit counts active ones only
    await campaigns.set_reminder(SHOP, reminder("new", position=1))
    # it comes back when set again, but not onto a position that is taken
    with pytest.raises(CampaignRefused) as taken:
        await campaigns.set_reminder(SHOP, dataclasses.replace(kept, removed=False))
    assert taken.value.code == "duplicate_position"
    back = await campaigns.set_reminder(SHOP, dataclasses.replace(kept, removed=False, position=5))
    assert back.reminder("coupon-24h") == dataclasses.replace(kept, removed=False, position=5)
    assert back.version == 4, "the refused edit bumped nothing"


async def test_at_most_twenty_active_reminders(db: ScratchDatabase) -> None:
    campaigns = client(db)
    for index in range(MAX_REMINDERS):
        await campaigns.set_reminder(SHOP, reminder(f"r{index}", index))
    with pytest.raises(CampaignRefused) as refused:
        await campaigns.set_reminder(SHOP, reminder("one-more", 99))
    assert refused.value.code == "too_many_reminders"
    replaced = await campaigns.set_reminder(SHOP, reminder("r0", 0, name="Replaced"))
    assert len(replaced.active_reminders) == MAX_REMINDERS
    await campaigns.remove_reminder(SHOP, "r5")
    final = await campaigns.set_reminder(SHOP, reminder("one-more", 99))
    assert len(final.active_reminders) == MAX_REMINDERS and len(final.reminders) == 21


async def test_init_writes_the_default_campaign_once(db: ScratchDatabase) -> None:
    campaigns = client(db)
    first, created = await campaigns.init(SHOP)
    assert created
    assert dataclasses.replace(first, version=0) == default_campaign(SHOP)
    ids = [(item.reminder_id, item.delay_seconds) for item in first.reminders]
    assert ids == [("saved-cart", 3600), ("coupon-24h", 86_400), ("last-chance", 259_200)]
    coupon_day = first.reminders[1]
    assert coupon_day.a.coupon == CouponOffer("percent", 10, 7)
    assert coupon_day.b is not None and coupon_day.b.coupon is not None
    assert coupon_day.b.coupon.kind == "fixed"
    await campaigns.set_settings(SHOP, shop_name="Tea")
    again, created_again = await campaigns.init(SHOP)
    assert not created_again and again.version == 2 and again.shop_name == "Tea"


# --------------------------------------------------------------------------- JSON


async def test_dump_and_load_round_trip(db: ScratchDatabase) -> None:
    campaigns = client(db)
    await campaigns.init(SHOP)
    await campaigns.set_settings(
        SHOP,
        shop_name="Tea & Mugs",
        restore_url="https://shop.example/c/{cart_id}?k={coupon}",
        restart_rule="once",
        default_time_zone="Europe/Berlin",
    )
    await campaigns.set_reminder(SHOP, reminder("manual", 7, automatic=False))
    await campaigns.remove_reminder(SHOP, "last-chance")
    document = await campaigns.dump(SHOP)
    assert json.loads(json.dumps(document)) == document, "plain JSON"
    assert [item["id"] for item in document["reminders"]] == [
        "saved-cart",
        "coupon-24h",
        "manual",
    ], "active reminders only"
    # into another shop, and back: the same document
    copy = await campaigns.load("shop-2", document)
    assert copy.version == 1 and copy.shop_id == "shop-2"
    copied = await campaigns.dump("shop-2")
    assert {**copied, "shop_id": SHOP, "version": document["version"]} == document
    source = await campaigns.get(SHOP)
    assert source is not None
    assert campaign_from_json(SHOP, document) == dataclasses.replace(
        source, version=0, reminders=source.active_reminders
    )
    # `show --json` (removed reminders flagged) loads too and keeps them removed
    full = campaign_json(source, include_removed=True)
    assert [item["removed"] for item in full["reminders"]] == [False, False, True, False]
    reloaded = await campaigns.load(SHOP, full)
    assert reloaded.version == source.version + 1
    assert dataclasses.replace(reloaded, version=source.version) == source


async def test_load_removes_the_reminders_the_document_does_not_list(
    db: ScratchDatabase,
) -> None:
    campaigns = client(db)
    start, _ = await campaigns.init(SHOP)
    document = campaign_json(start)
    document["reminders"] = [
        {**document["reminders"][2], "position": 0, "subject": "Still there?"},
        {
            "id": "new-one",
            "position": 1,
            "name": "New",
            "delay_seconds": 5 * 86_400,
            "subject": "New",
            "template": "reminder",
        },
    ]
    document["cap_count"] = 1
    loaded = await campaigns.load(SHOP, document, by="ann")
    assert loaded.version == start.version + 1, "one edit"
    assert [(item.reminder_id, item.removed) for item in loaded.reminders] == [
        ("last-chance", False),
        ("saved-cart", True),
        ("coupon-24h", True),
        ("new-one", False),
    ]
    new = loaded.reminder("new-one")
    assert new is not None and new.automatic and new.b is None and new.a.coupon is None
    assert loaded.cap_count == 1


@pytest.mark.parametrize(
    ("change", "code", "where"),
    [
        (lambda d: d.pop("sender"), "invalid_document", "missing key(s) sender"),
        (lambda d: d.update(colour="red"), "invalid_document", "unknown key(s) colour"),
        (lambda d: d.update(enabled="yes"), "invalid_document", "enabled: must be a JSON boolean"),
        (
            lambda d: d.update(cap_count=2.5),
            "invalid_document",
            "cap_count: must be a JSON integer",
        ),
        (lambda d: d.update(reminders={}), "invalid_document", "reminders: must be a JSON array"),
        (
            lambda d: d["reminders"][1].update(delay_seconds="1h"),
            "invalid_document",
            "reminders[1].delay_seconds: must be a JSON integer, not text",
        ),
        (
            lambda d: d["reminders"][1]["coupon"].pop("kind"),
            "invalid_document",
            "reminders[1].coupon: missing key(s) kind",
        ),
        (
            lambda d: d["reminders"][1]["b"].update(extra=1),
            "invalid_document",
            "reminders[1].b: unknown key(s) extra",
        ),
        (
            lambda d: d["reminders"][0].update(position=1),
            "duplicate_position",
            "position 1",
        ),
        (
            lambda d: d["reminders"][0].update(id="coupon-24h"),
            "duplicate_reminder",
            "listed twice",
        ),
        (lambda d: d.update(sender="nope"), "invalid_sender", "nope"),
    ],
)
async def test_a_bad_document_is_refused_and_changes_nothing(
    db: ScratchDatabase, change: Any, code: str, where: str
) -> None:
    campaigns = client(db)
    start, _ = await campaigns.init(SHOP)
    document = campaign_json(start)
    change(document)
    with pytest.raises(CampaignRefused) as refused:
        await campaigns.load(SHOP, document)
    assert refused.value.code == code and where in refused.value.message
    assert await campaigns.get(SHOP) == start
    with pytest.raises(CampaignRefused) as not_object:
        await campaigns.load(SHOP, [document])
    assert not_object.value.code == "invalid_document"


# --------------------------------------------------------------------------- preview


def a_cart(cart_id: str, **changes: Any) -> Cart:
    values: dict[str, Any] = {
        "shop_id": SHOP,
        "cart_id": cart_id,
        "state": CartState.ABANDONED,
        "currency": "EUR",
        "lines": [CartLine("mug", "Blue mug", 2, 1200), CartLine("tea", "Earl Grey", 1, 650)],
        "customer": CustomerInfo(email="ann@example.com", name="Ann", locale="de_AT"),
        "created_at": T0 - timedelta(hours=3),
        "updated_at": T0 - timedelta(hours=2),
        "abandoned_at": T0 - timedelta(hours=1),
        "lineage": "run-1",
    }
    values.update(changes)
    return Cart(**values)


async def write_carts(db: ScratchDatabase, *carts: Cart) -> None:
    async with write_session(db.session_factory) as session:
        for cart in carts:
            session.add(CartRecord(**cart_values(cart, T0)))


async def test_preview_renders_a_reminder_for_a_cart_of_the_read_model(
    db: ScratchDatabase,
) -> None:
    campaigns = client(db)
    await campaigns.init(SHOP)
    await campaigns.set_settings(SHOP, shop_name="Tea & Mugs", sender="hello@shop.example.com")
    await write_carts(
        db,
        a_cart("c-1"),
        a_cart("c-guest", customer=None),
        a_cart("c-empty", lines=[], currency=None),
    )
    links = Links(KEY)
    shown = await campaigns.preview(
        SHOP, "coupon-24h", "c-1", links=links, base_url="https://shop.example/"
    )
    assert shown.subject == "10 % off the cart you left"
    assert shown.sender == "Tea & Mugs <hello@shop.example.com>"
    assert shown.recipient == "Ann <ann@example.com>"
    assert shown.locale == "de" and shown.variant == "a" and shown.cart_state == "abandoned"
    assert "Blue mug" in shown.text and "30,50" in shown.text  # the cart's lines and total
    assert PREVIEW_COUPON_CODE in shown.text and "10" in shown.text
    assert "Tea &amp; Mugs" in shown.html and "<style" not in shown.html
    assert shown.recovery_url.startswith("https://shop.example/r/")
    assert shown.unsubscribe_url.startswith("https://shop.example/u/")
    claim = links.read_recovery(shown.recovery_url.rsplit("/", 1)[1])
    assert (claim.shop_id, claim.cart_id, claim.reminder) == (SHOP, "c-1", "coupon-24h")
    assert links.read_unsubscribe(shown.unsubscribe_url.rsplit("/", 1)[1]).email == (
        "ann@example.com"
    )
    assert shown.recovery_url in shown.text
    b = await campaigns.preview(SHOP, "coupon-24h", "c-1", links=links, variant="b")
    assert b.subject == "A discount on the cart you left" and b.variant == "b"
    assert "5,00" in b.text, "500 minor units of the cart's currency"
    assert b.recovery_url.startswith("http://127.0.0.1:8080/r/")
    plain = await campaigns.preview(SHOP, "saved-cart", "c-1", links=links)
    assert plain.coupon is None and PREVIEW_COUPON_CODE not in plain.text
    await campaigns.remove_reminder(SHOP, "last-chance")
    refusals = {
        ("last-chance", "c-1", "a"): "reminder_not_found",  # removed
        ("nope", "c-1", "a"): "reminder_not_found",
        ("saved-cart", "c-1", "b"): "no_variant_b",
        ("saved-cart", "c-nope", "a"): "cart_not_found",
        ("saved-cart", "c-guest", "a"): "no_address",
        ("saved-cart", "c-empty", "a"): "empty_cart",
    }
    for (reminder_id, cart_id, name), code in refusals.items():
        with pytest.raises(CampaignRefused) as refused:
            await campaigns.preview(
                SHOP,
                reminder_id,
                cart_id,
                links=links,
                variant=name,  # type: ignore[arg-type]
            )
        assert refused.value.code == code, (reminder_id, cart_id, name)
    with pytest.raises(CampaignRefused) as no_campaign:
        await campaigns.preview("shop-2", "saved-cart", "c-1", links=links)
    assert no_campaign.value.code == "campaign_not_found"
