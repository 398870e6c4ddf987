"""Serving the web app with uvicorn inside an asyncio program.

``WebServer`` runs uvicorn as a task of the caller's event loop on a socket bound
beforehand (so the port is known, and a taken one is found, before anything starts), and
leaves signals to its host: ``cartkeeper dev`` stops it with the rest on Ctrl-C. The
access log is off: its lines would hold the links' tokens (an unsubscribe token names
the address).

- ``start_web_server(settings, client)``: the endpoint of ``cartkeeper dev``;
- ``serve(app, host, port)``: ``cartkeeper web``, until SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Iterator

import uvicorn
from fastapi import FastAPI
from temporalio.client import Client

from activities.settings import Settings

#: ``cartkeeper dev`` moves to a free port when this one is taken (not when you chose one)
DEFAULT_WEB_PORT: int = Settings.model_fields["web_port"].default


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers (they would replace the host's)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: a free one); ``OSError`` when
    the port is taken. Its protocol is ``IPPROTO_TCP`` (``create_server`` leaves it 0):
    asyncio sets ``TCP_NODELAY`` only on such sockets' connections, and without it the
    body uvicorn writes after the head waits for the client's delayed ACK (40 ms)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=2048)
    return socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, fileno=sock.detach())


def fast_loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop ``cartkeeper web`` runs on: uvloop's where it is installed (not on
    Windows), else asyncio's (``None``). Every request's socket reads and writes and the
    Temporal client's callbacks go through the loop: uvloop's, in C, takes less of the
    CPU the web process shares with the worker and the server."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return None
    return uvloop.new_event_loop


def local_url(host: str, port: int) -> str:
    """How a browser on this machine reaches a server listening on ``host:port``."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class WebServer:
    def __init__(self, app: FastAPI, sock: socket.socket, *, log_level: str = "warning") -> None:
        config = uvicorn.Config(
            app,
            log_config=None,  # the host's logging
            log_level=log_level,
            access_log=False,
            lifespan="on",
            server_header=False,
            timeout_graceful_shutdown=5,
        )
        self._server = _EmbeddedServer(config)
        self._sock = sock
        self.host, self.port = sock.getsockname()[:2]
        self.task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return local_url(str(self.host), self.port)

    async def start(self) -> None:
        """Serve; returns once uvicorn accepts connections (raises if it could not)."""
        self.task = asyncio.create_task(self._server.serve(sockets=[self._sock]), name="web-server")
        while not self._server.started:
            if self.task.done():
                self.task.result()  # its exception
                raise RuntimeError("the web server stopped while starting")
            await asyncio.sleep(0.02)

    def force(self) -> None:
        """Stop without waiting for open connections (a second Ctrl-C)."""
        self._server.should_exit = self._server.force_exit = True

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting, let running requests finish (5 s at most), shut the app down."""
        self._server.should_exit = True
        if self.task is not None and not self.task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self.task), grace)
            except Exception:  # TimeoutError included
                self.task.cancel()
                with contextlib.suppress(BaseException):
                    await self.task
        self._sock.close()


async def start_web_server(settings: Settings, client: Client) -> tuple[WebServer | None, Settings]:
    """The web endpoint of ``cartkeeper dev``, on the running loop, with the dev server's
    Temporal client: on ``web_host:web_port``, or a free port when the default one is
    taken. Unless ``public_url`` was set, it becomes the address served (the worker's
    links then point here), so pass the settings returned to the worker. A port you chose
    that is taken is left alone (your own ``cartkeeper web`` may listen there): ``None``."""
    from starter.web.app import create_app

    try:
        sock = bind(settings.web_host, settings.web_port)
    except OSError:
        if settings.web_port != DEFAULT_WEB_PORT:
            return None, settings
        sock = bind(settings.web_host, 0)
    port = int(sock.getsockname()[1])
    update: dict[str, object] = {"web_port": port}
    if "public_url" not in settings.model_fields_set:
        update["public_url"] = local_url(settings.web_host, port)
    settings = settings.model_copy(update=update)

    async def dev_client() -> Client:
        return client

    try:
        server = WebServer(create_app(settings, temporal_client_factory=dev_client), sock)
        await server.start()
    except BaseException:
        sock.close()
        raise
    return server, settings


async def serve(app: FastAPI, sock: socket.socket, *, log_level: str = "info") -> None:
    """Serve ``app`` on ``sock`` until SIGINT or SIGTERM (twice: at once), then stop
    gracefully."""
    server = WebServer(app, sock, log_level=log_level)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            server.force()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        await server.start()
        assert server.task is not None
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait([server.task, stopped], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        await server.stop()
        if server.task.done() and not server.task.cancelled():
            server.task.result()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
