from datetime import datetime, time, timedelta

from sqlalchemy import Date, distinct, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite

from app.models import DailyStat, PageView, User
from quest import script
from quest.models import UTCDateTime

_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


@script(
    friendly_name="Aggregate analytics",
    description="Roll up hourly analytics into daily summaries.",
    quest={"cron": "5 0 * * *"},
)
def aggregate_analytics(inputs, ctx):
    zone = ctx.timezone
    day = ctx.now.astimezone(zone).date() - timedelta(days=1)
    start = datetime.combine(day, time(), zone)
    end = datetime.combine(day + timedelta(days=1), time(), zone)

    signups = (
        select(func.count(User.id))
        .where(User.created_at >= start, User.created_at < end)
        .scalar_subquery()
    )
    rollup = select(
        literal(day, Date).label("date"),
        func.count(PageView.id).label("page_views"),
        func.count(distinct(PageView.visitor_id)).label("unique_visitors"),
        signups.label("signups"),
        literal(ctx.now, UTCDateTime).label("computed_at"),
    ).where(PageView.created_at >= start, PageView.created_at < end)

    with ctx.db.begin() as db:
        dialect = db.get_bind().dialect.name
        insert = _INSERTS.get(dialect)
        if insert is None:
            raise RuntimeError(f"aggregate-analytics supports SQLite and PostgreSQL, not {dialect}")
        statement = insert(DailyStat).from_select(
            ["date", "page_views", "unique_visitors", "signups", "computed_at"], rollup
        )
        statement = statement.on_conflict_do_update(
            index_elements=[DailyStat.date],
            set_={
                "page_views": statement.excluded.page_views,
                "unique_visitors": statement.excluded.unique_visitors,
                "signups": statement.excluded.signups,
                "computed_at": statement.excluded.computed_at,
            },
        )
        db.execute(statement)
        stat = db.execute(select(DailyStat).where(DailyStat.date == day)).scalar_one()
        result = {
            "date": day.isoformat(),
            "page_views": stat.page_views,
            "unique_visitors": stat.unique_visitors,
            "signups": stat.signups,
        }

    ctx.log.info("Aggregated analytics for %s", day.isoformat())
    return result
