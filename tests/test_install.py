"""Installed, not only cloned (issue 15 point 8): a wheel built from the repository installs a working `consentwatch`
that carries the browser extension and the demo pages and says where the extension is; the clone still finds its
own extension/; autostart writes a systemd user unit whose command really starts consentwatch."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from conftest import missing_prerequisite
from live_support import free_port, http_request

ROOT = Path(__file__).resolve().parents[1]
BROWSER_FILES = {".js", ".html", ".css", ".png", ".svg"}


def cli(*args: str, env: dict | None = None, exe: list[str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*(exe or [sys.executable, "-m", "consentwatch.cli"]), *args], capture_output=True,
                          text=True, timeout=180, env=env or os.environ.copy())


def extension_files(root: Path) -> set[str]:
    """What the browser loads: the manifest and the files of the kinds above, never tooling or node_modules."""
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and "node_modules" not in p.relative_to(root).parts
            and (p.name == "manifest.json" or p.suffix in BROWSER_FILES)}


def test_clone_finds_its_own_extension():
    r = cli("extension-path")
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()) == ROOT / "extension" and (ROOT / "extension" / "manifest.json").is_file()


@pytest.mark.slow
def test_wheel_installs_a_working_consentwatch_with_the_extension(tmp_path):
    # build from a copy: the repository itself gets no build/ or egg-info from the test
    src = tmp_path / "src-copy"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "node_modules", "build", "*.egg-info",
                                                             "__pycache__", "artifacts", ".pytest_cache",
                                                             ".hypothesis", "bench"))
    (src / "extension" / "node_modules" / "junk").mkdir(parents=True)  # as after `make browser`: never shipped
    (src / "extension" / "node_modules" / "junk" / "index.js").write_text("// tooling\n")
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(src)],
                           capture_output=True, text=True, timeout=300)
    if built.returncode != 0 and "No matching distribution found for setuptools" in built.stderr:
        missing_prerequisite("setuptools cannot be fetched to build the wheel")
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("consentwatch-*.whl")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    target = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 capture_output=True, text=True, check=True).stdout.strip())
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                                "-q", "--no-deps", "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-2000:]
    # the dependencies come from the test venv (a plain path entry: its editable consentwatch is not on it)
    (target / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    exe = [str(venv / "bin" / "consentwatch")]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["HOME"] = str(tmp_path / "home")

    where = cli("extension-path", exe=exe, env=env)
    assert where.returncode == 0, where.stderr
    ext = Path(where.stdout.strip())
    assert ext == target / "consentwatch" / "extension", ext
    assert extension_files(ext) == extension_files(ROOT / "extension") and "manifest.json" in extension_files(ext)
    assert json.loads((ext / "manifest.json").read_text()) == json.loads((ROOT / "extension" / "manifest.json").read_text())
    assert not (ext / "node_modules").exists() and not (ext / "package.json").exists()

    assert cli("--version", exe=exe, env=env).stdout.startswith("consentwatch ")
    assert "linkedin" in cli("demo", "--list", exe=exe, env=env).stdout.split()  # the demo pages are in it
    assert cli("rules", "list", "--data-dir", str(tmp_path / "d"), exe=exe, env=env).returncode == 0
    smoke = subprocess.run([str(venv / "bin" / "python"), "-m", "consentwatch.smoke"], capture_output=True,
                           text=True, env=env, timeout=120)
    assert smoke.returncode == 0, smoke.stderr
    # it is the installed copy that ran, not the repository's
    origin = subprocess.run([str(venv / "bin" / "python"), "-c", "import consentwatch; print(consentwatch.__file__)"],
                            capture_output=True, text=True, env=env, check=True).stdout.strip()
    assert Path(origin).is_relative_to(target)


@pytest.mark.slow
def test_autostart_unit_runs_consentwatch(tmp_path):
    config = tmp_path / "config"
    env = {**os.environ, "XDG_CONFIG_HOME": str(config)}
    data = tmp_path / "data dir with space"
    proxy, api = free_port(), free_port()
    r = cli("autostart", "--enable", "--no-start", "--data-dir", str(data), "--region", "de",
            "--proxy-port", str(proxy), "--api-port", str(api), env=env)
    assert r.returncode == 0, r.stderr
    unit = config / "systemd" / "user" / "consentwatch.service"
    text = unit.read_text()
    assert "WantedBy=default.target" in text and "Restart=on-failure" in text
    if shutil.which("systemd-analyze"):
        check = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
        assert check.returncode == 0 and check.stderr.strip() == "", check.stderr
    (exec_start,) = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith("ExecStart=")]
    argv = shlex.split(exec_start)
    assert argv[:4] == [sys.executable, "-m", "consentwatch.cli", "run"] and str(data) in argv and "DE" in argv

    # the unit's own command line starts consentwatch
    log = open(tmp_path / "unit.log", "wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
                            env={k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")})
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                status, _, body = http_request(f"http://127.0.0.1:{api}/v1/health")
                if status == 200 and json.loads(body)["status"] == "ok":
                    break
            except OSError:
                pass
            assert proc.poll() is None, (tmp_path / "unit.log").read_text()
            time.sleep(0.1)
        else:
            raise AssertionError((tmp_path / "unit.log").read_text())
        assert json.loads(body)["proxy_port"] == proxy and (data / "ca").is_dir()
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()

    # enabling needs the user's systemd: without a session bus, one line that says how to finish by hand
    if shutil.which("systemctl"):
        session = subprocess.run(["systemctl", "--user", "is-system-running"], capture_output=True, text=True)
        if "Failed to connect" in session.stderr + session.stdout:
            r = cli("autostart", "--enable", env=env)
            assert r.returncode == 2 and r.stderr.count("\n") == 1
            assert "systemctl --user enable --now consentwatch.service" in r.stderr
    shown = cli("autostart", "--show", env=env)
    assert shown.returncode == 0 and "ExecStart=" in shown.stdout
    r = cli("autostart", "--disable", env=env)
    assert r.returncode == 0 and not unit.exists()
    assert "nothing to do" in cli("autostart", "--disable", env=env).stdout
