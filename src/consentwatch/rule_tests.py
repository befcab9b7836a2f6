"""`rules test`: replay each rule's recorded fixtures and compare what the engine finds with what the rule says.

Each fixture entry names a file relative to tests/fixtures and `expect`, exactly the kinds of finding the rule
must give on it: `toggle_on`, `toggle_off`, `toggle_reenabled`, `policy_update`, or `[]` for none at all. A
recording (.flow, .har) runs through the same pipeline as `consentwatch replay` (change-request bodies,
responses, detectors and state store); a page region (.html, with its `url`) is read as the extension's page eye
sends it. Each file starts fresh, in a throwaway data dir. When the entry states an `effective_date`, a
`policy_update` with that date must appear; when it states a `region`, the file is read as a user there.

A rule with a setting must prove it can tell OFF from ON: it fails without a fixture that expects `toggle_off`
(a recognised OFF resolves a warning; an OFF page that reads as nothing would leave it standing).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import ENGINE_VERSION
from .findings import POLICY_UPDATE, TOGGLE_OFF
from .regions import RegionError, normalize_region
from .replay import ReplayError, replay_file
from .rules.model import RuleSet, fixture_path_problem
from .pipeline import Watch


@dataclass
class FixtureResult:
    file: str
    expected: list[str]
    got: list[str]
    ok: bool
    problem: str = ""


@dataclass
class RuleResult:
    rule_id: str
    status: str  # PASS, FAIL, SKIP
    fixtures: list[FixtureResult] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict:
        return {"rule_id": self.rule_id, "status": self.status, "note": self.note,
                "fixtures": [vars(f) for f in self.fixtures]}


def default_fixtures_dir() -> Path | None:
    """tests/fixtures of the source tree this package runs from (an editable install or a checkout)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "tests" / "fixtures"
        if candidate.is_dir() and (parent / "pyproject.toml").is_file():
            return candidate
    return None


def _replay(rules: RuleSet, rule_id: str, path: Path, region: str | None, url: str = "") -> tuple[list, str]:
    """The rule's findings on one file, fresh state in a throwaway data dir; or ([], the problem)."""
    if not path.is_file():
        return [], f"missing file {path}"
    try:
        region = normalize_region(region)
    except RegionError as e:
        return [], str(e)
    with tempfile.TemporaryDirectory(prefix="consentwatch-rules-test-") as tmp:
        watch = Watch(Path(tmp), region, rules=rules)
        try:
            if path.name.endswith(".html"):
                return [f for f in _read_page(watch, path, url) if f.rule_id == rule_id], ""
            return [f for f in replay_file(watch, path) if f.rule_id == rule_id], ""
        except (ReplayError, OSError) as e:
            return [], str(e)
        finally:
            watch.close()


def _run_fixture(rules: RuleSet, rule_id: str, entry: dict, base: Path) -> FixtureResult:
    rel = entry["file"]
    expected = sorted(set(entry.get("expect", ())))
    if fixture_path_problem(rel) or not (base / rel).resolve().is_relative_to(base.resolve()):
        # a pack is someone else's input: it may name recordings, never any other file of yours
        return FixtureResult(rel, expected, [], False, "the fixture path leaves the fixtures folder")
    findings, problem = _replay(rules, rule_id, base / rel, entry.get("region"), entry.get("url", ""))
    if problem:
        return FixtureResult(rel, expected, [], False, problem)
    got = sorted({f.kind for f in findings})
    problems = []
    if got != expected:
        problems.append(f"expected {', '.join(expected) or 'no finding'}, got {', '.join(got) or 'no finding'}")
    want_date = entry.get("effective_date")
    if want_date:
        dates = sorted({f.effective_date or "none" for f in findings if f.kind == POLICY_UPDATE})
        if want_date not in dates:
            problems.append(f"expected effective date {want_date}, got {', '.join(dates) or 'no policy_update'}")
    return FixtureResult(rel, expected, got, not problems, "; ".join(problems))


def _read_page(watch, path: Path, url: str):
    """A rendered region, as POST /v1/observations hands it to the detectors (seen by the page eye, read now)."""
    obs = watch.detector.detect(url, "text/html; charset=utf-8", path.read_bytes(), seen_by="page")
    return watch.record(url, obs)


def _needs_off_fixture(d: dict) -> bool:
    s = d.get("setting") or {}
    return bool(s.get("labels") or s.get("json_keys") or s.get("name_states"))


def test_rules(pack: dict, rules: RuleSet, ids: list[str] | None, fixtures_dir: Path) -> list[RuleResult]:
    """One result per rule of `pack` (all, or those in `ids`, in pack order)."""
    results = []
    wanted = set(ids) if ids else None
    for d in pack["rules"]:
        rid = d["id"]
        if wanted is not None and rid not in wanted:
            continue
        need = d.get("min_engine", 1)
        if need > ENGINE_VERSION:
            results.append(RuleResult(rid, "SKIP", note=f"needs engine {need}, this is engine {ENGINE_VERSION}"))
            continue
        entries = d.get("fixtures") or []
        if not entries:
            results.append(RuleResult(rid, "FAIL", note="no fixtures: record the setting page (on and off) "
                                                        "and list the files under `fixtures`"))
            continue
        fixture_results = [_run_fixture(rules, rid, e, fixtures_dir) for e in entries]
        status = "PASS" if all(f.ok for f in fixture_results) else "FAIL"
        note = ""
        if _needs_off_fixture(d) and not any(TOGGLE_OFF in e.get("expect", ()) for e in entries):
            status, note = "FAIL", (f"{len(entries)} fixture(s); none expects toggle_off: record the setting switched "
                                    "off and list it with \"expect\": [\"toggle_off\"]")
        results.append(RuleResult(rid, status, fixture_results, note))
    return results


test_rules.__test__ = False  # not a pytest test, despite the name


def test_recording(rules: RuleSet, path: Path, ids: list[str] | None, expect: list[str] | None,
                   region: str | None = None) -> list[RuleResult]:
    """Rules on one recording (a capture, say) instead of their listed fixtures.

    With `expect` (finding kinds, [] for none) each rule must give exactly those, as in a fixture entry.
    Without it a rule passes when it gives any finding at all (toggle_off included): "does it fire here?".
    The rules are `ids`, or every rule whose hosts the recording visits."""
    from .replay import read_flows

    path = Path(path)
    wanted = list(ids or ())
    if not wanted:
        try:
            hosts = {f.request.pretty_host for f in read_flows(path)}
        except ReplayError as e:
            return [RuleResult("(recording)", "FAIL", [FixtureResult(str(path), [], [], False, str(e))])]
        wanted = [r.id for r in rules.rules if any(r in rules.for_host(h) for h in hosts)]
        if not wanted:
            return [RuleResult("(recording)", "FAIL", note=f"no rule covers the hosts in {path.name}: "
                                                             f"{', '.join(sorted(hosts)) or 'none'}")]
    results = []
    for rid in wanted:
        if expect is not None:
            fr = _run_fixture(rules, rid, {"file": path.name, "expect": expect, "region": region}, path.parent)
        else:
            findings, problem = _replay(rules, rid, path, region)
            got = sorted({f.kind for f in findings})
            if not problem and not got:
                problem = "the rule gives no finding on this recording"
            fr = FixtureResult(path.name, [], got, not problem, problem)
        results.append(RuleResult(rid, "PASS" if fr.ok else "FAIL", [fr]))
    return results


test_recording.__test__ = False
