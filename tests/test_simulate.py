"""The demo's bookkeeping (``starter.simulate``): a cart that reached the state its
scenario takes it to stays settled when a user then acts on it (the README suggests
confirming the locked cart the demo leaves while the demo still waits for other timers:
the demo kept waiting for it to be locked again, and ended reporting a false timeout)."""

from __future__ import annotations

from dataclasses import replace

from starter.simulate import SCENARIOS, SimCart, Simulation, render_summary
from workflows.codes import CartState
from workflows.state import Cart


def test_a_cart_seen_where_it_should_be_stays_settled() -> None:
    locking = next(s for s in SCENARIOS if s.expected is CartState.LOCKED)
    sim = SimCart("sim-1", locking)
    cart = Cart(shop_id="demo", cart_id="sim-1")
    sim.seen(replace(cart, state=CartState.CHECKOUT))
    assert not sim.settled
    sim.seen(replace(cart, state=CartState.LOCKED))
    assert sim.settled
    sim.seen(replace(cart, state=CartState.ORDERED))  # an admin confirmed it
    assert sim.settled and sim.state is CartState.ORDERED

    waiting = SimCart("sim-2", locking)
    waiting.seen(replace(cart, cart_id="sim-2", state=CartState.CHECKOUT))
    summary = render_summary(Simulation("demo", [sim, waiting], timed_out=True))
    assert "timed out waiting for: sim-2 (checkout -> locked)" in summary
    assert "sim-1 (" not in summary
