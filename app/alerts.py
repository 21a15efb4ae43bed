"""Operational alerts: a Slack-style JSON post to ``settings.alert_webhook_url``, or a log line.

::

    send_alert(settings, "#ops-alerts", "Payment API is unreachable")

Without a webhook URL the alert is only logged (logger ``app.alerts``, level WARNING).
"""

from __future__ import annotations

import logging

from quest.config import Settings

from . import http

log = logging.getLogger("app.alerts")

DEFAULT_CHANNEL = "#ops-alerts"
ALERT_TIMEOUT = 5.0


def send_alert(settings: Settings, channel: str, message: str) -> bool:
    """Send *message* to *channel*; True when posted to the webhook, False when only logged.

    A webhook that fails raises :class:`httpx.HTTPError` after the alert has been logged, so the
    text is never lost.
    """
    log.warning("[%s] %s", channel, message, extra={"action": "alert", "channel": channel})
    url = settings.alert_webhook_url
    if not url:
        return False
    http.post(url, {"channel": channel, "text": message}, timeout=ALERT_TIMEOUT)
    return True


__all__ = ["DEFAULT_CHANNEL", "send_alert"]
