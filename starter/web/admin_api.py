"""The admin JSON API: every admin action and list of the console, for scripts and
tools, under ``/api/v1/admin`` (``install(app)`` adds it to the web app).

Authentication is HTTP Basic with an admin user's name and password, under the
console's sign-in rate limit; viewers may read (GET), every other method needs the role
admin (``admin_api_auth``). Each action is done as the calling user, so carts' journals
and the settings record who acted. Bodies are JSON objects; every refusal is
``{"error": {"code", "message"}}`` with the status its code carries, never a 500 for bad
input; every write honours ``Idempotency-Key`` (``admin_api_calls``).

The routes, by concern:

- ``admin_api_carts``: carts (list, one, confirm, unlock, delete, resolve, remind, set
  the status of a cart's order) and the journals of a cart and of a customer;
- ``admin_api_orders``: orders (list, counts, one; status, delivery, lines, payments and
  refunds, notes);
- ``admin_api_settings``: order statuses, shipping methods, stock levels, order
  numbering;
- ``admin_api_shop``: the reminder campaign, storefront API keys, recovery statistics;
- ``admin_api_reminders``: one reminder of the campaign (set, remove, preview for a cart);
- ``admin_api_sending``: a reminder sent by hand to many carts, with a dry run;
- ``admin_api_coupons``: a coupon by its code;
- ``admin_api_operations``: the shop's cart policy, its daily digest sent by hand, the
  mail catcher's outbox;
- ``admin_api_schedules``: the shop's daily-digest schedule in Temporal (read, make);
- ``admin_api_users``: the console's and this API's users (admins only, reads too).
"""

from __future__ import annotations

from fastapi import FastAPI

from starter.web import (
    admin_api_carts,
    admin_api_coupons,
    admin_api_operations,
    admin_api_orders,
    admin_api_reminders,
    admin_api_schedules,
    admin_api_sending,
    admin_api_settings,
    admin_api_shop,
    admin_api_users,
)
from starter.web.admin_api_auth import STATE_ATTRIBUTE, VerifiedCredentials

ROUTERS = (
    admin_api_carts.router,
    admin_api_orders.router,
    admin_api_settings.router,
    admin_api_shop.router,
    admin_api_reminders.router,
    admin_api_sending.router,
    admin_api_coupons.router,
    admin_api_operations.router,
    admin_api_schedules.router,
    admin_api_users.router,
)


def install(app: FastAPI) -> None:
    """Add the admin API to ``app``, with its cache of verified credentials."""
    setattr(app.state, STATE_ATTRIBUTE, VerifiedCredentials())
    for router in ROUTERS:
        app.include_router(router)
