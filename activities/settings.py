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

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from workflows.contract import TASK_QUEUE, CartPolicy
from workflows.validation import policy_problems, valid_id

_POLICY_FIELDS = {f.name for f in dataclasses.fields(CartPolicy)}
#: the length of ``CARTKEEPER_METRICS_TOKEN``
MIN_METRICS_TOKEN, MAX_METRICS_TOKEN = 16, 512

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
    #: long polls for workflow tasks. A task on the task queue is a cart the worker does
    #: not hold: after a restart every cart's next task, each one a full replay. By default
    #: the SDK's poller autoscaling (Temporal's recommended setting, server 1.28 and newer):
    #: the worker starts with ``workflow_task_pollers`` polls and follows the server's
    #: hints about waiting tasks, between 2 and ``workflow_task_pollers_max``. Under
    #: ``make chaos`` (a SIGKILL every 10 s) the task queue's oldest task waited 0.4-1.3 s at
    #: most where 8 fixed polls let it wait 7-10 s (``bench/README.md``).
    #: ``workflow_task_poller_autoscaling=false``: at most ``workflow_task_pollers`` polls,
    #: of which ``nonsticky_poll_ratio`` on the task queue: at most max(1, polls x ratio)
    #: there, the rest (at least 1) on the sticky queue (the SDK's defaults, 5 polls and
    #: 0.2, leave one poll there: after a kill the worker took the waiting carts one at a
    #: time, 8 s at the median).
    workflow_task_poller_autoscaling: bool = True
    workflow_task_pollers: int = Field(default=8, ge=2, le=100)
    workflow_task_pollers_max: int = Field(default=32, ge=2, le=500)
    nonsticky_poll_ratio: float = Field(default=0.5, gt=0, le=1)
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

    @field_validator("workflow_task_pollers_max")
    @classmethod
    def _check_pollers_max(cls, value: int, info: ValidationInfo) -> int:
        initial = info.data.get("workflow_task_pollers")
        autoscaling = info.data.get("workflow_task_poller_autoscaling", True)
        if autoscaling and initial is not None and value < initial:
            raise ValueError(
                f"must be at least CARTKEEPER_WORKFLOW_TASK_POLLERS ({initial}), the polls"
                " a worker starts with"
            )
        return value

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
        # New carts alert the shop's admins once locked this long (``CartPolicy``'s own
        # default, 0, is what carts recorded before alerts existed replay with).
        merged = {
            "lock_alert_after_seconds": self.lock_alert_after_seconds,
            **self.policy,
            **self.shop_policies.get(shop_id, {}),
        }
        return make_policy(merged, f"the policy of shop {shop_id!r}")

    # ------------------------------------------------------------------ the web endpoint
    # (``starter.web``: recovery and unsubscribe links, health; ``cartkeeper web``, and
    # ``cartkeeper dev`` runs it too)

    #: where ``cartkeeper web`` (and ``cartkeeper dev``) listens
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8080, ge=1, le=65535)
    #: the web endpoint as customers reach it, without a trailing slash: e-mail links are
    #: ``{public_url}/r/<token>`` (recovery) and ``{public_url}/u/<token>`` (unsubscribe),
    #: so it must match where the app is served (behind a proxy: the proxy's https URL)
    public_url: str = "http://127.0.0.1:8080"
    #: the Temporal UI as admins reach it (the admin console links each cart's workflow
    #: there: ``{temporal_ui_url}/namespaces/<ns>/workflows/<id>``)
    temporal_ui_url: str = "http://localhost:8233"
    #: the bearer token ``/metrics`` asks for (``Authorization: Bearer <token>``,
    #: ``starter.web.metrics``); unset, ``/metrics`` is open to anyone who reaches it: keep
    #: it off the public network then (its labels name shops)
    metrics_token: SecretStr | None = None

    @field_validator("metrics_token")
    @classmethod
    def _check_metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            token = value.get_secret_value()
            if not MIN_METRICS_TOKEN <= len(token) <= MAX_METRICS_TOKEN or not all(
                "!" <= char <= "~" for char in token
            ):
                raise ValueError(
                    f"must be {MIN_METRICS_TOKEN} to {MAX_METRICS_TOKEN} printable ASCII"
                    " characters without spaces (e.g. `openssl rand -hex 32`)"
                )
        return value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        value = value.strip().rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.query or parts.fragment:
            raise ValueError("must have no query or fragment")
        return value

    # ------------------------------------------------------------------ payment webhooks
    # (``starter.web.webhooks``: ``POST /api/v1/webhooks/payments/{source}``)

    #: each payment gateway's Standard Webhooks signing secret, by the source name in the
    #: webhook's URL, e.g. ``CARTKEEPER_WEBHOOK_SECRETS='{"stripe": "whsec_..."}'``
    #: (``cartkeeper webhooks secret`` makes one). A source not named here is refused
    webhook_secrets: dict[str, SecretStr] = Field(default_factory=dict)

    @field_validator("webhook_secrets")
    @classmethod
    def _check_webhook_secrets(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for source, secret in value.items():
            if not valid_id(source):
                raise ValueError(f"source {source!r} must be 1-64 letters, digits, '.', '_' or '-'")
            problem = webhook_secret_problem(secret.get_secret_value())
            if problem:
                raise ValueError(f"source {source!r}: {problem}")
        return value

    # ------------------------------------------------------------------ reminders
    # (``activities.reminder_activities``)

    #: the domain part of reminders' Message-IDs (``<digest@mail_domain>``); unset: the
    #: domain of the campaign's sender address. A Message-ID is fixed when the reminder is
    #: first claimed in the ledger, so changing this never changes a retry's id
    mail_domain: str | None = Field(default=None, pattern=r"^[A-Za-z0-9.-]+$", max_length=253)

    # ------------------------------------------------------------------ admin alerts
    # (``activities.alerts``: the lock alert; ``activities.digest`` and
    # ``starter.schedules``: the daily digest on a Temporal Schedule per shop)

    #: the admins' e-mail addresses of each shop, e.g.
    #: ``CARTKEEPER_SHOP_ADMINS='{"demo": ["admin@example.com"]}'``. A shop without any
    #: gets no lock alert and no digest (the activities answer ``no_admins``)
    shop_admins: dict[str, list[str]] = Field(default_factory=dict)
    #: alert a shop's admins when a cart has been locked this long (seed 004: 30 minutes)
    lock_alert_after_seconds: int = Field(default=1800, ge=1, le=30 * 24 * 60 * 60)
    #: when the daily digest is sent, ``HH:MM`` in each shop's own time zone
    digest_local_time: str = "08:00"
    #: each shop's IANA time zone (``{"demo": "Europe/Berlin"}``), for the digest's time
    #: and its "yesterday"; a shop not named here is on UTC
    shop_time_zones: dict[str, str] = Field(default_factory=dict)
    #: the From address of admin alerts and digests
    alert_sender: str = "cartkeeper@localhost"

    # ------------------------------------------------------------------ order status e-mail
    # (``activities.order_activities``: ``send_order_status_mail``)

    #: each shop's orders department, e.g.
    #: ``CARTKEEPER_ORDER_DEPARTMENTS='{"demo": ["orders@shop.example"]}'``: it gets the
    #: e-mail of the statuses that notify the department. A shop not named here (or with
    #: an empty list) falls back to its ``shop_admins``; with neither, no such e-mail
    order_departments: dict[str, list[str]] = Field(default_factory=dict)

    # ------------------------------------------------------------------ not finished orders
    # (``activities.orders_query``)

    #: which carts the orders list shows as not finished orders (seed 000): any of
    #: ``no_return`` (locked: no result from the gateway), ``payment_failed`` (back at
    #: checkout after a failed or cancelled online payment), ``payment_step`` (at the
    #: checkout form or the gateway), e.g. ``CARTKEEPER_NOT_FINISHED_WHEN='["no_return",
    #: "payment_failed"]'``
    not_finished_when: list[str] = Field(default_factory=lambda: ["no_return"])
    #: per shop, instead: ``CARTKEEPER_SHOP_NOT_FINISHED_WHEN='{"demo": ["payment_step"]}'``
    shop_not_finished_when: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("not_finished_when")
    @classmethod
    def _check_not_finished_when(cls, value: list[str]) -> list[str]:
        return _checked_conditions(value)

    @field_validator("shop_not_finished_when")
    @classmethod
    def _check_shop_not_finished_when(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return {shop: _checked_conditions(conditions) for shop, conditions in value.items()}

    def not_finished_for(self, shop_id: str) -> tuple[str, ...]:
        """The conditions that make the shop's carts not finished orders."""
        return tuple(self.shop_not_finished_when.get(shop_id, self.not_finished_when))

    @field_validator("shop_admins", "order_departments")
    @classmethod
    def _check_shop_addresses(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return _checked_addresses(value)

    @field_validator("digest_local_time")
    @classmethod
    def _check_digest_local_time(cls, value: str) -> str:
        import re

        value = value.strip()
        found = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value)
        if found is None:
            raise ValueError(f"{value!r} is not a time HH:MM (00:00 to 23:59)")
        return f"{int(found.group(1)):02d}:{found.group(2)}"

    @field_validator("shop_time_zones")
    @classmethod
    def _check_shop_time_zones(cls, value: dict[str, str]) -> dict[str, str]:
        for shop, zone in value.items():
            if not known_time_zone(zone):
                raise ValueError(f"shop {shop!r}: {zone!r} is not an IANA time zone")
        return value

    @field_validator("alert_sender")
    @classmethod
    def _check_alert_sender(cls, value: str) -> str:
        value = value.strip()
        if not _plain_address(value):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value

    def admins_for(self, shop_id: str) -> list[str]:
        """The shop's admin addresses (none: no alerts, no digest)."""
        return list(self.shop_admins.get(shop_id, []))

    def department_for(self, shop_id: str) -> list[str]:
        """Where the shop's order status e-mails for its orders department go: its
        ``order_departments`` addresses, else its admins (none: no department e-mail)."""
        return list(self.order_departments.get(shop_id) or self.admins_for(shop_id))

    def time_zone_for(self, shop_id: str) -> str:
        """The shop's IANA time zone (``UTC`` unless ``shop_time_zones`` names one)."""
        return self.shop_time_zones.get(shop_id, "UTC")

    def digest_time(self) -> tuple[int, int]:
        """``digest_local_time`` as (hour, minute)."""
        hour, minute = self.digest_local_time.split(":")
        return int(hour), int(minute)


#: a Standard Webhooks secret: ``whsec_`` and the base64 of this many random bytes
WEBHOOK_SECRET_PREFIX = "whsec_"
WEBHOOK_SECRET_BYTES = (24, 64)


def webhook_secret_problem(secret: str) -> str | None:
    """What is wrong with a Standard Webhooks secret (``None``: usable): ``whsec_`` then
    base64 of 24 to 64 bytes, as the specification asks."""
    import base64
    import binascii

    if not secret.startswith(WEBHOOK_SECRET_PREFIX):
        return f"the secret must start with {WEBHOOK_SECRET_PREFIX!r}"
    encoded = secret.removeprefix(WEBHOOK_SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return f"the secret after {WEBHOOK_SECRET_PREFIX!r} must be base64"
    low, high = WEBHOOK_SECRET_BYTES
    if not low <= len(key) <= high:
        return f"the secret must hold {low} to {high} bytes, not {len(key)}"
    return None


def _checked_addresses(value: dict[str, list[str]]) -> dict[str, list[str]]:
    """Each shop's addresses checked (``_plain_address``), trimmed, each once, in order."""
    checked = {}
    for shop, addresses in value.items():
        cleaned = [address.strip() for address in addresses]
        for address in cleaned:
            if not _plain_address(address):
                raise ValueError(f"shop {shop!r}: {address!r} is not an e-mail address")
        checked[shop] = list(dict.fromkeys(cleaned))  # each once, in order
    return checked


def _checked_conditions(conditions: list[str]) -> list[str]:
    """Not finished conditions, known ones only, in their canonical order."""
    from activities.orders_query import NOT_FINISHED_CONDITIONS

    unknown = [c for c in conditions if c not in NOT_FINISHED_CONDITIONS]
    if unknown:
        raise ValueError(
            f"unknown condition(s) {unknown}: choose from {', '.join(NOT_FINISHED_CONDITIONS)}"
        )
    return [c for c in NOT_FINISHED_CONDITIONS if c in conditions]


def _plain_address(address: str) -> bool:
    """``local@domain``, nothing a header or an SMTP command could trip on."""
    local, at, domain = address.rpartition("@")
    return bool(
        at
        and local
        and domain
        and address.isprintable()
        and not any(char in address for char in ' <>,;"()[]\\')
    )


def known_time_zone(zone: str) -> bool:
    """Whether ``zone`` is an IANA time zone this machine knows (tzdata)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
