"""The text sanitiser for values interpolated into notifications (notifications.md §8.6).

Certificate names, target names and error texts come from users, agents and remote servers. Before
they go into a message they lose what could forge lines, reorder what a reader sees, or hide text:
NUL, C0 controls (except TAB), DEL, C1 controls, bidirectional overrides and isolates, and zero-width
characters. Line breaks become a space, or, with `multiline=True` (message bodies), one "\\n".
"""

from __future__ import annotations

import re

# U+202A-202E bidi embeddings/overrides, U+2066-2069 isolates, plus the invisible marks U+200E/200F
# (LRM/RLM) and U+061C (ALM), which reorder text the same way.
_BIDI = "\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c"
# U+200B-200D zero-width space/non-joiner/joiner, U+2060-2063 word joiner and invisible operators,
# U+FEFF zero-width no-break space (BOM).
_ZERO_WIDTH = "\u200b-\u200d\u2060-\u2063\ufeff"
# C0 except TAB, LF and CR (handled as line breaks), DEL and C1.
_CONTROLS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x80-\x9f"

_STRIP = re.compile(f"[{_BIDI}{_ZERO_WIDTH}{_CONTROLS}]")
_LINE_BREAK = re.compile("\r\n|[\r\n\u2028\u2029\x85]")


def sanitize_text(value: str, *, multiline: bool = False) -> str:
    """`value` without hidden or line-forging characters; TAB is kept.

    Each line break (CRLF, CR, LF, U+2028, U+2029, NEL) becomes a space, or "\\n" when `multiline`.
    """
    value = _LINE_BREAK.sub("\n" if multiline else " ", value)
    return _STRIP.sub("", value)
