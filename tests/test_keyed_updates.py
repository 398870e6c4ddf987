"""What a cart remembers of the updates it applied under an ``Idempotency-Key``
(``workflows.keyed_updates``): plain functions of the cart and a time, no Temporal. The
workflow on the dev server (a continue-as-new, a closed cart brought back):
``tests/test_web_idempotency_retry.py``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from activities.read_model import decode_cart, encode_cart
from workflows import keyed_updates, machine
from workflows.contract import Cart, CustomerVisited
from workflows.keyed_updates import KEPT, RETENTION, applied, key_of, remember
from workflows.state import KeyedUpdate

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
ID = "idem-" + "0123456789abcdef" * 2 + "01234567"  # 45 characters, as the client makes


def test_only_keyed_update_ids_have_a_key() -> None:
    assert key_of(ID) == "0123456789abcdef"
    assert len(key_of(ID) or "") == keyed_updates.KEY_DIGITS
    for other in (None, "", "idem-", "6f1c8e0e-4b1a-4c55-9d7e-2b8f6c1d9a10", "IDEM-abc"):
        assert key_of(other) is None, other
    assert key_of("idem-abc") == "abc"  # sent by hand (the Temporal UI): kept as it is


def test_an_applied_update_is_remembered_until_it_expires() -> None:
    cart = Cart(shop_id="s", cart_id="c")
    assert not applied(cart, "a", T0)
    remember(cart, "a", T0)
    assert cart.keyed_updates == [KeyedUpdate(key="a", at=T0)]
    assert applied(cart, "a", T0 + RETENTION - timedelta(seconds=1))
    assert not applied(cart, "a", T0 + RETENTION), "older than the web's key retention"
    assert not applied(cart, "b", T0)
    # the next one drops what expired
    remember(cart, "b", T0 + RETENTION)
    assert [entry.key for entry in cart.keyed_updates] == ["b"]


def test_at_most_the_latest_are_kept_in_the_order_applied() -> None:
    cart = Cart(shop_id="s", cart_id="c")
    for n in range(KEPT + 10):
        remember(cart, f"k{n:03d}", T0 + timedelta(seconds=n))
    assert len(cart.keyed_updates) == KEPT
    assert [e.key for e in cart.keyed_updates] == [f"k{n:03d}" for n in range(10, KEPT + 10)]
    now = T0 + timedelta(minutes=5)
    assert not applied(cart, "k009", now) and applied(cart, "k010", now)
    # the same key again moves to the end, once
    remember(cart, "k010", now)
    assert [e.key for e in cart.keyed_updates].count("k010") == 1
    assert cart.keyed_updates[-1] == KeyedUpdate(key="k010", at=now)


def test_what_is_remembered_goes_wherever_the_cart_goes() -> None:
    """The snapshot the projection writes and a restore reads back (the read model's
    last resort) keeps the keyed updates; an older snapshot has none."""
    cart = Cart(shop_id="s", cart_id="c")
    machine.apply(cart, CustomerVisited(page="/"), T0)
    remember(cart, key_of(ID) or "", T0)
    snapshot = encode_cart(cart)
    assert snapshot["keyed_updates"] == [
        {"key": "0123456789abcdef", "at": "2026-12-01T10:00:00+00:00"}
    ]
    assert decode_cart(snapshot) == cart
    del snapshot["keyed_updates"]
    assert decode_cart(snapshot).keyed_updates == []


def test_a_full_list_stays_small() -> None:
    """64 keys of 16 hex digits with their times (to the second): about 4 kB of the
    cart's payload at most."""
    import json

    cart = Cart(shop_id="s", cart_id="c")
    for n in range(KEPT):
        remember(cart, f"{n:016x}", T0 + timedelta(seconds=n, microseconds=123_456))
    assert cart.keyed_updates[0].at == T0, "to the second"
    size = len(json.dumps(encode_cart(cart)["keyed_updates"], separators=(",", ":")))
    assert size <= 4_000, size
