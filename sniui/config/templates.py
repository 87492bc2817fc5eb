"""Upstream templates: `$app-public.$ns.svc:$port`, `${name}`, `$1`.

Parsed once at config load; rendering is a join over precomputed segments so the
per-connection cost is small.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# nginx variable names: letters, digits, underscore; `${name}` delimits one.
_REFERENCE = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z_][A-Za-z0-9_]*|[0-9]+))")


@dataclass(frozen=True, slots=True)
class Template:
    text: str
    segments: tuple[str | int, ...]   # literal strings, group names (str prefixed by '$'), or group numbers
    references: tuple[str | int, ...]

    @property
    def is_literal(self) -> bool:
        return not self.references

    def render(self, match: re.Match[str] | None) -> str:
        if not self.references:
            return self.text
        out = []
        for segment in self.segments:
            if isinstance(segment, int):
                out.append(_group(match, segment))
            elif segment.startswith("$"):
                out.append(_group(match, segment[1:]))
            else:
                out.append(segment)
        return "".join(out)


def _group(match: re.Match[str] | None, key: str | int) -> str:
    # A group that did not take part renders empty, as in nginx.
    if match is None:
        return ""
    try:
        return match.group(key) or ""
    except IndexError:
        return ""


def parse_template(text: str) -> Template:
    if "$" not in text:
        return Template(text, (text,), ())
    segments: list[str | int] = []
    references: list[str | int] = []
    position = 0
    for m in _REFERENCE.finditer(text):
        if m.start() > position:
            segments.append(text[position:m.start()])
        name = m.group(1) or m.group(2)
        ref: str | int = int(name) if name.isdigit() else name
        references.append(ref)
        segments.append(ref if isinstance(ref, int) else "$" + ref)
        position = m.end()
    if position < len(text):
        segments.append(text[position:])
    literal = "".join(s for s in segments if isinstance(s, str) and not s.startswith("$"))
    if "$" in literal:
        raise ValueError(f"{text!r}: a '$' must start a capture reference such as $name, ${{name}} or $1")
    return Template(text, tuple(segments), tuple(references))
