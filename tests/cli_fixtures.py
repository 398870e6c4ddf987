"""The CLI run in-process on a scratch read model (click's ``CliRunner``), and the checks
of its two kinds of answer: output on stdout, or one ``error: <code>: ...`` line."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner, Result
from pydantic import SecretStr

from activities.db import make_engine, make_session_factory
from activities.settings import Settings
from starter.cli import cli
from tests.conftest_db import ScratchDatabase

Cartkeeper = Callable[..., Result]


def in_process_cli(
    db: ScratchDatabase,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    modules: Sequence[ModuleType],
    *,
    shop: str,
    prefix: Sequence[str] = (),
) -> Cartkeeper:
    """``cartkeeper [prefix] ARGS`` on ``db`` (the commands run their own event loop, so
    the tests that use it are not async). ``modules``: the command modules whose
    ``read_model`` must open the test's own PostgreSQL schema (``DATABASE_URL`` names
    none)."""
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=db.url,
        default_shop=shop,
        secret_key=SecretStr("s" * 40),
    )
    monkeypatch.setattr("activities.settings.get_settings", lambda: settings)
    if db.schema is not None:
        schema = db.schema

        def read_model(_settings: Settings) -> tuple[Any, Any]:
            engine = make_engine(db.url, schema=schema)
            return engine, make_session_factory(engine)

        for module in modules:
            monkeypatch.setattr(module, "read_model", read_model)

    def run(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, [*prefix, *args], input=input, catch_exceptions=False)

    return run


def ok(result: Result) -> str:
    """The command succeeded and wrote nothing on stderr: its stdout."""
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert result.stderr == ""
    return result.stdout


def failed(result: Result, exit_code: int, code: str) -> str:
    """The command failed with ``exit_code`` and one ``error: <code>: ...`` line (nothing
    on stdout): that line."""
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {code}: "), result.stderr
    assert result.stdout == ""
    return lines[0]
