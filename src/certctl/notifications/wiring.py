"""One process's notification machinery, built from the settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from certctl.certificates.processor import default_worker_id
from certctl.clock import Clock
from certctl.config import Settings
from certctl.db.engine import Database
from certctl.notifications.channels.registry import ChannelRegistry, build_channels
from certctl.notifications.delivery import NotificationDispatcher
from certctl.notifications.service import NotificationService

log = logging.getLogger("certctl.notifications")


@dataclass
class Notifications:
    channels: ChannelRegistry
    dispatcher: NotificationDispatcher
    service: NotificationService

    def close(self) -> None:
        self.dispatcher.close()
        self.channels.close()


def build_notifications(settings: Settings, db: Database, clock: Clock) -> Notifications:
    if settings.outbound_allow_loopback:
        log.warning(
            "outbound.loopback_allowed",
            extra={
                "detail": "CERTCTL_OUTBOUND_ALLOW_LOOPBACK=true: notification URLs may reach this host's "
                "loopback services; use it for development and tests only"
            },
        )
    channels = build_channels(settings)
    dispatcher = NotificationDispatcher(
        db,
        clock,
        channels,
        worker_id=default_worker_id(),
        lease=settings.notification_claim_lease,
        batch_size=settings.notification_batch_size,
        concurrency=settings.notification_send_concurrency,
    )
    return Notifications(channels, dispatcher, NotificationService(db, clock, channels, dispatcher))
