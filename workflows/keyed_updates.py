"""The updates a cart applied under an ``Idempotency-Key``: a retry is answered, never
applied a second time, in whichever run of the cart it lands.

An update the HTTP API sends under an ``Idempotency-Key`` has an id ``idem-<40 hex>``
(``starter.client.update_id``: derived from the key, the request, the cart, the update
and its payload), and a retry of the request sends the same id. Temporal answers an
update id it already has with that update's outcome, but only within one run: after the
cart continued as new, or a closed cart was brought back, a retry of an update the earlier
run applied would be applied again. So the cart keeps the ids of the keyed updates it
applied (``Cart.keyed_updates``), carried with it wherever its state goes (continue-as-new,
a closed run's result or its state replayed, the read model's snapshot), and the workflow
answers a keyed update whose id it holds with the cart as it is now, without applying it
(as a checkout completed twice answers the same order).

Only updates applied are kept: a refusal changed nothing, and its retry is checked again.
Bounded, to keep the cart's payload small: the last ``KEPT`` ids, none older than
``RETENTION`` (the web's key retention: past it a key is a new request), each as the
first ``KEY_DIGITS`` hex digits of its id (64 bits: another id matches one of 64 kept by
chance about once in 10^17) with the workflow time it was applied, to the second: about
4 kB of JSON at most, a few hundred bytes for most carts. Plain lists: no set's order
ever shapes the cart.

Pure functions of the cart and the time given. The workflow uses them under the patch
``keyed-updates-remembered`` (``KEYED_UPDATES_PATCH``), asked only when a keyed update
reaches a handler: histories recorded before replay as they were, and the histories of
carts that never get a keyed update have no marker.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from workflows.state import Cart, KeyedUpdate

#: the patch under which a cart remembers its keyed updates
KEYED_UPDATES_PATCH = "keyed-updates-remembered"
#: the prefix of the update ids sent under an ``Idempotency-Key``
KEYED_PREFIX = "idem-"
#: how many keyed updates a cart remembers (the latest)
KEPT = 64
#: how long a cart remembers a keyed update (``starter.web.idempotency.RETENTION``)
RETENTION = timedelta(hours=24)
#: how many hex digits of an update id (after the prefix) a cart keeps
KEY_DIGITS = 16


def key_of(update_id: str | None) -> str | None:
    """What a cart keeps of a keyed update's id; ``None`` for another update (the SDK's
    random id, or none)."""
    if not update_id or not update_id.startswith(KEYED_PREFIX):
        return None
    key = update_id[len(KEYED_PREFIX) :][:KEY_DIGITS]
    return key or None


def applied(cart: Cart, key: str, now: datetime) -> bool:
    """Whether ``cart`` applied the keyed update ``key`` (at most ``RETENTION`` ago)."""
    return any(entry.key == key and now - entry.at < RETENTION for entry in cart.keyed_updates)


def remember(cart: Cart, key: str, now: datetime) -> None:
    """Keep ``key`` as applied at ``now``: the last ``KEPT``, the expired ones dropped."""
    kept = [
        entry for entry in cart.keyed_updates if entry.key != key and now - entry.at < RETENTION
    ]
    kept.append(KeyedUpdate(key=key, at=now.replace(microsecond=0)))
    cart.keyed_updates = kept[-KEPT:]
