from datetime import timedelta

from sqlalchemy import select, update

from app import http
from app.models import WebhookDelivery, WebhookStatus
from quest import Input, script

TIMEOUT_SECONDS = 10.0


@script(
    friendly_name="Retry webhooks",
    description="Retry failed webhook deliveries with exponential backoff.",
    quest={"interval": "1 minute", "without_overlapping": True},
    inputs={
        "max_attempts": Input(
            int, default=5, min=1, max=100, description="Give up after this many attempts."
        ),
        "batch_size": Input(
            int, default=10, min=1, max=1000, description="Look at this many deliveries per run."
        ),
    },
)
def retry_webhooks(inputs, ctx):
    with ctx.db.begin() as db:
        pending = db.execute(
            select(
                WebhookDelivery.id,
                WebhookDelivery.url,
                WebhookDelivery.payload,
                WebhookDelivery.headers,
                WebhookDelivery.attempts,
                WebhookDelivery.last_attempt_at,
            )
            .where(
                WebhookDelivery.status == WebhookStatus.failed,
                WebhookDelivery.attempts < inputs.max_attempts,
            )
            .order_by(WebhookDelivery.last_attempt_at.asc().nulls_first(), WebhookDelivery.id)
            .limit(inputs.batch_size)
        ).all()

    delivered = failed = gave_up = waiting = 0
    for webhook in ctx.progress.iter(pending, message="webhooks"):
        # Exponential backoff: 1, 2, 4, 8, 16 minutes after the last attempt.
        if webhook.last_attempt_at is not None:
            next_retry_at = webhook.last_attempt_at + timedelta(minutes=2**webhook.attempts)
            if ctx.now < next_retry_at:
                waiting += 1
                continue
        try:
            response = http.post(
                webhook.url,
                webhook.payload,
                headers=webhook.headers or {},
                timeout=TIMEOUT_SECONDS,
            )
        except Exception as exc:
            attempts = webhook.attempts + 1
            final = attempts >= inputs.max_attempts
            code = getattr(getattr(exc, "response", None), "status_code", None)
            changes = {
                "attempts": attempts,
                "last_attempt_at": ctx.now,
                "last_error": http.describe(exc)[:2000],
                "response_code": code,
                "status": WebhookStatus.permanently_failed if final else WebhookStatus.failed,
            }
            gave_up += final
            failed += not final
            ctx.log.warning("webhook %d to %s failed: %s", webhook.id, webhook.url, exc)
        else:
            changes = {
                "status": WebhookStatus.delivered,
                "attempts": webhook.attempts + 1,
                "last_attempt_at": ctx.now,
                "response_code": response.status_code,
                "delivered_at": ctx.now,
                "last_error": None,
            }
            delivered += 1
        with ctx.db.begin() as db:
            db.execute(
                update(WebhookDelivery).where(WebhookDelivery.id == webhook.id).values(**changes)
            )

    ctx.log.info(
        "Webhooks: %d delivered, %d failed, %d permanently failed, %d waiting",
        delivered,
        failed,
        gave_up,
        waiting,
    )
    return {
        "delivered": delivered,
        "failed": failed,
        "permanently_failed": gave_up,
        "waiting": waiting,
    }
