import csv
import io
from datetime import datetime, time
from decimal import Decimal

from sqlalchemy import select

from app.mail import send_email, validate_address
from app.models import Order
from quest import Input, script

HEADER = ["Order ID", "Customer", "Amount", "Status", "Date"]


@script(
    friendly_name="Export monthly report",
    description="Generate and email monthly report as CSV.",
    quest={"cron": "0 6 1 * *"},
    inputs={
        "recipient_email": Input(
            str,
            validator=validate_address,
            default="admin@example.com",
            description="Send the report to this address.",
        ),
    },
)
def export_monthly_report(inputs, ctx):
    zone = ctx.timezone
    local_now = ctx.now.astimezone(zone)
    this_month = local_now.date().replace(day=1)
    last_month = (
        this_month.replace(year=this_month.year - 1, month=12)
        if this_month.month == 1
        else this_month.replace(month=this_month.month - 1)
    )
    start = datetime.combine(last_month, time(), zone)
    end = datetime.combine(this_month, time(), zone)

    ctx.progress(0, 3, "reading orders")
    with ctx.db.begin() as db:
        orders = (
            db.execute(
                select(Order)
                .where(Order.created_at >= start, Order.created_at < end)
                .order_by(Order.created_at, Order.id)
            )
            .scalars()
            .all()
        )
        rows = [
            [
                order.id,
                order.customer.full_name,
                f"{order.amount:.2f}",
                order.status.value,
                order.created_at.isoformat(),
            ]
            for order in orders
        ]
        total = sum((order.amount for order in orders), Decimal("0"))

    ctx.progress(1, 3, f"writing {len(rows)} orders as CSV")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows)

    ctx.progress(2, 3, "sending the report")
    month_name = f"{start:%B %Y}"
    filename = f"report-{month_name.lower().replace(' ', '-')}.csv"
    send_email(
        ctx.settings,
        inputs.recipient_email,
        f"Monthly Report — {month_name}",
        "email-monthly-report",
        {"month_name": month_name, "order_count": len(rows), "total_revenue": f"{total:.2f}"},
        attachments=[(filename, buffer.getvalue(), "text/csv")],
        now=ctx.now,
    )
    ctx.progress(3, 3, "sent")
    ctx.log.info("Monthly report sent: %d orders for %s", len(rows), month_name)
    return {"month": month_name, "orders": len(rows), "total": f"{total:.2f}", "file": filename}
