from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from certctl.pki.serials import SERIAL_BITS, canonical_serial, random_serial, serial_to_int

serials = st.integers(min_value=0, max_value=2**160 - 1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0"),
        ("0", "0"),
        ("00", "0"),
        ("0000000000000000000000000000000000000000", "0"),
        (255, "ff"),
        ("FF", "ff"),
        ("00ff", "ff"),
        ("0x00FF", "ff"),
        ("01:A2:ff", "1a2ff"),
        ("00:01:a2:FF", "1a2ff"),
        ("  0a0b  ", "a0b"),
        ("000000000000000000000000000000000000abcd", "abcd"),  # the original local CA's %040x form
        (2**159 - 1, "7" + "f" * 39),
    ],
)
def test_canonical_serial_accepts_every_spelling(value: int | str, expected: str) -> None:
    assert canonical_serial(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "xyz",
        "12g4",
        "01::02",
        ":01",
        "01:",
        "0x",
        "-1",
        "1 2",
        "\uff11\uff12",
        "0o17",
        -1,
        1.5,
        None,
        True,
        b"01",
    ],
)
def test_canonical_serial_rejects_garbage(value: object) -> None:
    with pytest.raises(ValueError, match="serial"):
        canonical_serial(value)  # type: ignore[arg-type]


def test_a_hex_string_is_read_as_hex_not_decimal() -> None:
    assert canonical_serial("10") == "10"
    assert serial_to_int("10") == 16
    assert canonical_serial(10) == "a"


@given(serials)
@example(0)
def test_int_round_trips_through_the_canonical_form(serial: int) -> None:
    text = canonical_serial(serial)
    assert int(text, 16) == serial
    assert canonical_serial(text) == text
    assert text == "0" or not text.startswith("0")
    assert text == text.lower()
    assert ":" not in text


@given(serials, st.integers(min_value=0, max_value=40))
def test_zero_padding_does_not_change_the_serial(serial: int, padding: int) -> None:
    assert canonical_serial("0" * padding + format(serial, "x")) == canonical_serial(serial)
    assert canonical_serial(format(serial, "040x")) == canonical_serial(serial)


@given(serials)
def test_colon_separated_octets_do_not_change_the_serial(serial: int) -> None:
    octets = serial.to_bytes(max(1, (serial.bit_length() + 7) // 8), "big")
    assert canonical_serial(octets.hex(":")) == canonical_serial(serial)
    assert canonical_serial(octets.hex(":").upper()) == canonical_serial(serial)


@given(serials, st.lists(st.booleans(), min_size=40, max_size=40))
def test_letter_case_does_not_change_the_serial(serial: int, upper: list[bool]) -> None:
    text = format(serial, "x")
    mixed = "".join(c.upper() if up else c for c, up in zip(text, upper, strict=False))
    assert canonical_serial(mixed) == canonical_serial(serial)


def test_random_serials_are_positive_below_2_to_159_and_distinct() -> None:
    drawn = [random_serial() for _ in range(2000)]
    assert all(0 < s < 2**SERIAL_BITS for s in drawn)
    assert len(set(drawn)) == len(drawn)
    # 2000 uniform draws from 159 bits: the largest is all but certain to use at least 150 bits.
    assert max(drawn).bit_length() >= 150
