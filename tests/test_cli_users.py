"""``cartkeeper users add|passwd|remove|list`` in-process on a scratch read model (SQLite
and PostgreSQL): what they print, their exit codes, and the store they leave."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import starter.cli.users as cli_users
from starter.web import admin_users
from tests.cli_fixtures import Cartkeeper, failed, in_process_cli, ok
from tests.conftest_db import ScratchDatabase, scratch_database

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
PASSWORD = "correct horse battery"


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ScratchDatabase]:
    async with scratch_database(request.param, tmp_path) as database:
        yield database


@pytest.fixture
def cartkeeper(db: ScratchDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cartkeeper:
    return in_process_cli(db, tmp_path, monkeypatch, [cli_users], shop="demo", prefix=["users"])


def stored(db: ScratchDatabase, call: Any) -> Any:
    """Run a store call on a fresh engine, on this call's own loop (from sync tests)."""
    from activities.db import make_engine, make_session_factory

    async def go() -> Any:
        engine = make_engine(db.url, schema=db.schema)
        try:
            return await call(make_session_factory(engine))
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_add_list_passwd_remove(cartkeeper: Cartkeeper, db: ScratchDatabase) -> None:
    typed = f"{PASSWORD}\n{PASSWORD}\n"
    prompted = cartkeeper("add", "Ann", input=typed)
    assert prompted.exit_code == 0, prompted.stderr
    assert prompted.stdout.strip() == "user ann added (admin)"  # the prompts go to stderr
    assert "Password" in prompted.stderr and "Repeat the password" in prompted.stderr
    assert PASSWORD not in prompted.stderr + prompted.stdout
    added = json.loads(
        ok(
            cartkeeper(
                "add",
                "vic",
                "--role",
                "viewer",
                "--password-stdin",
                "--json",
                input=PASSWORD + "\n",
            )
        )
    )
    assert added["username"] == "vic" and added["role"] == "viewer" and "password" not in str(added)
    listed = json.loads(ok(cartkeeper("list", "--json")))
    assert [(u["username"], u["role"]) for u in listed] == [("ann", "admin"), ("vic", "viewer")]
    epoch = listed[0]["session_epoch"]
    text = ok(cartkeeper("list"))
    assert "ann" in text and "viewer" in text and "2 users" in text
    assert stored(db, lambda s: admin_users.verify_password(s, "ann", PASSWORD)) is not None

    changed = ok(cartkeeper("passwd", "ann", "--password-stdin", input="a new passphrase\n"))
    assert "sessions have ended" in changed
    ann = stored(db, lambda s: admin_users.get_user(s, "ann"))
    assert ann.session_epoch == epoch + 1
    assert stored(db, lambda s: admin_users.verify_password(s, "ann", PASSWORD)) is None
    assert (
        stored(db, lambda s: admin_users.verify_password(s, "ann", "a new passphrase")) is not None
    )

    last = cartkeeper("remove", "ann")  # the only admin: the console would have nobody
    assert last.exit_code != 0 and "last_admin" in last.stderr, last.stderr
    ok(cartkeeper("add", "bea", "--password-stdin", input=PASSWORD + "\n"))
    assert ok(cartkeeper("remove", "ann")).strip() == "user ann removed"
    assert [u["username"] for u in json.loads(ok(cartkeeper("list", "--json")))] == ["bea", "vic"]


def test_refusals_exit_with_their_codes(cartkeeper: Cartkeeper, db: ScratchDatabase) -> None:
    ok(cartkeeper("add", "ann", "--password-stdin", input=PASSWORD + "\n"))
    failed(cartkeeper("add", "ANN", "--password-stdin", input=PASSWORD + "\n"), 1, "user_exists")
    failed(
        cartkeeper("add", "bad name", "--password-stdin", input=PASSWORD + "\n"),
        1,
        "invalid_username",
    )
    failed(cartkeeper("add", "bob", "--password-stdin", input="short\n"), 1, "invalid_password")
    failed(cartkeeper("add", "bob", "--password-stdin", input=""), 2, "invalid_password")
    failed(
        cartkeeper("passwd", "bob", "--password-stdin", input=PASSWORD + "\n"), 3, "user_not_found"
    )
    failed(cartkeeper("remove", "bob"), 3, "user_not_found")
    bad_role = cartkeeper("add", "bob", "--role", "root", "--password-stdin", input=PASSWORD + "\n")
    assert bad_role.exit_code == 2
    assert [u.username for u in stored(db, admin_users.list_users)] == ["ann"]


def test_a_password_with_a_lone_surrogate_is_invalid_password(
    cartkeeper: Cartkeeper, db: ScratchDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A byte that is not UTF-8 on standard input or at the prompt is read as a lone
    surrogate (Python's UTF-8 mode, a C locale): no UTF-8 form to hash. Refused
    ``invalid_password`` (exit 1), not an ``internal`` UnicodeEncodeError."""
    ok(cartkeeper("add", "ann", "--password-stdin", input=PASSWORD + "\n"))
    monkeypatch.setattr(cli_users, "read_password", lambda _stdin: "a long pass\udcffphrase")
    failed(cartkeeper("add", "bob", "--password-stdin"), 1, "invalid_password")
    failed(cartkeeper("passwd", "ann", "--password-stdin"), 1, "invalid_password")
    assert [u.username for u in stored(db, admin_users.list_users)] == ["ann"]
    assert stored(db, lambda s: admin_users.verify_password(s, "ann", PASSWORD)) is not None


@pytest.mark.parametrize(
    "locale_env",
    [{"PYTHONUTF8": "1"}, {"PYTHONUTF8": "0", "PYTHONIOENCODING": "utf-8:strict"}],
    ids=["utf8-mode", "strict-utf8"],
)
def test_a_byte_that_is_not_utf8_on_standard_input(
    db: ScratchDatabase, tmp_path: Path, locale_env: dict[str, str]
) -> None:
    """The same from a real process: in UTF-8 mode (``surrogateescape`` on stdin, a lone
    surrogate) and reading strictly (a UTF-8 locale: the line cannot be read)."""
    if db.backend != "sqlite":
        pytest.skip("the process opens the read model by its URL: SQLite's file")
    env = {
        **os.environ,
        **locale_env,
        "CARTKEEPER_DATABASE_URL": db.url,
        "CARTKEEPER_DATA_DIR": str(tmp_path / "data"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "starter.cli", "users", "add", "bob", "--password-stdin"],
        input=b"a long pass\xffphrase\n",
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.decode().startswith("error: invalid_password: "), done.stderr
    assert stored(db, admin_users.list_users) == []


def test_the_prompt_asks_twice_and_refuses_a_mismatch(
    cartkeeper: Cartkeeper, db: ScratchDatabase
) -> None:
    mismatch = cartkeeper("add", "ann", input=f"{PASSWORD}\nsomething else\n")
    assert mismatch.exit_code != 0
    assert "do not match" in mismatch.stderr + mismatch.stdout
    assert stored(db, admin_users.list_users) == []


def test_list_without_users_says_how_to_add_one(cartkeeper: Cartkeeper) -> None:
    assert "cartkeeper users add NAME" in ok(cartkeeper("list"))
    assert json.loads(ok(cartkeeper("list", "--json"))) == []
