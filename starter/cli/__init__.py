"""The ``cartkeeper`` command line (click), one module per command group.

    cartkeeper dev --simulate           # Temporal dev server + worker + demo carts
    cartkeeper carts list --state locked
    cartkeeper carts confirm CART --admin ann

Every command prints one ``error: <code>: <message>`` line on failure and exits with
1 (refused), 2 (usage), 3 (no such cart) or 4 (Temporal, a worker or the database
unreachable, or a request queued but not applied yet); see ``starter.errors``. Heavy
modules (the Temporal SDK, SQLAlchemy) are imported only by the commands that need them,
so ``--help`` is instant.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import NoReturn

import click

from starter.cli import campaigns as _campaigns  # noqa: F401  (registers the commands)
from starter.cli import carts as _carts  # noqa: F401
from starter.cli import coupons as _coupons  # noqa: F401
from starter.cli import digest as _digest  # noqa: F401
from starter.cli import journal as _journal  # noqa: F401
from starter.cli import keys as _keys  # noqa: F401
from starter.cli import mail as _mail  # noqa: F401
from starter.cli import order_actions as _order_actions  # noqa: F401
from starter.cli import order_numbers as _order_numbers  # noqa: F401
from starter.cli import orders as _orders  # noqa: F401
from starter.cli import reminders as _reminders  # noqa: F401
from starter.cli import run_commands as _run_commands  # noqa: F401
from starter.cli import shipping as _shipping  # noqa: F401
from starter.cli import stats as _stats  # noqa: F401
from starter.cli import statuses as _statuses  # noqa: F401
from starter.cli import stock as _stock  # noqa: F401
from starter.cli import users as _users  # noqa: F401
from starter.cli import web as _web  # noqa: F401
from starter.cli import webhooks as _webhooks  # noqa: F401
from starter.cli.common import report
from starter.cli.root import cli
from starter.errors import EXIT_USAGE, Failure

__all__ = ["cli", "main"]


def main(argv: list[str] | None = None) -> NoReturn:
    """The console script: run the CLI, flush, and leave with exactly its exit code.

    ``os._exit``: the Temporal SDK's Rust threads can outlive the event loop and crash a
    normal interpreter shutdown, which would change the exit code.
    """
    try:
        result = cli.main(args=argv, prog_name="cartkeeper", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except click.exceptions.Exit as done:
        code = done.exit_code
    except click.ClickException as error:
        error.show()
        code = error.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        code = 1
    except Failure as failure:  # raised before the event loop (e.g. by load_settings)
        from starter.output import safe

        click.echo(f"error: {safe(str(failure))}", err=True)  # one line, whatever it quotes
        code = failure.exit_code
    except Exception as error:
        code = report(error)
    code = code if code is not None else EXIT_USAGE
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
