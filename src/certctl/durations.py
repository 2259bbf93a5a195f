"""Go-style durations (`30s`, `2m`, `1h30m`, `250ms`), the form every certctl interval is written in."""

from __future__ import annotations

import re
from datetime import timedelta

_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
DURATION_FORM = "a Go-style duration such as 30s, 2m, 1h or 1h30m"


def parse_go_duration(text: str) -> timedelta:
    """Parse `1h30m` into a timedelta; raises ValueError naming the accepted form."""
    value = text.strip()
    if value in ("0", "+0"):
        return timedelta(0)
    pos, total = 0, 0.0
    while pos < len(value):
        match = _PART.match(value, pos)
        if match is None:
            raise ValueError(f"{text!r} is not {DURATION_FORM}")
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos == 0:
        raise ValueError(f"{text!r} is not {DURATION_FORM}")
    return timedelta(seconds=total)


def format_go_duration(value: timedelta) -> str:
    """The shortest Go-style spelling of a whole number of seconds (`1h30m`, `45s`)."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{n}{u}" for n, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)
