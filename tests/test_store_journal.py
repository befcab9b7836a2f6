"""The state store's snapshot + journal: a commit appends one line whatever is stored; migration from the
whole-file store; torn and corrupt journals; compaction, and a kill between its two steps."""

import json
import os
import shutil

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tinydb import Query, TinyDB
from tinydb.storages import MemoryStorage

import consentwatch.store.journal as journal
from consentwatch.findings import Finding, Remedy
from consentwatch.store.journal import (HEADER_LINE, JournaledStorage, open_journaled, read_stored,
                                        snapshot_chunks)
from consentwatch.store.state import StateStore


def finding(kind, state=None, at="2026-01-01T10:00:00+00:00", rule="linkedin.genai-training", date=None):
    return Finding(kind=kind, platform=rule.split(".")[0], rule_id=rule, url="https://www.linkedin.com/x",
                   setting="Data for Generative AI Improvement", state=state, effective_date=date,
                   observed_at=at, remedy=Remedy("https://www.linkedin.com/x", ("Me", "Settings")))


def fill(store: StateStore, n: int, prefix: str = "r") -> None:
    """n policy warnings and n history entries, in one commit."""
    with store.batch():
        for i in range(n):
            store.record(finding("policy_update", rule=f"x.{prefix}{i}", date="2026-01-01"))
            store.record(finding("toggle_on", "on", rule=f"y.{prefix}{i}"))


def everything(store: StateStore) -> tuple[list, list]:
    return store.list_warnings("all"), store.list_history()


def journal_lines(data_dir) -> list[bytes]:
    return (data_dir / "state.journal").read_bytes().split(b"\n")


def test_a_commit_appends_one_line_whatever_is_stored(data_dir, tmp_path):
    """The bytes a commit writes do not depend on how much is stored, and the snapshot is left alone."""
    grown = {}
    for n in (5, 3000):
        d = tmp_path / f"n{n}"
        d.mkdir()
        s = StateStore(d)
        fill(s, n)
        s.close()
        s = StateStore(d)  # compaction on start: everything in the snapshot, the journal just its header
        assert (d / "state.journal").read_bytes() == HEADER_LINE
        snapshot = (d / "state.json").stat()
        before = (d / "state.journal").stat().st_size
        s.record(finding("toggle_off", "off", rule="y.r1", at="2026-01-02T10:00:00+00:00"))
        s.record(finding("policy_update", rule="z.new", date="2026-02-01"))
        grown[n] = (d / "state.journal").stat().st_size - before
        after = (d / "state.json").stat()
        assert (after.st_ino, after.st_size, after.st_mtime_ns) == (snapshot.st_ino, snapshot.st_size,
                                                                    snapshot.st_mtime_ns)
        assert len(journal_lines(d)) == 4  # header, two commits, and the empty rest after the last newline
        s.close()
    # the same two commits; only the digits of the new document ids differ
    assert abs(grown[3000] - grown[5]) <= 16, grown
    assert grown[3000] < 4000 < (tmp_path / "n3000" / "state.json").stat().st_size / 100


def test_a_batch_is_one_line(data_dir):
    s = StateStore(data_dir)
    fill(s, 50)
    assert len(journal_lines(data_dir)) == 3  # header, the batch, ""
    line = json.loads(journal_lines(data_dir)[1])
    assert set(line) == {"put"} and len(line["put"]["warnings"]) == 100 and len(line["put"]["history"]) == 50


def test_whole_file_store_migrates_and_nothing_is_lost(data_dir):
    """A data dir written by the whole-file store (every version before the journal) loads as it is, then
    grows a journal; every warning, dismissal and history entry is still there after restarts."""
    old = StateStore(data_dir, journal=False)
    fill(old, 20)
    old.record(finding("toggle_off", "off", rule="y.r3", at="2026-01-02T10:00:00+00:00"))
    wid = old.list_warnings()[0]["id"]
    old.dismiss(wid)
    expected = everything(old)
    old.close()
    assert not (data_dir / "state.journal").exists()
    s = StateStore(data_dir)
    assert everything(s) == expected
    assert not (data_dir / "state.journal").exists()  # nothing to fold in: the old file is the snapshot
    f, ev = s.record(finding("toggle_on", "on", rule="y.r3", at="2026-01-03T10:00:00+00:00"))
    assert f.kind == "toggle_reenabled" and ev  # the history read from the old file
    assert s.dismiss(wid)[1] == []  # still dismissed
    s.close()
    s = StateStore(data_dir)
    assert len(s.list_history()) == len(expected[1]) + 1
    assert s.get(wid)["status"] == "dismissed"
    assert (data_dir / "state.journal").read_bytes() == HEADER_LINE  # compacted on start
    assert len(json.loads((data_dir / "state.json").read_text())["history"]) == len(expected[1]) + 1


def test_torn_last_line_is_dropped_at_every_cut(data_dir, tmp_path):
    s = StateStore(data_dir)
    s.record(finding("policy_update", date="2025-01-01"))
    s.record(finding("policy_update", date="2026-01-01"))  # the commit that will be cut
    s.close()
    snapshot_exists = (data_dir / "state.json").exists()
    raw = (data_dir / "state.journal").read_bytes()
    last_start = raw.rstrip(b"\n").rfind(b"\n") + 1
    cuts = sorted({last_start + 1, len(raw) - 1, *range(last_start + 1, len(raw) - 1, 97)})
    for cut in cuts:
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        if snapshot_exists:
            shutil.copy(data_dir / "state.json", d / "state.json")
        (d / "state.journal").write_bytes(raw[:cut])
        s = StateStore(d)
        assert [w["effective_date"] for w in s.list_warnings()] == ["2025-01-01"], cut
        assert not list(d.glob("*corrupt*"))
        # folded into the snapshot at start: no torn bytes left for the next line to follow
        assert (d / "state.journal").read_bytes() == HEADER_LINE
        s.record(finding("policy_update", date="2027-01-01"))
        s.close()
        assert [w["effective_date"] for w in StateStore(d).list_warnings()] == ["2025-01-01", "2027-01-01"]


def test_corrupt_line_sets_the_journal_aside_and_keeps_what_came_before(data_dir, caplog):
    s = StateStore(data_dir)
    for date in ("2025-01-01", "2026-01-01", "2027-01-01"):
        s.record(finding("policy_update", date=date))
    s.close()
    lines = journal_lines(data_dir)
    lines[2] = b'{"put": {"warnings": {"2": "not a document"}}}'
    (data_dir / "state.journal").write_bytes(b"\n".join(lines))
    s = StateStore(data_dir)
    assert [w["effective_date"] for w in s.list_warnings()] == ["2025-01-01"]
    aside = list(data_dir.glob("state.journal.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == b"\n".join(lines)  # kept for inspection, untouched
    assert "line 3" in caplog.text and "1 commits before it kept" in caplog.text
    s.record(finding("policy_update", date="2028-01-01"))
    s.close()
    assert len(StateStore(data_dir).list_warnings()) == 2


def test_journal_of_another_kind_or_version_is_set_aside(data_dir, caplog):
    s = StateStore(data_dir)
    s.record(finding("policy_update", date="2025-01-01"))
    s.close()
    s = StateStore(data_dir)  # now in the snapshot
    s.close()
    for header in (b'{"journal":"consentwatch","version":99}\n', b'{"something":"else"}\n'):
        (data_dir / "state.journal").write_bytes(header + b'{"del":{"warnings":["1"]}}\n')
        s = StateStore(data_dir)
        assert len(s.list_warnings()) == 1  # the snapshot's warning, the foreign line not applied
        s.close()
    assert "version 99" in caplog.text and "not a consentwatch journal" in caplog.text
    assert len(list(data_dir.glob("state.journal.corrupt-*"))) == 2


def test_corrupt_snapshot_sets_its_journal_aside_too(data_dir, caplog):
    s = StateStore(data_dir)
    s.record(finding("policy_update", date="2025-01-01"))
    s.close()
    StateStore(data_dir).close()
    s = StateStore(data_dir)
    s.record(finding("policy_update", date="2026-01-01"))  # a line relative to the snapshot
    s.close()
    (data_dir / "state.json").write_text('{"warnings": {"1": ')
    s = StateStore(data_dir)
    assert s.list_warnings("all") == []
    assert len(list(data_dir.glob("state.json.corrupt-*"))) == 1
    assert len(list(data_dir.glob("state.journal.corrupt-*"))) == 1
    s.record(finding("policy_update", date="2027-01-01"))
    s.close()
    assert len(StateStore(data_dir).list_warnings()) == 1


def test_compaction_when_the_journal_outgrows_the_snapshot(data_dir, monkeypatch):
    monkeypatch.setattr(journal, "COMPACT_MIN_BYTES", 20_000)
    s = StateStore(data_dir)
    storage = s.storage
    sizes = []
    for i in range(150):
        s.record(finding("policy_update", rule=f"x.r{i}", date="2026-01-01"))
        sizes.append(storage.journal_bytes)
    assert storage.compactions >= 2
    snapshot = (data_dir / "state.json").stat().st_size
    assert max(sizes) <= max(20_000, 2 * snapshot) + 2000
    expected = everything(s)
    s.close()
    assert everything(StateStore(data_dir)) == expected


def test_killed_between_new_snapshot_and_new_journal(data_dir):
    """Compaction writes the snapshot, then the empty journal. Killed in between, the old journal is replayed
    over the new snapshot: every put carries a whole document, so the result is the same."""
    s = StateStore(data_dir)
    fill(s, 5)
    s.record(finding("toggle_off", "off", rule="y.r1", at="2026-01-02T10:00:00+00:00"))
    s.dismiss(s.list_warnings()[0]["id"])
    s.warnings.remove(doc_ids=[2])
    s.history.truncate()
    s.history.insert({"rule_id": "y.r9", "state": "off", "observed_at": "2026-01-05T00:00:00+00:00"})
    expected = everything(s)
    old_journal = (data_dir / "state.journal").read_bytes()
    assert old_journal.count(b"\n") >= 6
    s.storage.compact()
    assert (data_dir / "state.journal").read_bytes() == HEADER_LINE
    s.close()
    (data_dir / "state.journal").write_bytes(old_journal)  # as if killed before the journal was replaced
    assert everything(StateStore(data_dir)) == expected


def test_a_reader_touches_no_file(data_dir, caplog):
    s = StateStore(data_dir)
    s.record(finding("policy_update", date="2025-01-01"))
    s.record(finding("policy_update", date="2026-01-01"))
    raw = (data_dir / "state.journal").read_bytes()
    (data_dir / "state.journal").write_bytes(raw[:-5])  # as a reader may find it while the writer appends
    before = sorted((p.name, p.read_bytes()) for p in data_dir.iterdir())
    assert len(read_stored(data_dir / "state.json")["warnings"]) == 1
    bad = raw.replace(b'"put"', b'"pot"', 1)
    (data_dir / "state.journal").write_bytes(bad)
    assert read_stored(data_dir / "state.json") == {}
    assert "corrupt" in caplog.text
    (data_dir / "state.journal").write_bytes(raw[:-5])
    assert sorted((p.name, p.read_bytes()) for p in data_dir.iterdir()) == before
    try:
        JournaledStorage(data_dir / "state.json", writer=False).write({})
    except journal.ReadOnlyStore:
        pass
    else:
        raise AssertionError("a reader wrote")


def test_compaction_failure_loses_nothing(data_dir, monkeypatch, caplog):
    monkeypatch.setattr(journal, "COMPACT_MIN_BYTES", 3_000)
    s = StateStore(data_dir)
    s.record(finding("policy_update", rule="x.r0", date="2026-01-01"))  # the journal exists

    def full(*a, **k):  # no room for a new snapshot (appends still fit)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal, "atomic_write", full)
    for i in range(1, 30):
        s.record(finding("policy_update", rule=f"x.r{i}", date="2026-01-01"))
    assert s.storage.journal_bytes > 3_000 and "cannot compact" in caplog.text
    assert caplog.text.count("cannot compact") == 1  # said once; tried again only after as many bytes more
    assert s.storage._compact_errors in range(2, 15)  # not on every commit
    monkeypatch.undo()
    s.close()
    s = StateStore(data_dir)
    assert len(s.list_warnings()) == 30 and (data_dir / "state.journal").read_bytes() == HEADER_LINE


def test_snapshot_is_written_in_pieces_as_one_json_document():
    data = {"warnings": {str(i): {"id": f"w{i}", "t": "é\u2028\n"} for i in range(2500)}, "empty": {},
            "history": {"1": {"a": [1, {"b": None}]}}}
    assert b"".join(snapshot_chunks(data)) == json.dumps(data, ensure_ascii=False,
                                                         separators=(",", ":")).encode()
    assert b"".join(snapshot_chunks({})) == b"{}"


def test_file_modes(data_dir):
    s = StateStore(data_dir)
    s.record(finding("policy_update", date="2025-01-01"))
    s.storage.compact()
    for name in ("state.json", "state.journal"):
        assert oct(os.stat(data_dir / name).st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in data_dir.iterdir()) == ["state.journal", "state.json"]


# -- any TinyDB operation through the delta table lands on disk as it is in memory ---------------------

doc_st = st.dictionaries(st.sampled_from("abc"), st.one_of(st.integers(-3, 3), st.text(max_size=3), st.none()),
                         max_size=3)
op_st = st.one_of(
    st.tuples(st.just("insert"), st.sampled_from(["t1", "t2"]), doc_st),
    st.tuples(st.just("insert_multiple"), st.sampled_from(["t1", "t2"]), st.lists(doc_st, max_size=3)),
    st.tuples(st.just("update_id"), st.sampled_from(["t1", "t2"]), doc_st, st.integers(1, 6)),
    st.tuples(st.just("update_where"), st.sampled_from(["t1", "t2"]), doc_st, st.integers(-3, 3)),
    st.tuples(st.just("remove_id"), st.sampled_from(["t1", "t2"]), st.integers(1, 6)),
    st.tuples(st.just("remove_where"), st.sampled_from(["t1", "t2"]), st.integers(-3, 3)),
    st.tuples(st.just("upsert"), st.sampled_from(["t1", "t2"]), doc_st, st.integers(-3, 3)),
    st.tuples(st.just("truncate"), st.sampled_from(["t1", "t2"])),
    st.tuples(st.just("drop"), st.sampled_from(["t1", "t2"])),
    st.tuples(st.just("compact")),
    st.tuples(st.just("reopen")),
)


def apply_op(db: TinyDB, op) -> None:
    q = Query()
    kind, *args = op
    if kind == "insert":
        db.table(args[0]).insert(args[1])
    elif kind == "insert_multiple":
        db.table(args[0]).insert_multiple(args[1])
    elif kind == "update_id":
        t = db.table(args[0])
        if t.contains(doc_id=args[2]):
            t.update(args[1], doc_ids=[args[2]])
    elif kind == "update_where":
        db.table(args[0]).update(args[1], q.a == args[2])
    elif kind == "remove_id":
        t = db.table(args[0])
        if t.contains(doc_id=args[1]):
            t.remove(doc_ids=[args[1]])
    elif kind == "remove_where":
        db.table(args[0]).remove(q.a == args[1])
    elif kind == "upsert":
        db.table(args[0]).upsert({**args[1], "a": args[2]}, q.a == args[2])
    elif kind == "truncate":
        db.table(args[0]).truncate()
    elif kind == "drop":
        db.drop_table(args[0])


def contents(db: TinyDB) -> dict:
    return {name: {d.doc_id: dict(d) for d in db.table(name).all()} for name in ("t1", "t2")}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op_st, max_size=25))
def test_any_tinydb_operation_lands_on_disk(tmp_path_factory, ops):
    path = tmp_path_factory.mktemp("db") / "db.json"
    model = TinyDB(storage=MemoryStorage)
    db = open_journaled(path)
    for op in ops:
        if op[0] == "reopen":  # TinyDB numbers new documents from the highest id it finds on opening
            db.close()
            db = open_journaled(path)
            stored, model = model.storage.read(), TinyDB(storage=MemoryStorage)
            model.storage.write(stored)
        elif op[0] == "compact":
            db.storage.compact()
        else:
            apply_op(model, op)
            apply_op(db, op)
        assert contents(db) == contents(model)
    db.close()
    assert contents(open_journaled(path, writer=False)) == contents(model)
