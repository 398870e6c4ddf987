"""``cartkeeper users``: the admin console's users (add, passwd, remove, list), in the
read-model database (``starter.web.admin_users``; no Temporal needed)."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

import click

from starter.cli.common import (
    CONTEXT_SETTINGS,
    echo,
    json_option,
    load_settings,
    read_model,
    report,
    run,
)
from starter.cli.root import cli
from starter.errors import EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_USAGE, Failure

if TYPE_CHECKING:
    from activities.db import SessionFactory
    from starter.web.admin_users import Account

ROLES = ["admin", "viewer"]

password_stdin_option = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input (for scripts).",
)


@cli.group(context_settings=CONTEXT_SETTINGS)
def users() -> None:
    """Users of the admin console (/admin): admins act, viewers read.

    Passwords are stored as argon2 hashes only. Changing a password or removing a user
    ends their sessions at once. Every action an admin takes in the console is recorded
    in the cart's journal under their user name.
    """


def _run(work: Callable[[SessionFactory], Awaitable[None]]) -> None:
    """Run ``work`` on the read model; a refusal is one error line (exit 1;
    ``user_not_found`` exits 3)."""
    from starter.web.admin_users import UserRefused

    settings = load_settings()

    async def main() -> int:
        engine, sessions = read_model(settings)
        try:
            await work(sessions)
        except UserRefused as refused:
            code = EXIT_NOT_FOUND if refused.code == "user_not_found" else EXIT_REFUSED
            raise Failure(refused.code, refused.message, code) from None
        finally:
            await engine.dispose()
        return 0

    run(click.get_current_context(), main)


def read_password(from_stdin: bool) -> str:
    """The new password: the first line of standard input, or typed twice at a prompt
    (hidden)."""
    if from_stdin:
        try:
            line = sys.stdin.readline()
        except UnicodeDecodeError:  # (a UTF-8 locale reads strictly; UTF-8 mode does not)
            raise Failure(
                "invalid_password", "the password on standard input is not UTF-8", EXIT_REFUSED
            ) from None
        password = line.removesuffix("\n").removesuffix("\r")
        if not password:
            raise Failure("invalid_password", "no password on standard input", EXIT_USAGE)
        return password
    value: str = click.prompt(
        "Password", hide_input=True, confirmation_prompt="Repeat the password", err=True
    )
    return value


def _json(account: Account) -> dict[str, Any]:
    from starter.output import jsonable

    data: dict[str, Any] = jsonable(account)
    return data


def _check(username: str) -> str:
    """The user name as stored, checked before a password is asked for (else one error
    line, exit 1)."""
    from starter.web.admin_users import UserRefused, check_username

    try:
        return check_username(username)
    except UserRefused as refused:
        _fail(Failure(refused.code, refused.message, EXIT_REFUSED))


def _password(from_stdin: bool) -> str:
    try:
        return read_password(from_stdin)
    except Failure as failure:
        _fail(failure)


def _fail(failure: Failure) -> NoReturn:
    ctx = click.get_current_context()
    ctx.exit(report(failure))
    raise AssertionError("unreachable")  # pragma: no cover


@users.command(context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(ROLES),
    default="admin",
    show_default=True,
    help="admin acts, viewer reads.",
)
@password_stdin_option
@json_option
def add(name: str, role: str, password_stdin: bool, as_json: bool) -> None:
    """Add a user NAME (letters, digits, '.', '_', '-', '@'; kept in lower case).

    The password (8 to 1024 characters) is asked for twice, or read from standard input
    with --password-stdin.

    \b
    Examples:
      cartkeeper users add ann
      cartkeeper users add vic --role viewer
      printf '%s\\n' "$PASSWORD" | cartkeeper users add ci --password-stdin
    """
    from starter.output import dumps, safe
    from starter.web.admin_users import add_user

    username = _check(name)
    password = _password(password_stdin)

    async def work(sessions: SessionFactory) -> None:
        account = await add_user(sessions, username, password, role=role, now=datetime.now(UTC))
        echo(
            dumps(_json(account))
            if as_json
            else safe(f"user {account.username} added ({account.role})")
        )

    _run(work)


@users.command(context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@password_stdin_option
def passwd(name: str, password_stdin: bool) -> None:
    """Set user NAME's password; their sessions end.

    \b
    Examples:
      cartkeeper users passwd ann
    """
    from starter.output import safe
    from starter.web.admin_users import change_password

    username = _check(name)
    password = _password(password_stdin)

    async def work(sessions: SessionFactory) -> None:
        account = await change_password(sessions, username, password, now=datetime.now(UTC))
        echo(safe(f"password of {account.username} changed; their sessions have ended"))

    _run(work)


@users.command(context_settings=CONTEXT_SETTINGS)
@click.argument("name")
def remove(name: str) -> None:
    """Remove user NAME; their sessions end. An unknown user exits 3; the only admin is
    never removed (last_admin: add another admin first).

    The carts' journals keep the name of what they did.
    """
    from starter.output import safe
    from starter.web.admin_users import remove_user

    username = _check(name)

    async def work(sessions: SessionFactory) -> None:
        await remove_user(sessions, username)
        echo(safe(f"user {username} removed"))

    _run(work)


@users.command("list", context_settings=CONTEXT_SETTINGS)
@json_option
def list_command(as_json: bool) -> None:
    """List the users with their roles (never their passwords)."""
    from starter.output import dumps, format_time, safe, table
    from starter.web.admin_users import list_users

    async def work(sessions: SessionFactory) -> None:
        found = await list_users(sessions)
        if as_json:
            echo(dumps([_json(account) for account in found]))
            return
        if not found:
            echo("no users: add one with `cartkeeper users add NAME`")
            return
        rows = [
            [a.username, a.role, format_time(a.created_at), format_time(a.updated_at)]
            for a in found
        ]
        echo(table(["USER", "ROLE", "CREATED (UTC)", "CHANGED (UTC)"], rows))
        echo(safe(f"{len(found)} user{'s' if len(found) != 1 else ''}"))

    _run(work)
