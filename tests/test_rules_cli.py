"""`consentwatch rules ...` end to end: the real command in a subprocess, for the checks of issue 5."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from consentwatch.rules.model import shipped_pack

from conftest import ROOT, cli

PLATFORMS = {"linkedin", "x", "grok", "meta", "anthropic", "openai", "google", "github", "pinterest", "grammarly", "figma",
             "wordpress", "tumblr", "quora", "medium", "substack", "adobe", "udemy", "microsoft", "reddit",
             "stackoverflow", "perplexity", "characterai", "squarespace"}


def write_pack(path: Path, pack: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(pack, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def new_rule(rid: str = "example.ai-training", host: str = "www.example.org") -> dict:
    return {
        "id": rid, "platform": rid.split(".")[0], "title": "Example trains AI on your posts",
        "summary": "Example uses your posts to train its AI models unless you switch it off.",
        "hosts": [host],
        "setting": {"name": "AI training", "labels": ["Use my posts to train AI"], "checked_means": "training"},
        "default": "on", "applies": [{"regions": ["*"], "from": "2025-01-01"}],
        "remedy": {"settings_url": f"https://{host}/settings/ai", "steps": ["Settings", "AI", "Switch it off"]},
        "seen_via": [{"eye": "markup", "where": f"{host}/settings/ai: the switch", "evidence": "unverified"}],
        "sources": ["https://www.example.org/help/ai"], "last_verified": "2026-11-23",
        "fixtures": [{"file": "example/settings-on.flow", "expect": ["toggle_on"]}],
    }


# -- list / show ------------------------------------------------------------------------------------

def test_list_json_covers_every_platform_with_sources_and_last_verified(data_dir):
    r = cli("rules", "list", "--json", "--data-dir", str(data_dir))
    assert r.returncode == 0, r.stderr
    rules = json.loads(r.stdout)
    assert {x["platform"] for x in rules} >= PLATFORMS
    for x in rules:
        assert x["sources"] and all(s.startswith("http") for s in x["sources"]), x["id"]
        assert len(x["last_verified"]) == 10, x["id"]
        # how it can be seen, and how strong the evidence is
        assert x["seen_via"], x["id"]
        assert all(v["eye"] in ("network", "markup", "page") and v["evidence"] in ("verified", "reconstructed", "unverified")
                   and v["where"] for v in x["seen_via"]), x["id"]
    by_id = {x["id"]: {v["eye"] for v in x["seen_via"]} for x in rules}
    assert by_id["x.grok-training"] == {"network", "page"} and by_id["perplexity.ai-data-retention"] == {"page"}
    text = cli("rules", "list", "--data-dir", str(data_dir)).stdout
    assert "SEEN BY" in text
    assert re.search(r"^anthropic\.claude-training .* network\(verified\) page\(reconstructed\) ", text, re.M)
    assert re.search(r"^tumblr\.third-party-sharing .* page\(reconstructed\) ", text, re.M)


def test_show(data_dir):
    r = cli("rules", "show", "linkedin.genai-training", "--data-dir", str(data_dir))
    assert r.returncode == 0 and json.loads(r.stdout)["id"] == "linkedin.genai-training"
    r = cli("rules", "show", "nope.nothing", "--data-dir", str(data_dir))
    assert r.returncode == 2 and "nope.nothing" in r.stderr and len(r.stderr.splitlines()) == 1


# -- validate ---------------------------------------------------------------------------------------

def test_validate_shipped_pack_is_valid():
    r = cli("rules", "validate", str(ROOT / "src" / "consentwatch" / "rules" / "pack.json"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "valid rule pack" in r.stdout


def test_validate_names_the_missing_hosts(tmp_path):
    pack = shipped_pack()
    del pack["rules"][2]["hosts"]
    r = cli("rules", "validate", str(write_pack(tmp_path / "p.json", pack)))
    assert r.returncode == 1
    line = next(x for x in r.stdout.splitlines() if "hosts" in x)
    assert pack["rules"][2]["id"] in line


def test_validate_reports_every_error_with_rule_id_and_path(tmp_path):
    pack = shipped_pack()
    pack["rules"][0]["unknown_field"] = 1  # unknown fields are errors
    pack["rules"][1]["remedy"]["steps"] = []
    pack["rules"][3]["last_verified"] = "yesterday"
    r = cli("rules", "validate", str(write_pack(tmp_path / "p.json", pack)))
    assert r.returncode == 1
    out = r.stdout
    assert f"{pack['rules'][0]['id']}: (rule): Additional properties are not allowed ('unknown_field'" in out
    assert f"{pack['rules'][1]['id']}: remedy/steps:" in out
    assert f"{pack['rules'][3]['id']}: last_verified:" in out
    assert "3 error(s)" in r.stderr


@pytest.mark.parametrize("content, what", [(b"{not json", "not JSON"), (b"[]", "JSON object"),
                                           (b"\xff\xfe\x00", "UTF-8")])
def test_validate_unusable_input_exits_2(tmp_path, content, what):
    f = tmp_path / "p.json"
    f.write_bytes(content)
    r = cli("rules", "validate", str(f))
    assert r.returncode == 2 and what in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cli("rules", "validate", str(tmp_path / "missing.json"))
    assert r.returncode == 2 and "cannot read" in r.stderr


def test_min_engine_rules_are_skipped_with_a_note(tmp_path, data_dir):
    pack = shipped_pack()
    future = new_rule("future.ai-training", "future.example.com")
    future["min_engine"] = 99
    pack["rules"].append(future)
    f = write_pack(tmp_path / "p.json", pack)
    r = cli("rules", "validate", str(f))
    assert r.returncode == 0 and "future.ai-training: needs engine 99" in r.stdout
    r = cli("rules", "import", str(f), "--allow-unsigned", "--data-dir", str(data_dir))
    assert r.returncode == 0, r.stderr
    assert "future.ai-training: skipped, needs engine 99" in r.stdout
    listed = cli("rules", "list", "--data-dir", str(data_dir))
    assert "future.ai-training: skipped" in listed.stdout
    assert "future.ai-training" not in {x["id"] for x in json.loads(cli("rules", "list", "--json", "--data-dir",
                                                                        str(data_dir)).stdout)}
    # kept in the database, so an export hands it on to engines that can use it
    out = tmp_path / "exported.json"
    assert cli("rules", "export", str(out), "--data-dir", str(data_dir)).returncode == 0
    assert "future.ai-training" in {x["id"] for x in json.loads(out.read_text())["rules"]}


# -- export / keygen / sign / import ---------------------------------------------------------------

def test_export_sign_import_with_trust_then_one_byte_changed_is_refused(tmp_path):
    src, dst = tmp_path / "src-data", tmp_path / "new-data"
    pack_file = tmp_path / "out" / "pack.json"
    pack_file.parent.mkdir()
    r = cli("rules", "export", str(pack_file), "--data-dir", str(src))
    assert r.returncode == 0, r.stderr
    # change it, as a maintainer would, so the bundled maintainer signature cannot be what makes it pass
    pack = json.loads(pack_file.read_text())
    pack["version"] = "2099.1.1"
    pack["rules"].append(new_rule())
    write_pack(pack_file, pack)
    (tmp_path / "out" / "pack.json.sig").unlink(missing_ok=True)

    r = cli("rules", "keygen", str(tmp_path / "keys"))
    assert r.returncode == 0, r.stderr
    key, pub = tmp_path / "keys" / "consentwatch-signing.key", tmp_path / "keys" / "consentwatch-signing.pub.pem"
    assert (key.stat().st_mode & 0o777) == 0o600 and pub.is_file()
    r = cli("rules", "sign", "--key", str(key), str(pack_file))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "pack.json.sig").is_file()

    # not trusted yet: refused
    r = cli("rules", "import", str(pack_file), "--data-dir", str(dst))
    assert r.returncode == 2 and "not trusted" in r.stderr

    r = cli("rules", "import", str(pack_file), "--trust", str(pub), "--data-dir", str(dst))
    assert r.returncode == 0, r.stderr
    assert "imported rule pack 2099.1.1" in r.stdout
    assert "added:   example.ai-training" in r.stdout
    assert "new hosts: www.example.org" in r.stdout
    listed = json.loads(cli("rules", "list", "--json", "--data-dir", str(dst)).stdout)
    assert "example.ai-training" in {x["id"] for x in listed}

    # one byte changed: refused, and the rules in force stay exactly as they were
    before = (dst / "rules.json").read_bytes()
    data = bytearray(pack_file.read_bytes())
    i = data.index(b"2099.1.1")
    data[i + 7] = ord("2")  # 2099.1.1 -> 2099.1.2
    pack_file.write_bytes(bytes(data))
    r = cli("rules", "import", str(pack_file), "--trust", str(pub), "--data-dir", str(dst))
    assert r.returncode == 2 and "import refused" in r.stderr and "changed after signing" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert (dst / "rules.json").read_bytes() == before
    assert cli("rules", "show", "example.ai-training", "--data-dir", str(dst)).returncode == 0


def test_import_refuses_unsigned_and_invalid_packs_and_keeps_the_old_rules(tmp_path, data_dir):
    pack = shipped_pack()
    pack["rules"] = pack["rules"][:3]
    f = write_pack(tmp_path / "small.json", pack)
    cli("rules", "list", "--data-dir", str(data_dir))  # seed
    before = (data_dir / "rules.json").read_bytes()
    r = cli("rules", "import", str(f), "--data-dir", str(data_dir))
    assert r.returncode == 2 and "not signed" in r.stderr
    assert (data_dir / "rules.json").read_bytes() == before

    bad = copy.deepcopy(pack)
    del bad["rules"][0]["hosts"]
    g = write_pack(tmp_path / "bad.json", bad)
    r = cli("rules", "import", str(g), "--allow-unsigned", "--data-dir", str(data_dir))
    assert r.returncode == 2 and "not a valid rule pack" in r.stderr and "hosts" in r.stderr
    assert (data_dir / "rules.json").read_bytes() == before

    r = cli("rules", "import", str(f), "--allow-unsigned", "--data-dir", str(data_dir))
    assert r.returncode == 0 and "UNSIGNED" in r.stdout and "not signed" in r.stderr
    assert "removed: " in r.stdout
    assert len(json.loads(cli("rules", "list", "--json", "--data-dir", str(data_dir)).stdout)) == 3


def test_shipped_pack_imports_without_trust(tmp_path, data_dir):
    shipped = ROOT / "src" / "consentwatch" / "rules" / "pack.json"
    r = cli("rules", "import", str(shipped), "--data-dir", str(data_dir))
    assert r.returncode == 0, r.stderr
    assert "bundled maintainer key" in r.stdout
    # and so does an export of it: the export is byte-identical and carries the maintainers' signature
    out = tmp_path / "exported.json"
    r = cli("rules", "export", str(out), "--data-dir", str(data_dir))
    assert r.returncode == 0 and out.read_bytes() == shipped.read_bytes()
    assert (tmp_path / "exported.json.sig").is_file() and (tmp_path / "schema.json").is_file()
    r = cli("rules", "import", str(out), "--data-dir", str(tmp_path / "other"))
    assert r.returncode == 0, r.stderr


def test_import_with_new_hosts_says_whether_the_ca_must_be_renewed(tmp_path, data_dir):
    from consentwatch import ca
    from consentwatch.rules.model import load_pack

    pack = shipped_pack()
    pack["rules"].append(new_rule())
    f = write_pack(tmp_path / "p.json", pack)
    # no CA yet: the next run makes one that covers the new hosts
    r = cli("rules", "import", str(f), "--allow-unsigned", "--data-dir", str(data_dir))
    assert r.returncode == 0, r.stderr
    assert "new hosts: www.example.org" in r.stdout and "next `consentwatch run`" in r.stdout

    # a CA made for the shipped rules does not cover example.org: renew and re-trust
    other = tmp_path / "with-ca"
    ca.create_ca(other / "ca", ca.wanted_domains(load_pack(shipped_pack()).host_patterns()))
    r = cli("rules", "import", str(f), "--allow-unsigned", "--data-dir", str(other))
    assert r.returncode == 0, r.stderr
    assert "Your CA does not cover www.example.org" in r.stdout
    assert "consentwatch run --renew-ca" in r.stdout or "consentwatch ca renew" in r.stdout
    assert "trust the new CA certificate" in r.stdout and "remove the old one" in r.stdout

    # a new host under a domain the CA already covers: nothing to renew
    covered = shipped_pack()
    covered["rules"][0]["hosts"].append("m.linkedin.com")
    g = write_pack(tmp_path / "covered.json", covered)
    third = tmp_path / "third"
    ca.create_ca(third / "ca", ca.wanted_domains(load_pack(shipped_pack()).host_patterns()))
    r = cli("rules", "import", str(g), "--allow-unsigned", "--data-dir", str(third))
    assert r.returncode == 0 and "new hosts: m.linkedin.com" in r.stdout and "already covers" in r.stdout


def test_sign_refuses_invalid_packs_and_bad_keys(tmp_path):
    pack = shipped_pack()
    del pack["rules"][0]["hosts"]
    f = write_pack(tmp_path / "bad.json", pack)
    cli("rules", "keygen", str(tmp_path / "k"))
    r = cli("rules", "sign", "--key", str(tmp_path / "k" / "consentwatch-signing.key"), str(f))
    assert r.returncode == 2 and "invalid" in r.stderr and not (tmp_path / "bad.json.sig").exists()
    good = write_pack(tmp_path / "good.json", shipped_pack())
    r = cli("rules", "sign", "--key", str(tmp_path / "k" / "consentwatch-signing.pub.pem"), str(good))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


# -- diff --------------------------------------------------------------------------------------------

def test_diff_output(tmp_path):
    a = shipped_pack()
    b = copy.deepcopy(a)
    b["version"] = "2099.1.1"
    removed = b["rules"].pop(5)["id"]
    b["rules"].append(new_rule())
    b["rules"][0]["setting"]["labels"].append("Allow AI training")
    b["rules"][0]["hosts"].append("m.linkedin.com")
    b["rules"][0]["last_verified"] = "2027-01-01"
    fa, fb = write_pack(tmp_path / "a.json", a), write_pack(tmp_path / "b.json", b)
    r = cli("rules", "diff", str(fa), str(fb))
    assert r.returncode == 1, r.stderr
    out = r.stdout
    assert f"version: {a['version']} -> 2099.1.1" in out
    assert "added:   example.ai-training" in out
    assert f"removed: {removed}" in out
    assert "changed: linkedin.genai-training: hosts, setting.labels, last_verified" in out
    assert "setting.labels +'Allow AI training'" in out
    assert "new hosts: m.linkedin.com, www.example.org" in out
    same = cli("rules", "diff", str(fa), "@shipped")
    assert same.returncode == 0 and "no rule changes" in same.stdout
    js = json.loads(cli("rules", "diff", "--json", str(fa), str(fb)).stdout)
    assert js["added"] == ["example.ai-training"] and js["removed"] == [removed]
    assert cli("rules", "diff", str(fa), str(tmp_path / "missing.json")).returncode == 2


# -- test --------------------------------------------------------------------------------------------

EXAMPLE_URL = "https://www.example.org/settings/ai"


def example_page(on: bool) -> bytes:
    checked = " checked" if on else ""
    return (f'<html><body><h1>AI</h1><label for="t">Use my posts to train AI</label>'
            f'<input id="t" type="checkbox"{checked}></body></html>').encode()


NOTICE = (b'<html><body><div role="dialog"><h2>We are updating our privacy policy</h2><p>From March 3, 2026 we '
          b'will use your public posts to train AI models.</p></div><main>Feed</main></body></html>')


@pytest.fixture
def example_fixtures(tmp_path):
    from conftest import write_flow

    base = tmp_path / "fixtures"
    write_flow(base / "example" / "settings-on.flow", EXAMPLE_URL, example_page(True), timestamp=1_780_000_000)
    write_flow(base / "example" / "settings-off.flow", EXAMPLE_URL, example_page(False), timestamp=1_780_000_000)
    write_flow(base / "example" / "notice.flow", "https://www.example.org/feed", NOTICE, timestamp=1_770_000_000)
    write_flow(base / "example" / "unrelated.flow", "https://www.example.org/feed", b"<html><body><main>Feed</main></body></html>",
               timestamp=1_780_000_000)
    rule = new_rule()
    rule["notices"] = {"about": ["train AI"]}
    rule["fixtures"] = [
        {"file": "example/settings-on.flow", "expect": ["toggle_on"]},
        {"file": "example/unrelated.flow", "expect": []},
        {"file": "example/settings-off.flow", "expect": ["toggle_off"]},
        {"file": "example/notice.flow", "expect": ["policy_update"], "effective_date": "2026-03-03"},
    ]
    bare = new_rule("example.other-setting")
    bare["fixtures"] = []
    pack = {"format": 1, "version": "1", "rules": [rule, bare]}
    return write_pack(tmp_path / "pack.json", pack), base, pack


def test_rules_test_reports_per_rule_and_fails_rules_without_fixtures(example_fixtures):
    f, base, _ = example_fixtures
    r = cli("rules", "test", "--pack", str(f), "--fixtures", str(base), "-v")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "PASS example.ai-training (4 fixture(s))" in r.stdout
    assert "FAIL example.other-setting (no fixtures" in r.stdout
    assert "2 rule(s): 1 passed, 1 failed" in r.stdout
    r = cli("rules", "test", "example.ai-training", "--pack", str(f), "--fixtures", str(base))
    assert r.returncode == 0 and "1 rule(s): 1 passed, 0 failed" in r.stdout
    r = cli("rules", "test", "example.nope", "--pack", str(f), "--fixtures", str(base))
    assert r.returncode == 2 and "example.nope" in r.stderr


def test_rules_test_catches_wrong_expectations(example_fixtures, tmp_path):
    _, base, pack = example_fixtures
    rule = pack["rules"][0]
    rule["fixtures"] = [
        {"file": "example/settings-off.flow", "expect": ["toggle_on"]},
        {"file": "example/notice.flow", "expect": ["policy_update"], "effective_date": "2026-04-01"},
        {"file": "example/missing.flow", "expect": []},
        {"file": "example/settings-on.flow", "expect": ["toggle_on"], "region": "DE"},
    ]
    rule["applies"] = [{"regions": ["US"]}]
    g = write_pack(tmp_path / "wrong.json", {**pack, "rules": [rule]})
    r = cli("rules", "test", "--pack", str(g), "--fixtures", str(base), "--json")
    assert r.returncode == 1
    [res] = json.loads(r.stdout)
    assert res["status"] == "FAIL"
    problems = [x["problem"] for x in res["fixtures"]]
    assert problems[0] == "expected toggle_on, got toggle_off"
    assert "expected effective date 2026-04-01, got 2026-03-03" in problems[1]
    assert "missing file" in problems[2]
    assert problems[3] == "expected toggle_on, got no finding"  # a German user: the rule does not apply


def test_rules_test_fails_a_rule_whose_off_fixture_is_not_recognised_as_off(example_fixtures, tmp_path):
    _, base, pack = example_fixtures
    rule = pack["rules"][0]
    # an OFF page the engine cannot read (the switch is not in what the server sent): the expectation fails
    rule["fixtures"] = [{"file": "example/settings-on.flow", "expect": ["toggle_on"]},
                        {"file": "example/unrelated.flow", "expect": ["toggle_off"]}]
    g = write_pack(tmp_path / "off.json", {**pack, "rules": [rule]})
    r = cli("rules", "test", "--pack", str(g), "--fixtures", str(base), "--json")
    assert r.returncode == 1
    [res] = json.loads(r.stdout)
    assert [x["problem"] for x in res["fixtures"] if not x["ok"]] == ["expected toggle_off, got no finding"]
    # "nothing" means nothing: an OFF finding where none is expected would resolve a real warning
    rule["fixtures"] = [{"file": "example/settings-on.flow", "expect": ["toggle_on"]},
                        {"file": "example/settings-off.flow", "expect": []},
                        {"file": "example/settings-off.flow", "expect": ["toggle_off"]}]
    g = write_pack(tmp_path / "nothing.json", {**pack, "rules": [rule]})
    [res] = json.loads(cli("rules", "test", "--pack", str(g), "--fixtures", str(base), "--json").stdout)
    assert [x["problem"] for x in res["fixtures"] if not x["ok"]] == ["expected no finding, got toggle_off"]
    # a setting rule without any fixture expecting toggle_off fails, whatever else passes
    rule["fixtures"] = [{"file": "example/settings-on.flow", "expect": ["toggle_on"]},
                        {"file": "example/unrelated.flow", "expect": []}]
    g = write_pack(tmp_path / "no-off.json", {**pack, "rules": [rule]})
    r = cli("rules", "test", "--pack", str(g), "--fixtures", str(base))
    assert r.returncode == 1 and "FAIL example.ai-training" in r.stdout and "none expects toggle_off" in r.stdout


def test_rules_test_shipped_pack_is_green():
    fixtures = ROOT / "tests" / "fixtures"
    pack = shipped_pack()
    missing = [e["file"] for r in pack["rules"] for e in r["fixtures"] if not (fixtures / e["file"]).is_file()]
    assert not missing, f"{len(missing)} fixture files missing (make fixtures), e.g. {missing[0]}"
    r = cli("rules", "test")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    assert f"{len(pack['rules'])} rule(s): {len(pack['rules'])} passed, 0 failed" in r.stdout


def test_ca_advice_names_the_command_that_renews_it(tmp_path):
    from consentwatch.ca import PUBLIC_CERT, renew_advice

    advice = renew_advice(tmp_path)
    assert "consentwatch run --renew-ca" in advice  # what `run` offers today
    assert str(tmp_path / "ca" / PUBLIC_CERT) in advice
