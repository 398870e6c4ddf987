"""Signed links in customer e-mail (``activities.links``)."""

from __future__ import annotations

import stat
import time
from datetime import timedelta
from pathlib import Path

import pytest

from activities.links import (
    LinkRefused,
    Links,
    RecoveryClaim,
    UnsubscribeClaim,
    secret_key,
)
from activities.settings import Settings

KEY = "k" * 40


def test_a_recovery_link_round_trips_and_is_url_safe() -> None:
    links = Links(KEY)
    claim = RecoveryClaim("demo", "cart/1 ü", "reminder-2")
    token = links.recovery_token(claim)
    assert all(char.isalnum() or char in "-_." for char in token)
    assert links.read_recovery(token) == claim


def test_changed_foreign_or_crossed_tokens_are_refused() -> None:
    links = Links(KEY)
    token = links.recovery_token(RecoveryClaim("demo", "cart-1", "r1"))
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for bad in (
        tampered,
        "",
        "not-a-token",
        Links("x" * 40).recovery_token(RecoveryClaim("demo", "cart-1", "r1")),
    ):
        with pytest.raises(LinkRefused) as refused:
            links.read_recovery(bad)
        assert refused.value.code == "link_invalid"
    # a recovery token is no unsubscribe token, and the other way round
    with pytest.raises(LinkRefused):
        links.read_unsubscribe(token)
    unsubscribe = links.unsubscribe_token(UnsubscribeClaim("demo", "Ann@Example.com "))
    with pytest.raises(LinkRefused):
        links.read_recovery(unsubscribe)
    assert links.read_unsubscribe(unsubscribe) == UnsubscribeClaim("demo", "ann@example.com")


def test_a_recovery_link_expires() -> None:
    links = Links(KEY)
    token = links.recovery_token(RecoveryClaim("demo", "cart-1", "r1"))
    time.sleep(1.1)
    with pytest.raises(LinkRefused) as expired:
        links.read_recovery(token, lifetime=timedelta(seconds=0))
    assert expired.value.code == "link_expired"
    assert links.read_recovery(token, lifetime=timedelta(days=1)).cart_id == "cart-1"


def test_the_key_comes_from_the_setting_or_is_made_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CARTKEEPER_SECRET_KEY", raising=False)
    settings = Settings(data_dir=tmp_path / "data")
    made = secret_key(settings)
    assert len(made) >= 32 and secret_key(settings) == made
    kept = tmp_path / "data" / "secret_key"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    monkeypatch.setenv("CARTKEEPER_SECRET_KEY", "s" * 32)
    assert secret_key(Settings(data_dir=tmp_path / "data")) == "s" * 32
    monkeypatch.setenv("CARTKEEPER_SECRET_KEY", "short")
    with pytest.raises(ValueError):
        Settings()
    with pytest.raises(ValueError):
        Links("short")


def test_an_unusable_key_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARTKEEPER_SECRET_KEY", raising=False)
    data = tmp_path / "data"
    data.mkdir()
    (data / "secret_key").write_text("")
    (data / f".secret_key.{12345}.tmp").write_text("left by a crash")
    with pytest.raises(ValueError, match="secret_key holds no usable key"):
        secret_key(Settings(data_dir=data))
    (data / "secret_key").unlink()
    assert len(secret_key(Settings(data_dir=data))) >= 32
