"""Validate-time proof that a rule's compiled patterns cannot backtrack catastrophically.

Rule text never becomes regex syntax (phrases are split into words and escaped, paths are globs), but the
*shape* of the pattern still depends on the rule: how many words, how many wildcards, how many labels.
Python's `re` backtracks, so a pattern is accepted only when it keeps to a shape that runs in linear time
per start position:

1. **No nested quantifiers** where either is unbounded (`(a+)+`, `(?:x{1,5})*`): star height 1. A bounded
   repeat inside a bounded one is allowed (the engine's tag/entity gap between words is one).
2. **No two unbounded quantifiers in a row that can eat the same characters** (`.*a.*`, `\\s*\\W*`):
   between them there must be a required literal the first one cannot match (`[^/]*/[^/]*` is fine,
   `word\\W*word` is fine). This is what makes `**/x/**` globs polynomial, and it is refused.
3. **No leading unbounded quantifier** in a pattern that is searched unanchored (quadratic per page).
4. **Bounded size**: the source is at most `MAX_PATTERN_CHARS` and has at most `MAX_ALTERNATIVES`
   alternatives; no backreferences or conditionals.

The checks read the parse tree of `re` itself, so they judge exactly what will run.
"""

from __future__ import annotations

import functools
import re

try:  # Python >= 3.11
    import re._constants as C  # type: ignore[import-not-found]
    import re._parser as P  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - older Pythons
    import sre_constants as C  # type: ignore[no-redef]
    import sre_parse as P  # type: ignore[no-redef]

MAX_PATTERN_CHARS = 64_000
MAX_ALTERNATIVES = 512

_REPEATS = {C.MAX_REPEAT, C.MIN_REPEAT}
_POSSESSIVE = getattr(C, "POSSESSIVE_REPEAT", None)
_ATOMIC = getattr(C, "ATOMIC_GROUP", None)
_ZERO_WIDTH = {C.AT, C.ASSERT, C.ASSERT_NOT}
_CATEGORY_RX = {
    C.CATEGORY_DIGIT: re.compile(r"\d"), C.CATEGORY_NOT_DIGIT: re.compile(r"\D"),
    C.CATEGORY_SPACE: re.compile(r"\s"), C.CATEGORY_NOT_SPACE: re.compile(r"\S"),
    C.CATEGORY_WORD: re.compile(r"\w"), C.CATEGORY_NOT_WORD: re.compile(r"\W"),
}


class _TooMany(Exception):
    pass


def check_pattern(source: str, flags: int = 0, anchored_search: bool = False) -> list[str]:
    """Why `source` is not linear-time safe; an empty list when it is.

    `anchored_search`: the caller only ever uses `.match()` (or the pattern starts with `^`)."""
    return list(_check(source, flags, anchored_search))


@functools.lru_cache(maxsize=4096)
def _check(source: str, flags: int, anchored_search: bool) -> tuple[str, ...]:
    return tuple(_problems(source, flags, anchored_search))


def _problems(source: str, flags: int, anchored_search: bool) -> list[str]:
    if len(source) > MAX_PATTERN_CHARS:
        return [f"pattern too long ({len(source)} characters, limit {MAX_PATTERN_CHARS}): use fewer or shorter phrases"]
    try:
        tree = P.parse(source, flags)
    except re.error as e:
        return [f"does not compile: {e}"]
    ignore_case = bool((flags | tree.state.flags) & re.IGNORECASE)
    problems: list[str] = []
    _nesting(list(tree), None, problems)
    try:
        paths = _paths(list(tree))
    except _TooMany:
        return problems + [f"more than {MAX_ALTERNATIVES} alternatives: split the rule"]
    for path in paths:
        for msg in _sequence(path, ignore_case, anchored_search):
            if msg not in problems:
                problems.append(msg)
    return problems


# -- 1. nesting --------------------------------------------------------------------------------------

def _nesting(items: list, outer: str | None, problems: list[str]) -> None:
    for op, av in items:
        if op in _REPEATS or op == _POSSESSIVE:
            _, hi, sub = av
            unbounded = hi == C.MAXREPEAT
            if outer is not None and (unbounded or outer == "unbounded"):
                msg = "nested quantifiers (a repeated group holds another repeat): can backtrack catastrophically"
                if msg not in problems:
                    problems.append(msg)
            _nesting(list(sub), "unbounded" if unbounded or outer == "unbounded" else "bounded", problems)
        elif op == C.SUBPATTERN:
            _nesting(list(av[-1]), outer, problems)
        elif op == C.BRANCH:
            for alt in av[1]:
                _nesting(list(alt), outer, problems)
        elif op in (C.ASSERT, C.ASSERT_NOT):
            _nesting(list(av[1]), outer, problems)
        elif op == _ATOMIC:
            _nesting(list(av), outer, problems)
        elif op in (C.GROUPREF, C.GROUPREF_EXISTS):
            msg = "backreferences and conditionals are not allowed"
            if msg not in problems:
                problems.append(msg)


# -- 2./3. sequences ---------------------------------------------------------------------------------

def _paths(items: list) -> list[list]:
    """Every sequence of items the pattern can take, groups and alternations flattened (repeats kept whole)."""
    paths: list[list] = [[]]
    for op, av in items:
        if op in (C.SUBPATTERN, C.BRANCH) and not _has_unbounded([(op, av)]):
            subs = [[(op, av)]]  # nothing unbounded inside: one opaque step, no need to expand it
        elif op == C.SUBPATTERN:
            subs = _paths(list(av[-1]))
        elif op == _ATOMIC:
            subs = _paths(list(av))
        elif op == C.BRANCH:
            subs = [p for alt in av[1] for p in _paths(list(alt))]
        else:
            subs = [[(op, av)]]
        if len(paths) * len(subs) > MAX_ALTERNATIVES:
            raise _TooMany
        paths = [p + s for p in paths for s in subs]
    return paths


def _has_unbounded(items: list) -> bool:
    for op, av in items:
        if op in _REPEATS or op == _POSSESSIVE:
            if av[1] == C.MAXREPEAT or _has_unbounded(list(av[2])):
                return True
        elif op == C.SUBPATTERN:
            if _has_unbounded(list(av[-1])):
                return True
        elif op == C.BRANCH:
            if any(_has_unbounded(list(alt)) for alt in av[1]):
                return True
        elif op in (C.ASSERT, C.ASSERT_NOT):
            if _has_unbounded(list(av[1])):
                return True
        elif op == _ATOMIC and _has_unbounded(list(av)):
            return True
    return False


def _unbounded(op, av) -> bool:
    return op in _REPEATS and av[1] == C.MAXREPEAT


def _sequence(path: list, ignore_case: bool, anchored: bool) -> list[str]:
    problems = []
    consumed = False
    for i, (op, av) in enumerate(path):
        if op == C.AT and av == C.AT_BEGINNING and not consumed:
            anchored = True
        if op in _ZERO_WIDTH:
            continue
        if _unbounded(op, av):
            if not consumed and not anchored:
                problems.append("starts with an unbounded repeat: searching a page with it is quadratic")
            if not _separated(av[2], path[i + 1:], ignore_case):
                problems.append("two unbounded repeats can match the same text in a row (like .*x.* or \\s*\\W*): "
                                "polynomial backtracking")
        consumed = True
    return problems


def _separated(body, rest: list, ignore_case: bool) -> bool:
    """True when, before any other unbounded repeat, `rest` requires a character `body` cannot match."""
    for op, av in rest:
        if op in _ZERO_WIDTH:
            continue
        if _unbounded(op, av):
            return False
        if op == C.LITERAL:
            if not _can_match(body, chr(av), ignore_case):
                return True
            continue
        if (op in _REPEATS or op == _POSSESSIVE) and av[0] >= 1:
            sub = list(av[2])
            if len(sub) == 1 and sub[0][0] == C.LITERAL and not _can_match(body, chr(sub[0][1]), ignore_case):
                return True
            continue
        # other single characters or groups: assume they may overlap (conservative)
    return True  # the pattern ends: one trailing unbounded repeat is linear


def _can_match(body, ch: str, ignore_case: bool) -> bool:
    items = list(body)
    if len(items) != 1:
        return True  # a multi-item body: assume it can (conservative)
    cands = {ch, ch.lower(), ch.upper()} if ignore_case else {ch}
    return any(_single(items[0], c) for c in cands)


def _single(item, ch: str) -> bool:
    op, av = item
    if op == C.LITERAL:
        return chr(av) == ch
    if op == C.NOT_LITERAL:
        return chr(av) != ch
    if op == C.ANY:
        return True
    if op == C.IN:
        negate = False
        hit = False
        for sop, sav in av:
            if sop == C.NEGATE:
                negate = True
            elif sop == C.LITERAL:
                hit |= chr(sav) == ch
            elif sop == C.RANGE:
                hit |= sav[0] <= ord(ch) <= sav[1]
            elif sop == C.CATEGORY:
                rx = _CATEGORY_RX.get(sav)
                hit |= True if rx is None else bool(rx.fullmatch(ch))
            else:
                return True
        return hit != negate
    return True
