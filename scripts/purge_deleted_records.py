from datetime import timedelta

from sqlalchemy import delete

from app.models import ArchivedRecord
from quest import Input, script


@script(
    friendly_name="Purge deleted records",
    description="Permanently remove soft-deleted records after retention period.",
    quest={"cron": "0 2 * * SUN"},
    inputs={
        "retention_days": Input(
            int,
            default=90,
            min=1,
            max=36500,
            description="Keep archived records for this many days.",
        ),
    },
)
def purge_deleted_records(inputs, ctx):
    cutoff = ctx.now - timedelta(days=inputs.retention_days)
    with ctx.db.begin() as db:
        purged = db.execute(
            delete(ArchivedRecord).where(ArchivedRecord.archived_at < cutoff)
        ).rowcount
    ctx.log.info("Purged %d archived records older than %d days", purged, inputs.retention_days)
    return {"purged": purged}
