"""Server-name patterns as nginx's `map { hostnames; }` understands them.

A pattern is classified once, here, so the config (validation), the route table
(matching) and the exporters all agree on what `*.a.b`, `.a.b`, `www.a.*` and
`~regex` mean.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from sniui.config.addresses import is_valid_hostname, to_ascii_name


class PatternKind(enum.IntEnum):
    """Kinds in precedence order: a lower value is consulted first."""

    EXACT = 1
    LEADING_WILDCARD = 2   # *.a.b (any depth below a.b) and .a.b (a.b too)
    TRAILING_WILDCARD = 3  # www.a.*
    REGEX = 4

    @property
    def label(self) -> str:
        return {1: "exact", 2: "wildcard", 3: "trailing wildcard", 4: "regex"}[self.value]


@dataclass(frozen=True, slots=True)
class Pattern:
    text: str                 # as written in the config
    kind: PatternKind
    key: str                  # exact: the name; leading: the suffix; trailing: the prefix; regex: the source
    includes_base: bool = False   # `.a.b` also matches `a.b` itself
    regex: re.Pattern[str] | None = None

    @property
    def specificity(self) -> int:
        """Labels fixed by a wildcard: the longest wildcard wins."""
        return self.key.count(".") + 1 if self.kind is not PatternKind.REGEX else 0

    @property
    def group_names(self) -> tuple[str, ...]:
        return tuple(self.regex.groupindex) if self.regex else ()

    @property
    def group_count(self) -> int:
        return self.regex.groups if self.regex else 0


# `(?<name>` is PCRE/nginx syntax; Python spells it `(?P<name>`. Lookbehinds
# `(?<=` and `(?<!` must stay as they are.
_PCRE_NAMED_GROUP = re.compile(r"\(\?<(?![=!])")


def compile_regex(source: str, *, ignore_case: bool) -> re.Pattern[str]:
    python_source = _PCRE_NAMED_GROUP.sub("(?P<", source)
    try:
        return re.compile(python_source, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        raise ValueError(f"regex {source!r} does not compile: {exc.msg} at position {exc.pos}") from None


def parse_pattern(text: str) -> Pattern:
    """Classify one `sni:` entry; raise ValueError explaining what is wrong with it."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a server-name pattern cannot be empty")
    text = text.strip()
    if text.startswith("~"):
        ignore_case = text.startswith("~*")
        source = text[2:] if ignore_case else text[1:]
        if not source:
            raise ValueError("a regex pattern needs an expression after '~'")
        return Pattern(text, PatternKind.REGEX, source, regex=compile_regex(source, ignore_case=ignore_case))

    name = to_ascii_name(text.lower())
    if name.endswith(".") and not name.endswith("*."):
        name = name[:-1]
    if name == "*":
        raise ValueError("'*' alone matches everything: use `default:` for that")
    if name.startswith("*."):
        suffix = name[2:]
        _check_fixed_part(text, suffix)
        return Pattern(text, PatternKind.LEADING_WILDCARD, suffix)
    if name.startswith("."):
        suffix = name[1:]
        _check_fixed_part(text, suffix)
        return Pattern(text, PatternKind.LEADING_WILDCARD, suffix, includes_base=True)
    if name.endswith(".*"):
        prefix = name[:-2]
        _check_fixed_part(text, prefix)
        return Pattern(text, PatternKind.TRAILING_WILDCARD, prefix)
    if "*" in name:
        raise ValueError(
            f"{text!r}: '*' may only stand as the first label (*.example.com) "
            "or the last (www.example.*); use a regex (~...) for anything else"
        )
    _check_fixed_part(text, name)
    return Pattern(text, PatternKind.EXACT, name)


def _check_fixed_part(text: str, name: str) -> None:
    if "*" in name:
        raise ValueError(f"{text!r}: only one '*' is allowed, as the first or last label")
    if not is_valid_hostname(name):
        raise ValueError(f"{text!r} is not a valid server name")
