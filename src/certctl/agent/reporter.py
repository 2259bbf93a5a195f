"""Job status and verification reports through the outbox journal (state.py): journaled, then sent.

A report that cannot be delivered now (no answer, a 5xx, a 401/403 while a credential is being fixed)
stays in the outbox and is sent again, in order, before the next poll. 200 delivers it; 404 and 409
mean the job is gone or no longer Running, so there is nothing left to deliver; other 4xx can never
succeed and are dropped with an error line.
"""

from __future__ import annotations

import logging

from certctl.agent.client import AgentClient, status_report, verify_report_path
from certctl.agent.errors import BadResponse, ServerRejected, ServerUnreachable, StaleJob
from certctl.agent.protocol import ReportedStatus
from certctl.agent.state import Journal, OutboxEntry
from certctl.agent.verify import VerifyReport

log = logging.getLogger("certctl.agent")

_KEEP_ON = frozenset({401, 403, 408, 429})  # may succeed later, unchanged


class Reporter:
    def __init__(self, client: AgentClient, journal: Journal) -> None:
        self._client, self._journal = client, journal

    def status(
        self, job_id: str, status: ReportedStatus, error: str = "", result: dict[str, object] | None = None
    ) -> None:
        """Journal a final job status, drop the claimed-work record, and try to deliver."""
        path, body = status_report(self._client.agent_id, job_id, status, error, result)
        self._journal.add_report(job_id, "status", path, body)
        self._journal.drop_work(job_id)
        self.flush()

    def verification(self, job_id: str, report: VerifyReport) -> None:
        self._journal.add_report(job_id, "verify", verify_report_path(job_id), report.as_json())
        self.flush()

    def pending(self) -> int:
        return len(self._journal.pending_reports())

    def flush(self) -> bool:
        """Send what is journaled, oldest first; True when the outbox is empty afterwards.

        Stops at the first report that may succeed later, so reports of one job stay in order.
        Raises AgentRetired.
        """
        return all(self._deliver(entry) for entry in self._journal.pending_reports())

    def _deliver(self, entry: OutboxEntry) -> bool:
        fields = {"job_id": entry.job_id, "kind": entry.kind}
        try:
            self._client.send_report(entry.url_path, entry.body)
        except StaleJob:
            log.warning("agent.report.dropped", extra={**fields, "reason": "job is no longer Running on the server"})
        except ServerRejected as exc:
            if not exc.permanent or exc.status_code in _KEEP_ON:
                log.warning("agent.report.deferred", extra={**fields, "error": str(exc)})
                return False
            level = logging.WARNING if exc.status_code == 404 else logging.ERROR
            log.log(level, "agent.report.dropped", extra={**fields, "error": str(exc)})
        except (ServerUnreachable, BadResponse) as exc:
            log.warning("agent.report.deferred", extra={**fields, "error": str(exc)})
            return False
        else:
            log.debug("agent.report.sent", extra=fields)
        self._journal.remove(entry.path)
        return True
