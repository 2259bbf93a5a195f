"""The six delivery channels (Email, Webhook, Slack, Teams, PagerDuty, OpsGenie) behind one contract."""

from certctl.notifications.channels.sanitize import sanitize_text

__all__ = ["sanitize_text"]
