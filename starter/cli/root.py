"""The ``cartkeeper`` group and its global options (commands register on it)."""

from __future__ import annotations

import click

from starter.cli.common import CONTEXT_SETTINGS, Options


@click.group(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--address",
    metavar="HOST:PORT",
    help="Temporal frontend address. Default: the SDK's environment configuration "
    "($TEMPORAL_ADDRESS, $TEMPORAL_PROFILE / temporal.toml), else localhost:7233.",
)
@click.option(
    "--namespace",
    metavar="NAME",
    help="Temporal namespace. Default: $TEMPORAL_NAMESPACE or the profile's, else 'default'.",
)
@click.version_option(package_name="cartkeeper", prog_name="cartkeeper")
@click.pass_context
def cli(ctx: click.Context, address: str | None, namespace: str | None) -> None:
    """cartkeeper: every shop cart is one durable Temporal workflow.

    Payments are never lost and carts never forgotten: carts abandon, lock when a payment
    result is missing or pending, expire, and become orders with numbers, each in its own
    workflow. This tool runs a local environment, the worker, a demo, and the admin
    actions on carts.

    \b
    Quick start:
      cartkeeper dev --simulate             # server + worker + demo carts in every state
      cartkeeper carts list --state locked  # in another terminal
      cartkeeper carts confirm CART         # a locked cart becomes an order

    Exit codes: 0 ok, 1 refused, 2 usage error, 3 no such cart (or message), 4 Temporal,
    a worker or the database unreachable (or a request queued but not applied yet).
    """
    ctx.obj = Options(address=address, namespace=namespace)
