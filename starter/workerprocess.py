"""The product worker in a process of its own, and the handle that launches and stops it.

The process (``python -m starter.workerprocess``) runs ``worker.run_worker``, exactly as
``cartkeeper worker`` does: it connects as ``TEMPORAL_ADDRESS`` / ``TEMPORAL_NAMESPACE``
say, migrates the read model of ``DATABASE_URL`` and polls ``CARTKEEPER_TASK_QUEUE`` until
SIGTERM (graceful) or SIGKILL. Besides the worker's own settings, it reads:

- ``CARTKEEPER_EXTRA_WORKFLOWS``: comma-separated ``module:Class`` workflows registered
  besides the cart's (the benchmark's ``bench.floor:BenchFloor``);
- ``CARTKEEPER_EXTRA_ACTIVITIES``: comma-separated ``module:function``, each returning a
  list of activities registered besides the cart's (``bench.mail_floor:mail_floor_activities``);
- ``CARTKEEPER_SANDBOX_PASSTHROUGH``: comma-separated modules passed through the workflow
  sandbox, as the product passes ``workflows`` (``bench``);
- ``CARTKEEPER_WORKER_STATE_DIR`` / ``CARTKEEPER_WORKER_NAME``: where it writes
  ``<name>.ready`` (its pid, once it polls) and ``<name>.gc`` (a counter: SIGUSR1 runs a
  full ``gc.collect()`` and then bumps it, so that RSS can be read after a collection).

``WorkerProcess`` (the parent's side) starts it, waits until it polls, stops it with
SIGTERM or kills it with SIGKILL, and reads its RSS and CPU (``psutil``, a dev dependency).
The benchmark and the chaos run use it; its output goes to ``<state_dir>/<name>.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

EXTRA_WORKFLOWS_ENV = "CARTKEEPER_EXTRA_WORKFLOWS"
EXTRA_ACTIVITIES_ENV = "CARTKEEPER_EXTRA_ACTIVITIES"
PASSTHROUGH_ENV = "CARTKEEPER_SANDBOX_PASSTHROUGH"
STATE_DIR_ENV = "CARTKEEPER_WORKER_STATE_DIR"
NAME_ENV = "CARTKEEPER_WORKER_NAME"
MIB = 1024 * 1024


class WorkerStartError(RuntimeError):
    """The worker process exited, or did not poll in time; the message has its log tail."""


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _load(spec: str) -> Any:
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise ValueError(f"expected module:name, not {spec!r}")
    return getattr(importlib.import_module(module_name), name)


def load_workflow(spec: str) -> type:
    """``module:Class`` -> the class."""
    found = _load(spec)
    if not isinstance(found, type):
        raise TypeError(f"{spec} is not a class")
    return found


def load_activities(spec: str) -> list[Any]:
    """``module:function`` -> the activities the function returns."""
    factory = _load(spec)
    if not callable(factory):
        raise TypeError(f"{spec} is not callable")
    return list(factory())


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


# =========================================================================== the process


async def worker_main() -> None:
    """The worker process: ``worker.run_worker`` with the options of the environment."""
    from activities.settings import get_settings
    from starter.connect import connect
    from worker import run_worker

    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    state_dir = Path(os.environ.get(STATE_DIR_ENV) or ".")
    name = os.environ.get(NAME_ENV) or "worker"
    extra = [load_workflow(spec) for spec in _split(os.environ.get(EXTRA_WORKFLOWS_ENV))]
    extra_activities = [
        found
        for spec in _split(os.environ.get(EXTRA_ACTIVITIES_ENV))
        for found in load_activities(spec)
    ]
    passthrough = _split(os.environ.get(PASSTHROUGH_ENV))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    collections = 0

    def collect() -> None:
        nonlocal collections
        gc.collect()
        collections += 1
        _write(state_dir / f"{name}.gc", str(collections))

    loop.add_signal_handler(signal.SIGUSR1, collect)
    client = await connect()
    await run_worker(
        client,
        settings,
        stop,
        extra_workflows=extra,
        extra_activities=extra_activities,
        sandbox_passthrough=passthrough,
        on_ready=lambda: _write(state_dir / f"{name}.ready", str(os.getpid())),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """The process's entry point; it takes no arguments (only the environment)."""
    if list(sys.argv[1:] if argv is None else argv):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        asyncio.run(worker_main())
    except KeyboardInterrupt:  # pragma: no cover - SIGINT before the handler is set
        return 130
    return 0


# =========================================================================== the handle


class WorkerProcess:
    """One worker process at a time (``start`` again after it stopped or was killed).

    ``address``, ``database_url`` and ``task_queue`` become ``TEMPORAL_ADDRESS``,
    ``DATABASE_URL`` and ``CARTKEEPER_TASK_QUEUE``; ``env`` adds or overrides variables.
    ``cwd``: the process's working directory (where ``extra_workflows`` modules are found).
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        address: str,
        database_url: str,
        task_queue: str,
        namespace: str = "default",
        name: str = "worker",
        extra_workflows: Sequence[str] = (),
        extra_activities: Sequence[str] = (),
        sandbox_passthrough: Sequence[str] = (),
        log_level: str = "WARNING",
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.name = name
        self.cwd = cwd or Path.cwd()
        self.log_path = state_dir / f"{name}.log"
        self.ready_path = state_dir / f"{name}.ready"
        self.gc_path = state_dir / f"{name}.gc"
        self.env = {
            **os.environ,
            "TEMPORAL_ADDRESS": address,
            "TEMPORAL_NAMESPACE": namespace,
            "DATABASE_URL": database_url,
            "CARTKEEPER_TASK_QUEUE": task_queue,
            "CARTKEEPER_DATA_DIR": str(state_dir),
            "CARTKEEPER_LOG_LEVEL": log_level,
            EXTRA_WORKFLOWS_ENV: ",".join(extra_workflows),
            EXTRA_ACTIVITIES_ENV: ",".join(extra_activities),
            PASSTHROUGH_ENV: ",".join(sandbox_passthrough),
            STATE_DIR_ENV: str(state_dir),
            NAME_ENV: name,
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.proc: asyncio.subprocess.Process | None = None
        self._ps: Any = None
        #: processes started, and killed with SIGKILL
        self.starts = 0
        self.kills = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self, within: float = 120.0) -> None:
        """Start the process and return once its worker polls the task queue."""
        if self.running:
            raise RuntimeError(f"the worker process already runs (pid {self.pid})")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.ready_path.unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} start\n".encode())
            log.flush()
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "starter.workerprocess",
                cwd=str(self.cwd),
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self.starts += 1
        self._ps = None
        deadline = time.monotonic() + within
        while not self.ready_path.exists():
            if self.proc.returncode is not None:
                raise WorkerStartError(
                    f"the worker process exited with code {self.proc.returncode}:\n"
                    + self.log_tail()
                )
            if time.monotonic() > deadline:
                self.kill()
                await self.proc.wait()
                raise WorkerStartError(
                    f"the worker did not poll within {within:.0f}s:\n" + self.log_tail()
                )
            await asyncio.sleep(0.05)

    async def stop(self, grace: float = 30.0) -> int | None:
        """SIGTERM (the worker shuts down gracefully), SIGKILL after ``grace`` seconds."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return proc.returncode if proc else None
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            self.kill()
            return await proc.wait()

    def kill(self) -> None:
        """SIGKILL, no goodbye: in-flight tasks are lost to the worker (Temporal retries
        them elsewhere once their timeouts pass)."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
                self.kills += 1

    async def kill_and_wait(self) -> None:
        self.kill()
        if self.proc is not None:
            await self.proc.wait()

    # ------------------------------------------------------------------ state

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def ps(self) -> Any:
        """The process's ``psutil.Process``."""
        import psutil

        assert self.proc is not None
        if self._ps is None or self._ps.pid != self.proc.pid:
            self._ps = psutil.Process(self.proc.pid)
        return self._ps

    def rss_mb(self) -> float:
        return float(self.ps().memory_info().rss) / MIB

    def cpu_s(self) -> float:
        """CPU seconds (user + system) of the current process."""
        times = self.ps().cpu_times()
        return float(times.user + times.system)

    async def collect_garbage(self, within: float = 30.0) -> None:
        """Ask the worker for a full ``gc.collect()`` (SIGUSR1) and wait until it is done."""
        assert self.proc is not None
        before = self.gc_path.read_text() if self.gc_path.exists() else ""
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + within
        while (self.gc_path.read_text() if self.gc_path.exists() else "") == before:
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not answer the gc request")
            await asyncio.sleep(0.05)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no worker log)"
        return "\n".join(text[-lines:])


if __name__ == "__main__":
    sys.exit(main())
