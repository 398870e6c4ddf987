"""``cartkeeper keys``: the storefront API keys of the HTTP API (create, list, revoke), in
the read-model database (``starter.web.api_keys``; no Temporal needed)."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from starter.cli.common import (
    CONTEXT_SETTINGS,
    echo,
    json_option,
    load_settings,
    read_model,
    run,
    shop_filter,
    shop_option,
    shop_or_default,
)
from starter.cli.root import cli
from starter.errors import EXIT_NOT_FOUND, EXIT_REFUSED, Failure

if TYPE_CHECKING:
    from activities.db import SessionFactory
    from starter.web.api_keys import ApiKey


@cli.group(context_settings=CONTEXT_SETTINGS)
def keys() -> None:
    """API keys of storefronts: one shop's key to the HTTP API (/api/v1).

    A storefront sends its key as `Authorization: Bearer ck_...` (or `X-Api-Key`); every
    cart it touches is a cart of the key's shop. Only a hash of a key is stored: the key
    is shown once, when created. Revoked keys are refused at once.
    """


def _run(work: Callable[[SessionFactory], Awaitable[None]]) -> None:
    """Run ``work`` on the read model; a refusal is one error line (exit 1;
    ``api_key_not_found`` exits 3)."""
    from starter.web.api_keys import ApiKeyRefused

    settings = load_settings()

    async def main() -> int:
        engine, sessions = read_model(settings)
        try:
            await work(sessions)
        except ApiKeyRefused as refused:
            code = EXIT_NOT_FOUND if refused.code == "api_key_not_found" else EXIT_REFUSED
            raise Failure(refused.code, refused.message, code) from None
        finally:
            await engine.dispose()
        return 0

    run(click.get_current_context(), main)


def _json(key: ApiKey) -> dict[str, Any]:
    from starter.output import jsonable

    data: dict[str, Any] = jsonable(key)
    data["revoked"] = key.revoked
    return data


@keys.command(context_settings=CONTEXT_SETTINGS)
@shop_option
@click.option(
    "--name", required=True, metavar="NAME", help="What the key is for (storefront, php-shop)."
)
@click.option(
    "--admin",
    default=lambda: os.environ.get("USER") or "admin",
    show_default="$USER",
    metavar="NAME",
    help="Who creates it (kept with the key).",
)
@json_option
def create(shop: str | None, name: str, admin: str, as_json: bool) -> None:
    """Create an API key for a shop; print it (once).

    The key is shown this once only. Give it to the shop's storefront and keep it
    secret (in the storefront's environment, not its code). A lost key is not
    recovered: revoke it and create another.

    \b
    Examples:
      cartkeeper keys create --shop demo --name storefront
      cartkeeper keys create --shop demo --name php-shop --json
    """
    from starter.output import dumps, safe
    from starter.web.api_keys import create_key

    shop_id = shop_or_default(shop, load_settings())

    async def work(sessions: SessionFactory) -> None:
        key, plain = await create_key(
            sessions, shop_id, name, now=datetime.now(UTC), created_by=admin
        )
        if as_json:
            echo(dumps({**_json(key), "key": plain}))
            return
        echo(safe(f"API key {key.prefix} ({key.name}) of shop {key.shop_id}:"))
        echo(plain)
        echo("Keep it now: it is not shown again (only its hash is stored).")

    _run(work)


@keys.command("list", context_settings=CONTEXT_SETTINGS)
@click.option("--shop", metavar="SHOP", help="Only this shop's keys (default: every shop's).")
@json_option
def list_command(shop: str | None, as_json: bool) -> None:
    """List API keys, never their secrets.

    Each key's prefix, shop, name, when it was created, last used (to the minute) and
    revoked.

    \b
    Examples:
      cartkeeper keys list
      cartkeeper keys list --shop demo --json
    """
    from starter.output import dumps, format_time, safe, table
    from starter.web.api_keys import list_keys

    async def work(sessions: SessionFactory) -> None:
        found = await list_keys(sessions, shop_filter(shop))
        if as_json:
            echo(dumps([_json(key) for key in found]))
            return
        where = f"shop {shop}" if shop else "any shop"
        if not found:
            echo(safe(f"no API keys ({where}); create one: cartkeeper keys create --name NAME"))
            return
        rows = [
            [
                key.prefix,
                key.shop_id,
                key.name,
                format_time(key.created_at),
                format_time(key.last_used_at) if key.last_used_at else "never",
                format_time(key.revoked_at) if key.revoked_at else "-",
            ]
            for key in found
        ]
        echo(
            table(
                ["PREFIX", "SHOP", "NAME", "CREATED (UTC)", "LAST USED (UTC)", "REVOKED (UTC)"],
                rows,
            )
        )
        active = sum(1 for key in found if not key.revoked)
        echo(safe(f"{len(found)} key{'s' if len(found) != 1 else ''} ({active} active), {where}"))

    _run(work)


@keys.command(context_settings=CONTEXT_SETTINGS)
@click.argument("prefix")
@json_option
def revoke(prefix: str, as_json: bool) -> None:
    """Revoke an API key: refused from now on.

    PREFIX is the key's prefix as `keys list` shows it. Revoking a revoked key changes
    nothing (its first revocation is kept). An unknown prefix exits 3.

    \b
    Examples:
      cartkeeper keys revoke 3f9a0c4e71b2
    """
    from starter.output import dumps, format_time, safe
    from starter.web.api_keys import revoke_key

    async def work(sessions: SessionFactory) -> None:
        now = datetime.now(UTC)
        key = await revoke_key(sessions, prefix, now=now)
        if as_json:
            echo(dumps(_json(key)))
            return
        assert key.revoked_at is not None
        when = "now" if key.revoked_at == now else f"already, at {format_time(key.revoked_at)} UTC"
        echo(safe(f"API key {key.prefix} ({key.name}) of shop {key.shop_id} revoked {when}"))

    _run(work)
