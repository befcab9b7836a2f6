"""The architecture, checked: imports run one way (the layer contract in pyproject.toml), no import cycles, and
importing the package builds nothing.

import-linter reads every import statement, function-level ones included, so a "late import" cannot hide an
upward dependency or a cycle again.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(config: Path) -> subprocess.CompletedProcess:
    lint = Path(sys.executable).with_name("lint-imports")
    assert lint.is_file(), f"{lint} missing: `make install` installs import-linter (test extras)"
    return subprocess.run([str(lint), "--no-cache", "--no-logo", str(config)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_the_layer_and_acyclic_contracts_hold():
    r = lint_imports(ROOT / "pyproject.toml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 kept, 0 broken" in r.stdout, r.stdout


def test_function_level_imports_are_seen(tmp_path):
    """The contracts would prove nothing about late imports if import-linter left them out: cli/run_cmd.py imports
    run.py inside run(), and a contract forbidding that import must break on that line."""
    source = (ROOT / "src" / "consentwatch" / "cli" / "run_cmd.py").read_text().splitlines()
    [line] = [i + 1 for i, text in enumerate(source) if text.startswith("    ") and "import" in text and "..run import" in text]
    config = tmp_path / "contract.toml"
    config.write_text('[tool.importlinter]\nroot_package = "consentwatch"\n\n'
                      '[[tool.importlinter.contracts]]\nname = "late"\ntype = "forbidden"\n'
                      'source_modules = ["consentwatch.cli.run_cmd"]\nforbidden_modules = ["consentwatch.run"]\n')
    r = lint_imports(config)
    assert r.returncode == 1 and f"consentwatch.cli.run_cmd -> consentwatch.run (l.{line})" in r.stdout, r.stdout


IMPORT_EVERYTHING = r"""
import gc, multiprocessing, threading
import consentwatch.addon
from consentwatch.smoke import import_all
import_all()
from consentwatch.addon import ConsentWatch
from consentwatch.api.hub import Hub
from consentwatch.api.server import ApiServer
from consentwatch.rules_reloader import RulesReloader
from consentwatch.pipeline import Watch
from consentwatch.detection_worker import DetectorProcess
built = [type(o).__name__ for o in gc.get_objects()
         if isinstance(o, (ConsentWatch, ApiServer, Hub, RulesReloader, Watch, DetectorProcess))]
print(len(built), threading.active_count(), len(multiprocessing.active_children()))
"""


def test_importing_the_package_builds_no_addon_server_or_worker(tmp_path):
    # a fresh interpreter: nothing else has built anything yet
    r = subprocess.run([sys.executable, "-c", IMPORT_EVERYTHING], capture_output=True, text=True, timeout=120,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    built, threads, children = map(int, r.stdout.split())
    assert built == 0, "an import built an addon, server, hub, pipeline or worker"
    assert threads == 1 and children == 0
    assert not any(tmp_path.iterdir())  # and wrote nothing
