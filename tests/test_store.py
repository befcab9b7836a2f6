"""The state store: one warning per rule, history of changes, re-enable, dismiss; atomic and crash-safe."""

import json
import os

from consentwatch.findings import Finding, Remedy
from consentwatch.store.atomic import AtomicJSONStorage, open_db
from consentwatch.store.state import StateStore


def finding(kind, state=None, at="2026-01-01T10:00:00+00:00", rule="linkedin.genai-training", date=None):
    return Finding(kind=kind, platform=rule.split(".")[0], rule_id=rule, url="https://www.linkedin.com/x",
                   setting="Data for Generative AI Improvement", state=state, effective_date=date,
                   observed_at=at, remedy=Remedy("https://www.linkedin.com/x", ("Me", "Settings")))


def test_one_warning_per_rule_not_per_page_view(data_dir):
    s = StateStore(data_dir)
    _, ev1 = s.record(finding("toggle_on", "on"))
    _, ev2 = s.record(finding("toggle_on", "on", at="2026-01-01T10:00:05+00:00"))
    assert [e.type for e in ev1] == ["warning"] and ev2 == []
    assert len(s.list_warnings()) == 1


def test_off_resolves_and_on_again_is_reenabled(data_dir):
    s = StateStore(data_dir)
    s.record(finding("toggle_on", "on", at="2026-01-01T10:00:00+00:00"))
    _, ev = s.record(finding("toggle_off", "off", at="2026-01-02T10:00:00+00:00"))
    assert [e.type for e in ev] == ["resolved"] and s.list_warnings() == []
    f, ev = s.record(finding("toggle_on", "on", at="2026-01-03T10:00:00+00:00"))
    assert f.kind == "toggle_reenabled" and [e.type for e in ev] == ["warning"]
    assert ev[0].warning["kind"] == "toggle_reenabled"
    assert [h["state"] for h in s.list_history()] == ["on", "off", "on"]


def test_off_first_then_on_is_reenabled_across_restarts(data_dir):
    s = StateStore(data_dir)
    s.record(finding("toggle_off", "off"))
    s.close()
    f, _ = StateStore(data_dir).record(finding("toggle_on", "on", at="2026-02-01T00:00:00+00:00"))
    assert f.kind == "toggle_reenabled"


def test_dismissal_persists_and_is_not_reannounced(data_dir):
    s = StateStore(data_dir)
    _, ev = s.record(finding("toggle_on", "on"))
    wid = ev[0].warning["id"]
    w, ev = s.dismiss(wid)
    assert w["status"] == "dismissed" and ev[0].type == "resolved"
    s2 = StateStore(data_dir)
    assert s2.get(wid)["status"] == "dismissed"
    assert s2.record(finding("toggle_on", "on", at="2026-01-05T00:00:00+00:00"))[1] == []


def test_policy_notices_dedupe_by_date(data_dir):
    s = StateStore(data_dir)
    assert s.record(finding("policy_update", date="2025-11-03"))[1]
    assert not s.record(finding("policy_update", date="2025-11-03"))[1]
    assert s.record(finding("policy_update", date="2026-03-01"))[1]
    assert len(s.list_warnings()) == 2


def test_announced_warning_is_already_on_disk(data_dir):
    s = StateStore(data_dir)
    _, ev = s.record(finding("toggle_on", "on"))
    on_disk = json.loads((data_dir / "state.json").read_text())
    assert ev[0].warning["id"] in {w["id"] for w in on_disk["warnings"].values()}


def test_corrupt_store_is_moved_aside(data_dir, caplog):
    (data_dir / "state.json").write_text('{"warnings": {"1": {"id": ')
    s = StateStore(data_dir)
    assert s.list_warnings("all") == []
    s.record(finding("toggle_on", "on"))
    assert len(list(data_dir.glob("state.json.corrupt-*"))) == 1
    assert "corrupt" in caplog.text
    assert json.loads((data_dir / "state.json").read_text())["warnings"]


def test_write_error_keeps_serving(data_dir, monkeypatch, caplog):
    s = StateStore(data_dir)
    import consentwatch.store.atomic as atomic

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic, "atomic_write", full)
    _, ev = s.record(finding("toggle_on", "on"))
    assert ev and s.list_warnings()
    assert "No space left" in caplog.text
    monkeypatch.undo()
    s.record(finding("policy_update", date="2026-01-01"))
    assert len(json.loads((data_dir / "state.json").read_text())["warnings"]) == 2


def test_atomic_storage_file_mode_and_no_temp_left(tmp_path):
    db = open_db(tmp_path / "x.json")
    db.insert({"a": 1})
    assert oct(os.stat(tmp_path / "x.json").st_mode & 0o777) == "0o600"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
    assert isinstance(db.storage, AtomicJSONStorage)
