"""Fixtures for the channel tests: the shared outbound HTTP client, allowed to reach the loopback sinks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from certctl.notifications.channels.http import OutboundHttp


@pytest.fixture
def outbound() -> Iterator[OutboundHttp]:
    """The channels' HTTP client with CERTCTL_OUTBOUND_ALLOW_LOOPBACK=true, as in development."""
    client = OutboundHttp(allow_loopback=True)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def strict_outbound() -> Iterator[OutboundHttp]:
    """The production client: loopback refused like every other reserved range."""
    client = OutboundHttp(allow_loopback=False)
    try:
        yield client
    finally:
        client.close()
