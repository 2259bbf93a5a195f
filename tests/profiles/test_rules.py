from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certctl.errors import ValidationFailed
from certctl.profiles.rules import KeyAlgorithm, KeyAlgorithmRule, check_ttl


@given(size=st.integers(min_value=-10, max_value=40_000))
def test_rsa_rules_need_at_least_2048_bits(size: int) -> None:
    if 2048 <= size <= 16_384:
        assert KeyAlgorithmRule.parse("RSA", size) == KeyAlgorithmRule(KeyAlgorithm.RSA, size)
    else:
        with pytest.raises(ValidationFailed, match="RSA min_size must be between 2048 and 16384"):
            KeyAlgorithmRule.parse("RSA", size)


@given(ttl=st.integers(min_value=0, max_value=100_000))
def test_short_lived_is_allowed_only_under_an_hour(ttl: int) -> None:
    check_ttl(ttl, allow_short_lived=False)
    if 0 < ttl < 3600:
        check_ttl(ttl, allow_short_lived=True)
    else:
        with pytest.raises(ValidationFailed, match="allow_short_lived"):
            check_ttl(ttl, allow_short_lived=True)
