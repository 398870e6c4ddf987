"""The reminder part of ``make run``'s demo: abandoned carts get their e-mail.

If the demo shop has no campaign yet, it gets one with short delays (the first reminder 1
minute after abandonment, with a 10 % coupon; the second after 2 minutes). Four
customers with an address abandon their carts within seconds:

- one follows the first reminder's recovery link (the web endpoint records the click,
  the cart comes back with its coupon) and pays: a recovered order;
- one unsubscribes in one click (the mail client's ``List-Unsubscribe-Post``): the second
  reminder is skipped ``unsubscribed``;
- one lives where it is night now: the first reminder waits for the morning, and since the
  second would be due by then, it is skipped ``quiet_hours``;
- one gets both reminders.

The customers act on the messages the local mail catcher received, through the links in
them, as a mail client would. At the end the demo prints the recovery statistics.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import httpx
from temporalio.client import Client

from activities.campaign_checks import (
    CampaignConfig,
    CouponOffer,
    ReminderDefinition,
    ReminderVariant,
)
from activities.settings import Settings
from starter.client import CartkeeperClient
from starter.mailbox import Mailbox, body
from workflows.contract import (
    Cart,
    CartLine,
    CartPolicy,
    CartState,
    CustomerInfo,
    PaymentMethod,
    PaymentStatus,
)

Out = Callable[[str], None]

#: the demo campaign's reminders (the shortest delay a campaign allows is one minute)
FIRST, SECOND = "demo-first", "demo-second"
#: zones to pick the customers' from, by the local hour now (day: about noon, night:
#: about 2 a.m.)
ZONES = (
    "Pacific/Honolulu",
    "America/Anchorage",
    "America/Los_Angeles",
    "America/Denver",
    "America/Chicago",
    "America/New_York",
    "America/Sao_Paulo",
    "Atlantic/Azores",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Athens",
    "Europe/Moscow",
    "Asia/Dubai",
    "Asia/Karachi",
    "Asia/Dhaka",
    "Asia/Bangkok",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Brisbane",
    "Pacific/Noumea",
    "Pacific/Auckland",
)
TEA = CartLine("tea-sencha", "Japanese sencha, 80 g", 2, 1290)
LINK = re.compile(r"https?://[^\s<>\"]+/r/[A-Za-z0-9._\-]+")


def demo_campaign(shop_id: str, shop_name: str = "Demo Tea & Coffee") -> CampaignConfig:
    """Two reminders a minute apart, quiet hours 21:00-08:00 in the customer's zone."""
    first = ReminderDefinition(
        reminder_id=FIRST,
        position=1,
        name="We saved your cart (demo)",
        delay_seconds=60,
        automatic=True,
        a=_variant("You left something in your cart", CouponOffer("percent", 10, 7)),
    )
    second = ReminderDefinition(
        reminder_id=SECOND,
        position=2,
        name="Still thinking? (demo)",
        delay_seconds=120,
        automatic=True,
        a=_variant("Your cart is still waiting", None),
    )
    return CampaignConfig(
        shop_id=shop_id,
        shop_name=shop_name,
        sender="shop@demo.example.com",
        restore_url="https://demo.example.com/cart/{cart_id}?coupon={coupon}",
        reminders=(first, second),
    )


def _variant(subject: str, coupon: CouponOffer | None) -> ReminderVariant:
    return ReminderVariant(subject=subject, template="reminder", coupon=coupon)


def zone_at(local_hour: int, now: datetime) -> str:
    """The zone of ``ZONES`` whose local hour now is closest to ``local_hour``."""

    def distance(name: str) -> int:
        hour = now.astimezone(ZoneInfo(name)).hour
        return min((hour - local_hour) % 24, (local_hour - hour) % 24)

    return min(ZONES, key=distance)


@dataclass
class DemoCustomer:
    role: str
    cart_id: str
    customer: CustomerInfo
    done: bool = False
    notes: list[str] = field(default_factory=list)


async def reminder_demo(
    client: Client,
    settings: Settings,
    *,
    mailbox: Mailbox | None,
    abandon_seconds: int = 10,
    out: Out = print,
) -> bool:
    """Run the reminder demo; ``True`` when every step happened."""
    from activities.campaigns import create_campaign, load_campaign
    from activities.db import make_engine, make_session_factory
    from activities.stats import recovery_stats
    from starter.cli.stats import render

    shop = settings.default_shop
    engine = make_engine(settings.resolved_database_url())
    sessions = make_session_factory(engine)
    started = datetime.now(UTC)
    try:
        created = await create_campaign(sessions, demo_campaign(shop), started, "demo")
        campaign = await load_campaign(sessions, shop)
        if created is None and (campaign is None or campaign.reminder(FIRST) is None):
            out(f"reminders demo: shop {shop!r} has its own campaign; the demo leaves it alone")
            return False
        if created is not None:
            out(
                f"reminders demo: gave shop {shop!r} a demo campaign (reminders after 1 and 2"
                " minutes; `cartkeeper campaigns show` to see it)"
            )
        carts = CartkeeperClient(
            client,
            task_queue=settings.task_queue,
            policy_for=lambda _shop: CartPolicy(
                abandon_after_seconds=abandon_seconds, projection_interval_seconds=0.5
            ),
        )
        customers = _customers(started)
        for person in customers:
            await carts.update_cart(shop, person.cart_id, [TEA], "EUR")
            await carts.identify_customer(shop, person.cart_id, person.customer)
        out(
            "reminders demo: 4 customers with an address abandon their carts in"
            f" {abandon_seconds}s; reminders arrive in the mail catcher from about"
            f" {abandon_seconds + 60}s (`cartkeeper mail list`)"
        )
        if mailbox is None:
            out("reminders demo: no local mail catcher, so no customer clicks or unsubscribes")
        ok = await _play(carts, shop, customers, mailbox, out)
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        stats = await recovery_stats(sessions, today, today + timedelta(days=1), shop)
        out("\n" + render(stats) + "\n")
        return ok
    finally:
        await engine.dispose()


def _customers(now: datetime) -> list[DemoCustomer]:
    stamp = f"{int(time.time()) % 100000:05d}"
    day, night = zone_at(12, now), zone_at(2, now)
    people = (
        ("clicks", "Anna Schmidt", "anna", "de-DE", day),
        ("unsubscribes", "Luca Rossi", "luca", "it-IT", day),
        ("night", "Kai Nakamura", "kai", "en-US", night),
        ("both", "Emma Johnson", "emma", "en-US", day),
    )
    return [
        DemoCustomer(
            role=role,
            cart_id=f"mail-{stamp}-{role}",
            customer=CustomerInfo(
                email=f"{local}.{stamp}@example.com",
                name=name,
                locale=locale,
                time_zone=zone,
                marketing_consent=True,
            ),
        )
        for role, name, local, locale, zone in people
    ]


async def _play(
    carts: CartkeeperClient,
    shop: str,
    customers: list[DemoCustomer],
    mailbox: Mailbox | None,
    out: Out,
) -> bool:
    """Act on the messages as they arrive, until every cart is where its story ends."""
    deadline = time.monotonic() + 300
    settled = False
    async with httpx.AsyncClient(timeout=10) as http:
        while not settled and time.monotonic() < deadline:
            await asyncio.sleep(2)
            settled = True
            for person in customers:
                cart = await carts.get_cart(shop, person.cart_id)
                message = _message_to(mailbox, person.customer.email)
                if message is not None and not person.done:
                    if person.role == "clicks":
                        person.done = await _click(http, carts, shop, person, message, out)
                    elif person.role == "unsubscribes":
                        person.done = await _unsubscribe(http, person, message, out)
                settled &= _ended(person.role, cart)
    for person in customers:
        cart = await carts.get_cart(shop, person.cart_id)
        steps = ", ".join(
            f"{s.reminder_id} {s.status}"
            + (f" ({s.reason})" if s.reason else "")
            + (f" (moved by quiet hours to {s.due_at:%H:%M} UTC)" if s.deferrals else "")
            for s in cart.reminders
        )
        out(f"  {person.role:13} {person.cart_id}: {cart.state}; {steps}")
    return settled


def _ended(role: str, cart: Cart) -> bool:
    """Whether the cart is where its customer's story ends."""
    steps = {s.reminder_id: s for s in cart.reminders}
    first, second = steps.get(FIRST), steps.get(SECOND)
    if first is None or second is None:
        return False
    done = ("sent", "skipped")
    if role == "night":  # the first skipped, the second waits for the morning
        return str(first.status) == "skipped" and second.deferrals > 0
    if role == "clicks":
        return cart.state is CartState.ORDERED and str(second.status) in done
    return str(first.status) in done and str(second.status) in done


def _message_to(mailbox: Mailbox | None, email: str) -> EmailMessage | None:
    if mailbox is None:
        return None
    for stored in mailbox.messages():
        if email in stored.envelope_to:
            return mailbox.message(stored.id)
    return None


async def _click(
    http: httpx.AsyncClient,
    carts: CartkeeperClient,
    shop: str,
    person: DemoCustomer,
    message: EmailMessage,
    out: Out,
) -> bool:
    """Follow the message's recovery link (as the customer's browser would), then pay."""
    found = LINK.search(body(message, "plain") or "")
    if found is None:
        return False
    # the browser opens the link (a page that changes nothing), and its script posts it
    page = await http.get(found.group(0))
    if 'method="post"' not in page.text:
        return False
    answer = await http.post(found.group(0), follow_redirects=False)
    where = answer.headers.get("location", "-")
    out(f"  {person.customer.name} follows the recovery link: {answer.status_code} -> {where}")
    for _ in range(20):  # the click reaches the cart as a signal
        cart = await carts.get_cart(shop, person.cart_id)
        if cart.recovered_via is not None:
            break
        await asyncio.sleep(0.5)
    attempt = f"pay-{person.cart_id}"
    await carts.start_payment(
        shop,
        person.cart_id,
        attempt_id=attempt,
        method=PaymentMethod.ONLINE,
        gateway="stripe",
        amount=cart.total,
        currency="EUR",
    )
    await carts.report_payment_result(
        shop,
        person.cart_id,
        attempt_id=attempt,
        status=PaymentStatus.SUCCEEDED,
        amount=cart.total,
        currency="EUR",
        card_last4="4242",
    )
    return True


async def _unsubscribe(
    http: httpx.AsyncClient, person: DemoCustomer, message: EmailMessage, out: Out
) -> bool:
    """The mail client's one-click unsubscribe (RFC 8058)."""
    header = str(message.get("List-Unsubscribe", "")).strip("<> ")
    if not header:
        return False
    answer = await http.post(header, data={"List-Unsubscribe": "One-Click"})
    out(f"  {person.customer.name} unsubscribes in one click: {answer.status_code}")
    return True
