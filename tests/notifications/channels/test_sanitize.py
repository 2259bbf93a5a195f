"""The sanitiser for values interpolated into notifications (notifications.md §8.6, acceptance #128)."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from certctl.notifications.channels import sanitize_text

FORBIDDEN = (
    {chr(c) for c in range(0x00, 0x20) if chr(c) != "\t"}
    | {"\x7f"}
    | {chr(c) for c in range(0x80, 0xA0)}
    | {chr(c) for c in range(0x202A, 0x202F)}
    | {chr(c) for c in range(0x2066, 0x206A)}
    | {"\u200b", "\u200c", "\u200d", "\ufeff", "\u2060", "\u2061", "\u2062", "\u2063", "\u2028", "\u2029"}
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("www.example.com", "www.example.com"),
        ("evil\x00.example.com", "evil.example.com"),
        ("line1\r\nX-Injected: yes", "line1 X-Injected: yes"),
        ("a\rb\nc", "a b c"),
        ("invoice\u202egnp.exe", "invoicegnp.exe"),
        ("\u2066isolated\u2069", "isolated"),
        ("zero\u200bwidth\u200d\ufeff\u2060", "zerowidth"),
        ("bell\x07 esc\x1b[31m del\x7f c1\x85\x9b", "bell esc[31m del c1 "),
        ("tab\tkept", "tab\tkept"),
        ("unicode ✓ für Bücher", "unicode ✓ für Bücher"),
    ],
)
def test_single_line_values_lose_hidden_and_line_forging_characters(value: str, expected: str) -> None:
    assert sanitize_text(value) == expected


def test_multiline_bodies_keep_line_breaks_as_newlines() -> None:
    assert sanitize_text("Error:\r\nboom\rbang\n\u202edone", multiline=True) == "Error:\nboom\nbang\ndone"


@given(st.text())
@example("\r\n\x00\u202e\u200b\x85")
def test_output_never_contains_a_forbidden_character_and_is_stable(value: str) -> None:
    once = sanitize_text(value)

    assert not FORBIDDEN & set(once)
    assert sanitize_text(once) == once


@given(st.text())
def test_multiline_output_keeps_only_newline_among_controls(value: str) -> None:
    cleaned = sanitize_text(value, multiline=True)

    assert not (FORBIDDEN - {"\n"}) & set(cleaned)
