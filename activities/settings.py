"""Configuration from the environment (pydantic-settings); never imported by workflows.

Temporal's own connection (address, namespace, TLS, API key) comes from the SDK's standard
environment configuration (``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``,
``TEMPORAL_TLS*``, ``TEMPORAL_PROFILE`` and the config file); see ``starter.connect``.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from workflows.contract import TASK_QUEUE, CartPolicy

_POLICY_FIELDS = {f.name for f in dataclasses.fields(CartPolicy)}


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
    log_level: str = "INFO"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'cartkeeper.db').resolve()}"

    def policy_for(self, shop_id: str) -> CartPolicy:
        """The shop's policy: defaults, then ``policy``, then the shop's own overrides."""
        merged = {**self.policy, **self.shop_policies.get(shop_id, {})}
        unknown = set(merged) - _POLICY_FIELDS
        if unknown:
            raise ValueError(f"unknown policy settings: {', '.join(sorted(unknown))}")
        return dataclasses.replace(CartPolicy(), **merged)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
