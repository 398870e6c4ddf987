"""``cartkeeper webhooks``: the signing secrets of payment gateways' webhooks
(``starter.web.webhooks``; Standard Webhooks)."""

from __future__ import annotations

import base64
import json
import secrets

import click

from starter.cli.common import CONTEXT_SETTINGS, echo
from starter.cli.root import cli

#: random bytes in a new secret (Standard Webhooks asks for 24 to 64)
SECRET_BYTES = 32


def new_secret() -> str:
    """A new Standard Webhooks secret: ``whsec_`` and the base64 of 32 random bytes."""
    from activities.settings import WEBHOOK_SECRET_PREFIX

    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


@cli.group(context_settings=CONTEXT_SETTINGS)
def webhooks() -> None:
    """Payment webhooks: gateways post results to /api/v1/webhooks/payments/SOURCE.

    Each SOURCE (a gateway) signs its calls with its own secret (Standard Webhooks). The
    web process knows them from $CARTKEEPER_WEBHOOK_SECRETS, a JSON object of SOURCE to
    secret: '{"stripe": "whsec_..."}'. An unknown source or a bad signature gets 401.
    """


@webhooks.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--source",
    metavar="SOURCE",
    help="Also print the CARTKEEPER_WEBHOOK_SECRETS entry for this gateway.",
)
def secret(source: str | None) -> None:
    """Make a new signing secret (whsec_...) to give to a gateway and to the web process.

    Nothing is stored: put the secret in $CARTKEEPER_WEBHOOK_SECRETS and restart the web
    process, and configure the same secret at the gateway.
    """
    from starter.errors import EXIT_USAGE, Failure
    from workflows.validation import valid_id

    if source is not None and not valid_id(source):
        raise Failure(
            "invalid_id",
            f"source {source!r} must be 1-64 letters, digits, '.', '_' or '-'",
            EXIT_USAGE,
        )
    value = new_secret()
    echo(value)
    if source is not None:
        echo(f"CARTKEEPER_WEBHOOK_SECRETS='{json.dumps({source: value})}'")
