"""The benchmark's Temporal server and worker processes, through the product's launchers
(``starter.devserver`` and ``starter.workerprocess``): no copy of their process handling.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bench.plan import REPO, TASK_QUEUE
from starter.devserver import UPDATE_DYNAMIC_CONFIG, DevServer
from starter.workerprocess import WorkerProcess

#: the floor workflow, registered on the benchmark's workers besides the cart's
FLOOR_WORKFLOW = "bench.floor:BenchFloor"
#: the reminders part's floor (``bench.mail_floor``): a workflow and its activity
MAIL_FLOOR_WORKFLOW = "bench.mail_floor:BenchMailFloor"
MAIL_FLOOR_ACTIVITIES = "bench.mail_floor:mail_floor_activities"


def bench_server(state_dir: Path, *, db_file: Path | None = None) -> DevServer:
    """A headless dev server on free ports, log level error, output in ``server.log``:
    in memory (the benchmark), or on ``db_file`` (the chaos run restarts it)."""
    return DevServer(
        db_file=db_file,
        log_file=state_dir / "server.log",
        port=0,
        ui_port=None,
        dynamic_config=UPDATE_DYNAMIC_CONFIG,
    )


def bench_worker(
    state_dir: Path,
    address: str,
    database_url: str,
    *,
    name: str = "worker",
    task_queue: str = TASK_QUEUE,
    floor: bool = True,
    mail_floor: bool = False,
    env: Mapping[str, str] | None = None,
) -> WorkerProcess:
    """The product's worker in its own process (``python -m starter.workerprocess``),
    configured like the real one (``TEMPORAL_ADDRESS``, ``DATABASE_URL``,
    ``CARTKEEPER_TASK_QUEUE``). With ``floor``, ``BenchFloor`` is registered too and the
    sandbox passes ``bench`` through, as the product passes ``workflows`` through, so the
    floor is not charged a module re-import per workflow that the cart does not pay.
    ``mail_floor``: ``BenchMailFloor`` and its activity too (the reminders part).
    ``env``: more settings (the reminders part's SMTP relay)."""
    workflows = [FLOOR_WORKFLOW] if floor else []
    if mail_floor:
        workflows.append(MAIL_FLOOR_WORKFLOW)
    return WorkerProcess(
        state_dir,
        address=address,
        database_url=database_url,
        task_queue=task_queue,
        name=name,
        extra_workflows=workflows,
        extra_activities=[MAIL_FLOOR_ACTIVITIES] if mail_floor else (),
        sandbox_passthrough=["bench"] if workflows else (),
        env=env,
        cwd=REPO,
    )


def quiet_sdk_logs() -> None:
    """The SDK's core logs every retried RPC as a warning (thousands of lines while the
    server restarts) and every failed replay; the chaos run counts its retries itself.
    Call before the first client connects."""
    from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

    telemetry = TelemetryConfig(
        logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
    )
    Runtime.set_default(Runtime(telemetry=telemetry), error_if_already_set=False)
