"""`consentwatch rules ...`: the rule database for users and maintainers.

    list [--json]         the rules in force            show ID          one rule, as JSON
    validate FILE         schema + semantic checks      test [ID...]     replay each rule's fixtures
    export FILE           the rules in force, as a pack import FILE         verify, validate, swap, report
    keygen DIR            an Ed25519 signing key pair   sign --key K F   write F.sig
    diff A B              what changes between packs    suggest          discovered settings as rule drafts

Errors are one line on stderr. Exit codes: 0 fine, 1 the answer is "no" (invalid pack, failing rule test,
packs differ), 2 unusable input (unreadable file, not JSON, bad key, refused import).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from pathlib import Path

from ..rules.diff import diff_packs
from ..rules.model import PACK_FORMAT, PackError, load_pack, schema, shipped_pack, validate_pack
from ..rules.store import RuleStore
from .common import CliError, add_data_dir, fail, resolve_data_dir, setup_logging

SHIPPED_PACK_NAME = "pack.json"


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

    up = rs.add_parser("suggest", help="settings that speak of AI but match no rule, as rule drafts",
                       description="Print the settings discovered on rule hosts (labels that speak of AI, models or "
                                   "training but match no rule) as a draft pack. Fill in what stderr lists, then "
                                   "`consentwatch rules validate` it.")
    up.add_argument("--out", metavar="FILE", type=Path, help="write the draft pack here instead of stdout")
    add_data_dir(up)
    up.set_defaults(func=cmd_suggest)


# -- helpers ---------------------------------------------------------------------------------------

def _store(args) -> RuleStore:
    setup_logging()
    return RuleStore(resolve_data_dir(args))


def _load(args):
    return _store(args).load()


def canonical_bytes(pack: dict) -> bytes:
    """How consentwatch writes a pack: 2-space JSON, UTF-8, trailing newline. Byte-stable, so signatures hold."""
    return (json.dumps(pack, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def read_pack_file(path: Path) -> tuple[bytes, dict]:
    """(raw bytes, parsed pack). Raises CliError with one line when the file is unusable."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise CliError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        pack = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise CliError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise CliError(f"{path}: not JSON (line {e.lineno} column {e.colno}: {e.msg})") from None
    if not isinstance(pack, dict):
        raise CliError(f"{path}: a rule pack is a JSON object with format, version and rules")
    return raw, pack


def _named_pack(name: str, args) -> dict:
    if name == "@shipped":
        return shipped_pack()
    if name == "@installed":
        return _store(args).read_pack()
    return read_pack_file(Path(name))[1]


def _shipped_file():
    from importlib import resources
    return resources.files("consentwatch.rules").joinpath(SHIPPED_PACK_NAME)


# -- list / show -----------------------------------------------------------------------------------

def cmd_list(args) -> int:
    try:
        rules = _load(args)
    except CliError as e:
        return fail(str(e))
    if args.json:
        print(json.dumps([r.data for r in rules.rules], indent=2, ensure_ascii=False))
        return 0
    print(f"rule pack {rules.version}: {len(rules)} rules")
    print(f"{'ID':<34} {'PLATFORM':<13} {'VERIFIED':<11} HOSTS")
    for r in rules.rules:
        print(f"{r.id:<34} {r.platform:<13} {r.data['last_verified']:<11} {', '.join(r.hosts)}")
    for note in rules.skipped:
        print(f"note: {note}")
    return 0


def cmd_show(args) -> int:
    try:
        store = _store(args)
        rules = store.load()
        pack = store.read_pack()
    except CliError as e:
        return fail(str(e))
    rule = rules.by_id.get(args.id)
    if rule is None:
        raw = next((r for r in pack.get("rules", ()) if r.get("id") == args.id), None)
        if raw is None:
            return fail(f"no rule {args.id!r} in force (see `consentwatch rules list`)")
        print(json.dumps(raw, indent=2, ensure_ascii=False))
        print(f"note: {args.id} is skipped by this engine (needs engine {raw.get('min_engine')})", file=sys.stderr)
        return 0
    print(json.dumps(rule.data, indent=2, ensure_ascii=False))
    return 0


# -- validate --------------------------------------------------------------------------------------

def cmd_validate(args) -> int:
    try:
        _, pack = read_pack_file(args.file)
    except CliError as e:
        return fail(str(e))
    errors = validate_pack(pack)
    if errors:
        for e in errors:
            print(f"{args.file}: {e}")
        print(f"consentwatch: {args.file}: invalid rule pack, {len(errors)} error(s)", file=sys.stderr)
        return 1
    from .. import ENGINE_VERSION
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
    from ..rule_tests import default_fixtures_dir, test_rules

    try:
        if args.pack:
            _, pack = read_pack_file(args.pack)
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
        fixtures = args.fixtures or default_fixtures_dir()
        if fixtures is None or not Path(fixtures).is_dir():
            raise CliError("no fixtures directory: pass --fixtures DIR (tests/fixtures of a consentwatch checkout)")
        known = {r["id"] for r in pack["rules"]}
        unknown = [i for i in args.ids if i not in known]
        if unknown:
            raise CliError(f"no rule {', '.join(map(repr, unknown))} in the pack (see `consentwatch rules list`)")
    except CliError as e:
        return fail(str(e))
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


# -- export ----------------------------------------------------------------------------------------

def cmd_export(args) -> int:
    try:
        store = _store(args)
        pack = store.read_pack()
    except CliError as e:
        return fail(str(e))
    if validate_pack(pack):
        print("consentwatch: the rule database is invalid; exporting the shipped pack, which is what is in force",
              file=sys.stderr)
        pack = shipped_pack()
    out: dict = {"$schema": pack.get("$schema") or "./schema.json", "format": pack.get("format", PACK_FORMAT),
                 "version": pack["version"]}
    if pack.get("description"):
        out["description"] = pack["description"]
    out["rules"] = pack["rules"]
    data = canonical_bytes(out)
    if args.file == "-":
        sys.stdout.buffer.write(data)
        return 0
    path = Path(args.file)
    from ..store.atomic import atomic_write
    try:
        atomic_write(path, data, 0o644)
    except OSError as e:
        return fail(f"cannot write {path}: {e.strerror or e}")
    notes = [f"wrote rule pack {out['version']} ({len(out['rules'])} rules) to {path}"]
    # The shipped pack, unchanged: its maintainer signature holds for these exact bytes, so pass it on.
    shipped = _shipped_file()
    shipped_sig = shipped.parent.joinpath(SHIPPED_PACK_NAME + ".sig") if hasattr(shipped, "parent") else None
    try:
        if shipped_sig is not None and shipped_sig.is_file() and shipped.read_bytes() == data:
            from ..rules.signing import sig_path
            sig_path(path).write_bytes(shipped_sig.read_bytes())
            notes.append(f"it is the shipped pack, unchanged: wrote the maintainers' signature to {sig_path(path)}")
    except OSError as e:
        notes.append(f"could not copy the shipped signature: {e.strerror or e}")
    schema_file = path.parent / "schema.json"
    if out["$schema"] == "./schema.json" and not schema_file.exists():
        try:
            schema_file.write_text(json.dumps(schema(), indent=2) + "\n", encoding="utf-8")
            notes.append(f"wrote {schema_file} beside it, so editors check the pack as you type")
        except OSError:
            pass
    print("\n".join(notes))
    return 0


# -- keygen / sign ---------------------------------------------------------------------------------

def cmd_keygen(args) -> int:
    from ..rules.signing import SigningError, keygen
    try:
        priv, pub, kid = keygen(args.dir)
    except SigningError as e:
        return fail(str(e))
    print(f"private key: {priv} (mode 0600; keep it secret, never commit it)")
    print(f"public key:  {pub} (key id {kid}; give it to people who import your packs: --trust {pub})")
    return 0


def cmd_sign(args) -> int:
    from ..rules.signing import SigningError, sign_file
    try:
        _, pack = read_pack_file(args.file)
    except CliError as e:
        return fail(str(e))
    errors = validate_pack(pack)
    if errors:
        return fail(f"{args.file}: not signing an invalid pack ({len(errors)} error(s), first: {errors[0]}); "
                    f"run `consentwatch rules validate {args.file}`")
    try:
        out, kid = sign_file(args.key, args.file)
    except SigningError as e:
        return fail(str(e))
    print(f"signed {args.file} with key {kid}: {out}")
    return 0


# -- import ----------------------------------------------------------------------------------------

def _has_command(path: list[str], option: str | None = None) -> bool:
    """Does this build's CLI have `consentwatch <path...>` (and, if given, that option)?"""
    try:
        from . import build_parser
        parser = build_parser()
        for name in path:
            sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
            parser = sub.choices[name]
        return option is None or option in parser._option_string_actions
    except Exception:  # noqa: BLE001 - advice only
        return False


def _ca_advice(data_dir: Path) -> str:
    """How to renew the CA with what this build offers."""
    cert = data_dir / "ca" / "consentwatch-ca-cert.pem"
    trust = f"then trust the new CA certificate ({cert}) in your browser and remove the old one"
    if _has_command(["ca", "renew"]):
        return f"run `consentwatch ca renew --data-dir {data_dir}`, {trust}"
    if _has_command(["run"], "--renew-ca"):
        return f"stop `consentwatch run` and start it again with `consentwatch run --renew-ca`, {trust}"
    return f"stop `consentwatch run`, delete {data_dir / 'ca'}, start `consentwatch run` again, {trust}"


def _ca_note(data_dir: Path, rules) -> str:
    """What the new hosts of an imported pack mean for the install's CA (name-constrained to the rule domains)."""
    ca_dir = data_dir / "ca"
    try:
        from .. import ca as ca_mod
    except ImportError:  # a build without the constrained CA
        ca_mod = None
    if ca_mod is not None:
        try:
            cert = ca_mod.read_ca(ca_dir)
        except Exception:  # noqa: BLE001 - unreadable: say what we would say without one
            cert = None
        if cert is None:
            return "The new hosts are intercepted from the next `consentwatch run` (it makes a CA that covers them)."
        permitted = ca_mod.permitted_of(cert)
        missing = ca_mod.wanted_domains(rules.host_patterns()) if permitted is None else \
            ca_mod.uncovered(permitted, rules.host_patterns())
        if not missing:
            return "Your CA already covers the new hosts: nothing to renew."
        return (f"Your CA does not cover {', '.join(missing)}: until it is renewed and re-trusted those hosts are "
                f"tunnelled, not inspected. To renew it, {_ca_advice(data_dir)}.")
    if not ca_dir.exists():
        return "The new hosts are intercepted from the next `consentwatch run` (its CA is created then)."
    return (f"The new hosts need a renewed CA: the CA you trusted only covers the old rule domains. "
            f"To renew it, {_ca_advice(data_dir)}.")


def cmd_import(args) -> int:
    from ..rules.signing import SigningError, bundled_keys, load_public_key, sig_path, verify

    try:
        raw, pack = read_pack_file(args.file)
        data_dir = resolve_data_dir(args)
        keys = bundled_keys()
        for k in args.trust:
            keys.append(load_public_key(k, f"--trust {k}"))
    except (CliError, SigningError) as e:
        return fail(str(e))
    setup_logging()

    # 1. the signature, over the exact bytes
    sig_file = sig_path(args.file)
    signed_by = None
    try:
        sig_text = sig_file.read_bytes()
    except FileNotFoundError:
        sig_text = None
    except OSError as e:
        return fail(f"{sig_file}: cannot read: {e.strerror or e}")
    if sig_text is None:
        if not args.allow_unsigned:
            return fail(f"import refused: {args.file} is not signed (no {sig_file.name}); "
                        f"sign it with `consentwatch rules sign`, or pass --allow-unsigned for your own draft")
        print(f"warning: {args.file} is not signed; importing it because of --allow-unsigned", file=sys.stderr)
    else:
        try:
            signed_by = verify(raw, sig_text, keys)
        except SigningError as e:
            if not args.allow_unsigned:
                return fail(f"import refused: {args.file}: {e}")
            print(f"warning: {args.file}: {e}; importing it anyway because of --allow-unsigned", file=sys.stderr)

    # 2. validation, before anything is touched
    errors = validate_pack(pack) if pack.get("format") == PACK_FORMAT else [
        f"pack: format: this engine reads format {PACK_FORMAT}, the file says {pack.get('format')!r}"]
    if errors:
        return fail(f"import refused: {args.file} is not a valid rule pack ({len(errors)} error(s), first: "
                    f"{errors[0]}); run `consentwatch rules validate {args.file}`")

    # 3. what changes, then one atomic swap
    store = RuleStore(data_dir)
    try:
        old = store.read_pack()
    except Exception:  # noqa: BLE001 - an unreadable old database is simply replaced
        old = {"version": "none", "rules": []}
    changes = diff_packs(old, pack)
    origin = f"import {Path(args.file).name}: " + (f"signed by {signed_by.key_id}" if signed_by else "unsigned")
    if signed_by is not None and pack == shipped_pack():
        origin = "shipped"  # the shipped pack itself: later consentwatch updates may refresh it again
    try:
        rules = store.write_pack(pack, origin)
    except PackError as e:
        return fail(f"import refused: {e.errors[0]}")
    if store.meta().get("version") != str(pack["version"]):
        return fail(f"import failed: could not write {store.path}; the old rules stay in force")

    who = f"signed by {signed_by.origin} (key {signed_by.key_id})" if signed_by else "UNSIGNED"
    print(f"imported rule pack {pack['version']} from {args.file}: {len(rules)} rules in force, {who}")
    for line in changes.lines():
        print(f"  {line}")
    for note in rules.skipped:
        print(f"  note: {note}")
    if changes.new_hosts:
        print(f"  {_ca_note(data_dir, rules)}")
    print("  A running `consentwatch run` picks up the new rules by itself.")
    return 0


# -- diff ------------------------------------------------------------------------------------------

def cmd_diff(args) -> int:
    try:
        a = _named_pack(args.a, args)
        b = _named_pack(args.b, args)
    except CliError as e:
        return fail(str(e))
    d = diff_packs(a, b)
    if args.json:
        print(json.dumps(d.to_dict(), indent=2))
    else:
        print(f"--- {args.a} ({a.get('version', '?')}, {len(a.get('rules', []))} rules)")
        print(f"+++ {args.b} ({b.get('version', '?')}, {len(b.get('rules', []))} rules)")
        for line in d.lines():
            print(line)
    return 0 if d.empty and str(a.get("version")) == str(b.get("version")) else 1


# -- suggest ---------------------------------------------------------------------------------------

_TO_FILL = [
    "sources: at least one public URL that documents the setting (help page, announcement)",
    ("fixtures: record the page with the setting on and off (mitmdump -w, or a HAR), put the files under "
     "tests/fixtures/<platform>/ and list them with the findings they must give"),
    "setting.checked_means: 'training' if switching it ON allows training, 'no_training' if ON is the opt-out",
    "default: what a user who never touched it gets (on/off/unknown)",
    "applies: the regions and dates it applies to",
    "summary, title, remedy.steps: in plain words, from the platform's help page",
    "setting.pages: generalise the path (replace account names or ids with *)",
]


def _slug(text: str, limit: int = 40) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())
    out = ""
    for w in words:
        if len(out) + len(w) + 1 > limit:
            break
        out = f"{out}-{w}" if out else w
    return out or "setting"


def _draft(s: dict, rules_by_host, today: str, taken: set[str]) -> dict:
    host, path, label = s["host"], s["path"], s["label"]
    platform = s.get("platform") or re.sub(r"[^a-z0-9]", "", host.split(".")[-2] if "." in host else host)
    known = rules_by_host(host)
    platform_name = known[0].platform_name if known else platform.capitalize()
    rid = f"{platform}.{_slug(label)}"
    base, n = rid, 2
    while rid in taken:
        rid, n = f"{base}-{n}", n + 1
    taken.add(rid)
    page = re.sub(r"[?#\s].*$", "", path) or "/"
    return {
        "id": rid,
        "platform": platform,
        "platform_name": platform_name,
        "title": f"{platform_name}: {label}"[:200],
        "summary": f"{platform_name} has a setting \"{label}\" that speaks of AI. Say in plain words what it does.",
        "hosts": [host],
        "setting": {"name": label, "labels": [label], "checked_means": "training", "pages": [page]},
        "default": "unknown",
        "applies": [{"regions": ["*"]}],
        "remedy": {"settings_url": f"https://{host}{page}", "steps": [f"Open https://{host}{page}",
                                                                     f"Switch \"{label}\" off"]},
        "sources": [],
        "last_verified": today,
        "fixtures": [],
    }


def cmd_suggest(args) -> int:
    from ..store.suggestions import SuggestionStore

    try:
        data_dir = resolve_data_dir(args)
        setup_logging()
        rules = RuleStore(data_dir).load()
    except CliError as e:
        return fail(str(e))
    store = SuggestionStore(data_dir)
    try:
        suggestions = store.list()
    finally:
        store.close()
    if not suggestions:
        print("no suggestions yet: they are collected while `consentwatch run` (or `replay`) sees settings on "
              "rule hosts that speak of AI but match no rule", file=sys.stderr)
        return 0
    today = dt.date.today().isoformat()
    taken = {r.id for r in rules.rules}
    drafts = [_draft(s, rules.for_host, today, taken) for s in suggestions]
    pack = {"$schema": "./schema.json", "format": PACK_FORMAT, "version": f"draft-{today}",
            "description": "Drafts from `consentwatch rules suggest`: fill in what each rule needs, then validate.",
            "rules": drafts}
    data = canonical_bytes(pack)
    if args.out:
        try:
            args.out.write_bytes(data)
        except OSError as e:
            return fail(f"cannot write {args.out}: {e.strerror or e}")
        print(f"wrote {len(drafts)} draft rule(s) to {args.out}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    for s in suggestions:
        print(f"found: {s['host']}{s['path']}: \"{s['label']}\" (first seen {s.get('first_seen', '?')[:10]})",
              file=sys.stderr)
    print("before `consentwatch rules validate`, fill in for each draft:", file=sys.stderr)
    for item in _TO_FILL:
        print(f"  - {item}", file=sys.stderr)
    print("merge the finished rules into your pack (or the shipped pack.json), then `rules test` them.",
          file=sys.stderr)
    return 0
