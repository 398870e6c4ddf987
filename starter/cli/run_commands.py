"""Commands that run things: ``dev`` (server + worker + demo), ``worker``, ``simulate``."""

from __future__ import annotations

import click

from starter.cli.common import (
    CONTEXT_SETTINGS,
    Options,
    connect_carts,
    echo,
    ensure_worker,
    load_settings,
    prog_name,
    run,
    shop_option,
    shop_or_default,
)
from starter.cli.root import cli


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--simulate/--no-simulate",
    default=False,
    show_default=True,
    help="Also run a short demo (`cartkeeper simulate`) once the worker is up.",
)
@click.option("--port", default=7233, show_default=True, help="The server's gRPC port.")
@click.option("--ui-port", default=8233, show_default=True, help="The Temporal UI's port.")
@click.option(
    "--carts", default=12, show_default=True, metavar="N", help="Demo carts with --simulate."
)
@click.option("--seed", type=int, metavar="S", help="Random seed of the demo data.")
@click.option(
    "--speed",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.1, max=100),
    help="Divide the demo's timers by this factor.",
)
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    help="Log level of the worker in this process.",
)
@click.pass_context
def dev(
    ctx: click.Context,
    simulate: bool,
    port: int,
    ui_port: int,
    carts: int,
    seed: int | None,
    speed: float,
    log_level: str,
) -> None:
    """Run everything locally: Temporal dev server, worker and (optionally) a demo.

    Starts `temporal server start-dev` with its state in $CARTKEEPER_DATA_DIR/temporal.db
    (default ./data, kept across runs) and our search attributes, runs the worker in this
    process against it, serves the e-mail links and health checks (as `cartkeeper web`,
    on $CARTKEEPER_WEB_PORT, default 8080, or a free port if that is taken), prints the
    Temporal UI and CLI examples, and keeps running until Ctrl-C or SIGTERM; then it stops
    the web endpoint, the worker gracefully and the server.

    The read model is $DATABASE_URL, by default the SQLite file
    $CARTKEEPER_DATA_DIR/cartkeeper.db.
    """
    import logging

    from starter.dev import DevOptions, run_dev

    settings = load_settings()
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    options = DevOptions(
        port=port,
        ui_port=ui_port,
        simulate=simulate,
        carts=carts,
        seed=seed,
        speed=speed,
        prog=prog_name(),
    )
    run(ctx, lambda: run_dev(settings, options, out=echo))


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.pass_obj
@click.pass_context
def worker(ctx: click.Context, options: Options) -> None:
    """Run the worker: the cart workflows and their activities.

    Connects to Temporal as configured (--address or the TEMPORAL_* environment), migrates
    the read model ($DATABASE_URL) and polls the task queue ($CARTKEEPER_TASK_QUEUE,
    default 'cartkeeper') until SIGTERM or Ctrl-C, then shuts down gracefully. Run as many
    as you like on the same task queue.
    """
    import worker as worker_module

    load_settings()
    run(ctx, lambda: worker_module.main(options.address, options.namespace))


# --------------------------------------------------------------------------- simulate


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--carts",
    default=12,
    show_default=True,
    type=click.IntRange(min=1),
    metavar="N",
    help="How many demo carts; 10 or more cover every state.",
)
@shop_option
@click.option("--seed", type=int, metavar="S", help="Random seed of the demo data.")
@click.option(
    "--speed",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.1, max=100),
    help="Divide the demo's timers by this factor (10: abandon after 2 s, lock after 1 s, "
    "expire after 6 s).",
)
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait until the timers have fired (about a minute at speed 1).",
)
@click.pass_obj
@click.pass_context
def simulate(
    ctx: click.Context,
    options: Options,
    carts: int,
    shop: str | None,
    seed: int | None,
    speed: float,
    wait: bool,
) -> None:
    """Drive demo storefront traffic: carts that end in every state.

    Customers browse, check out, pay by card or bank transfer, fail and retry, wait on a
    pending payment or on a gateway that never answers; an admin deletes one cart and
    confirms another. The demo carts use short timers (abandon after 20 s, lock after
    10 s, expire after 60 s; see --speed), so within about a minute there are carts
    active, in checkout, payment_pending, locked, abandoned, ordered, expired and
    deleted. Prints the count per state as the workflows report it.

    Needs a worker: `cartkeeper dev` or `cartkeeper worker`.
    """
    from starter.simulate import render_summary
    from starter.simulate import simulate as play

    settings = load_settings()
    shop_id = shop_or_default(shop, settings)

    async def main() -> int:
        client = await connect_carts(options, settings)
        await ensure_worker(client)
        result = await play(
            client.client,
            carts=carts,
            shop_id=shop_id,
            task_queue=settings.task_queue,
            seed=seed,
            speed=speed,
            wait=wait,
            out=echo,
        )
        echo()
        echo(render_summary(result))
        return 1 if result.errors or result.timed_out else 0

    run(ctx, main)
