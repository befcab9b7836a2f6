"""The state store: one warning per rule, history of changes, re-enable, dismiss; atomic and crash-safe."""

import json
import os

from consentwatch.findings import Finding, Remedy
from consentwatch.store.atomic import AtomicJSONStorage, open_db
from consentwatch.store.state import StateStore


def on_disk(data_dir) -> dict:
    """The store as its files say, read the way README describes them: the snapshot, then each journal line."""
    snapshot = data_dir / "state.json"
    data = json.loads(snapshot.read_text()) if snapshot.exists() else {}
    journal = data_dir / "state.journal"
    lines = journal.read_bytes().split(b"\n") if journal.exists() else [b""]
    assert lines[-1] == b"", "the journal ends in an unfinished line"
    header, *commits = [json.loads(x) for x in lines[:-1]] or [{"journal": "consentwatch", "version": 1}]
    assert header == {"journal": "consentwatch", "version": 1}
    for c in commits:
        for t in c.get("clear", []):
            data[t] = {}
        for t, ids in c.get("del", {}).items():
            for i in ids:
                data.get(t, {}).pop(i, None)
        for t, docs in c.get("put", {}).items():
            data.setdefault(t, {}).update(docs)
    return data


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


def test_writes_count_every_change_and_unchanged_until_is_the_next_last_seen_refresh(data_dir):
    """What the page eye's memory of repeats relies on: `writes` moves on every change of the store and only
    then, and recording the same finding again changes nothing until its warning's last_seen is due."""
    import datetime as dt

    s = StateStore(data_dir)
    n = s.writes
    s.record(finding("toggle_on", "on", at="2026-01-01T10:00:00+00:00"))
    assert s.writes > n
    n = s.writes
    _, ev = s.record(finding("toggle_on", "on", at="2026-01-01T10:00:30+00:00"))
    assert ev == [] and s.writes == n
    due = s.unchanged_until([finding("toggle_on", "on")])
    assert due == dt.datetime(2026, 1, 1, 10, 1, 0, tzinfo=dt.timezone.utc)
    s.record(finding("toggle_on", "on", at="2026-01-01T10:00:59+00:00"))
    assert s.writes == n  # still before it
    s.record(finding("toggle_on", "on", at="2026-01-01T10:01:00+00:00"))
    assert s.writes == n + 1 and s.list_warnings()[0]["last_seen"] == "2026-01-01T10:01:00+00:00"
    s.dismiss(s.list_warnings()[0]["id"])
    assert s.writes == n + 2
    s.record(finding("toggle_off", "off", at="2026-01-01T10:02:00+00:00"))  # history moves (on -> off)
    assert s.writes == n + 3
    s.record(finding("toggle_off", "off", at="2026-01-01T10:03:00+00:00"))  # nothing to resolve, no change
    assert s.writes == n + 3 and s.unchanged_until([finding("toggle_off", "off")]) is None


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
    assert ev[0].warning["id"] in {w["id"] for w in on_disk(data_dir)["warnings"].values()}


def test_corrupt_store_is_moved_aside(data_dir, caplog):
    (data_dir / "state.json").write_text('{"warnings": {"1": {"id": ')
    s = StateStore(data_dir)
    assert s.list_warnings("all") == []
    s.record(finding("toggle_on", "on"))
    assert len(list(data_dir.glob("state.json.corrupt-*"))) == 1
    assert "corrupt" in caplog.text
    assert on_disk(data_dir)["warnings"]


def test_write_error_keeps_serving(data_dir, monkeypatch, caplog):
    """The whole-file store (journal=False, as before the journal): the next write that works has it all."""
    s = StateStore(data_dir, journal=False)
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


def test_journal_write_error_keeps_serving_and_loses_nothing(data_dir, monkeypatch, caplog):
    """Disk full while appending: served from memory, said once; the next line that can be written carries
    what the failed ones did not, and a restart finds all of it."""
    import consentwatch.store.journal as journal

    caplog.set_level("INFO", "consentwatch.store")
    s = StateStore(data_dir)
    s.record(finding("policy_update", date="2025-01-01"))
    real = journal.append_durably

    def half_then_full(fd, payload):
        os.write(fd, payload[: len(payload) // 2])  # part of the line reaches the file, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal, "append_durably", half_then_full)
    _, ev1 = s.record(finding("toggle_on", "on"))
    _, ev2 = s.record(finding("policy_update", date="2026-01-01"))
    assert ev1 and ev2 and len(s.list_warnings()) == 3
    assert caplog.text.count("No space left") == 1
    monkeypatch.setattr(journal, "append_durably", real)
    s.record(finding("policy_update", date="2027-01-01"))
    assert "works again" in caplog.text
    assert len(on_disk(data_dir)["warnings"]) == 4  # the half line was cut off before the next one
    s.close()
    assert len(StateStore(data_dir).list_warnings()) == 4
    assert not list(data_dir.glob("*corrupt*"))
