"""The console's form for a not finished order's status, on the real dev server: a locked
cart's page offers the shop's statuses (never the hidden N); posting one makes the cart an
order with that status and a number, the admin's name in its status history, and the
answer shown on the page; a refusal is shown with its code; viewers neither see the form
nor can post it; a cart that is no not finished order has no such form."""

from __future__ import annotations

import re

import httpx
from temporalio.testing import WorkflowEnvironment

from tests import test_web_admin_carts as carts_tests
from tests.admin_fixtures import browser, page_token, sign_in
from tests.conftest import new_id
from tests.test_web_admin_carts import (
    FAST_LOCK,
    Console,
    act,
    client_with,
    locked_cart,
    section,
)
from tests.test_workflow_dev import LINES
from workflows.contract import CartState

#: the console on the dev server with an admin and a viewer, and the admin signed in
console = carts_tests.console
signed_in = carts_tests.signed_in


async def test_a_not_finished_order_gets_its_status_from_the_carts_page(
    console: Console, signed_in: httpx.AsyncClient, dev_env: WorkflowEnvironment
) -> None:
    carts = client_with(dev_env, FAST_LOCK)
    shop = console.shop
    cart_id = await locked_cart(carts, shop)
    path = f"/admin/carts/{shop}/{cart_id}"
    page = (await signed_in.get(path)).text
    form = section(page, "actions")
    assert f'action="{path}/status"' in form and "Set order status" in form
    letters = re.findall(
        r'<option value="([A-Z])"[^>]*>\1 ', form[form.index('id="order-status"') :]
    )
    assert "O" in letters and "P" in letters and "N" not in letters

    kind, message = await act(signed_in, path, "status", status="N")
    assert kind == "error" and message.startswith("status_hidden: "), message
    kind, message = await act(signed_in, path, "status", status="P")
    assert kind == "error" and message.startswith("payment_required: "), message
    assert (await carts.get_cart(shop, cart_id)).state is CartState.LOCKED

    kind, message = await act(signed_in, path, "status", status="O", note="bank transfer promised")
    assert kind == "ok", message
    found = re.match(r"Status set: order (\d+) is O ", message)
    assert found is not None, message
    cart = await carts.get_cart(shop, cart_id)
    assert cart.state is CartState.ORDERED and cart.order is not None
    assert cart.order.number == int(found.group(1)) and cart.order.status == "O"
    assert [e.by for e in cart.order.statuses if e.letter == "O"] == [f"admin:{console.admin}"]
    after = (await signed_in.get(path)).text
    assert "Set order status" not in after and f"Order {cart.order.number}" in after


async def test_viewers_and_carts_that_are_no_not_finished_order_get_no_status_form(
    console: Console, signed_in: httpx.AsyncClient, dev_env: WorkflowEnvironment
) -> None:
    carts = client_with(dev_env, FAST_LOCK)
    shop = console.shop
    locked = await locked_cart(carts, shop)
    path = f"/admin/carts/{shop}/{locked}"
    async with browser(console.app) as viewer:
        assert (await sign_in(viewer, console.viewer)).status_code == 303
        page = await viewer.get(path)
        assert page.status_code == 200 and "Set order status" not in page.text
        token = await page_token(viewer, path)
        refused = await viewer.post(f"{path}/status", data={"csrf_token": token, "status": "O"})
        assert refused.status_code == 403
    for data in ({"status": "O"}, {"status": "O", "csrf_token": "f" * 64}):
        assert (await signed_in.post(f"{path}/status", data=data)).status_code == 403
    assert (await carts.get_cart(shop, locked)).state is CartState.LOCKED

    active = new_id()
    await carts.update_cart(shop, active, LINES, "EUR")
    shopping = f"/admin/carts/{shop}/{active}"
    assert "Set order status" not in (await signed_in.get(shopping)).text
    kind, message = await act(signed_in, shopping, "status", status="O")
    assert kind == "error" and message.startswith("not_an_order: "), message
    assert (await carts.get_cart(shop, active)).state is CartState.ACTIVE
