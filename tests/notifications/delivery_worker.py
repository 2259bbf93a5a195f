"""A delivery replica for the multi-process test: `python -m tests.notifications.delivery_worker URL NAME WEBHOOK`.

Prints `ready`, then for every line `ROUND <iso instant>` on stdin runs the pending processor and the
retry sweep at that instant (the test moves time for both replicas at once) and prints `done <claimed>`.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from certctl.config import Settings
from certctl.db.engine import Database
from certctl.notifications.channels.registry import build_channels
from certctl.notifications.delivery import NotificationDispatcher
from certctl.scheduler.deadline import Deadline


class SharedClock:
    """Time as the test last announced it."""

    def __init__(self) -> None:
        self.at = datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return 0.0


def main(url: str, name: str, webhook_url: str) -> None:
    db = Database.from_url(url)
    db.ping()
    settings = Settings(database_url=url, webhook_url=webhook_url, outbound_allow_loopback=True)
    clock = SharedClock()
    channels = build_channels(settings)
    dispatcher = NotificationDispatcher(
        db, clock, channels, worker_id=name, lease=settings.notification_claim_lease, batch_size=50, concurrency=8
    )
    print("ready", flush=True)
    for line in sys.stdin:
        command, _, value = line.strip().partition(" ")
        if command != "ROUND":
            break
        clock.at = datetime.fromisoformat(value)
        done = dispatcher.process_pending(Deadline.never()) + dispatcher.retry_failed(Deadline.never())
        print(f"done {done.claimed}", flush=True)
    dispatcher.close()
    channels.close()
    db.dispose()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
