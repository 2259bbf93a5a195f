"""A worker process for the claim race test: `python -m tests.jobs.claim_worker URL WORKER_ID`.

Connects, prints `ready`, waits for a line on stdin (the start signal), then claims jobs until the queue
is empty and prints the claimed IDs as one JSON list.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta

from certctl.clock import SystemClock
from certctl.db.engine import Database
from certctl.jobs.service import JobQueue

BATCH = 5


def main(url: str, worker_id: str) -> None:
    db = Database.from_url(url)
    db.ping()
    queue = JobQueue(db, SystemClock())
    print("ready", flush=True)
    sys.stdin.readline()
    claimed: list[str] = []
    now = datetime(2030, 1, 1, tzinfo=UTC)  # every job is due; a fixed instant keeps the run deterministic
    while jobs := queue.claim(worker_id, now, timedelta(minutes=5), BATCH):
        claimed.extend(job.id for job in jobs)
    print(json.dumps(claimed), flush=True)
    db.dispose()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
