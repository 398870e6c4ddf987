"""How the CLI names itself in the commands it suggests (``prog_name``): ``cartkeeper``
when that is what the PATH finds, the venv's script relative to the working directory
below it, and its whole path from anywhere else (not ``../../work/.venv/bin/...``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from starter.cli.common import prog_name


def test_the_name_the_user_can_type_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "repo" / ".venv" / "bin" / "cartkeeper"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(sys, "argv", [str(script), "dev"])

    monkeypatch.chdir(tmp_path / "repo")
    assert prog_name() == ".venv/bin/cartkeeper"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert prog_name() == str(script)

    monkeypatch.setenv("PATH", str(script.parent))
    assert prog_name() == "cartkeeper"
    monkeypatch.setattr(sys, "argv", ["python", "-m", "starter.cli"])
    assert prog_name() == "cartkeeper"
