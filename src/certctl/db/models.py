"""Imports every feature's tables so `Base.metadata` is complete (Alembic, catalog tests)."""

from certctl.agents import models as agents
from certctl.apikeys import models as apikeys
from certctl.audit import models as audit
from certctl.certificates import models as certificates
from certctl.crl import models as crl
from certctl.db.base import Base
from certctl.intermediates import models as intermediates
from certctl.issuers import models as issuers
from certctl.jobs import models as jobs
from certctl.notifications import models as notifications
from certctl.ocsp import models as ocsp
from certctl.org import models as org
from certctl.policies import models as policies
from certctl.profiles import models as profiles
from certctl.revocation import models as revocation
from certctl.scheduler import models as scheduler
from certctl.stats import models as stats
from certctl.targets import models as targets

metadata = Base.metadata

__all__ = [
    "agents",
    "apikeys",
    "audit",
    "certificates",
    "crl",
    "intermediates",
    "issuers",
    "jobs",
    "metadata",
    "notifications",
    "ocsp",
    "org",
    "policies",
    "profiles",
    "revocation",
    "scheduler",
    "stats",
    "targets",
]
