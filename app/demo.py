"""Sample data so that every bundled script has work to do (``quest demo seed``).

Everything is placed relative to *now*: sessions and archived records of many ages, queued emails
(two with bad addresses), digest subscribers with recent activity, orders over the last three
months, yesterday's page views, failed webhook deliveries, fresh and stale data feeds, and upload
files of various ages. Webhook URLs point at ``http://127.0.0.1:9/`` (the discard port), which
refuses connections at once: the demo never calls a host on the internet.

Seeding twice adds a second helping of the time-based rows; rows with unique keys (users,
customers, data feeds, upload files) are reused.
"""

from __future__ import annotations

import os
import random
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from .models import (
    Activity,
    ArchivedRecord,
    CacheEntry,
    Customer,
    DailyStat,
    DataFeed,
    EmailQueue,
    EmailStatus,
    Order,
    OrderStatus,
    PageView,
    Session,
    User,
    WebhookDelivery,
    WebhookStatus,
)

UNREACHABLE = "http://127.0.0.1:9"
UPLOADS = Path(".tmp") / "uploads"

SAMPLE_TABLES = (
    Activity,
    Session,
    EmailQueue,
    ArchivedRecord,
    Order,
    Customer,
    PageView,
    DailyStat,
    WebhookDelivery,
    CacheEntry,
    DataFeed,
    User,
)
"""Children before parents, the order to empty them in."""

_USERS = [
    ("Ada Lovelace", True),
    ("Grace Hopper", True),
    ("Alan Turing", False),
    ("Katherine Johnson", True),
    ("Edsger Dijkstra", False),
    ("Barbara Liskov", True),
    ("Donald Knuth", False),
    ("Margaret Hamilton", False),
]
_CUSTOMERS = ["Acme Corp", "Globex", "Initech", "Umbrella Ltd", "Stark Industries"]
_FEEDS = [
    ("exchange-rates", True, timedelta(minutes=5)),
    ("inventory-sync", True, timedelta(minutes=12)),
    ("crm-contacts", True, timedelta(hours=3)),
    ("legacy-erp", False, timedelta(days=40)),
]
_UPLOADS = [
    ("avatar-upload.png", timedelta(hours=1)),
    ("import-draft.csv", timedelta(hours=12)),
    ("report-preview.pdf", timedelta(hours=30)),
    ("bulk-import.xlsx", timedelta(days=3)),
    ("abandoned-upload.bin", timedelta(days=10)),
]
_ACTIVITIES = [
    ("comment", "commented on the Q3 roadmap"),
    ("mention", "was mentioned in the release notes"),
    ("follow", "has a new follower"),
    ("invoice", "received invoice #{n}"),
]


def reset(sessions: sessionmaker[DbSession]) -> None:
    """Empty every sample table (the JobLog is kept)."""
    with sessions.begin() as db:
        for model in SAMPLE_TABLES:
            db.execute(delete(model))


def seed(
    sessions: sessionmaker[DbSession],
    *,
    now: datetime,
    root: Path,
    reset_first: bool = False,
) -> dict[str, int]:
    """Fill the sample tables relative to *now*; upload files go under *root*. Returns counts."""
    if now.tzinfo is None:
        raise ValueError("seed needs an aware datetime for now")
    if reset_first:
        reset(sessions)
    rng = random.Random(f"quest-demo-{now:%Y%m%d}")
    counts: dict[str, int] = {}
    with sessions.begin() as db:
        users, counts["users"] = _users(db, now)
        counts["activities"] = _activities(db, rng, users, now)
        counts["sessions"] = _sessions(db, rng, users, now)
        counts["archived_records"] = _archived(db, now)
        counts["queued_emails"] = _emails(db, now)
        customers, counts["customers"] = _customers(db)
        counts["orders"] = _orders(db, rng, customers, now)
        counts["page_views"] = _page_views(db, rng, now)
        counts["webhook_deliveries"] = _webhooks(db, now)
        counts["data_feeds"] = _feeds(db, now)
    counts["temp_files"] = _temp_files(root / UPLOADS, now)
    return counts


def _add(db: DbSession, rows: list[Any]) -> int:
    db.add_all(rows)
    return len(rows)


def _users(db: DbSession, now: datetime) -> tuple[list[User], int]:
    yesterday = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    users, created = [], 0
    for n, (name, digest) in enumerate(_USERS):
        email = name.lower().replace(" ", ".") + "@example.com"
        user = db.scalar(select(User).where(User.email == email))
        if user is None:
            # Two users signed up yesterday (UTC), the others over the last months.
            created_at = (
                yesterday + timedelta(hours=9 + 5 * n)
                if n < 2
                else now - timedelta(days=3 + 11 * n)
            )
            user = User(
                email=email,
                full_name=name,
                digest_enabled=digest,
                created_at=created_at,
                last_active_at=now - timedelta(hours=2 + 30 * n),
            )
            db.add(user)
            created += 1
        users.append(user)
    db.flush()
    return users, created


def _activities(db: DbSession, rng: random.Random, users: list[User], now: datetime) -> int:
    rows = []
    for user in users:
        for n in range(rng.randint(2, 5)):
            kind, text = rng.choice(_ACTIVITIES)
            rows.append(
                Activity(
                    user_id=user.id,
                    kind=kind,
                    description=f"{user.full_name} {text.format(n=1000 + n)}",
                    created_at=now - timedelta(hours=rng.choice([1, 3, 8, 20, 30, 50])),
                )
            )
    return _add(db, rows)


def _sessions(db: DbSession, rng: random.Random, users: list[User], now: datetime) -> int:
    ages = [timedelta(minutes=5), timedelta(hours=3), timedelta(days=1), timedelta(days=6)]
    ages += [timedelta(days=d) for d in (15, 29, 31, 45, 60, 120)]
    rows = [
        Session(
            token=uuid.uuid4().hex,
            user_id=rng.choice(users).id,
            data='{"theme": "dark"}',
            created_at=now - age - timedelta(days=1),
            last_active=now - age,
        )
        for age in ages
    ]
    return _add(db, rows)


def _archived(db: DbSession, now: datetime) -> int:
    rows = [
        ArchivedRecord(
            record_type=kind,
            record_id=1000 + n,
            data={"title": f"{kind} {1000 + n}"},
            archived_at=now - timedelta(days=days),
        )
        for n, (kind, days) in enumerate(
            [
                ("invoice", 2),
                ("invoice", 30),
                ("comment", 89),
                ("comment", 91),
                ("project", 120),
                ("invoice", 200),
                ("project", 365),
            ]
        )
    ]
    return _add(db, rows)


def _emails(db: DbSession, now: datetime) -> int:
    queued = [
        ("ada.lovelace@example.com", "Your invoice is ready", 5),
        ("grace.hopper@example.com", "Password changed", 10),
        ("alan.turing@example.com", "Weekly summary", 0),
        ("katherine.johnson@example.com", "New comment on your post", 1),
        ("not-an-email-address", "Welcome aboard", 0),
        ("someone@", "Confirm your account", 3),
        ("barbara.liskov@example.com", "Trial ends soon", 2),
    ]
    rows = [
        EmailQueue(
            to=to,
            subject=subject,
            template="email-generic",
            data={"greeting": "Hello,", "body": f"{subject}. Open the app for details."},
            status=EmailStatus.pending,
            priority=priority,
            created_at=now - timedelta(minutes=10 * (n + 1)),
        )
        for n, (to, subject, priority) in enumerate(queued)
    ]
    rows.append(
        EmailQueue(
            to="ada.lovelace@example.com",
            subject="Already delivered",
            template="email-generic",
            data={"body": "Sent yesterday."},
            status=EmailStatus.sent,
            attempts=1,
            created_at=now - timedelta(days=1),
            sent_at=now - timedelta(days=1),
        )
    )
    return _add(db, rows)


def _customers(db: DbSession) -> tuple[list[Customer], int]:
    customers, created = [], 0
    for name in _CUSTOMERS:
        email = "billing@" + name.lower().replace(" ", "-") + ".example"
        customer = db.scalar(select(Customer).where(Customer.email == email))
        if customer is None:
            customer = Customer(full_name=name, email=email)
            db.add(customer)
            created += 1
        customers.append(customer)
    db.flush()
    return customers, created


def _orders(db: DbSession, rng: random.Random, customers: list[Customer], now: datetime) -> int:
    statuses = [OrderStatus.completed] * 6 + [OrderStatus.pending, OrderStatus.refunded]
    rows = [
        Order(
            customer_id=rng.choice(customers).id,
            amount=Decimal(rng.randint(500, 50000)) / 100,
            status=rng.choice(statuses),
            created_at=now - timedelta(days=rng.randint(0, 92), minutes=rng.randint(0, 1439)),
        )
        for _ in range(40)
    ]
    return _add(db, rows)


def _page_views(db: DbSession, rng: random.Random, now: datetime) -> int:
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    visitors = [f"visitor-{n:03d}" for n in range(15)]
    paths = ["/", "/pricing", "/docs", "/blog/launch", "/signup"]
    rows = [
        PageView(
            visitor_id=rng.choice(visitors),
            path=rng.choice(paths),
            created_at=midnight - timedelta(seconds=rng.randint(1, 2 * 86400)),
        )
        for _ in range(80)
    ]
    return _add(db, rows)


def _webhooks(db: DbSession, now: datetime) -> int:
    rows = [
        WebhookDelivery(
            url=f"{UNREACHABLE}/hooks/{event}",
            payload={"event": event, "id": 500 + attempts},
            headers={"X-Demo-Signature": "sha256=demo"},
            status=WebhookStatus.failed,
            attempts=attempts,
            last_attempt_at=now - timedelta(minutes=2**attempts + 1),
            last_error="connection failed",
            created_at=now - timedelta(hours=2),
        )
        for attempts, event in enumerate(
            ["order.created", "order.paid", "invoice.sent", "user.deleted", "refund.issued"]
        )
    ]
    return _add(db, rows)


def _feeds(db: DbSession, now: datetime) -> int:
    created = 0
    for name, enabled, age in _FEEDS:
        feed = db.scalar(select(DataFeed).where(DataFeed.name == name))
        if feed is None:
            feed = DataFeed(name=name)
            db.add(feed)
            created += 1
        feed.enabled = enabled
        feed.last_sync_at = now - age
    return created


def _temp_files(folder: Path, now: datetime) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    for name, age in _UPLOADS:
        path = folder / name
        path.write_bytes(b"demo upload\n")
        stamp = (now - age).timestamp()
        os.utime(path, (stamp, stamp))
    return len(_UPLOADS)


__all__ = ["SAMPLE_TABLES", "reset", "seed"]
