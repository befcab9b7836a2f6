"""What `run`'s banner tells the user to type next: `consentwatch` when that is what PATH finds, else the path
it was started by (a clone's `.venv/bin/consentwatch` under `make run`, where nothing is on PATH)."""

from __future__ import annotations

import sys

from consentwatch.run import own_command


def _exe(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_a_clone_gets_the_path_it_was_started_by(tmp_path, monkeypatch):
    exe = _exe(tmp_path / "clone" / ".venv" / "bin" / "consentwatch")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(sys, "argv", [".venv/bin/consentwatch", "run"])
    assert own_command() == ".venv/bin/consentwatch"
    monkeypatch.setattr(sys, "argv", [str(exe), "run"])
    assert own_command() == str(exe)


def test_on_path_it_is_consentwatch(tmp_path, monkeypatch):
    exe = _exe(tmp_path / "bin" / "consentwatch")
    monkeypatch.setenv("PATH", str(exe.parent))
    monkeypatch.setattr(sys, "argv", [str(exe), "run"])
    assert own_command() == "consentwatch"
    # another consentwatch first on PATH: the one that runs is named by its path
    other = _exe(tmp_path / "other" / "consentwatch")
    monkeypatch.setattr(sys, "argv", [str(other), "run"])
    assert own_command() == str(other)


def test_python_m_gives_the_installed_name(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/somewhere/consentwatch/cli/__main__.py", "run"])
    assert own_command() == "consentwatch"
    monkeypatch.setattr(sys, "argv", [])
    assert own_command() == "consentwatch"
