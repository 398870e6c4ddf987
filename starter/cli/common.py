"""What every command shares: global options, settings, the event loop, one-line errors,
connecting to Temporal and the read model, and the worker checks."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import traceback
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from starter.errors import EXIT_UNAVAILABLE, EXIT_USAGE, NO_WORKER, Failure, classify

if TYPE_CHECKING:
    from activities.settings import Settings
    from starter.client import CartkeeperClient

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
#: the variable that sets ``WORKER_WAIT`` (seconds)
WORKER_WAIT_ENV = "CARTKEEPER_WORKER_WAIT"
DEFAULT_WORKER_WAIT = 20.0
MAX_WORKER_WAIT = 3600.0


def _worker_wait(raw: str | None) -> float | None:
    """``$CARTKEEPER_WORKER_WAIT`` in seconds: the default if unset, ``None`` if invalid."""
    if raw is None or not raw.strip():
        return DEFAULT_WORKER_WAIT
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if 0 < value <= MAX_WORKER_WAIT else None  # NaN is refused too


#: how long a command waits for a worker to answer a query or apply an update
#: (``$CARTKEEPER_WORKER_WAIT``; an invalid value is refused by ``load_settings``)
WORKER_WAIT = _worker_wait(os.environ.get(WORKER_WAIT_ENV)) or DEFAULT_WORKER_WAIT


@dataclass
class Options:
    """The global options, shared by every command."""

    address: str | None = None
    namespace: str | None = None


def echo(text: str = "") -> None:
    click.echo(text)


def load_settings() -> Settings:
    """The settings, or a usage error (exit 2) naming the variable that is wrong."""
    import json
    import re

    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from activities.settings import env_name, get_settings

    raw_wait = os.environ.get(WORKER_WAIT_ENV)
    if _worker_wait(raw_wait) is None:
        raise Failure(
            "invalid_settings",
            f"{WORKER_WAIT_ENV}: {raw_wait!r} is not a number of seconds above 0 and at most"
            f" {MAX_WORKER_WAIT:g}",
            EXIT_USAGE,
        )
    try:
        return get_settings()
    except ValidationError as error:
        problems = []
        for item in error.errors():
            location = [str(part) for part in item["loc"]]
            variable = env_name(location[0]) if location else "settings"
            where = "".join(f"[{part}]" for part in location[1:])
            message = str(item["msg"]).removeprefix("Value error, ")
            problems.append(f"{variable}{where}: {message}")
        raise Failure("invalid_settings", "; ".join(problems), EXIT_USAGE) from None
    except SettingsError as error:
        # pydantic-settings could not even parse it (a JSON setting that is not JSON):
        # 'error parsing value for field "policy" from source "EnvSettingsSource"'
        field = re.search(r'field "([^"]+)"', str(error))
        variable = env_name(field.group(1)) if field else "settings"
        cause = error.__cause__
        if isinstance(cause, json.JSONDecodeError):
            detail = f"not valid JSON ({cause})"
        else:
            detail = f"cannot be read ({cause or error})"
        raise Failure("invalid_settings", f"{variable}: {detail}", EXIT_USAGE) from None


def run(
    ctx: click.Context,
    main: Callable[[], Awaitable[int | None]],
    *,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> NoReturn:
    """Run ``main`` on a fresh event loop (``loop_factory``'s, by default asyncio's) and
    exit with its code (or the failure's)."""
    code = run_async(main, loop_factory=loop_factory)
    ctx.exit(code)
    raise AssertionError("unreachable")  # pragma: no cover


def run_async(
    main: Callable[[], Awaitable[int | None]],
    *,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> int:
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(_main(main)) or 0
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Exception as error:
        return report(error)


async def _main(main: Callable[[], Awaitable[int | None]]) -> int | None:
    return await main()


def report(error: BaseException) -> int:
    """Print one ``error:`` line for ``error`` and return its exit code."""
    from starter.output import safe

    failure = classify(error)
    if failure is None:
        if os.environ.get("CARTKEEPER_DEBUG"):
            traceback.print_exception(error)
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        click.echo(
            f"error: internal: {type(error).__name__}: {safe(detail)}"
            " (set CARTKEEPER_DEBUG=1 for the traceback)",
            err=True,
        )
        return 1
    click.echo(f"error: {safe(str(failure))}", err=True)
    return failure.exit_code


async def connect_carts(options: Options, settings: Settings) -> CartkeeperClient:
    from starter.client import CartkeeperClient
    from starter.connect import connect

    try:
        client = await connect(options.address, options.namespace)
    except RuntimeError as error:
        raise connect_failure(error, options.address) from None
    return CartkeeperClient(
        client,
        task_queue=settings.task_queue,
        policy_for=settings.policy_for,
        update_timeout=WORKER_WAIT,
    )


def connect_failure(error: RuntimeError, address: str | None) -> Failure | RuntimeError:
    """``Client.connect``'s "Failed client connect" as one readable line."""
    import re

    from starter.connect import DEFAULT_ADDRESS

    text = str(error)
    if not text.startswith("Failed client connect"):
        return error
    if address is None:
        from temporalio.envconfig import ClientConfig

        try:
            address = ClientConfig.load_client_connect_config().get("target_host")
        except Exception:
            address = None
    reason = re.search(r'message: "([^"]+)"', text) or re.search(
        r"Failed client connect: (.*)", text
    )
    detail = reason.group(1) if reason else text
    return Failure(
        "temporal_unavailable",
        f"cannot connect to Temporal at {address or DEFAULT_ADDRESS} ({detail.strip()[:200]})",
        EXIT_UNAVAILABLE,
    )


def read_model(settings: Settings) -> tuple[Any, Any]:
    """An engine and session factory for the read model (``DATABASE_URL``); a SQLite file
    that does not exist yet is an error, not a new empty database."""
    from sqlalchemy.engine import make_url

    from activities.db import make_engine, make_session_factory, normalize_url

    url = settings.resolved_database_url()
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        is_file = database not in ("", ":memory:") and not database.startswith("file:")
        if is_file and not Path(database).exists():
            shown = make_url(url).render_as_string(hide_password=True)
            raise Failure(
                "database_unavailable",
                f"no read model at {shown}: start `cartkeeper dev` (or `cartkeeper worker`)"
                " first, run from the project directory, or set DATABASE_URL /"
                " CARTKEEPER_DATA_DIR",
                EXIT_UNAVAILABLE,
            )
    engine = make_engine(url)
    return engine, make_session_factory(engine)


def shop_or_default(shop: str | None, settings: Settings) -> str:
    return shop or settings.default_shop


def shop_filter(shop: str | None) -> str | None:
    """``--shop`` as a list's filter: ``None`` or a shop id. Anything else is
    ``invalid_filter`` (exit 1), never sent to the database (a NUL fails a query on
    PostgreSQL, an argument that is not UTF-8 on both). Call it inside the command's
    event loop (``run``), which reports the refusal."""
    from workflows.validation import valid_id

    if shop is not None and not valid_id(shop):
        raise Failure("invalid_filter", f"--shop: {shop[:70]!r} is not a shop id")
    return shop


def prog_name() -> str:
    """How the user invoked us, for the commands we suggest."""
    argv0 = sys.argv[0] if sys.argv else ""
    if Path(argv0).name != "cartkeeper":
        return "cartkeeper"
    on_path = shutil.which("cartkeeper")
    if on_path and Path(on_path).resolve() == Path(argv0).resolve():
        return "cartkeeper"
    try:
        relative = os.path.relpath(argv0)
    except ValueError:  # pragma: no cover - another drive on Windows
        return argv0
    # .venv/bin/cartkeeper below the working directory; the whole path from elsewhere
    outside = relative == os.pardir or relative.startswith(os.pardir + os.sep)
    return os.path.abspath(argv0) if outside else relative


shop_option = click.option(
    "--shop",
    metavar="SHOP",
    help="The shop id (default: $CARTKEEPER_DEFAULT_SHOP, else 'demo').",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


def no_worker(task_queue: str, why: str) -> Failure:
    return Failure(
        NO_WORKER,
        f"{why}: is a worker running on task queue {task_queue!r}? "
        "(`cartkeeper dev` or `cartkeeper worker`)",
        EXIT_UNAVAILABLE,
    )


async def ensure_worker(carts: CartkeeperClient) -> None:
    """Fail fast when no worker polls the task queue (updates would wait for one)."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
    from temporalio.service import RPCError, RPCStatusCode

    from starter.client import CartkeeperError
    from workflows.contract import ErrorCode

    client = carts.client
    try:
        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=carts.task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            ),
            timeout=timedelta(seconds=10),
        )
    except RPCError as error:
        if error.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise CartkeeperError(ErrorCode.TEMPORAL_UNAVAILABLE, error.message) from None
        return  # not allowed or not supported: go on, the request will tell
    if not response.pollers:
        raise no_worker(carts.task_queue, "no worker polls the task queue")


_C = TypeVar("_C")


def run_on_read_model(
    make_client: Callable[[Any], _C],
    work: Callable[[_C, str], Awaitable[None]],
    shop: str | None,
    refused: type[Exception],
    *,
    open_read_model: Callable[[Settings], tuple[Any, Any]],
    not_found: Collection[str] = (),
) -> None:
    """Run ``work(client, shop id)`` on the read model (``open_read_model``: the command
    module's ``read_model``, which tests replace) and exit: 0, or one error line for a
    ``refused`` exception (its ``code`` and ``message``): exit 3 for the codes in
    ``not_found``, else 1."""
    from starter.errors import EXIT_NOT_FOUND, EXIT_REFUSED

    settings = load_settings()
    shop_id = shop_or_default(shop, settings)

    async def main() -> int:
        engine, sessions = open_read_model(settings)
        try:
            await work(make_client(sessions), shop_id)
        except refused as error:
            code = str(getattr(error, "code", "refused"))
            message = str(getattr(error, "message", error))
            exit_code = EXIT_NOT_FOUND if code in not_found else EXIT_REFUSED
            raise Failure(code, message, exit_code) from None
        finally:
            await engine.dispose()
        return 0

    run(click.get_current_context(), main)
