"""Every operation of the storefront's OpenAPI document, walked in the order a cart takes
them: each refuses a call without a valid key (401) and changes nothing, and each write
honours ``Idempotency-Key`` (the second call is the first's answer, replayed). A new
operation fails here until it is added to ``WAY``."""

from __future__ import annotations

from typing import Any

from tests.conftest import new_id
from tests.test_web_storefront import Api, api, auth, refused, storefront_operations, view
from workflows.codes import CartState

__all__ = ["api"]  # the fixture

#: the storefront's operations in the order a cart takes them; each is called with the
#: first example of its OpenAPI document (``BODIES`` where that would not suit a test)
WAY = [
    ("PUT", "/api/v1/carts/{cart_id}/lines"),
    ("POST", "/api/v1/carts/{cart_id}/customer"),
    ("POST", "/api/v1/carts/{cart_id}/visits"),
    ("POST", "/api/v1/carts/{cart_id}/checkout"),
    ("POST", "/api/v1/carts/{cart_id}/payments"),
    ("POST", "/api/v1/carts/{cart_id}/order"),
    ("POST", "/api/v1/coupons/validate"),
    ("GET", "/api/v1/carts/{cart_id}"),
]
#: the example waits 10 s for a result no gateway sends here
BODIES = {"/api/v1/carts/{cart_id}/order": {"timeout_seconds": 0.2}}


def first_example(operation: dict[str, Any]) -> Any:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return None
    examples = content.get("examples") or {}
    assert examples, f"{operation['summary']}: no example in the OpenAPI document"
    return next(iter(examples.values()))["value"]


async def test_every_route_needs_a_key_and_replays_an_idempotent_write(api: Api) -> None:
    """Each operation of the OpenAPI document's storefront (a new one fails here until
    it is added to ``WAY``): without a key 401 and the cart unchanged; with an
    ``Idempotency-Key`` a write answered twice alike, the second a replay that changes
    nothing."""
    operations = storefront_operations((await api.http.get("/openapi.json")).json())
    assert set(operations) == set(WAY), "add the new operation to WAY"
    shop, cart = new_id("shop"), new_id()
    key = await api.key(shop)

    async def version() -> int | None:
        got = await api.http.get(f"/api/v1/carts/{cart}", headers=auth(key))
        return got.json()["version"] if got.status_code == 200 else None

    for method, path in WAY:
        url = path.format(cart_id=cart)
        body = BODIES.get(path, first_example(operations[(method, path)]))
        before = await version()
        for headers in ({}, auth("ck_nope"), {"X-Api-Key": "not-a-key"}):
            response = await api.http.request(method, url, json=body, headers=headers)
            refused(response, 401, "unauthenticated")
        assert await version() == before, (method, path, "a refused call changed the cart")
        if method == "GET":
            assert view(await api.http.get(url, headers=auth(key)))["version"] == before
            continue
        keyed = auth(key, **{"Idempotency-Key": f"way-{path.rsplit('/', 1)[-1]}"})
        first = await api.http.request(method, url, json=body, headers=keyed)
        assert first.status_code == 200, (method, path, first.text)
        assert "Idempotent-Replayed" not in first.headers
        after = await version()
        again = await api.http.request(method, url, json=body, headers=keyed)
        assert again.status_code == first.status_code, (method, path, again.text)
        assert again.headers.get("Idempotent-Replayed") == "true", (method, path)
        assert again.json() == first.json(), (method, path)
        assert await version() == after, (method, path, "the replay changed the cart")
    assert view(await api.http.get(f"/api/v1/carts/{cart}", headers=auth(key)))["state"] == (
        CartState.PAYMENT_PENDING.value
    )
