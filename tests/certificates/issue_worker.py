"""A separate worker process for the multi-process issuance test: waits for "go", processes the queue."""

from __future__ import annotations

import sys
from pathlib import Path

from certctl.bootstrap import prepare
from certctl.certificates.processor import IssuanceProcessor, mark_certificate_failed
from certctl.clock import SystemClock
from certctl.config import Settings
from certctl.jobs.service import JobQueue


def main(url: str, worker_id: str, data_dir: str, key: str) -> None:
    settings = Settings(database_url=url, data_dir=Path(data_dir), config_encryption_key=key)
    context = prepare(settings, SystemClock(), run_migrations=False, seed_issuers=False)
    queue = JobQueue(context.db, context.clock, on_terminal_failure=mark_certificate_failed)
    processor = IssuanceProcessor(
        context.db, context.clock, context.cipher, context.connectors, queue, worker_id=worker_id, batch=5
    )
    print("ready", flush=True)
    sys.stdin.readline()
    summary = processor.run(context.clock.now())
    print(f"{summary.completed} {summary.failed}", flush=True)
    context.db.dispose()


if __name__ == "__main__":
    main(*sys.argv[1:5])
