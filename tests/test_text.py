"""batchtui.text.visible: the one rule that keeps text from acting on the terminal."""

from __future__ import annotations

import json
import unicodedata
from typing import Final

from hypothesis import given
from hypothesis import strategies as st

from batchtui.jobfile import q
from batchtui.text import CATEGORIES, json_escaped, visible

ACTING: Final = ("Cc", "Cf", "Cs", "Zl", "Zp")
# Any code point, surrogates included, and the few that random choice seldom finds.
ANY = st.one_of(st.characters(codec=None),
                st.sampled_from("\x1b\x9b\x85\u00ad\u200b\u200e\u2028\u2029\u202e\u2066\u2069"
                                "\ufeff\U000e0001\n\t\r\\"))


def _acts(ch: str, keep_newlines: bool) -> bool:
    return unicodedata.category(ch) in ACTING and not (keep_newlines and ch in "\n\t")


@given(st.text(alphabet=ANY), st.booleans())
def test_no_character_that_acts_on_the_terminal_comes_out(text, keep_newlines):
    out = visible(text, keep_newlines=keep_newlines)
    assert not any(_acts(ch, keep_newlines) for ch in out), ascii(out)


@given(st.text(alphabet=st.characters(blacklist_categories=ACTING)))
def test_plain_text_is_unchanged(text):
    assert visible(text) == text
    assert visible(text, keep_newlines=True) == text


@given(st.text(alphabet=st.characters(blacklist_categories=ACTING)), st.booleans())
def test_newlines_and_tabs_are_kept_only_where_several_lines_are_allowed(text, keep_newlines):
    lines = text + "\n\t" + text
    out = visible(lines, keep_newlines=keep_newlines)
    assert out == (lines if keep_newlines else text + "\\n\\t" + text)


@given(st.text(alphabet=ANY))
def test_each_acting_character_becomes_its_python_escape(text):
    """The escapes are Python's spelling: decoding them gives back the text (less its backslashes)."""
    plain = text.replace("\\", "")
    assert visible(plain).encode("ascii", "backslashreplace").decode("unicode_escape") == plain


def test_the_set():
    assert CATEGORIES == frozenset(ACTING)
    assert visible("a\x1b[31mb\x07\r\n\u202e") == "a\\x1b[31mb\\a\\r\\n\\u202e"
    assert visible("\x00\x7f\x85\x9f") == "\\x00\\x7f\\x85\\x9f"  # C0, DEL, C1
    for ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069":  # bidi controls
        assert visible(ch) == f"\\u{ord(ch):04x}"
    assert visible("zero\u200bwidth\u200d\ufeff\u00ad") == "zero\\u200bwidth\\u200d\\ufeff\\xad"
    assert visible("\ud800") == "\\ud800"  # a lone surrogate
    assert visible("\U000e0041") == "\\U000e0041"  # a tag character
    assert visible("\u2028\u2029") == "\\u2028\\u2029"
    assert visible("line1\nline2\ttab", keep_newlines=True) == "line1\nline2\ttab"
    assert visible("a\r\nb", keep_newlines=True) == "a\\r\nb"
    # Printable text of any script, spaces of every kind and backslashes stay.
    assert visible("Ünïcödé 日本 \u00a0 C:\\temp [b]x[/b]") == "Ünïcödé 日本 \u00a0 C:\\temp [b]x[/b]"
    assert visible(None) == "" and visible(42) == "42"


def test_messages_quote_values_with_the_same_rule():
    assert q("plain") == "'plain'"
    assert q("it's") == '"it\'s"'
    assert q("a\x1b[2Jb") == "'a\\x1b[2Jb'"
    assert q("\u202eevil") == "'\\u202eevil'"
    assert q("both ' and \"") == "'both \\' and \"'"


@given(st.recursive(st.text(alphabet=ANY), lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(alphabet=ANY, max_size=4), inner, max_size=3), max_leaves=6),
       st.sampled_from([None, 2]))
def test_json_output_carries_no_character_that_acts_and_reads_back_the_same(value, indent):
    out = json_escaped(json.dumps(value, ensure_ascii=False, indent=indent))
    assert not any(_acts(ch, True) for ch in out), ascii(out)
    assert json.loads(out) == value
