from datetime import timedelta

from sqlalchemy import delete

from app.models import Session
from quest import Input, script


@script(
    friendly_name="Cleanup sessions",
    description="Remove expired sessions and their associated data.",
    quest={"interval": "1 hour", "without_overlapping": True},
    inputs={
        "days_old": Input(
            int, default=30, min=0, description="Remove sessions inactive for this many days."
        ),
    },
)
def cleanup_sessions(inputs, ctx):
    cutoff = ctx.now - timedelta(days=inputs.days_old)
    with ctx.db.begin() as db:
        deleted = db.execute(delete(Session).where(Session.last_active < cutoff)).rowcount
    ctx.log.info("Cleaned up %d expired sessions", deleted)
    return {"deleted": deleted}
