"""Two server replicas answering one agent's polls at the same moment never hand out a job twice."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import insert

from certctl.agents.outcomes import Outcomes
from certctl.agents.work import AgentWork
from certctl.db.engine import Database
from certctl.jobs.models import Job, JobStatus, JobType
from tests.agents.conftest import Plane

JOBS = 120


@pytest.mark.postgres
def test_two_replicas_polling_together_hand_each_job_out_once(plane: Plane, database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share a PostgreSQL database")
    agent = plane.register("edge-1")
    target_id = plane.target(agent)
    cert = plane.certificate("web", [target_id])
    now = plane.clock.now()
    with plane.context.db.begin() as session:
        session.execute(
            insert(Job),
            [
                {
                    "id": f"job-load-{n:04d}",
                    "type": JobType.DEPLOYMENT,
                    "certificate_id": cert["id"],
                    "target_id": target_id,
                    "agent_id": agent.id,
                    "status": JobStatus.PENDING,
                    "attempts": 0,
                    "max_attempts": 3,
                    "scheduled_at": now,
                    "created_at": now,
                }
                for n in range(JOBS)
            ],
        )
    replicas = [Database.from_url(plane.context.settings.sqlalchemy_url) for _ in range(2)]
    handed: list[str] = []
    start = threading.Barrier(len(replicas) * 2)

    def poll_until_empty(db: Database) -> None:
        work = AgentWork(db, plane.clock, plane.context.cipher, Outcomes(notify=lambda ids: None))
        start.wait()
        while items := [item for item in work.poll(agent.id) if item["type"] == "Deployment"]:
            handed.extend(item["id"] for item in items)

    threads = [threading.Thread(target=poll_until_empty, args=(db,)) for db in replicas for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for db in replicas:
        db.dispose()
    assert Counter(handed).most_common(1)[0][1] == 1
    assert len(handed) == JOBS
