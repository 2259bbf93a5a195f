"""The handler of each distribution kind, built from the process's context."""

from __future__ import annotations

from typing import TYPE_CHECKING

from certctl.crl.ca_endpoint import ca_handler
from certctl.crl.endpoint import crl_handler
from certctl.distribution.asgi import Handler
from certctl.ocsp.api import ocsp_handler

if TYPE_CHECKING:
    from certctl.context import AppContext


def distribution_handlers(context: AppContext) -> dict[str, Handler]:
    """`crl` and `ca` (certctl.crl), `ocsp` (certctl.ocsp)."""
    handlers: dict[str, Handler] = {}
    handlers["ocsp"] = ocsp_handler(context.ocsp)
    handlers["crl"] = crl_handler(context.crls)
    handlers["ca"] = ca_handler(context.connectors, context.clock)
    return handlers
