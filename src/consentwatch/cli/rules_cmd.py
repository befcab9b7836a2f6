"""`consentwatch rules ...`: the rule database for users and maintainers.

    list [--json]         the rules in force            show ID          one rule, as JSON
    validate FILE         schema + semantic checks      test [ID...]     replay each rule's fixtures
    export FILE           the rules in force, as a pack import FILE         verify, validate, swap, report
    keygen DIR            an Ed25519 signing key pair   sign --key K F   write F.sig
    diff A B              what changes between packs    suggest          discovered settings, learned keys: drafts

Errors are one line on stderr. Exit codes: 0 fine, 1 the answer is "no" (invalid pack, failing rule test,
packs differ), 2 unusable input (unreadable file, not JSON, bad key, refused import).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

from .. import ENGINE_VERSION
from ..ca import coverage_note
from ..findings import POLICY_UPDATE, TOGGLE_OFF, TOGGLE_ON, TOGGLE_REENABLED
from ..rule_tests import default_fixtures_dir, test_recording, test_rules
from ..rules.diff import diff_packs
from ..rules.drafts import KEY_TO_CHECK, TO_FILL, draft_pack, json_key_entry, learned_rules
from ..rules.importing import ImportRefused, import_pack
from ..rules.model import PackError, load_pack, shipped_pack, validate_pack
from ..rules.packfile import PackFileError, canonical_bytes, export_form, read_pack_file, write_export
from ..rules.signing import SigningError, keygen, sign_file
from ..rules.store import RuleStore
from ..store.suggestions import SuggestionStore
from ..terminal import printable_json, safe_print
from .common import CliError, add_data_dir, resolve_data_dir, say, setup_logging

# Every line this command prints may quote a pack field or a file name, which are other people's input:
# none of them reaches the terminal raw (escape codes shown, not obeyed; terminal.py).
print = safe_print  # noqa: A001


def register(sub) -> None:
    p = sub.add_parser("rules", help="list, check and manage the rule database",
                       description="List, check, sign and install rule packs. See docs/RULES.md.")
    rs = p.add_subparsers(dest="rules_command", required=True, metavar="ACTION")

    lp = rs.add_parser("list", help="list the rules in force")
    lp.add_argument("--json", action="store_true", help="the full rules, one JSON array")
    add_data_dir(lp)
    lp.set_defaults(func=cmd_list)

    sp = rs.add_parser("show", help="one rule in force, as JSON")
    sp.add_argument("id", metavar="ID")
    add_data_dir(sp)
    sp.set_defaults(func=cmd_show)

    vp = rs.add_parser("validate", help="check a rule pack against the schema; exit 1 when invalid",
                       description="Check a pack: every error with its rule id and field path. Exit 0 valid, "
                                   "1 invalid, 2 unreadable.")
    vp.add_argument("file", metavar="FILE", type=Path)
    vp.set_defaults(func=cmd_validate)

    tp = rs.add_parser("test", help="replay each rule's fixtures and compare the findings; exit 1 on a failure",
                       description="Replay each rule's recorded fixtures through the detectors and compare the "
                                   "findings with the rule's `fixtures` entries. A rule without fixtures fails.")
    tp.add_argument("ids", nargs="*", metavar="ID", help="only these rules (default: all)")
    tp.add_argument("--pack", metavar="FILE", type=Path,
                    help="test this pack (default: the shipped pack, or the data dir's with --data-dir)")
    tp.add_argument("--fixtures", metavar="DIR", type=Path,
                    help="where fixture paths start (default: tests/fixtures of the source tree)")
    tp.add_argument("--recording", metavar="FILE", type=Path,
                    help="test on this recording (a capture) instead of the fixtures: the rules given, or every "
                         "rule whose hosts it visits; each must fire, or give exactly --expect")
    tp.add_argument("--expect", metavar="KINDS",
                    help="with --recording: the finding kinds each rule must give, comma-separated "
                         "(toggle_on, toggle_off, toggle_reenabled, policy_update), or none")
    tp.add_argument("--region", metavar="CODE", help="with --recording: replay as a user in this region")
    tp.add_argument("--json", action="store_true", help="results as one JSON array")
    tp.add_argument("-v", "--verbose", action="store_true", help="list every fixture, not only failures")
    add_data_dir(tp)
    tp.set_defaults(func=cmd_test)

    ep = rs.add_parser("export", help="write the rules in force as a pack file (- for stdout)")
    ep.add_argument("file", metavar="FILE")
    add_data_dir(ep)
    ep.set_defaults(func=cmd_export)

    ip = rs.add_parser("import", help="verify, validate and install a pack (atomically); prints what changed",
                       description="Install a rule pack. Its signature FILE.sig must verify against a bundled "
                                   "maintainer key or a --trust key. The pack is validated before the database is "
                                   "swapped in one atomic write; a refused import leaves the old rules in force.")
    ip.add_argument("file", metavar="FILE", type=Path)
    ip.add_argument("--trust", metavar="PUBKEY", type=Path, action="append", default=[],
                    help="also trust this Ed25519 public key (PEM); may be repeated")
    ip.add_argument("--allow-unsigned", action="store_true",
                    help="install even without a valid signature (for your own drafts only)")
    add_data_dir(ip)
    ip.set_defaults(func=cmd_import)

    kp = rs.add_parser("keygen", help="create an Ed25519 signing key pair in DIR")
    kp.add_argument("dir", metavar="DIR", type=Path)
    kp.set_defaults(func=cmd_keygen)

    gp = rs.add_parser("sign", help="sign a pack: writes FILE.sig")
    gp.add_argument("--key", metavar="KEY", type=Path, required=True, help="the private key from `rules keygen`")
    gp.add_argument("file", metavar="FILE", type=Path)
    gp.set_defaults(func=cmd_sign)

    dp = rs.add_parser("diff", help="what changes from pack A to pack B; exit 1 when they differ",
                       description="Rules added, removed and changed, and hosts added, from A to B. A or B may be "
                                   "@installed (the data dir's rules) or @shipped. Exit 0 same, 1 different.")
    dp.add_argument("a", metavar="A")
    dp.add_argument("b", metavar="B")
    dp.add_argument("--json", action="store_true")
    add_data_dir(dp)
    dp.set_defaults(func=cmd_diff)

    up = rs.add_parser("suggest", help="settings that speak of AI but match no rule, and learned keys, as rule drafts",
                       description="Print the settings discovered on rule hosts (labels that speak of AI, models or "
                                   "training but match no rule) and the keys learned from your own clicks (a change "
                                   "request field that flipped with a rule's switch) as a draft pack. Fill in what "
                                   "stderr lists, then `consentwatch rules validate` it.")
    up.add_argument("--out", metavar="FILE", type=Path, help="write the draft pack here instead of stdout")
    add_data_dir(up)
    up.set_defaults(func=cmd_suggest)


# -- helpers ---------------------------------------------------------------------------------------

def _store(args) -> RuleStore:
    setup_logging()
    return RuleStore(resolve_data_dir(args))


def _read_pack_file(path: Path) -> tuple[bytes, dict]:
    try:
        return read_pack_file(path)
    except PackFileError as e:
        raise CliError(str(e)) from None


def _named_pack(name: str, args) -> dict:
    if name == "@shipped":
        return shipped_pack()
    if name == "@installed":
        return _store(args).read_pack()
    return _read_pack_file(Path(name))[1]


# -- list / show -----------------------------------------------------------------------------------

def cmd_list(args) -> int:
    rules = _store(args).load()
    if args.json:
        print(json.dumps([r.data for r in rules.rules], indent=2, ensure_ascii=False))
        return 0
    print(f"rule pack {rules.version}: {len(rules)} rules")
    print(f"{'ID':<34} {'PLATFORM':<13} {'VERIFIED':<11} {'SEEN BY (evidence)':<44} HOSTS")
    for r in rules.rules:
        print(f"{r.id:<34} {r.platform:<13} {r.data['last_verified']:<11} {seen_summary(r.seen_via):<44} {', '.join(r.hosts)}")
    for note in rules.skipped:
        print(f"note: {note}")
    return 0


_EVIDENCE_RANK = {"verified": 0, "reconstructed": 1, "unverified": 2}


def seen_summary(seen_via) -> str:
    """network(verified) markup(unverified) page(reconstructed): each eye once, with its strongest evidence."""
    best: dict[str, str] = {}
    for v in seen_via:
        eye, ev = v.get("eye"), v.get("evidence", "unverified")
        if eye not in best or _EVIDENCE_RANK.get(ev, 3) < _EVIDENCE_RANK.get(best[eye], 3):
            best[eye] = ev
    return " ".join(f"{e}({best[e]})" for e in ("network", "markup", "page") if e in best) or "-"


def cmd_show(args) -> int:
    store = _store(args)
    rules = store.load()
    pack = store.read_pack()
    rule = rules.by_id.get(args.id)
    if rule is None:
        raw = next((r for r in pack.get("rules", ()) if r.get("id") == args.id), None)
        if raw is None:
            raise CliError(f"no rule {args.id!r} in force (see `consentwatch rules list`)")
        print(json.dumps(raw, indent=2, ensure_ascii=False))
        print(f"note: {args.id} is skipped by this engine (needs engine {raw.get('min_engine')})", file=sys.stderr)
        return 0
    print(json.dumps(rule.data, indent=2, ensure_ascii=False))
    return 0


# -- validate --------------------------------------------------------------------------------------

def cmd_validate(args) -> int:
    _, pack = _read_pack_file(args.file)
    errors = validate_pack(pack)
    if errors:
        for e in errors:
            print(f"{args.file}: {e}")
        say(f"{args.file}: invalid rule pack, {len(errors)} error(s)")
        return 1
    rules = pack["rules"]
    for r in rules:
        if r.get("min_engine", 1) > ENGINE_VERSION:
            print(f"note: {r['id']}: needs engine {r['min_engine']}; this engine ({ENGINE_VERSION}) would skip it")
        if not r.get("fixtures"):
            print(f"note: {r['id']}: no fixtures yet, so `consentwatch rules test` fails for it")
    print(f"{args.file}: valid rule pack {pack['version']}, {len(rules)} rule(s)")
    return 0


# -- test ------------------------------------------------------------------------------------------

def cmd_test(args) -> int:
    if args.pack:
        _, pack = _read_pack_file(args.pack)
    elif args.data_dir:
        pack = _store(args).read_pack()
    else:
        pack = shipped_pack()
    setup_logging()
    try:
        rules = load_pack(pack)
    except PackError as e:
        raise CliError(f"the pack is invalid ({len(e.errors)} error(s), first: {e.errors[0]}); "
                       f"run `consentwatch rules validate`") from None
    known = {r["id"] for r in pack["rules"]}
    unknown = [i for i in args.ids if i not in known]
    if unknown:
        raise CliError(f"no rule {', '.join(map(repr, unknown))} in the pack (see `consentwatch rules list`)")
    if args.recording is None and (args.expect is not None or args.region):
        raise CliError("--expect and --region go with --recording FILE")
    if args.recording is not None:
        results = test_recording(rules, args.recording, args.ids or None, _expect_kinds(args.expect), args.region)
    else:
        fixtures = args.fixtures or default_fixtures_dir()
        if fixtures is None or not Path(fixtures).is_dir():
            raise CliError("no fixtures directory: pass --fixtures DIR (tests/fixtures of a consentwatch checkout)")
        results = test_rules(pack, rules, args.ids or None, Path(fixtures))
    failed = [r for r in results if r.status == "FAIL"]
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
        return 1 if failed else 0
    for r in results:
        n = len(r.fixtures)
        bad = [f for f in r.fixtures if not f.ok]
        what = r.note or (f"{n} fixture(s)" + (f", {len(bad)} failed" if bad else ""))
        print(f"{r.status} {r.rule_id} ({what})")
        for f in r.fixtures:
            if not f.ok:
                print(f"     FAIL {f.file}: {f.problem}")
            elif args.verbose:
                print(f"     ok   {f.file}: {', '.join(f.got) or 'no finding'}")
    passed = sum(r.status == "PASS" for r in results)
    skipped = sum(r.status == "SKIP" for r in results)
    print(f"{len(results)} rule(s): {passed} passed, {len(failed)} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed else 0


_FINDING_KINDS = (TOGGLE_ON, TOGGLE_OFF, TOGGLE_REENABLED, POLICY_UPDATE)


def _expect_kinds(text: str | None) -> list[str] | None:
    """--expect: finding kinds, comma-separated, or none."""
    if text is None:
        return None
    if text.strip().lower() in ("none", ""):
        return []
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in kinds if k not in _FINDING_KINDS]
    if bad:
        raise CliError(f"--expect: unknown kind {bad[0]!r} (one of {', '.join(_FINDING_KINDS)}, or none)")
    return kinds


# -- export ----------------------------------------------------------------------------------------

def cmd_export(args) -> int:
    out, note = export_form(_store(args).read_pack())
    if note:
        say(note)
    if args.file == "-":
        sys.stdout.buffer.write(canonical_bytes(out))
        return 0
    try:
        notes = write_export(Path(args.file), out)
    except PackFileError as e:
        raise CliError(str(e)) from None
    print("\n".join(notes))
    return 0


# -- keygen / sign ---------------------------------------------------------------------------------

def cmd_keygen(args) -> int:
    try:
        priv, pub, kid = keygen(args.dir)
    except SigningError as e:
        raise CliError(str(e)) from None
    print(f"private key: {priv} (mode 0600; keep it secret, never commit it)")
    print(f"public key:  {pub} (key id {kid}; give it to people who import your packs: --trust {pub})")
    return 0


def cmd_sign(args) -> int:
    _, pack = _read_pack_file(args.file)
    errors = validate_pack(pack)
    if errors:
        raise CliError(f"{args.file}: not signing an invalid pack ({len(errors)} error(s), first: {errors[0]}); "
                       f"run `consentwatch rules validate {args.file}`")
    try:
        out, kid = sign_file(args.key, args.file)
    except SigningError as e:
        raise CliError(str(e)) from None
    print(f"signed {args.file} with key {kid}: {out}")
    return 0


# -- import ----------------------------------------------------------------------------------------

def cmd_import(args) -> int:
    data_dir = resolve_data_dir(args)
    setup_logging()
    try:
        done = import_pack(args.file, data_dir, args.trust, args.allow_unsigned,
                           warn=lambda line: print(line, file=sys.stderr))
    except ImportRefused as e:
        raise CliError(str(e)) from None
    rules, signed_by = done.rules, done.signed_by
    who = f"signed by {signed_by.origin} (key {signed_by.key_id})" if signed_by else "UNSIGNED"
    print(f"imported rule pack {done.version} from {args.file}: {len(rules)} rules in force, {who}")
    for line in done.changes.lines():
        print(f"  {line}")
    for note in rules.skipped:
        print(f"  note: {note}")
    if done.changes.new_hosts:
        print(f"  {coverage_note(data_dir, rules.host_patterns())}")
    print("  A running `consentwatch run` picks up the new rules by itself.")
    return 0


# -- diff ------------------------------------------------------------------------------------------

def cmd_diff(args) -> int:
    a = _named_pack(args.a, args)
    b = _named_pack(args.b, args)
    try:
        d = diff_packs(a, b)
    except (RecursionError, TypeError, AttributeError, ValueError):
        raise CliError(f"cannot compare {args.a} and {args.b}: not well-formed rule packs "
                       "(`consentwatch rules validate` says what is wrong)") from None
    if args.json:
        print(json.dumps(d.to_dict(), indent=2))
    else:
        print(f"--- {args.a} ({a.get('version', '?')}, {len(a.get('rules', []))} rules)")
        print(f"+++ {args.b} ({b.get('version', '?')}, {len(b.get('rules', []))} rules)")
        for line in d.lines():
            print(line)
    return 0 if d.empty and str(a.get("version")) == str(b.get("version")) else 1


# -- suggest ---------------------------------------------------------------------------------------

def cmd_suggest(args) -> int:
    data_dir = resolve_data_dir(args)
    setup_logging()
    rules = RuleStore(data_dir).load()
    store = SuggestionStore(data_dir)
    try:
        suggestions = store.list()
        learned = store.list_keys()
    finally:
        store.close()
    if not suggestions and not learned:
        print("no suggestions yet: they are collected, when you ask for it, while `consentwatch run --discover` "
              "(or `replay --discover`) sees settings on rule hosts that speak of AI but match no rule, or sees "
              "you flip a rule's switch while the app sends the change",
              file=sys.stderr)
        return 0
    pack = draft_pack(suggestions, rules, dt.date.today().isoformat(), learned)
    data = canonical_bytes(pack)
    if args.out:
        try:
            args.out.write_bytes(data)
        except OSError as e:
            raise CliError(f"cannot write {args.out}: {e.strerror or e}") from None
        print(f"wrote {len(pack['rules'])} draft rule(s) to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(printable_json(data.decode("utf-8")))  # labels came from pages
        sys.stdout.flush()
    for s in suggestions:
        print(f"found: {s['host']}{s['path']}: \"{s['label']}\" (first seen {s.get('first_seen', '?')[:10]})",
              file=sys.stderr)
    if suggestions:
        print("before `consentwatch rules validate`, fill in for each new draft:", file=sys.stderr)
        for item in TO_FILL:
            print(f"  - {item}", file=sys.stderr)
    for k in learned:
        means = "training on" if k["training_when"] else "training off"
        entry = json_key_entry(k)
        print(f"learned: {k['rule_id']}: {k['method']} {k['host']}{k['path']} {k['key']} (true means {means}), "
              f"from a click on \"{k['label']}\" (first seen {k.get('first_seen', '?')[:10]})", file=sys.stderr)
        if entry is not None:
            print(f"  json_keys entry: {json.dumps(entry)}", file=sys.stderr)
    for note in learned_rules(learned, rules)[1]:
        print(f"note: {note}", file=sys.stderr)
    if learned:
        print("the draft pack holds each rule in force with its learned keys added; before merging them:",
              file=sys.stderr)
        for item in KEY_TO_CHECK:
            print(f"  - {item}", file=sys.stderr)
    print("merge the finished rules into your pack (or the shipped pack.json), then `rules test` them.",
          file=sys.stderr)
    return 0
