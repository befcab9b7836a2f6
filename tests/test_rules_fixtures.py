"""Every rule against its recorded traffic, read the way replay reads it (mitmproxy's FlowReader: change-request
bodies, then responses), and against its page regions, read as the extension's page eye sends them.

- Each fixture a rule names in the shipped pack gives exactly the finding kinds it lists, toggle_off included (and
  the notice's `effective_date` where the entry gives one); an OFF fixture (`*-off*`) must be recognised as OFF (a
  `toggle_off` finding, which is not a warning); a fixture expecting nothing gives nothing at all.
- Extra fixtures (charsets, encodings, robustness, negative controls) carry their expectations in
  tests/fixtures/make_fixtures.py (EXTRA_EXPECT).
- The fixtures are reproducible from tests/fixtures/sources/ and small.
- Region and date handling on real pages.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import time
from pathlib import Path

import pytest
from mitmproxy.io import FlowReader

from consentwatch.detect import Detector
from consentwatch.findings import TOGGLE_OFF, TOGGLE_ON, POLICY_UPDATE, Finding
from consentwatch.rules import load_pack, shipped_pack
from script_support import load_script

FIXTURES = Path(__file__).resolve().parent / "fixtures"
UTC = dt.timezone.utc


def _load_make_fixtures():
    return load_script(FIXTURES / "make_fixtures.py", "make_fixtures")


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


PAGE_URLS = mf.page_urls()


def observe(rel: str, region: str | None = None, when: dt.datetime | None = None) -> list[Finding]:
    """Run a fixture through the detector as replay (or the page eye) does. `when` overrides the recorded time."""
    det = Detector(RULES, region=region)
    if rel.endswith(".html"):
        obs = det.detect(PAGE_URLS[rel], "text/html; charset=utf-8", (FIXTURES / rel).read_bytes(),
                         observed_at=when or dt.datetime.fromtimestamp(mf.T0, UTC), seen_by="page")
        return list(obs.findings)
    findings: list[Finding] = []
    for f in read_flows(rel):
        q = f.request
        if q.method in ("POST", "PUT", "PATCH") and q.raw_content:
            observed = when or dt.datetime.fromtimestamp(q.timestamp_start or f.timestamp_created, UTC)
            obs = det.detect(q.pretty_url, q.headers.get("content-type", ""), q.raw_content, q.headers.get("content-encoding", ""),
                             observed_at=observed, method=q.method, side="request")
            findings.extend(obs.findings)
        if f.response is None:
            continue
        r = f.response
        observed = when or dt.datetime.fromtimestamp(r.timestamp_start or f.timestamp_created, UTC)
        obs = det.detect(q.pretty_url, r.headers.get("content-type", ""), r.raw_content,
                         r.headers.get("content-encoding", ""), observed_at=observed, method=q.method)
        findings.extend(obs.findings)
    return findings


def is_off_fixture(rel: str) -> bool:
    return re.search(r"-off(-|$)", Path(rel).stem) is not None


def check_findings(rel: str, findings: list[Finding], expect: list[str], toggle_off: bool | None,
                   effective_date: str | None, rule_id: str | None = None) -> None:
    kinds = sorted({f.kind for f in findings if f.kind != TOGGLE_OFF})
    assert kinds == sorted(k for k in expect if k != TOGGLE_OFF), f"{rel}: got {[(f.kind, f.rule_id) for f in findings]}"
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
    rel = entry["file"]
    if is_off_fixture(rel):
        assert TOGGLE_OFF in entry["expect"], f"{rel}: an OFF fixture must list toggle_off"
    check_findings(rel, findings, entry["expect"], TOGGLE_OFF in entry["expect"], entry.get("effective_date"), rule_id)
    for f in findings:
        assert f.seen_by == ("page" if rel.endswith(".html") else "network")


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


WARNING_KINDS = {"toggle_on", "toggle_reenabled", "policy_update"}


@pytest.mark.parametrize("rule", PACK["rules"], ids=lambda r: r["id"])
def test_every_rule_has_positive_and_negative_fixture(rule: dict) -> None:
    assert any(WARNING_KINDS & set(e["expect"]) for e in rule["fixtures"]), "no fixture expecting a warning"
    assert any(not e["expect"] for e in rule["fixtures"]), "no fixture expecting nothing at all"


@pytest.mark.parametrize("rule", [r for r in PACK["rules"] if r.get("setting")], ids=lambda r: r["id"])
def test_every_setting_rule_has_on_and_off_fixtures(rule: dict) -> None:
    entries = [(e["file"], e["expect"]) for e in rule["fixtures"]]
    assert any("toggle_on" in k for _, k in entries)
    assert any(is_off_fixture(f) and k == ["toggle_off"] for f, k in entries), "no OFF fixture"


@pytest.mark.parametrize("rule", [r for r in PACK["rules"] if (r.get("setting") or {}).get("json_keys")], ids=lambda r: r["id"])
def test_every_json_rule_has_a_not_chosen_fixture(rule: dict) -> None:
    """null or an absent key (not chosen yet) must give nothing: there is a recording of it for every key rule."""
    assert any(re.search(r"-(null|unset)\.flow$", e["file"]) and e["expect"] == [] for e in rule["fixtures"])


@pytest.mark.parametrize("rule", [r for r in PACK["rules"] if any(k.get("in") == "request" for k in (r.get("setting") or {}).get("json_keys", ()))],
                         ids=lambda r: r["id"])
def test_every_request_key_has_a_recorded_change_request(rule: dict) -> None:
    recorded = []
    for e in rule["fixtures"]:
        if e["file"].endswith(".flow"):
            recorded += [f for f in read_flows(e["file"]) if f.request.method in ("POST", "PUT", "PATCH") and f.request.raw_content]
    assert recorded, "no change request with a body among the fixtures"


def test_no_orphan_fixtures() -> None:
    """Every committed fixture is either named by the pack or has its expectation in EXTRA_EXPECT."""
    named = {e["file"] for _, e in PACK_CASES} | set(mf.EXTRA_EXPECT)
    committed = {p.relative_to(FIXTURES).as_posix() for p in mf.fixture_files(FIXTURES)}
    assert committed - named == set(), "fixture without expectation"
    assert named - committed == set(), "expectation without fixture"
    # captures/ holds real traffic from `consentwatch capture`, committed as scrubbed, not built from sources
    # (tests/test_capture_cli.py checks that each one is clean)
    captures = {c for c in committed if c.startswith("captures/")}
    assert {f.out for f in mf.manifest()} == committed - captures


def test_page_fixtures_name_their_page_in_the_pack() -> None:
    for _, e in PACK_CASES:
        if e["file"].endswith(".html"):
            assert e["url"] == PAGE_URLS[e["file"]], e["file"]


PAGE_SOURCES = {e.source for f in mf.manifest() if f.fmt == "page" for e in f.entries}


@pytest.mark.parametrize("src", sorted(p.relative_to(mf.SOURCES).as_posix() for p in mf.SOURCES.rglob("*") if p.is_file()))
def test_sources_are_readable_documents(src: str) -> None:
    text = (mf.SOURCES / src).read_text("utf-8")
    if src.endswith(".json"):
        json.loads(text)
    else:
        assert src.endswith(".html") and text.lstrip().lower().startswith("<!doctype html>") and "</html>" in text


def test_every_source_is_used() -> None:
    used = {e.source for f in mf.manifest() for e in f.entries if e.source}
    used |= {e.request_source for f in mf.manifest() for e in f.entries if e.request_source}
    used.add("anthropic/bootstrap-core.json")  # padded to its real size by make_fixtures.bootstrap()
    assert used == {p.relative_to(mf.SOURCES).as_posix() for p in mf.SOURCES.rglob("*") if p.is_file()}


def test_no_checked_switch_in_server_html_for_client_rendered_apps() -> None:
    """X's, Anthropic's and OpenAI's settings are client-rendered: no recording may put their switch in what the
    server sends (those pages are page regions, read as the extension sends them)."""
    for plat in ("x", "anthropic", "openai", "wordpress"):
        for f in sorted((FIXTURES / plat).glob("*.flow")) + sorted((FIXTURES / plat).glob("*.har")):
            for flow in read_flows(f.relative_to(FIXTURES).as_posix()):
                if flow.response is None or "html" not in flow.response.headers.get("content-type", ""):
                    continue
                html = flow.response.get_content(strict=False).decode("utf-8", "replace").lower()
                assert 'role="switch"' not in html and 'type="checkbox"' not in html, f


def test_the_bootstrap_is_as_big_as_the_real_one() -> None:
    [f] = read_flows("anthropic/bootstrap-on.flow")
    assert f.response.headers["content-encoding"] == "zstd"
    assert 200_000 < len(f.response.get_content()) < 1_000_000


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


@pytest.mark.parametrize("rel", sorted(p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*.har")
                                       if "sources" not in p.parts))
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


@pytest.mark.parametrize("fixture", ["x/graphql-on.flow", "x/mutation-on.flow", "x/rendered-on.html"])
@pytest.mark.parametrize("region,expect", [("EU", []), ("DE", []), ("IE", []), ("NO", []), ("EEA", []),
                                            ("US", ["toggle_on"]), ("GB", ["toggle_on"]), ("JP", ["toggle_on"])])
def test_x_regions(fixture, region, expect) -> None:
    assert _kinds(observe(fixture, region=region)) == expect


def test_x_off_is_still_seen_in_eu() -> None:
    # An OFF observation is not a warning; it is reported wherever the user is, so it can resolve one.
    assert _kinds(observe("x/graphql-off.flow", region="EU")) == ["toggle_off"]
    assert _kinds(observe("x/mutation-off.flow", region="EU")) == ["toggle_off"]


@pytest.mark.parametrize("region,when,expect", [
    ("DE", _at(2025, 4, 20), ["policy_update"]),   # announces a future change: warn even before it applies
    ("DE", _at(2025, 6, 1), ["policy_update"]),
    ("US", _at(2025, 6, 1), ["policy_update"]),
])
def test_meta_notice_regions(region, when, expect) -> None:
    assert _kinds(observe("meta/notice.flow", region=region, when=when)) == expect


@pytest.mark.parametrize("region,expect", [("BR", []), ("CN", []), ("IL", []), ("NG", []), ("KR", []), ("VN", []),
                                            ("US", ["toggle_on"]), ("DE", ["toggle_on"]), ("GB", ["toggle_on"])])
def test_microsoft_excluded_countries(region, expect) -> None:
    assert _kinds(observe("microsoft/rendered-on.html", region=region)) == expect


@pytest.mark.parametrize("region,when,expect", [("DE", _at(2026, 3, 1), ["toggle_on"]), ("GB", _at(2026, 3, 1), ["toggle_on"]),
                                                 ("US", _at(2026, 3, 1), []), ("US", _at(2026, 7, 1), ["toggle_on"])])
def test_characterai_opt_out_first_in_europe(region, when, expect) -> None:
    assert _kinds(observe("characterai/rendered-on.html", region=region, when=when)) == expect


@pytest.mark.parametrize("when,expect", [(_at(2026, 4, 23), []), (_at(2026, 4, 24), ["toggle_on"])])
def test_github_starts_2026_04_24(when, expect) -> None:
    assert _kinds(observe("github/settings-on.flow", when=when)) == expect


def test_anthropic_before_effective_date() -> None:
    assert _kinds(observe("anthropic/account-on.flow", when=_at(2025, 10, 7))) == []
    assert _kinds(observe("anthropic/account-on.flow", when=_at(2025, 10, 8))) == ["toggle_on"]
    # the consent pop-up seen before the date still announces the change
    findings = observe("anthropic/consent-dialog.html", when=_at(2025, 9, 1))
    assert [(f.kind, f.effective_date) for f in findings] == [("policy_update", "2025-10-08")]
