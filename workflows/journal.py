"""The cart's journal and attention items: what happened, and what needs an admin.

Both are bounded (``CartPolicy.journal_limit``, ``MAX_ATTENTION``) so a cart's state stays
small whatever is sent to it; what is dropped is counted, never silently forgotten.
"""

from __future__ import annotations

from datetime import datetime

from workflows.codes import AttentionKind, JournalKind
from workflows.state import Attention, Cart, JournalEntry

CUSTOMER = "customer"
GATEWAY = "gateway"
SYSTEM = "system"

#: attention items a cart keeps (resolved ones are dropped first)
MAX_ATTENTION = 100
#: the longest detail kept in a journal entry or an attention item
MAX_DETAIL = 600


def clip(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_DETAIL:
        return text
    return text[: MAX_DETAIL - 3] + "..."


def admin_actor(admin: str) -> str:
    return f"admin:{admin}"


def journal(
    cart: Cart, now: datetime, kind: JournalKind, actor: str, detail: str | None = None
) -> None:
    cart.journal.append(JournalEntry(at=now, kind=kind, actor=actor, detail=clip(detail)))
    excess = len(cart.journal) - max(cart.policy.journal_limit, 1)
    if excess > 0:
        del cart.journal[:excess]
        cart.journal_dropped += excess


def raise_attention(
    cart: Cart,
    now: datetime,
    kind: AttentionKind,
    *,
    attempt_id: str | None = None,
    amount: int | None = None,
    expected_amount: int | None = None,
    detail: str | None = None,
) -> Attention:
    cart.attention_seq += 1
    item = Attention(
        kind=kind,
        at=now,
        attempt_id=attempt_id,
        amount=amount,
        detail=clip(detail),
        id=cart.attention_seq,
        expected_amount=expected_amount,
    )
    cart.attention.append(item)
    journal(cart, now, JournalKind.ATTENTION_RAISED, SYSTEM, f"#{item.id} {kind}: {detail}")
    _bound_attention(cart)
    return item


def _bound_attention(cart: Cart) -> None:
    while len(cart.attention) > MAX_ATTENTION:
        resolved = next((item for item in cart.attention if not item.is_open), None)
        # The oldest resolved item goes first; if every item is open, the oldest open one
        # (the cart still needs an admin, and the count says how many went).
        cart.attention.remove(resolved or cart.attention[0])
        cart.attention_dropped += 1


def resolve_attention(
    cart: Cart, now: datetime, ids: list[int] | None, admin: str, note: str | None
) -> list[int]:
    """Mark the open items (those of ``ids``, or all) resolved; returns their ids."""
    done = []
    for item in cart.attention:
        if item.is_open and (ids is None or item.id in ids):
            item.resolved_at = now
            item.resolved_by = admin
            item.resolution = clip(note)
            done.append(item.id)
    if done:
        listed = ", ".join(f"#{i}" for i in done)
        journal(
            cart,
            now,
            JournalKind.ATTENTION_RESOLVED,
            admin_actor(admin),
            f"{listed}: {note}" if note else listed,
        )
    return done
