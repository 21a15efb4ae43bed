import json
from datetime import timedelta

from sqlalchemy import func, select

from app.models import CacheEntry, Order, OrderStatus, User
from quest import script

CACHE_KEY = "dashboard-stats"
TTL = timedelta(minutes=20)


@script(
    friendly_name="Warm dashboard cache",
    description="Pre-compute expensive dashboard queries.",
    quest={"interval": "15 minutes"},
)
def warm_dashboard_cache(inputs, ctx):
    with ctx.db.begin() as db:
        revenue = db.scalar(
            select(func.coalesce(func.sum(Order.amount), 0)).where(
                Order.status == OrderStatus.completed
            )
        )
        stats = {
            "total_users": db.scalar(select(func.count(User.id))),
            "active_users": db.scalar(
                select(func.count(User.id)).where(
                    User.last_active_at > ctx.now - timedelta(days=30)
                )
            ),
            "total_orders": db.scalar(select(func.count(Order.id))),
            "revenue": f"{revenue:.2f}",
            "recent_signups": db.scalar(
                select(func.count(User.id)).where(User.created_at > ctx.now - timedelta(days=7))
            ),
            "computed_at": ctx.now.isoformat(),
        }
        db.merge(
            CacheEntry(
                key=CACHE_KEY,
                value=json.dumps(stats),
                expires_at=ctx.now + TTL,
                updated_at=ctx.now,
            )
        )
    ctx.log.info("Dashboard cache warmed")
    return {"key": CACHE_KEY, "expires_at": (ctx.now + TTL).isoformat(), **stats}
