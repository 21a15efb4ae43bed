from datetime import timedelta

from sqlalchemy import or_, select

from app.alerts import DEFAULT_CHANNEL, send_alert
from app.models import DataFeed
from quest import Input, script


@script(
    friendly_name="Monitor stale data",
    description="Alert when data synchronization falls behind.",
    quest={"interval": "10 minutes"},
    inputs={
        "threshold_minutes": Input(
            int,
            default=30,
            min=1,
            description="A feed not synced for this many minutes is stale.",
        ),
    },
)
def monitor_stale_data(inputs, ctx):
    cutoff = ctx.now - timedelta(minutes=inputs.threshold_minutes)
    with ctx.db.begin() as db:
        stale = (
            db.execute(
                select(DataFeed.name)
                .where(
                    DataFeed.enabled.is_(True),
                    or_(DataFeed.last_sync_at < cutoff, DataFeed.last_sync_at.is_(None)),
                )
                .order_by(DataFeed.name)
            )
            .scalars()
            .all()
        )

    if stale:
        names = ", ".join(stale)
        ctx.log.warning("[Monitor] Stale data feeds: %s", names)
        send_alert(
            ctx.settings,
            DEFAULT_CHANNEL,
            f"Data feeds behind schedule: {names}\n"
            f"Last sync > {inputs.threshold_minutes} minutes ago.",
        )
    return {"stale": len(stale), "feeds": list(stale)}
