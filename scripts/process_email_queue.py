from sqlalchemy import select, update

from app.mail import send_email
from app.models import EmailQueue, EmailStatus
from quest import Input, script


@script(
    friendly_name="Process email queue",
    description="Send queued emails in batches with rate limiting.",
    quest={"interval": "30 seconds", "without_overlapping": True},
    inputs={
        "batch_size": Input(
            int, default=20, min=1, max=1000, description="Send at most this many emails per run."
        ),
    },
)
def process_email_queue(inputs, ctx):
    with ctx.db.begin() as db:
        emails = db.execute(
            select(
                EmailQueue.id,
                EmailQueue.to,
                EmailQueue.subject,
                EmailQueue.template,
                EmailQueue.data,
                EmailQueue.attempts,
            )
            .where(EmailQueue.status == EmailStatus.pending)
            .order_by(EmailQueue.priority.desc(), EmailQueue.created_at.asc(), EmailQueue.id)
            .limit(inputs.batch_size)
        ).all()

    sent = failed = 0
    for email in ctx.progress.iter(emails, message="emails sent or failed"):
        try:
            send_email(
                ctx.settings,
                email.to,
                email.subject,
                email.template or "email-generic",
                email.data or {},
                now=ctx.now,
            )
        except Exception as exc:
            changes = {
                "status": EmailStatus.failed,
                "last_error": f"{type(exc).__name__}: {exc}"[:2000],
            }
            failed += 1
            ctx.log.warning("email %d to %r failed: %s", email.id, email.to, exc)
        else:
            changes = {"status": EmailStatus.sent, "sent_at": ctx.now, "last_error": None}
            sent += 1
        with ctx.db.begin() as db:
            db.execute(
                update(EmailQueue)
                .where(EmailQueue.id == email.id)
                .values(attempts=email.attempts + 1, **changes)
            )

    ctx.log.info("Email queue: %d sent, %d failed", sent, failed)
    return {"sent": sent, "failed": failed}
