from datetime import timedelta

from sqlalchemy import select

from app.mail import send_email
from app.models import Activity, User
from quest import script


@script(
    friendly_name="Send daily digest",
    description="Compile and send daily activity digest to subscribed users.",
    quest={"cron": "0 8 * * *", "timezone": "America/New_York"},
)
def send_daily_digest(inputs, ctx):
    since = ctx.now - timedelta(hours=24)
    with ctx.db.begin() as db:
        subscribers = db.execute(
            select(User.id, User.email, User.full_name)
            .where(User.digest_enabled.is_(True))
            .order_by(User.id)
        ).all()
        rows = db.execute(
            select(Activity.user_id, Activity.kind, Activity.description, Activity.created_at)
            .join(User, User.id == Activity.user_id)
            .where(User.digest_enabled.is_(True), Activity.created_at > since)
            .order_by(Activity.user_id, Activity.created_at)
        ).all()
    activities: dict[int, list[dict]] = {}
    for row in rows:
        activities.setdefault(row.user_id, []).append(
            {
                "kind": row.kind,
                "description": row.description,
                "created_at": f"{row.created_at:%Y-%m-%d %H:%M} UTC",
            }
        )

    sent, errors = 0, []
    for user in ctx.progress.iter(subscribers, message="subscribers"):
        items = activities.get(user.id)
        if not items:
            continue
        try:
            send_email(
                ctx.settings,
                user.email,
                f"Your daily digest — {len(items)} updates",
                "email-daily-digest",
                {"user": {"full_name": user.full_name, "email": user.email}, "activities": items},
                now=ctx.now,
            )
        except Exception as exc:
            errors.append(f"{user.email}: {exc}")
            ctx.log.warning("digest to %s failed: %s", user.email, exc)
        else:
            sent += 1

    ctx.log.info("Sent digest to %d of %d subscribers", sent, len(subscribers))
    if errors:
        raise RuntimeError(
            f"{len(errors)} of {sent + len(errors)} digests could not be sent; first: {errors[0]}"
        )
    return {"subscribers": len(subscribers), "sent": sent}
