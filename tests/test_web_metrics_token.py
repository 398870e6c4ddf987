"""``/metrics`` behind ``CARTKEEPER_METRICS_TOKEN`` (``starter.web.metrics.scraper``): set,
a scrape without ``Authorization: Bearer <token>`` (none, another token, another scheme)
is 401 ``unauthenticated`` and never reaches the read model; the right token scrapes.
Unset, ``/metrics`` stays open. A token too short or holding spaces is refused when the
settings are read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from activities.settings import Settings
from starter.web.app import create_app
from starter.web.metrics import token_matches
from tests.test_web_metrics import client_of

TOKEN = "metrics-token-" + "t" * 30


class CountingSessions:
    """The read model, counting how often it is opened."""

    def __init__(self, sessions: Any) -> None:
        self.sessions = sessions
        self.opened = 0

    def __call__(self) -> Any:
        self.opened += 1
        return self.sessions()


def settings_of(tmp_path: Path, token: str | None) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        secret_key=SecretStr("m" * 40),
        metrics_token=SecretStr(token) if token is not None else None,
    )


def app_of(tmp_path: Path, sessions: Any, token: str | None) -> Any:
    async def no_temporal() -> Any:
        raise ConnectionRefusedError("no Temporal in the metrics tests")

    return create_app(
        settings_of(tmp_path, token), temporal_client_factory=no_temporal, session_factory=sessions
    )


async def test_with_a_token_only_its_bearer_scrapes(tmp_path: Path, session_factory: Any) -> None:
    sessions = CountingSessions(session_factory)
    async with client_of(app_of(tmp_path, sessions, TOKEN)) as client:
        for headers in (
            {},
            {"Authorization": "Bearer"},
            {"Authorization": "Bearer wrong-token-of-some-length"},
            {"Authorization": f"Bearer {TOKEN}x"},
            {"Authorization": f"Bearer {TOKEN[:-1]}"},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": TOKEN},
            {"X-Api-Key": TOKEN},
        ):
            refused = await client.get("/metrics", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.json()["error"]["code"] == "unauthenticated"
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert TOKEN not in refused.text
        assert (await client.get(f"/metrics?token={TOKEN}")).status_code == 401
        assert sessions.opened == 0  # refused before the read model is asked
        scraped = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert scraped.status_code == 200, scraped.text
        assert "cartkeeper_read_model_up 1.0" in scraped.text
        assert 'status="4xx"' in scraped.text  # the refused scrapes were counted
        lower = await client.get("/metrics", headers={"Authorization": f"bearer {TOKEN}"})
        assert lower.status_code == 200  # the scheme is case-insensitive (RFC 7235)
        # the rest of the app is not behind the token
        assert (await client.get("/healthz")).status_code == 200


async def test_without_a_token_metrics_stay_open(tmp_path: Path, session_factory: Any) -> None:
    async with client_of(app_of(tmp_path, session_factory, None)) as client:
        scraped = await client.get("/metrics")
        assert scraped.status_code == 200, scraped.text
        assert "cartkeeper_read_model_up 1.0" in scraped.text
        anything = await client.get("/metrics", headers={"Authorization": "Bearer whatever"})
        assert anything.status_code == 200


def test_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARTKEEPER_METRICS_TOKEN", TOKEN)
    from_env = Settings()
    assert from_env.metrics_token is not None
    assert from_env.metrics_token.get_secret_value() == TOKEN
    assert TOKEN not in repr(from_env)
    monkeypatch.delenv("CARTKEEPER_METRICS_TOKEN")
    assert Settings().metrics_token is None
    for bad in ("", "short", "with a space in it ok", "x" * 513, "tökentökentökentöken"):
        with pytest.raises(ValidationError, match="metrics_token"):
            settings_of(tmp_path, bad)


def test_tokens_are_compared_whole() -> None:
    assert token_matches(TOKEN, TOKEN)
    assert not token_matches(TOKEN[:-1], TOKEN)
    assert not token_matches(TOKEN + "x", TOKEN)
    assert not token_matches("", TOKEN)
    assert not token_matches("é" * 20, TOKEN)
