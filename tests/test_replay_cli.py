"""`consentwatch replay` end to end: real flow and HAR files, the real CLI in a subprocess."""

import json

from conftest import LINKEDIN_URL, cli, linkedin_page, write_flow


def test_json_lines_with_design_fields_and_no_secrets(tmp_path, data_dir):
    flow = write_flow(tmp_path / "on.flow", LINKEDIN_URL + "?trk=SECRET_QUERY_TOKEN", linkedin_page(True))
    r = cli("replay", "--json", "--data-dir", str(data_dir), str(flow))
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["kind"] for x in lines] == ["toggle_on"]
    assert set(lines[0]) == {"kind", "platform", "rule_id", "url", "setting", "state", "effective_date",
                             "observed_at", "remedy", "seen_by"}
    assert lines[0]["seen_by"] == "network"  # design.md: each finding says which eye saw it
    assert lines[0]["url"] == LINKEDIN_URL
    everything = r.stdout + r.stderr + "".join(p.read_text(errors="replace") for p in data_dir.rglob("*") if p.is_file())
    for secret in ("SECRET_QUERY_TOKEN", "SECRET_COOKIE_VALUE", "SECRET_AUTH_TOKEN", "trk="):
        assert secret not in everything


def test_off_then_on_later_is_reenabled(tmp_path, data_dir):
    off = write_flow(tmp_path / "off.flow", LINKEDIN_URL, linkedin_page(False), timestamp=1_760_000_000)
    on = write_flow(tmp_path / "on.flow", LINKEDIN_URL, linkedin_page(True), timestamp=1_770_000_000)
    first = cli("replay", "--json", "--data-dir", str(data_dir), str(off))
    assert [json.loads(x)["kind"] for x in first.stdout.splitlines()] == ["toggle_off"]
    second = cli("replay", "--json", "--data-dir", str(data_dir), str(on))
    assert [json.loads(x)["kind"] for x in second.stdout.splitlines()] == ["toggle_reenabled"]


def test_har_input(tmp_path, data_dir):
    har = {"log": {"version": "1.2", "creator": {"name": "test", "version": "1"}, "entries": [{
        "startedDateTime": "2026-01-01T10:00:00.000Z", "time": 10,
        "request": {"method": "GET", "url": LINKEDIN_URL, "httpVersion": "HTTP/2", "headers": [], "queryString": [],
                    "cookies": [], "headersSize": -1, "bodySize": 0},
        "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/2",
                     "headers": [{"name": "content-type", "value": "text/html; charset=utf-8"}], "cookies": [],
                     "content": {"size": 10, "mimeType": "text/html", "text": linkedin_page(True).decode()},
                     "redirectURL": "", "headersSize": -1, "bodySize": -1},
        "cache": {}, "timings": {"send": 0, "wait": 5, "receive": 5}}]}}
    path = tmp_path / "page.har"
    path.write_text(json.dumps(har))
    r = cli("replay", "--json", "--data-dir", str(data_dir), str(path))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["kind"] == "toggle_on"


def test_unreadable_input_is_one_line_exit_2(tmp_path, data_dir):
    bad = tmp_path / "bad.flow"
    bad.write_bytes(b"this is not a flow file")
    r = cli("replay", "--data-dir", str(data_dir), str(bad), str(tmp_path / "missing.har"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 2  # one line per bad file


def test_fail_on_warning(tmp_path, data_dir):
    on = write_flow(tmp_path / "on.flow", LINKEDIN_URL, linkedin_page(True))
    off = write_flow(tmp_path / "off.flow", LINKEDIN_URL, linkedin_page(False))
    assert cli("replay", "--fail-on-warning", "--data-dir", str(data_dir / "a"), str(off)).returncode == 0
    r = cli("replay", "--fail-on-warning", "--data-dir", str(data_dir / "b"), str(on))
    assert r.returncode == 1 and "toggle_on" in r.stdout


def test_table_output_and_region(tmp_path, data_dir):
    # X does not train on EU data: a ticked box for an EU user is not a warning
    x = write_flow(tmp_path / "x.flow", "https://x.com/i/api/graphql/abc/GrokSettingsScreenQuery",
                   b'{"data":{"viewer":{"user_preferences":{"allow_xai_data_sharing":true}}}}', "application/json")
    assert "toggle_on" in cli("replay", "--data-dir", str(data_dir / "us"), "--region", "US", str(x)).stdout
    assert cli("replay", "--data-dir", str(data_dir / "eu"), "--region", "DE", str(x)).stdout.strip() == "no findings"
    r = cli("replay", "--data-dir", str(data_dir), "--region", "Narnia", str(x))
    assert r.returncode == 2 and "ISO country code" in r.stderr


def test_corrupt_state_is_moved_aside_and_replay_goes_on(tmp_path, data_dir):
    on = write_flow(tmp_path / "on.flow", LINKEDIN_URL, linkedin_page(True))
    assert cli("replay", "--data-dir", str(data_dir), str(on)).returncode == 0
    for f in data_dir.glob("*.json"):
        f.write_bytes(b"\x00garbage{{{")
    r = cli("replay", "--json", "--data-dir", str(data_dir), str(on))
    assert r.returncode == 0 and "Traceback" not in r.stderr
    assert json.loads(r.stdout)["kind"] == "toggle_on"
    assert list(data_dir.glob("*corrupt*"))


def test_non_rule_hosts_give_nothing(tmp_path, data_dir):
    news = write_flow(tmp_path / "news.flow", "https://techcrunch.com/2024/09/18/linkedin", linkedin_page(True))
    r = cli("replay", "--json", "--data-dir", str(data_dir), str(news))
    assert r.returncode == 0 and r.stdout == ""
