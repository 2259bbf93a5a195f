"""The handler of each distribution kind, built from the process's context."""

from __future__ import annotations

from typing import TYPE_CHECKING

from certctl.distribution.asgi import Handler

if TYPE_CHECKING:
    from certctl.context import AppContext


def distribution_handlers(context: AppContext) -> dict[str, Handler]:
    """`crl` and `ca` (certctl.crl), `ocsp` (certctl.ocsp)."""
    handlers: dict[str, Handler] = {}
    return handlers
