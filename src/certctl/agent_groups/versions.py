"""The `match_version` grammar: an exact version, a `*` pattern, or comparisons that must all hold.

    spec        := exact | pattern | comparison ( [","] comparison )*
    exact       := one token without an operator or "*"          2.0.14   v2.0   2.0.14-custom
    pattern     := ["==" | "!="] token containing "*"             2.0.*    !=1.4.*
    comparison  := op version                                     >=1.2.0  <2   >= 1.2, < 2
    op          := ">=" | "<=" | ">" | "<" | "==" | "=" | "!="
    version     := ["v"] N ("." N)* ["-" pre-release] ["+" build]  (semantic-version style)

Versions compare by their numbers, missing ones counting as zero (`2` == `2.0.0`); a pre-release sorts
before its release (`2.0.0-rc.1` < `2.0.0`, so it matches `<2`), pre-release identifiers compare as in
SemVer 2.0 (numeric ones numerically, below alphanumeric ones); build metadata is ignored. An exact
spec equals the same text ignoring case, or a version that compares equal. A pattern is matched
against the whole version text, `*` standing for any run of characters (`2.0.*` matches `2.0.14` and
`2.0.0-rc1`, not `2.0`). An agent whose version cannot be parsed never satisfies a comparison.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

_VERSION = re.compile(r"[vV]?(\d+(?:\.\d+)*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?")
_CLAUSE = re.compile(r"\s*(>=|<=|==|!=|>|<|=)?\s*([^\s,<>=!]+)\s*,?")

# A pre-release identifier: numeric ones sort below alphanumeric ones (SemVer 2.0 §11.4).
_PreId = tuple[int, int, str]
VersionKey = tuple[tuple[int, ...], tuple[_PreId, ...] | None]

_Ordered = tuple[tuple[int, ...], int, tuple[_PreId, ...]]
_OPERATORS: dict[str, Callable[[_Ordered, _Ordered], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "=": operator.eq,
    "!=": operator.ne,
}


def version_key(text: str) -> VersionKey | None:
    """The comparable form of a version, or None when it does not follow the grammar."""
    found = _VERSION.fullmatch(text.strip())
    if found is None:
        return None
    release = tuple(int(part) for part in found.group(1).split("."))
    while len(release) > 1 and release[-1] == 0:  # 2.0.0 == 2
        release = release[:-1]
    if found.group(2) is None:
        return release, None
    identifiers = found.group(2).split(".")
    if any(not part for part in identifiers):
        return None
    return release, tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in identifiers)


def _order(key: VersionKey) -> _Ordered:
    release, pre = key
    return (release, 1, ()) if pre is None else (release, 0, pre)


@dataclass(frozen=True, slots=True)
class _Comparison:
    op: str
    bound: VersionKey

    def holds(self, version: str) -> bool:
        key = version_key(version)
        return key is not None and _OPERATORS[self.op](_order(key), _order(self.bound))


@dataclass(frozen=True, slots=True)
class _Pattern:
    regex: re.Pattern[str]
    negated: bool

    def holds(self, version: str) -> bool:
        return (self.regex.fullmatch(version.strip()) is not None) != self.negated


@dataclass(frozen=True, slots=True)
class _Exact:
    text: str
    key: VersionKey | None

    def holds(self, version: str) -> bool:
        if version.strip().casefold() == self.text.casefold():
            return True
        key = version_key(version)
        return self.key is not None and key is not None and _order(key) == _order(self.key)


_Clause = _Comparison | _Pattern | _Exact


@dataclass(frozen=True, slots=True)
class VersionSpec:
    """A parsed `match_version`; `parse` refuses what the grammar does not allow."""

    text: str
    clauses: tuple[_Clause, ...]

    @classmethod
    def parse(cls, text: str) -> VersionSpec:
        """Raises ValueError with a message a person can act on."""
        text = text.strip()
        if not text:
            raise ValueError("must not be empty")
        tokens = _tokens(text)
        if len(tokens) == 1 and tokens[0][0] is None:
            return cls(text, (_bare(tokens[0][1]),))
        clauses: list[_Clause] = []
        for op, operand in tokens:
            if op is None:
                raise ValueError(
                    f"{operand!r} needs an operator (>=, <=, >, <, ==, !=) when several conditions are given"
                )
            clauses.append(_clause(op, operand))
        return cls(text, tuple(clauses))

    def matches(self, version: str) -> bool:
        return all(clause.holds(version) for clause in self.clauses)


def _tokens(text: str) -> list[tuple[str | None, str]]:
    tokens: list[tuple[str | None, str]] = []
    position = 0
    while position < len(text):
        found = _CLAUSE.match(text, position)
        if found is None or found.end() == position:
            raise ValueError(f"cannot read {text[position:]!r}; expected a version, a pattern or op+version")
        tokens.append((found.group(1), found.group(2)))
        position = found.end()
    return tokens


def _bare(operand: str) -> _Clause:
    if "*" in operand:
        return _pattern(operand, negated=False)
    return _Exact(operand, version_key(operand))


def _clause(op: str, operand: str) -> _Clause:
    if "*" in operand:
        if op not in ("==", "=", "!="):
            raise ValueError(f"a '*' pattern can only follow == or !=, not {op}")
        return _pattern(operand, negated=op == "!=")
    bound = version_key(operand)
    if bound is None:
        raise ValueError(f"{operand!r} is not a version (expected numbers separated by dots, e.g. 1.2.0)")
    return _Comparison(op, bound)


def _pattern(operand: str, negated: bool) -> _Pattern:
    regex = ".*".join(re.escape(part) for part in operand.split("*"))
    return _Pattern(re.compile(regex, re.IGNORECASE), negated)
