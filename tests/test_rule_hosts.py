"""Rule hosts and the CA: no public suffix as a rule host (the CA would sign for every site under it), and a
host written in upper case or with a trailing dot is the same host everywhere (rules, addon, allow_hosts)."""

from __future__ import annotations

import re

import pytest
from mitmproxy import http
from mitmproxy.test import taddons, tflow

from consentwatch.addon import ConsentWatch
from consentwatch.run import hosts_regex
from consentwatch.rules.hosts import public_suffix_problem
from consentwatch.rules.model import load_pack, shipped_pack, validate_pack
from consentwatch.store.journal import read_stored
from conftest import cli
from live_support import RULE_ID, SETTINGS_PATH, settings_html
from test_rules_cli import new_rule, write_pack


@pytest.mark.parametrize("host", ["*.co.uk", "co.uk", "*.github.io", "github.io", "*.com", "*.blogspot.com",
                                  "*.s3.amazonaws.com", "*.nosuchtld"])
def test_public_suffixes_are_refused(host):
    assert public_suffix_problem(host) is not None
    pack = shipped_pack()
    pack["rules"].append(new_rule(host=host))
    errors = validate_pack(pack)
    # refused by the schema already ("*.com": one label) or by the public suffix check
    assert any(e.startswith("example.ai-training: hosts/0") for e in errors), errors


@pytest.mark.parametrize("host", ["www.example.co.uk", "*.example.co.uk", "octo.github.io", "*.substack.com",
                                  "x.com", "www.linkedin.com"])
def test_a_platforms_own_domain_is_fine(host):
    assert public_suffix_problem(host) is None


def test_shipped_rule_hosts_are_no_public_suffixes():
    assert [h for h in load_pack(shipped_pack()).host_patterns() if public_suffix_problem(h)] == []


def test_notice_hosts_are_checked_too():
    pack = shipped_pack()
    rule = new_rule()
    rule["notices"] = {"about": ["training AI models"], "hosts": ["*.co.uk"]}
    pack["rules"].append(rule)
    assert any("notices/hosts/0" in e and "public suffix" in e for e in validate_pack(pack))


def test_validate_and_import_refuse_a_public_suffix_host(tmp_path, data_dir):
    pack = shipped_pack()
    pack["rules"].append(new_rule(host="*.co.uk"))
    f = write_pack(tmp_path / "suffix.json", pack)
    r = cli("rules", "validate", str(f))
    assert r.returncode == 1 and "public suffix 'co.uk'" in r.stdout, r.stdout + r.stderr
    cli("rules", "list", "--data-dir", str(data_dir))  # seed the shipped rules
    before = (data_dir / "rules.json").read_bytes()
    r = cli("rules", "import", str(f), "--allow-unsigned", "--data-dir", str(data_dir))
    assert r.returncode == 2 and "import refused" in r.stderr and "public suffix" in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2  # the --allow-unsigned warning, then the one refusal line
    assert (data_dir / "rules.json").read_bytes() == before


# -- one host, however it is written ----------------------------------------------------------------------

@pytest.mark.parametrize("host", ["www.linkedin.com", "WWW.LinkedIn.COM", "www.linkedin.com.", "WWW.LINKEDIN.COM."])
def test_rule_lookup_ignores_case_and_trailing_dot(host):
    full = load_pack(shipped_pack())
    assert RULE_ID in [r.id for r in full.for_host(host)]
    # a pack without wildcard hosts takes the other path through the lookup
    only = shipped_pack()
    only["rules"] = [r for r in only["rules"] if r["id"] == RULE_ID]
    exact = load_pack(only)
    assert [r.id for r in exact.for_host(host)] == [RULE_ID]
    assert exact.for_host("www.example.com") == () and exact.for_host("WWW.EXAMPLE.COM.") == ()


def test_remembered_answers_stay_right_and_bounded():
    """for_host remembers each host's answer (every flow asks, most hosts are not ours); hosts come from traffic, so
    the memory is bounded, and starting over changes no answer."""
    from consentwatch.rules.model import MAX_REMEMBERED_HOSTS

    rules = load_pack(shipped_pack())
    fresh = load_pack(shipped_pack())
    hosts = ["www.linkedin.com", "WWW.LinkedIn.COM.", "x.substack.com", "cdn.example.net"]
    first = [rules.for_host(h) for h in hosts]
    assert first[0] and first[1] == first[0] and first[2] and first[3] == ()
    for i in range(MAX_REMEMBERED_HOSTS + 50):
        assert rules.for_host(f"h{i}.example.net") == ()
        assert len(rules._found) <= MAX_REMEMBERED_HOSTS
    assert [rules.for_host(h) for h in hosts] == first == [fresh._for_host_now(h) for h in hosts]


@pytest.mark.parametrize("authority", ["www.linkedin.com", "WWW.LinkedIn.COM", "www.linkedin.com.",
                                       "WWW.LINKEDIN.COM.:443", "foo.SUBSTACK.com."])
def test_intercepted_whatever_the_spelling(authority):
    rules = load_pack(shipped_pack())
    # mitmproxy compiles allow_hosts with re.IGNORECASE and matches "host:port"
    target = authority if ":" in authority else authority + ":443"
    assert re.search(rules.allow_hosts_regex(), target, re.IGNORECASE)
    assert re.search(hosts_regex(rules.host_patterns()), target, re.IGNORECASE)
    assert not re.search(rules.allow_hosts_regex(), "www.linkedin.com.evil.example:443", re.IGNORECASE)


@pytest.mark.parametrize("authority", ["WWW.LinkedIn.COM", "www.linkedin.com.", "WWW.LINKEDIN.COM.:443"])
def test_the_addon_inspects_a_rule_host_however_written(tmp_path, authority):
    cw = ConsentWatch()
    with taddons.context(cw) as tctx:
        tctx.configure(cw, consentwatch_data_dir=str(tmp_path), consentwatch_detect_process=False)
        f = tflow.tflow(resp=True)
        f.request = http.Request.make("GET", f"https://{authority}{SETTINGS_PATH}")
        f.request.headers["host"] = authority
        f.response = http.Response.make(200, settings_html(True), {"content-type": "text/html"})
        cw.response(f)
        cw._drain()
        assert [w["rule_id"] for w in cw.watch.state.list_warnings()] == [RULE_ID]
        cw.watch.close()
        cw.watch = None
    stored = read_stored(tmp_path / "state.json")  # snapshot + journal
    assert len(stored["warnings"]) == 1
