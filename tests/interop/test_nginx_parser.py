"""nginx syntax: tokens as nginx reads them, file:line, comments, include globs."""

from __future__ import annotations

from pathlib import Path

import pytest

from sniui.interop.nginx_parser import NginxSyntaxError, parse_file, parse_text, tokenize


def words(text: str) -> list[str]:
    return [t.text for t in tokenize(text) if t.kind == "word"]


def test_words_end_at_space_semicolon_and_brace():
    assert words("map $a $b {x y;}") == ["map", "$a", "$b", "x", "y"]


def test_hash_inside_a_word_is_not_a_comment():
    assert words("key a#b;") == ["key", "a#b"]


def test_backslash_escapes_nginx_unescapes_and_the_rest_kept():
    # \d stays for the regex; \\ becomes one backslash; \" a quote.
    assert words(r'~^(\d+)\.a$ "x\"y" a\\b;') == [r"~^(\d+)\.a$", 'x"y', "a\\b"]


def test_variable_braces_do_not_open_a_block():
    assert words("value ${app}-x;") == ["value", "${app}-x"]


def test_quoted_regex_may_hold_braces_and_semicolons():
    assert words('"~^\\d{1,3};x$" v;') == ["~^\\d{1,3};x$", "v"]


def test_directives_keep_line_and_trailing_comment():
    parsed = parse_text("stream {\n  map $a $b {\n    x.example.com  up;  # the x\n    # a lone comment\n    y.example.com up;\n  }\n}\n", "t.conf")
    entries = parsed.directives[0].block[0].block
    assert [(e.name, e.line, e.comment) for e in entries] == [("x.example.com", 3, "the x"), ("y.example.com", 5, None)]
    assert [c.text for c in parsed.comments] == ["the x", "a lone comment"]
    assert entries[0].where == "t.conf:3"


def test_multi_line_directive_takes_the_comment_on_its_semicolon_line():
    parsed = parse_text("resolver 10.0.0.1\n   valid=30s;  # dns\n", "t.conf")
    assert parsed.directives[0].line == 1
    assert parsed.directives[0].comment == "dns"


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        ("stream {\n  server {\n", 2, "never closed"),
        ("a b\n}", 2, "missing its ';'"),
        ("}", 1, "unexpected '}'"),
        ('a "b;\n', 1, "unterminated"),
        ("x;\n;\n", 2, "unexpected ';'"),
    ],
)
def test_syntax_errors_are_located(text, line, fragment):
    with pytest.raises(NginxSyntaxError) as caught:
        parse_text(text, "bad.conf")
    assert caught.value.line == line
    assert fragment in str(caught.value)
    assert str(caught.value).startswith(f"bad.conf:{line}:")


def test_include_glob_is_relative_to_the_main_file_and_sorted(tmp_path: Path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "20-b.conf").write_text("b 2;\n")
    (tmp_path / "conf.d" / "10-a.conf").write_text("a 1;\n\nnested 0;\n")
    (tmp_path / "main.conf").write_text("first;\ninclude conf.d/*.conf;\nlast;\n")
    parsed = parse_file(tmp_path / "main.conf")
    assert [(d.name, Path(d.file).name, d.line) for d in parsed.directives] == [
        ("first", "main.conf", 1), ("a", "10-a.conf", 1), ("nested", "10-a.conf", 3), ("b", "20-b.conf", 1), ("last", "main.conf", 3),
    ]


def test_include_inside_a_block_and_from_an_included_file_stays_relative_to_the_main_file(tmp_path: Path):
    (tmp_path / "snippets").mkdir()
    (tmp_path / "snippets" / "outer.conf").write_text("include snippets/inner.conf;\n")
    (tmp_path / "snippets" / "inner.conf").write_text("deep on;\n")
    (tmp_path / "main.conf").write_text("stream {\n  include snippets/outer.conf;\n}\n")
    parsed = parse_file(tmp_path / "main.conf")
    assert [d.name for d in parsed.directives[0].block] == ["deep"]


def test_a_glob_matching_nothing_is_fine_a_missing_file_is_not(tmp_path: Path):
    (tmp_path / "main.conf").write_text("include none/*.conf;\nok;\n")
    assert [d.name for d in parse_file(tmp_path / "main.conf").directives] == ["ok"]
    (tmp_path / "main.conf").write_text("ok;\ninclude missing.conf;\n")
    with pytest.raises(NginxSyntaxError) as caught:
        parse_file(tmp_path / "main.conf")
    assert caught.value.line == 2 and "missing.conf" in str(caught.value)


def test_include_loop_is_stopped(tmp_path: Path):
    (tmp_path / "main.conf").write_text("include main.conf;\n")
    with pytest.raises(NginxSyntaxError, match="include loop"):
        parse_file(tmp_path / "main.conf")
