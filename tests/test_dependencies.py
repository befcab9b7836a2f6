"""Every third-party module we import is declared, nothing declared goes unused, and the venv is the lock.

A fresh machine once got a mitmproxy that no longer brought `zstandard`, which we imported without declaring:
every command died. deptry reads the imports and pyproject.toml; the lock check makes sure the tests ran on
exactly what `make install` gives a user.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
DEPTRY = str(Path(sys.executable).parent / "deptry")


def deptry(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([DEPTRY, "--no-ansi", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_package_imports_exactly_what_it_declares():
    r = deptry("src", "addon")
    assert r.returncode == 0, r.stdout + r.stderr


def test_tests_and_benchmarks_import_only_declared_packages():
    # the test extra is imported by tests by design (DEP004); pytest plugins and CLI tools are never imported (DEP002)
    r = deptry("tests", "bench", "--ignore", "DEP002,DEP004", "-e", r".*/fixtures/.*", "-e", r"\.venv")
    assert r.returncode == 0, r.stdout + r.stderr


def test_deptry_catches_an_undeclared_import(tmp_path):
    # the check above can fail: the same project without brotli declared is refused
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "addon", tmp_path / "addon", ignore=shutil.ignore_patterns("__pycache__"))
    pyproject = (ROOT / "pyproject.toml").read_text()
    (tmp_path / "pyproject.toml").write_text(re.sub(r'\n\s*"brotli[^"]*",', "", pyproject))
    r = deptry("src", "addon", cwd=tmp_path)
    assert r.returncode != 0
    assert "brotli" in r.stdout + r.stderr


def _locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==([^ ;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$", line)
        if m and (m.group(3) is None or Marker(m.group(3)).evaluate()):
            pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def test_the_venv_is_exactly_the_lock():
    pins = _locked()
    assert "mitmproxy" in pins and "brotli" in pins
    wrong = {}
    for name, version in pins.items():
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            have = None
        if have != version:
            wrong[name] = (version, have)
    assert not wrong, f"installed packages differ from requirements.lock (run `make install`): {wrong}"


def test_every_declared_dependency_is_locked():
    pins = _locked()
    for req in metadata.requires("consentwatch") or []:
        name = canonicalize_name(re.split(r"[ <>=!~;\[]", req, maxsplit=1)[0])
        marker = req.split(";", 1)[1] if ";" in req else None
        if marker and not Marker(marker).evaluate({"extra": "test"}):
            continue
        assert name in pins, f"{name} is declared but not in requirements.lock (run `make lock`)"
