"""Rows the API cannot create yet (certificates), inserted straight into the test database."""

from __future__ import annotations

from datetime import UTC, datetime

from certctl.bootstrap import DEFAULT_POLICY_ID
from certctl.certificates.models import ManagedCertificate
from certctl.context import AppContext
from certctl.org.models import Owner, Team


def insert_certificate(context: AppContext, issuer_id: str, cert_id: str = "mc-web") -> str:
    now = datetime.now(UTC)
    with context.db.begin() as session:
        if session.get(Team, "t-rows") is None:
            session.add(Team(id="t-rows", name="rows", created_at=now, updated_at=now))
            session.flush()  # no ORM relationships, so the team must exist before its owner
            session.add(Owner(id="o-rows", name="Rows", team_id="t-rows", created_at=now, updated_at=now))
            session.flush()
        session.add(
            ManagedCertificate(
                id=cert_id,
                name=cert_id,
                common_name=f"{cert_id}.example.com",
                owner_id="o-rows",
                team_id="t-rows",
                issuer_id=issuer_id,
                renewal_policy_id=DEFAULT_POLICY_ID,
                created_at=now,
                updated_at=now,
            )
        )
    return cert_id
