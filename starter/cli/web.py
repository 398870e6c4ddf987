"""``cartkeeper web``: the HTTP endpoint (recovery and unsubscribe links, health checks)."""

from __future__ import annotations

import socket

import click

from starter.cli.common import CONTEXT_SETTINGS, Options, echo, load_settings, read_model, run
from starter.cli.root import cli
from starter.errors import EXIT_USAGE, Failure


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--host",
    metavar="HOST",
    help="The address to listen on (default: $CARTKEEPER_WEB_HOST, else 127.0.0.1).",
)
@click.option(
    "--port",
    type=click.IntRange(min=1, max=65535),
    help="The port (default: $CARTKEEPER_WEB_PORT, else 8080).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    help="Log level (default: $CARTKEEPER_LOG_LEVEL, else info).",
)
@click.pass_obj
@click.pass_context
def web(
    ctx: click.Context,
    options: Options,
    host: str | None,
    port: int | None,
    log_level: str | None,
) -> None:
    """Serve the HTTP API, the admin console, the links of reminder e-mail and the
    health checks, until Ctrl-C or SIGTERM (`cartkeeper api` is the same command).

    \b
      /api/v1/carts/...        storefront API (Authorization: Bearer <key>; keys:
                               `cartkeeper keys create --shop S --name N`)
      /api/v1/webhooks/payments/SOURCE
                               payment results, Standard Webhooks signatures
                               ($CARTKEEPER_WEBHOOK_SECRETS; `cartkeeper webhooks secret`)
      /admin                   admin console (users: `cartkeeper users add NAME`)
      /docs, /openapi.json     the API's documentation (no CDN)
      GET  /r/TOKEN   recovery link: a page the browser posts back at once (changes
                      nothing: mail scanners fetch links too)
      POST /r/TOKEN   the click: recorded, told to the cart, redirected to the shop's
                      restore_url (with the coupon)
      GET  /u/TOKEN   unsubscribe: a confirmation page (changes nothing)
      POST /u/TOKEN   unsubscribe (the page's button, or the mail client's one-click)
      GET  /healthz   the process is up
      GET  /readyz    the database and Temporal answer (503 naming what does not)
      GET  /metrics   Prometheus metrics (keep it on an internal network)

    E-mail links are $CARTKEEPER_PUBLIC_URL/r/... and /u/...: set it to where this is
    reached (behind a proxy: the proxy's https URL). It reads the read model
    ($DATABASE_URL), connects to Temporal as configured (--address or the TEMPORAL_*
    environment) when a request first needs it, and signs links and admin sessions with
    $CARTKEEPER_SECRET_KEY, which every worker and web process must share.
    """
    import logging

    from starter.web.app import create_app
    from starter.web.server import fast_loop, local_url, serve

    settings = load_settings()
    host = host if host is not None else settings.web_host
    port = port if port is not None else settings.web_port
    level = (log_level or settings.log_level).upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    async def main() -> int:
        from starter.connect import connect

        engine, sessions = read_model(settings)  # a missing SQLite file: exit 4, says why
        try:
            sock = _listen(host, port)
            app = create_app(
                settings,
                temporal_client_factory=lambda: connect(options.address, options.namespace),
                session_factory=sessions,
            )
            url = local_url(host, sock.getsockname()[1])
            echo(
                f"cartkeeper web on {url}  (API {url}/api/v1, docs {url}/docs, admin"
                f" {url}/admin; links in e-mail: {settings.public_url}; Ctrl-C to stop)"
            )
            await serve(app, sock, log_level=level.lower())
        finally:
            await engine.dispose()
        echo("stopped")
        return 0

    run(ctx, main, loop_factory=fast_loop())


def _listen(host: str, port: int) -> socket.socket:
    from starter.web.server import bind

    try:
        return bind(host, port)
    except OSError as error:
        raise Failure(
            "port_in_use",
            f"cannot listen on {host}:{port}: {error.strerror or error} (--port)",
            EXIT_USAGE,
        ) from None


cli.add_command(web, name="api")
