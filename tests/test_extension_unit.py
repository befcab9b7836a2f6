"""The extension's worker logic, unit-tested with node's own test runner (tests/extension/*.test.mjs: backoff,
tab tracking, PAC, warnings per host, the message tables, the page eye's relay and rules), and the text
normalisation the page eye shares with the detectors, checked against text.norm on the same strings."""

from __future__ import annotations

import json
import shutil
import subprocess

from conftest import ROOT, missing_prerequisite
from consentwatch.text import norm

EXT = ROOT / "extension"


def node() -> str:
    exe = shutil.which("node")
    if not exe:
        missing_prerequisite("node is not installed (the extension's unit tests run with `node --test`)")
    return exe


def test_worker_unit_tests_pass():
    out = subprocess.run([node(), "--test", str(ROOT / "tests" / "extension")], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert "# fail 0" in out.stdout and "# pass " in out.stdout


SAMPLES = ["Use my data for training content creation AI models", "  Help\u00a0improve   Claude ",
           "Grok \u2014 \u201cAI\u201d \u2019s", "Product Improvement &amp; Training", "ﬁne\u2011tuning\u00adx",
           "Ｆｕｌｌｗｉｄｔｈ ＡＩ", "İstanbul", "Allow GitHub\u200b to use my data"]


def test_the_page_eye_normalises_text_as_the_detectors_do():
    script = ("import('./lib/common.js').then(() => console.log(JSON.stringify("
              "JSON.parse(process.argv[1]).map((s) => globalThis.CW.norm(s)))))")
    out = subprocess.run([node(), "--input-type=module", "-e", script, json.dumps(SAMPLES)], capture_output=True, text=True, timeout=30, cwd=EXT)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [norm(s) for s in SAMPLES]
