"""Imports every feature's tables so `Base.metadata` is complete (Alembic, catalog tests)."""

from certctl.agents import models as agents
from certctl.apikeys import models as apikeys
from certctl.audit import models as audit
from certctl.certificates import models as certificates
from certctl.db.base import Base
from certctl.issuers import models as issuers
from certctl.jobs import models as jobs
from certctl.notifications import models as notifications
from certctl.org import models as org
from certctl.policies import models as policies
from certctl.profiles import models as profiles
from certctl.scheduler import models as scheduler
from certctl.stats import models as stats
from certctl.targets import models as targets

metadata = Base.metadata

__all__ = [
    "agents",
    "apikeys",
    "audit",
    "certificates",
    "issuers",
    "jobs",
    "metadata",
    "notifications",
    "org",
    "policies",
    "profiles",
    "scheduler",
    "stats",
    "targets",
]
