"""Every rule against its recorded traffic, read the way replay reads it (mitmproxy's FlowReader).

- Each fixture a rule names in the shipped pack gives exactly the warning kinds it lists (and the notice's
  `effective_date` where the entry gives one); an OFF fixture (`*-off*`) must be recognised as OFF (a
  `toggle_off` finding, which is not a warning); every other fixture gives no `toggle_off` either.
- Extra fixtures (charsets, encodings, robustness, negative controls) carry their expectations in
  tests/fixtures/make_fixtures.py (EXTRA_EXPECT).
- The fixtures are reproducible from tests/fixtures/sources/ and small.
- Region and date handling on real pages.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.util
import json
import re
import sys
import time
from pathlib import Path

import pytest
from mitmproxy.io import FlowReader

from consentwatch.detect import Detector
from consentwatch.findings import TOGGLE_OFF, TOGGLE_ON, POLICY_UPDATE, Finding
from consentwatch.rules import load_pack, shipped_pack

FIXTURES = Path(__file__).resolve().parent / "fixtures"
UTC = dt.timezone.utc


def _load_make_fixtures():
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_fixtures"] = mod
    spec.loader.exec_module(mod)
    return mod


mf = _load_make_fixtures()
PACK = shipped_pack()
RULES = load_pack(PACK)
RULE_IDS = {r["id"] for r in PACK["rules"]}
PACK_CASES = [(r["id"], e) for r in PACK["rules"] for e in r["fixtures"]]

# Pack fixtures the engine gets wrong today: each stays here, as a strict xfail, until the engine is fixed
# (then the XPASS fails the run and the entry must go). See test_detectors.py::TestKnownEngineBugs.
KNOWN_ENGINE_BUGS: dict[str, str] = {}


@functools.cache
def read_flows(rel: str) -> tuple:
    with (FIXTURES / rel).open("rb") as fo:
        return tuple(FlowReader(fo).stream())


def observe(rel: str, region: str | None = None, when: dt.datetime | None = None) -> list[Finding]:
    """Run every response of a fixture through the detector, as replay does. `when` overrides the recorded time."""
    det = Detector(RULES, region=region)
    findings: list[Finding] = []
    for f in read_flows(rel):
        if f.response is None:
            continue
        r = f.response
        observed = when or dt.datetime.fromtimestamp(r.timestamp_start or f.timestamp_created, UTC)
        obs = det.detect(f.request.pretty_url, r.headers.get("content-type", ""), r.raw_content,
                         r.headers.get("content-encoding", ""), observed_at=observed)
        findings.extend(obs.findings)
    return findings


def is_off_fixture(rel: str) -> bool:
    return re.search(r"-off(-|$)", Path(rel).stem) is not None


def check_findings(rel: str, findings: list[Finding], expect: list[str], toggle_off: bool | None,
                   effective_date: str | None, rule_id: str | None = None) -> None:
    kinds = sorted({f.kind for f in findings if f.kind != TOGGLE_OFF})
    assert kinds == sorted(expect), f"{rel}: got {[(f.kind, f.rule_id) for f in findings]}"
    offs = [f for f in findings if f.kind == TOGGLE_OFF]
    if toggle_off is True:
        assert offs, f"{rel}: the OFF setting was not recognised at all"
    elif toggle_off is False:
        assert not offs, f"{rel}: unexpected toggle_off (it would resolve a real warning): {offs}"
    for f in findings:
        if rule_id is not None:
            assert f.rule_id == rule_id
        if f.kind == POLICY_UPDATE:
            assert f.effective_date == effective_date, f"{rel}: effective_date {f.effective_date!r}"
        if f.kind in (TOGGLE_ON, TOGGLE_OFF):
            assert f.state == ("on" if f.kind == TOGGLE_ON else "off")
        # nothing of the request's secrets or query string reaches a finding
        blob = json.dumps(f.to_dict())
        for secret in mf.SECRETS:
            assert secret not in blob
        assert "?" not in f.url and "#" not in f.url
        assert f.url.startswith("https://")
        assert f.observed_at.startswith("20")


def _xfail_known(rel: str):
    reason = KNOWN_ENGINE_BUGS.get(rel)
    return [pytest.mark.xfail(strict=True, reason=reason)] if reason else []


@pytest.mark.parametrize(
    "rule_id,entry",
    [pytest.param(rid, e, id=e["file"], marks=_xfail_known(e["file"])) for rid, e in PACK_CASES],
)
def test_pack_fixture(rule_id: str, entry: dict) -> None:
    findings = observe(entry["file"], region=entry.get("region"))
    check_findings(entry["file"], findings, entry["expect"], is_off_fixture(entry["file"]),
                   entry.get("effective_date"), rule_id)


@pytest.mark.parametrize(
    "rel,exp",
    [pytest.param(k, v, id=k, marks=_xfail_known(k)) for k, v in mf.EXTRA_EXPECT.items()],
)
def test_extra_fixture(rel: str, exp) -> None:
    start = time.perf_counter()
    findings = observe(rel, region=exp.region)
    elapsed = time.perf_counter() - start
    toggle_off = exp.toggle_off
    if toggle_off is False and is_off_fixture(rel):
        toggle_off = True
    check_findings(rel, findings, exp.kinds, toggle_off, exp.effective_date)
    if exp.max_seconds is not None:
        assert elapsed < exp.max_seconds, f"{rel}: {elapsed:.2f}s"


# --- the pack's fixture list itself ---------------------------------------------------------------

def test_every_pack_fixture_exists() -> None:
    missing = [e["file"] for _, e in PACK_CASES if not (FIXTURES / e["file"]).is_file()]
    assert not missing, f"run `make fixtures`: missing {missing}"


@pytest.mark.parametrize("rule", PACK["rules"], ids=lambda r: r["id"])
def test_every_rule_has_positive_and_negative_fixture(rule: dict) -> None:
    assert any(e["expect"] for e in rule["fixtures"]), "no fixture expecting a finding"
    assert any(not e["expect"] for e in rule["fixtures"]), "no fixture expecting none"


@pytest.mark.parametrize("rule", [r for r in PACK["rules"] if r.get("setting", {}).get("labels") or r.get("setting", {}).get("json_keys")],
                         ids=lambda r: r["id"])
def test_every_setting_rule_has_on_and_off_pages(rule: dict) -> None:
    files = {e["file"]: e["expect"] for e in rule["fixtures"]}
    assert any("toggle_on" in k for k in files.values())
    assert any(is_off_fixture(f) and not k for f, k in files.items()), "no OFF fixture"


def test_no_orphan_fixtures() -> None:
    """Every committed fixture is either named by the pack or has its expectation in EXTRA_EXPECT."""
    named = {e["file"] for _, e in PACK_CASES} | set(mf.EXTRA_EXPECT)
    committed = {p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*") if p.suffix in (".flow", ".har")}
    assert committed - named == set(), "fixture without expectation"
    assert named - committed == set(), "expectation without fixture"
    assert {f.out for f in mf.manifest()} == committed


@pytest.mark.parametrize("src", sorted(p.relative_to(mf.SOURCES).as_posix() for p in mf.SOURCES.rglob("*") if p.is_file()))
def test_sources_are_readable_documents(src: str) -> None:
    text = (mf.SOURCES / src).read_text("utf-8")
    if src.endswith(".json"):
        json.loads(text)
    else:
        assert src.endswith(".html") and text.lstrip().lower().startswith("<!doctype html>") and "</html>" in text


def test_every_source_is_used() -> None:
    used = {e.source for f in mf.manifest() for e in f.entries if e.source}
    assert used == {p.relative_to(mf.SOURCES).as_posix() for p in mf.SOURCES.rglob("*") if p.is_file()}


def test_committed_fixtures_are_small() -> None:
    total = sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file())
    assert total < 5 * 1024 * 1024, f"{total} bytes"


def test_fixtures_are_reproducible(tmp_path: Path) -> None:
    written = mf.build(tmp_path)
    assert written
    different = []
    for p in written:
        rel = p.relative_to(tmp_path).as_posix()
        committed = (FIXTURES / rel).read_bytes()
        if p.read_bytes() != committed:
            different.append(rel)
    if different:
        # Compressors may emit other (equally valid) bytes in another library version; accept that only when
        # the decoded flows are identical and only for compressed fixtures.
        for rel in different:
            assert _same_decoded(tmp_path / rel, FIXTURES / rel), f"{rel} differs from `make fixtures` output"


def _same_decoded(a: Path, b: Path) -> bool:
    if a.suffix == ".har":
        return False
    with a.open("rb") as fa, b.open("rb") as fb:
        fl_a, fl_b = list(FlowReader(fa).stream()), list(FlowReader(fb).stream())
    if len(fl_a) != len(fl_b):
        return False
    for x, y in zip(fl_a, fl_b):
        if not x.response.headers.get("content-encoding"):
            return False
        if x.request.get_state() != y.request.get_state() or x.response.headers.get("content-encoding") != y.response.headers.get("content-encoding"):
            return False
        if x.response.get_content(strict=False) != y.response.get_content(strict=False):
            return False
    return True


# --- what the recordings look like --------------------------------------------------------------

def test_flows_carry_fake_secrets() -> None:
    """The fixtures must hold the secrets, or the 'no secret in a finding' checks above prove nothing."""
    f = read_flows("linkedin/settings-on.flow")[0]
    assert f.request.host == "www.linkedin.com" and f.request.port == 443 and f.request.scheme == "https"
    assert f.request.path.startswith("/mypreferences/d/settings/data-for-ai-improvement?")
    assert f.request.query["trk"] == "SECRET_QUERY_TOKEN"
    assert f.request.cookies["li_at"] == "SECRET_COOKIE_VALUE"
    assert f.request.headers["authorization"] == "Bearer SECRET_AUTH_TOKEN"
    assert "SECRET_SETCOOKIE_VALUE" in f.response.headers["set-cookie"]
    assert f.response.timestamp_start == pytest.approx(mf.T0 + 0.12)


@pytest.mark.parametrize("enc", ["gzip", "br", "zstd", "deflate"])
def test_compressed_variants_are_really_compressed(enc: str) -> None:
    f = read_flows(f"linkedin/settings-on-{enc}.flow")[0]
    assert f.response.headers["content-encoding"] == enc
    plain = read_flows("linkedin/settings-on.flow")[0].response.raw_content
    assert f.response.raw_content != plain and len(f.response.raw_content) < len(plain) // 2
    assert f.response.get_content() == plain


@pytest.mark.parametrize("rel", sorted(p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*.har")))
def test_har_files_are_devtools_exports(rel: str) -> None:
    doc = json.loads((FIXTURES / rel).read_text("utf-8"))
    log = doc["log"]
    assert log["version"] == "1.2" and log["creator"]["name"] == "WebInspector"
    for entry in log["entries"]:
        assert entry["request"]["method"] == "GET" and entry["request"]["url"].startswith("https://")
        assert "text" in entry["response"]["content"]
        assert entry["startedDateTime"].endswith("Z")
    flows = read_flows(rel)
    assert len(flows) == len(log["entries"])
    assert all(fl.response.timestamp_start == pytest.approx(mf.T0, abs=10) for fl in flows)


# --- regions and dates on real pages -------------------------------------------------------------

def _kinds(findings: list[Finding]) -> list[str]:
    return sorted(f.kind for f in findings)


def _at(y: int, m: int, d: int) -> dt.datetime:
    return dt.datetime(y, m, d, 12, tzinfo=UTC)


@pytest.mark.parametrize("region,when,expect", [
    ("DE", _at(2025, 1, 15), []),             # EU excluded in 2024/early 2025
    ("EU", _at(2025, 1, 15), []),
    ("DE", _at(2025, 11, 2), []),             # the day before
    ("DE", _at(2025, 11, 3), ["toggle_on"]),  # from 2025-11-03
    ("DE", _at(2026, 2, 1), ["toggle_on"]),
    ("EU", _at(2025, 12, 1), ["toggle_on"]),
    ("CH", _at(2025, 1, 15), []),
    ("CH", _at(2025, 12, 1), ["toggle_on"]),
    ("GB", _at(2025, 6, 1), []),
    ("GB", _at(2025, 11, 4), ["toggle_on"]),
    ("NO", _at(2025, 6, 1), []),              # EEA
    ("US", _at(2024, 9, 1), []),              # before the setting existed
    ("US", _at(2024, 10, 1), ["toggle_on"]),
    (None, _at(2024, 10, 1), ["toggle_on"]),  # no region: warn
])
def test_linkedin_regions(region, when, expect) -> None:
    assert _kinds(observe("linkedin/settings-on.flow", region=region, when=when)) == expect


def test_linkedin_not_applicable_is_reported_as_skipped() -> None:
    f = read_flows("linkedin/settings-on.flow")[0]
    obs = Detector(RULES, region="DE").detect(f.request.pretty_url, f.response.headers["content-type"], f.response.raw_content,
                                              observed_at=_at(2025, 1, 15))
    assert obs.findings == [] and obs.skipped_region == ["linkedin.genai-training"]


@pytest.mark.parametrize("region,when", [("DE", _at(2025, 9, 20)), ("DE", _at(2025, 12, 1)), ("US", _at(2025, 9, 20)), (None, _at(2025, 9, 20))])
def test_linkedin_eu_notice_is_reported_before_and_after_it_takes_effect(region, when) -> None:
    findings = observe("linkedin/notice.flow", region=region, when=when)
    assert [(f.kind, f.effective_date) for f in findings] == [("policy_update", "2025-11-03")]


@pytest.mark.parametrize("fixture", ["x/settings-on.flow", "x/graphql-on.flow", "x/settings-on.har"])
@pytest.mark.parametrize("region,expect", [("EU", []), ("DE", []), ("IE", []), ("NO", []), ("EEA", []),
                                            ("US", ["toggle_on"]), ("GB", ["toggle_on"]), ("JP", ["toggle_on"])])
def test_x_regions(fixture, region, expect) -> None:
    assert _kinds(observe(fixture, region=region)) == expect


def test_x_off_is_still_seen_in_eu() -> None:
    # An OFF observation is not a warning; it is reported wherever the user is, so it can resolve one.
    assert _kinds(observe("x/settings-off.flow", region="EU")) == ["toggle_off"]


@pytest.mark.parametrize("region,when,expect", [
    ("DE", _at(2025, 4, 20), ["policy_update"]),   # announces a future change: warn even before it applies
    ("DE", _at(2025, 6, 1), ["policy_update"]),
    ("US", _at(2025, 6, 1), ["policy_update"]),
])
def test_meta_notice_regions(region, when, expect) -> None:
    assert _kinds(observe("meta/notice.flow", region=region, when=when)) == expect


@pytest.mark.parametrize("region,expect", [("GB", []), ("FR", []), ("CA", []), ("US", ["toggle_on"]), ("AU", ["toggle_on"])])
def test_dropbox_regions(region, expect) -> None:
    assert _kinds(observe("dropbox/settings-on.flow", region=region)) == expect


@pytest.mark.parametrize("when,expect", [(_at(2026, 4, 23), []), (_at(2026, 4, 24), ["toggle_on"])])
def test_github_starts_2026_04_24(when, expect) -> None:
    assert _kinds(observe("github/settings-on.flow", when=when)) == expect


def test_anthropic_before_effective_date() -> None:
    assert _kinds(observe("anthropic/settings-on.flow", when=_at(2025, 9, 27))) == []
    # the consent pop-up seen before the date still announces the change
    assert _kinds(observe("anthropic/consent-dialog.flow", when=_at(2025, 9, 1))) == ["policy_update"]
