"""How the command line reports failures: one line, and an exit code per kind.

Exit codes: 0 success, 1 the request was refused (any ``CartkeeperError`` but those
below), 2 usage or configuration error (click, settings), 3 the cart does not exist,
4 Temporal, a worker or the database is unreachable, or a request was queued but no worker
applied it in time (``update_pending``: it may still be applied).
"""

from __future__ import annotations

from dataclasses import dataclass

from workflows.contract import ErrorCode

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_UNAVAILABLE = 4

#: not ``ErrorCode``s (the workflow never sees them): the CLI's own
DATABASE_UNAVAILABLE = "database_unavailable"
NO_WORKER = "no_worker"


@dataclass
class Failure(Exception):
    """A failure as the CLI reports it: ``error: <code>: <message>``, exit ``exit_code``."""

    code: str
    message: str
    exit_code: int = EXIT_REFUSED

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def exit_code_for(code: ErrorCode | str) -> int:
    if code == ErrorCode.CART_NOT_FOUND:
        return EXIT_NOT_FOUND
    if code in (
        ErrorCode.TEMPORAL_UNAVAILABLE,
        ErrorCode.UPDATE_PENDING,
        ErrorCode.STATUSES_UNAVAILABLE,
        DATABASE_UNAVAILABLE,
        NO_WORKER,
    ):
        return EXIT_UNAVAILABLE
    return EXIT_REFUSED


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= 300 else line[:297] + "..."


def classify(error: BaseException) -> Failure | None:
    """The ``Failure`` for an error we know how to explain, else ``None`` (a bug)."""
    from sqlalchemy.exc import SQLAlchemyError

    from starter.client import CartkeeperError

    if isinstance(error, Failure):
        return error
    if isinstance(error, CartkeeperError):
        return Failure(str(error.code), error.message, exit_code_for(error.code))
    if isinstance(error, RuntimeError) and str(error).startswith("Failed client connect"):
        detail = str(error).removeprefix("Failed client connect:").strip()
        return Failure(
            str(ErrorCode.TEMPORAL_UNAVAILABLE),
            f"cannot connect to Temporal ({_first_line(detail)})",
            EXIT_UNAVAILABLE,
        )
    if isinstance(error, SQLAlchemyError | OSError):
        message = _first_line(str(getattr(error, "orig", None) or error))
        if "no such table" in message or ("relation" in message and "does not exist" in message):
            message = (
                "the read model has no tables yet: start the worker once "
                f"(`cartkeeper dev` or `cartkeeper worker`) ({message})"
            )
        else:
            message = f"cannot use the read model's database ({message or type(error).__name__})"
        return Failure(DATABASE_UNAVAILABLE, message, EXIT_UNAVAILABLE)
    return None
