"""Configuration from the environment (pydantic-settings); never imported by workflows.

Temporal's own connection (address, namespace, TLS, API key) comes from the SDK's standard
environment configuration (``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``,
``TEMPORAL_TLS*``, ``TEMPORAL_PROFILE`` and the config file); see ``starter.connect``.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from workflows.contract import TASK_QUEUE, CartPolicy
from workflows.validation import policy_problems

_POLICY_FIELDS = {f.name for f in dataclasses.fields(CartPolicy)}

#: the environment variable of each setting (for error messages)
ENV_NAMES = {
    "database_url": "DATABASE_URL",
}


def env_name(field: str) -> str:
    return ENV_NAMES.get(field, f"CARTKEEPER_{field.upper()}")


def make_policy(overrides: dict[str, Any], where: str) -> CartPolicy:
    """A ``CartPolicy`` from JSON overrides, refused with a clear message if unusable."""
    if not isinstance(overrides, dict):
        raise ValueError(f"{where} must be a JSON object of policy fields")
    unknown = sorted(set(overrides) - _POLICY_FIELDS)
    if unknown:
        raise ValueError(
            f"{where}: unknown policy field(s) {', '.join(unknown)}; known:"
            f" {', '.join(sorted(_POLICY_FIELDS))}"
        )
    values = dict(overrides)
    if isinstance(values.get("projection_interval_seconds"), int) and not isinstance(
        values.get("projection_interval_seconds"), bool
    ):
        values["projection_interval_seconds"] = float(values["projection_interval_seconds"])
    policy = dataclasses.replace(CartPolicy(), **values)
    problems = policy_problems(policy)
    if problems:
        raise ValueError(f"{where}: {'; '.join(problems)}")
    return policy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CARTKEEPER_", extra="ignore")

    #: where the SQLite read model and the embedded Temporal server keep their files
    data_dir: Path = Path("data")
    #: SQLAlchemy async URL; default: a SQLite file in ``data_dir``
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "CARTKEEPER_DATABASE_URL")
    )
    task_queue: str = TASK_QUEUE
    default_shop: str = "demo"
    #: policy for every shop (JSON object of ``CartPolicy`` fields), e.g.
    #: ``CARTKEEPER_POLICY='{"abandon_after_seconds": 900}'``
    policy: dict[str, Any] = Field(default_factory=dict)
    #: per-shop overrides on top of ``policy``: ``{"shop-id": {"lock_after_seconds": 600}}``
    shop_policies: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: worker tuning
    max_cached_workflows: int = 1_000
    max_concurrent_activities: int = 100
    #: workflow tasks a worker takes at once (default: the SDK's)
    max_concurrent_workflow_tasks: int | None = None
    #: how long a cart's task waits on its last worker's sticky queue before any worker
    #: may take it (the SDK's default is 10 s). With ``starter.client.TASK_TIMEOUT`` it
    #: bounds how late a cart's timer fires when the worker that should fire it is killed:
    #: under ``make chaos`` 3 s gave the lock timer a median lateness of 3.1 s, 1 s gives
    #: 0.3-1.2 s. A busy worker that leaves a task waiting longer sends it to the task
    #: queue, where it costs a full replay (see ``bench/README.md``).
    sticky_timeout_seconds: float = Field(default=1.0, ge=0.1, le=60)
    log_level: str = "INFO"
    #: outgoing mail: an SMTP relay (default: the local mail catcher of ``cartkeeper dev``)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    #: ``none`` (plain), ``starttls`` (upgrade after connecting, usually port 587) or
    #: ``tls`` (implicit TLS, usually port 465)
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    #: a CA bundle to trust for the relay's certificate (default: the system's)
    smtp_ca_file: Path | None = None
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    #: signs the links in customer e-mail (recovery, unsubscribe). Every worker and web
    #: process of a deployment must share it; unset, one is made and kept in ``data_dir``
    #: (fine for one machine, see ``activities.links``)
    secret_key: SecretStr | None = Field(default=None, min_length=32)
    #: run a worker with a SQLite read model against a Temporal server on another host
    #: (one worker only: see ``worker.check_deployment``)
    allow_sqlite_with_remote_temporal: bool = False

    @property
    def mail_dir(self) -> Path:
        """Where the local mail catcher keeps what it receives."""
        return self.data_dir / "mail"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'cartkeeper.db').resolve()}"

    @field_validator("policy")
    @classmethod
    def _check_policy(cls, value: dict[str, Any]) -> dict[str, Any]:
        make_policy(value, "the policy")
        return value

    @field_validator("shop_policies")
    @classmethod
    def _check_shop_policies(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for shop, overrides in value.items():
            make_policy(overrides, f"shop {shop!r}")
        return value

    def policy_for(self, shop_id: str) -> CartPolicy:
        """The shop's policy: defaults, then ``policy``, then the shop's own overrides."""
        merged = {**self.policy, **self.shop_policies.get(shop_id, {})}
        return make_policy(merged, f"the policy of shop {shop_id!r}")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
