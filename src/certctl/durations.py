"""Go-style durations (`30s`, `2m`, `1h30m`, `250ms`), the form every certctl interval is written in."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal

# Exact unit sizes in microseconds (timedelta's resolution); Decimal keeps `1000000h0.000001s` exact.
_UNIT_MICROS = {
    "ns": Decimal("0.001"),
    "us": Decimal(1),
    "µs": Decimal(1),
    "μs": Decimal(1),
    "ms": Decimal(1_000),
    "s": Decimal(1_000_000),
    "m": Decimal(60_000_000),
    "h": Decimal(3_600_000_000),
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")  # Go also reads `1.h`
DURATION_FORM = "a Go-style duration such as 30s, 2m, 1h or 1h30m"


def parse_go_duration(text: str) -> timedelta:
    """Parse `1h30m` into a timedelta; raises ValueError naming the accepted form."""
    value = text.strip()
    if value in ("0", "+0"):
        return timedelta(0)
    pos, total = 0, Decimal(0)
    while pos < len(value):
        match = _PART.match(value, pos)
        if match is None:
            raise ValueError(f"{text!r} is not {DURATION_FORM}")
        total += Decimal(match.group(1)) * _UNIT_MICROS[match.group(2)]
        pos = match.end()
    if pos == 0:
        raise ValueError(f"{text!r} is not {DURATION_FORM}")
    try:
        return timedelta(microseconds=int(total.to_integral_value(rounding=ROUND_HALF_EVEN)))
    except OverflowError:
        raise ValueError(f"{text!r} is too long a duration (at most 999999999 days)") from None


def format_go_duration(value: timedelta) -> str:
    """A short Go-style spelling (`1h30m`, `45s`, `250ms`, `1m0.5s`, `-5s`) that parse_go_duration reads back."""
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    if micros == 0:
        return "0s"
    sign = "-" if micros < 0 else ""
    seconds, fraction = divmod(abs(micros), 1_000_000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{u}" for n, u in ((hours, "h"), (minutes, "m")) if n]
    if fraction == 0:
        if secs:
            parts.append(f"{secs}s")
    elif seconds == 0 and fraction < 1000:
        parts.append(f"{fraction}us")
    elif seconds == 0:
        parts.append(f"{fraction // 1000}.{fraction % 1000:03d}".rstrip("0").rstrip(".") + "ms")
    else:
        parts.append(f"{secs}.{fraction:06d}".rstrip("0") + "s")
    return sign + "".join(parts)
