"""Issuer connectors by type (STYLE §9.2): one mapping, and an unknown type is an error."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from certctl.issuers.models import IssuerType
from certctl.pki.connector import ConnectorDeps, ConnectorFactory, IssuerConnector
from certctl.pki.errors import UnknownIssuerType
from certctl.pki.local_ca import LocalCA

ISSUER_CONNECTORS: Mapping[IssuerType, ConnectorFactory] = MappingProxyType(
    {
        IssuerType.GENERIC_CA: LocalCA,
    }
)


def connector_factory(issuer_type: IssuerType) -> ConnectorFactory:
    """Raises UnknownIssuerType when no connector is registered for `issuer_type`."""
    if (factory := ISSUER_CONNECTORS.get(issuer_type)) is None:
        raise UnknownIssuerType(issuer_type)
    return factory


def validate_issuer_config(issuer_type: IssuerType, config: Mapping[str, object]) -> None:
    """Check a config without building anything (no key generation, no file reads).

    Raises UnknownIssuerType or IssuerConfigError.
    """
    connector_factory(issuer_type).validate_config(config)


def build_connector(issuer_type: IssuerType, config: Mapping[str, object], deps: ConnectorDeps) -> IssuerConnector:
    """The connector for an issuer row. Raises UnknownIssuerType, IssuerConfigError or InvalidCAMaterial."""
    return connector_factory(issuer_type).build(config, deps)
