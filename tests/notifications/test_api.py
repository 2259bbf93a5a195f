"""/api/v1/notifications: true totals and filters, real look-ups by id, attempts, read, requeue rules,
the admin bulk requeue of the dead-letter queue and the admin test send."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from certctl.audit.models import AuditEvent
from certctl.clock import FrozenClock
from certctl.context import AppContext
from certctl.notifications.models import NotificationEvent
from certctl.scheduler.deadline import Deadline
from tests.conftest import client_for
from tests.notifications.peers import HttpSink
from tests.notifications.rows import enqueue, row


@pytest.fixture
def notifying(context_factory: Callable[..., AppContext], clock: FrozenClock, http_sink: HttpSink) -> AppContext:
    return context_factory(clock, webhook_url=http_sink.url, outbound_allow_loopback=True)


def make_dead(context: AppContext, clock: FrozenClock, sink: HttpSink, count: int = 1) -> list[str]:
    sink.respond(503)
    ids = enqueue(context, count)
    context.notifications.dispatcher.deliver(ids)
    for wait in (1, 2, 4, 8):
        clock.advance(timedelta(minutes=wait))
        context.notifications.dispatcher.retry_failed(Deadline.never())
    assert {row(context, i).status for i in ids} == {"dead"}
    sink.respond(200)
    return ids


def audit_actions(context: AppContext, action: str) -> int:
    with context.db.begin() as session:
        return int(session.scalar(select(func.count()).where(AuditEvent.action == action)) or 0)


def test_list_counts_every_matching_row_and_filters(notifying: AppContext, http_sink: HttpSink) -> None:
    sent = enqueue(notifying, 3)
    notifying.notifications.dispatcher.deliver(sent)
    enqueue(notifying, 2, channel="Slack")  # pending
    with client_for(notifying) as client:
        everything = client.get("/api/v1/notifications", params={"per_page": 2}).json()
        assert everything["total"] == 5
        assert len(everything["data"]) == 2
        assert (everything["page"], everything["per_page"]) == (1, 2)
        assert client.get("/api/v1/notifications", params={"status": "sent"}).json()["total"] == 3
        slack = client.get("/api/v1/notifications", params={"channel": "Slack"}).json()
        assert slack["total"] == 2
        assert {n["status"] for n in slack["data"]} == {"pending"}
        assert client.get("/api/v1/notifications", params={"type": "Revocation"}).json() == {
            "data": [],
            "total": 0,
            "page": 1,
            "per_page": 50,
        }
        assert client.get("/api/v1/notifications", params={"per_page": 501}).status_code == 400
        one = slack["data"][0]
        assert one["retry_count"] == 0
        assert "sent_at" not in one
        assert "certificate_id" not in one


def test_get_returns_the_row_asked_for(notifying: AppContext) -> None:
    ids = enqueue(notifying, 3)
    with client_for(notifying, "viewer") as client:
        for nid in ids:
            assert client.get(f"/api/v1/notifications/{nid}").json()["id"] == nid
        missing = client.get("/api/v1/notifications/notif-nope")
        assert missing.status_code == 404
        assert missing.json()["error"] == "Not Found"


def test_attempts_list_every_attempt_in_order(notifying: AppContext, clock: FrozenClock, http_sink: HttpSink) -> None:
    http_sink.script([503, 200])
    [nid] = enqueue(notifying)
    notifying.notifications.dispatcher.deliver([nid])
    clock.advance(timedelta(minutes=1))
    notifying.notifications.dispatcher.retry_failed(Deadline.never())
    with client_for(notifying) as client:
        body = client.get(f"/api/v1/notifications/{nid}/attempts").json()
        assert body["total"] == 2
        assert [(a["attempt_number"], a["outcome"], a["http_status"]) for a in body["data"]] == [
            (1, "failure", 503),
            (2, "success", 200),
        ]
        assert "worker" not in body["data"][0]
        assert client.get("/api/v1/notifications/notif-nope/attempts").status_code == 404


def test_mark_read(notifying: AppContext) -> None:
    delivered, pending = enqueue(notifying, 2)
    notifying.notifications.dispatcher.deliver([delivered])
    with client_for(notifying, "operator") as client:
        assert client.post(f"/api/v1/notifications/{delivered}/read").json() == {"status": "marked_as_read"}
        assert client.post(f"/api/v1/notifications/{pending}/read").status_code == 200
        assert client.post("/api/v1/notifications/notif-nope/read").status_code == 404
    assert row(notifying, delivered).status == "read"
    # Reading an alert that has not arrived yet does not cancel its delivery.
    still = row(notifying, pending)
    assert still.status == "pending"
    assert still.read_at is not None
    with client_for(notifying, "viewer") as client:
        assert client.post(f"/api/v1/notifications/{pending}/read").status_code == 403


def test_requeue_a_dead_row_gives_it_a_fresh_budget_and_delivers_it(
    notifying: AppContext, clock: FrozenClock, http_sink: HttpSink
) -> None:
    [nid] = make_dead(notifying, clock, http_sink)
    with client_for(notifying, "operator") as client:
        response = client.post(f"/api/v1/notifications/{nid}/requeue")
        assert response.status_code == 200
        assert response.json() == {"status": "requeued"}
    notifying.notifications.dispatcher.close()  # waits for the background delivery
    delivered = row(notifying, nid)
    assert (delivered.status, delivered.retry_count, delivered.attempt_count) == ("sent", 0, 6)
    assert audit_actions(notifying, "notification_requeued") == 1


def test_requeue_a_failed_row(notifying: AppContext, http_sink: HttpSink) -> None:
    http_sink.respond(503)
    [nid] = enqueue(notifying)
    notifying.notifications.dispatcher.deliver([nid])
    with client_for(notifying) as client:
        assert client.post(f"/api/v1/notifications/{nid}/requeue").status_code == 200
    notifying.notifications.dispatcher.close()
    after = row(notifying, nid)
    assert after.retry_count == 1
    assert after.status == "failed"
    assert after.attempt_count == 2


def test_requeue_refuses_rows_with_nothing_to_requeue(notifying: AppContext) -> None:
    delivered, pending = enqueue(notifying, 2)
    notifying.notifications.dispatcher.deliver([delivered])
    with client_for(notifying) as client:
        conflict = client.post(f"/api/v1/notifications/{delivered}/requeue")
        assert conflict.status_code == 409
        assert conflict.json()["message"] == "Notification already delivered"
        assert client.post(f"/api/v1/notifications/{pending}/requeue").status_code == 409
        assert client.post("/api/v1/notifications/notif-nope/requeue").status_code == 404
        assert client.get(f"/api/v1/notifications/{delivered}/requeue").status_code == 405
    assert row(notifying, delivered).status == "sent"


def test_bulk_requeue_of_the_dead_letter_queue_is_admin_only(
    notifying: AppContext, clock: FrozenClock, http_sink: HttpSink
) -> None:
    dead = make_dead(notifying, clock, http_sink, 3)
    [delivered] = enqueue(notifying)
    notifying.notifications.dispatcher.deliver([delivered])
    with client_for(notifying, "operator") as client:
        assert client.post("/api/v1/notifications/bulk-requeue", json={}).status_code == 403
    with client_for(notifying) as client:
        body = client.post("/api/v1/notifications/bulk-requeue", json={}).json()
        assert body == {"requeued": 3, "ids": sorted(dead)}
        assert client.post("/api/v1/notifications/bulk-requeue", json={"status": "sent"}).status_code == 400
    notifying.notifications.dispatcher.close()
    assert {row(notifying, i).status for i in dead} == {"sent"}
    assert audit_actions(notifying, "notifications_bulk_requeued") == 1


def test_admin_test_send_stores_no_row(notifying: AppContext, http_sink: HttpSink) -> None:
    with client_for(notifying) as client:
        sent = client.post("/api/v1/admin/notifications/test", json={"channel": "Webhook"})
        assert sent.status_code == 200
        assert sent.json()["status"] == "sent"
        assert http_sink.requests[0].json["body"].startswith("[TEST] ")
        assert "[threshold:" not in http_sink.requests[0].json["body"]
        http_sink.respond(500, "nope")
        failed = client.post("/api/v1/admin/notifications/test", json={"channel": "Webhook"}).json()
        assert failed["status"] == "failed"
        assert "500" in failed["error"]
        unconfigured = client.post("/api/v1/admin/notifications/test", json={"channel": "PagerDuty"}).json()
        assert unconfigured["status"] == "not_configured"
        assert "CERTCTL_PAGERDUTY_ROUTING_KEY" in unconfigured["error"]
        assert client.post("/api/v1/admin/notifications/test", json={"channel": "Pager"}).status_code == 400
        missing = client.post(
            "/api/v1/admin/notifications/test", json={"channel": "Webhook", "certificate_id": "mc-nope"}
        )
        assert missing.status_code == 404
    with client_for(notifying, "operator") as client:
        assert client.post("/api/v1/admin/notifications/test", json={"channel": "Webhook"}).status_code == 403
    with notifying.db.begin() as session:
        assert session.scalar(select(func.count()).select_from(NotificationEvent)) == 0
    assert audit_actions(notifying, "notification_test_sent") == 3


def test_the_dead_letter_queue_and_delivery_counters_are_visible(
    notifying: AppContext, clock: FrozenClock, http_sink: HttpSink
) -> None:
    make_dead(notifying, clock, http_sink, 2)
    [sent] = enqueue(notifying)
    notifying.notifications.dispatcher.deliver([sent])
    with client_for(notifying, "viewer") as client:
        assert client.get("/api/v1/stats/summary").json()["notifications_dead"] == 2
        assert client.get("/api/v1/metrics").json()["counter"]["notifications_dead_total"] == 2
        text = client.get("/metrics").text
    lines = set(text.splitlines())
    assert "certctl_notification_dead_total 2.0" in lines
    assert 'certctl_notifications_dead_total{channel="Webhook"} 2.0' in lines
    assert 'certctl_notifications_failed_total{channel="Webhook"} 8.0' in lines
    assert 'certctl_notifications_sent_total{channel="Webhook"} 1.0' in lines
    assert 'certctl_notification_delivery_attempts_total{channel="Webhook",outcome="failure"} 10.0' in lines
    assert 'certctl_notification_delivery_seconds_count{channel="Webhook"} 11.0' in lines
    assert "certctl_expiry_alerts_total" not in text  # only once an expiry alert has been dispatched
    # The dead-letter gauge sits right after the job counters and before the uptime, as the original.
    order = [line.split(" ")[0] for line in text.splitlines() if not line.startswith("#")]
    assert order.index("certctl_job_failed_total") < order.index("certctl_notification_dead_total")
    assert order.index("certctl_notification_dead_total") < order.index("certctl_uptime_seconds")
