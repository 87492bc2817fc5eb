"""nginx configuration syntax: a tokenizer and a parser into a directive tree.

It follows nginx's own reader (`ngx_conf_read_token`) where the difference is
visible to users:

- a word ends at whitespace, `;` or `{`; `#` starts a comment only where a new
  token could start, so `a#b` is one word;
- `"…"` and `'…'` quote; inside words and quotes `\\"`, `\\'`, `\\\\`, `\\t`, `\\r`,
  `\\n` are unescaped and every other backslash is kept (so `\\d` in a regex stays);
- `include` takes a glob, relative to the main file's folder (nginx's conf
  prefix, when started with `-c FILE`), expanded in sorted order; a glob that
  matches nothing is fine, a plain path that does not exist is an error.

Each directive keeps its file and line, and the comment on its own line, so the
importer can report untranslated directives and keep comments as descriptions.
"""

from __future__ import annotations

import glob as globbing
import os
from dataclasses import dataclass, field
from pathlib import Path

_UNESCAPED = {'"': '"', "'": "'", "\\": "\\", "t": "\t", "r": "\r", "n": "\n"}
_MAX_INCLUDE_DEPTH = 32


class NginxSyntaxError(Exception):
    def __init__(self, file: str, line: int | None, message: str):
        self.file, self.line, self.message = file, line, message
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")


@dataclass
class Directive:
    name: str
    args: list[str]
    file: str
    line: int
    block: list["Directive"] | None = None
    comment: str | None = None   # a `# …` comment on the directive's last line
    end_line: int = 0            # the line of its `;` (where a trailing comment sits)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def children(self, name: str) -> list["Directive"]:
        return [d for d in self.block or [] if d.name == name]

    def last(self, name: str) -> "Directive | None":
        found = self.children(name)
        return found[-1] if found else None


@dataclass
class Comment:
    text: str
    file: str
    line: int


@dataclass
class ParsedConfig:
    directives: list[Directive]
    files: list[str]                                  # every file read, main file first
    comments: list[Comment] = field(default_factory=list)   # every comment, attached or not


@dataclass
class _Token:
    kind: str      # "word", "{", "}", ";", "comment"
    text: str
    line: int


def tokenize(text: str, file: str = "<nginx>") -> list[_Token]:
    tokens: list[_Token] = []
    i, line, n = 0, 1, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
        elif ch in " \t\r":
            i += 1
        elif ch in "{};":
            tokens.append(_Token(ch, ch, line))
            i += 1
        elif ch == "#":
            end = text.find("\n", i)
            end = n if end == -1 else end
            tokens.append(_Token("comment", text[i + 1:end].strip(), line))
            i = end
        elif ch in "\"'":
            start_line = line
            out: list[str] = []
            i += 1
            while True:
                if i >= n:
                    raise NginxSyntaxError(file, start_line, f"unterminated {ch}quoted string")
                c = text[i]
                if c == "\\" and i + 1 < n and text[i + 1] in _UNESCAPED:
                    out.append(_UNESCAPED[text[i + 1]])
                    i += 2
                    continue
                if c == ch:
                    i += 1
                    break
                if c == "\n":
                    line += 1
                out.append(c)
                i += 1
            if i < n and text[i] not in " \t\r\n;{}":
                raise NginxSyntaxError(file, line, f"unexpected {text[i]!r} after a quoted string")
            tokens.append(_Token("word", "".join(out), start_line))
        else:
            out = []
            start_line = line
            while i < n:
                c = text[i]
                if c == "\\" and i + 1 < n:
                    out.append(_UNESCAPED.get(text[i + 1], "\\" + text[i + 1]))
                    i += 2
                    continue
                # `${name}`: the brace belongs to the variable, not to a block.
                if c == "{" and out and out[-1] == "$":
                    out.append(c)
                    i += 1
                    continue
                if c in " \t\r\n;{":
                    break
                out.append(c)
                i += 1
            tokens.append(_Token("word", "".join(out), start_line))
    return tokens


def _parse_tokens(tokens: list[_Token], file: str, comments: list[Comment]) -> list[Directive]:
    position = 0

    def parse_block(depth: int, opened_at: int | None) -> list[Directive]:
        nonlocal position
        directives: list[Directive] = []
        words: list[_Token] = []
        while position < len(tokens):
            token = tokens[position]
            position += 1
            if token.kind == "comment":
                comment = Comment(token.text, file, token.line)
                comments.append(comment)
                # A comment on the same line as the directive just closed belongs to it.
                if not words and directives and directives[-1].block is None \
                        and directives[-1].end_line == token.line and directives[-1].comment is None:
                    directives[-1].comment = token.text
                continue
            if token.kind == "word":
                words.append(token)
            elif token.kind == ";":
                if not words:
                    raise NginxSyntaxError(file, token.line, "unexpected ';'")
                directives.append(Directive(words[0].text, [w.text for w in words[1:]], file, words[0].line,
                                            end_line=token.line))
                words = []
            elif token.kind == "{":
                if not words:
                    raise NginxSyntaxError(file, token.line, "unexpected '{'")
                head = words
                words = []
                block = parse_block(depth + 1, token.line)
                directives.append(Directive(head[0].text, [w.text for w in head[1:]], file, head[0].line, block))
            elif token.kind == "}":
                if words:
                    raise NginxSyntaxError(file, token.line, f"unexpected '}}': {words[0].text!r} is missing its ';'")
                if depth == 0:
                    raise NginxSyntaxError(file, token.line, "unexpected '}'")
                return directives
        if words:
            raise NginxSyntaxError(file, words[0].line, f"unexpected end of file: {words[0].text!r} is missing its ';'")
        if depth > 0:
            raise NginxSyntaxError(file, opened_at, "unexpected end of file: this '{' is never closed")
        return directives

    return parse_block(0, None)


def parse_text(text: str, file: str = "<nginx>", *, base_dir: Path | None = None) -> ParsedConfig:
    """Parse nginx syntax; `include` is resolved against `base_dir` (default: the current folder)."""
    parsed = ParsedConfig([], [file])
    parsed.directives = _expand(_parse_tokens(tokenize(text, file), file, parsed.comments),
                                base_dir or Path.cwd(), parsed, depth=0)
    return parsed


def parse_file(path: str | os.PathLike[str]) -> ParsedConfig:
    path = Path(path)
    text = _read(path, None)
    # The unresolved folder keeps included files named as the user would write them.
    return parse_text(text, str(path), base_dir=path.parent)


def _read(path: Path, included_from: Directive | None) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        if included_from is not None:
            raise NginxSyntaxError(included_from.file, included_from.line,
                                   f"include {path}: {exc.strerror or exc}") from None
        raise NginxSyntaxError(str(path), None, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise NginxSyntaxError(str(path), None, f"not UTF-8 text: {exc.reason}") from None


def _expand(directives: list[Directive], base_dir: Path, parsed: ParsedConfig, depth: int) -> list[Directive]:
    out: list[Directive] = []
    for directive in directives:
        if directive.name == "include" and directive.block is None:
            out.extend(_include(directive, base_dir, parsed, depth))
            continue
        if directive.block is not None:
            directive.block = _expand(directive.block, base_dir, parsed, depth)
        out.append(directive)
    return out


def _include(directive: Directive, base_dir: Path, parsed: ParsedConfig, depth: int) -> list[Directive]:
    if len(directive.args) != 1:
        raise NginxSyntaxError(directive.file, directive.line, "include takes exactly one file or glob")
    if depth >= _MAX_INCLUDE_DEPTH:
        raise NginxSyntaxError(directive.file, directive.line, f"includes nested deeper than {_MAX_INCLUDE_DEPTH}: an include loop?")
    pattern = directive.args[0]
    full = pattern if os.path.isabs(pattern) else str(base_dir / pattern)
    if globbing.has_magic(pattern):
        paths = sorted(globbing.glob(full))
    else:
        paths = [full]
    out: list[Directive] = []
    for path in paths:
        text = _read(Path(path), directive)
        parsed.files.append(path)
        inner = _parse_tokens(tokenize(text, path), path, parsed.comments)
        out.extend(_expand(inner, base_dir, parsed, depth + 1))
    return out
