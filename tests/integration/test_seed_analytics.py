"""aggregate-analytics (a native upsert on SQLite and PostgreSQL) and warm-dashboard-cache."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import Decimal

from conftest_servers import NOW, pattern_quest
from sqlalchemy import select

from app.models import CacheEntry, Customer, DailyStat, Order, OrderStatus, PageView, User

T0 = datetime.fromisoformat(NOW)
YESTERDAY = date(2026, 3, 14)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _views(quest, *views: tuple[str, str]) -> None:
    with quest.store.sessions.begin() as db:
        for visitor, at in views:
            db.add(PageView(visitor_id=visitor, path="/", created_at=_at(at)))


def _stats(quest) -> dict[date, tuple[int, int, int]]:
    with quest.store.sessions() as db:
        return {
            s.date: (s.page_views, s.unique_visitors, s.signups)
            for s in db.scalars(select(DailyStat))
        }


def test_aggregate_analytics_rolls_up_yesterday(tmp_path, database_url):
    with pattern_quest(tmp_path, database_url) as quest:
        _views(
            quest,
            ("v1", "2026-03-13T23:59:59+00:00"),
            ("v1", "2026-03-14T00:00:00+00:00"),
            ("v1", "2026-03-14T08:00:00+00:00"),
            ("v2", "2026-03-14T12:00:00+00:00"),
            ("v3", "2026-03-14T23:59:59+00:00"),
            ("v4", "2026-03-15T00:00:00+00:00"),
        )
        with quest.store.sessions.begin() as db:
            for n, at in enumerate(
                [
                    "2026-03-13T22:00:00+00:00",
                    "2026-03-14T10:00:00+00:00",
                    "2026-03-14T11:00:00+00:00",
                    "2026-03-15T01:00:00+00:00",
                ]
            ):
                db.add(User(email=f"u{n}@example.com", full_name=f"User {n}", created_at=_at(at)))

        outcome = quest.run("aggregate-analytics")
        assert outcome.ok, outcome.error
        assert outcome.result == {
            "date": "2026-03-14",
            "page_views": 4,
            "unique_visitors": 3,
            "signups": 2,
        }
        assert _stats(quest) == {YESTERDAY: (4, 3, 2)}

        # Late data arrives; a second run updates the same row instead of adding one.
        _views(quest, ("v9", "2026-03-14T18:00:00+00:00"))
        outcome = quest.run("aggregate-analytics")
        assert outcome.ok, outcome.error
        assert _stats(quest) == {YESTERDAY: (5, 4, 2)}


def test_aggregate_analytics_writes_a_zero_row_for_an_empty_day(tmp_path, database_url):
    with pattern_quest(tmp_path, database_url, now="2026-03-01T00:05:00+00:00") as quest:
        outcome = quest.run("aggregate-analytics")
        assert outcome.ok, outcome.error
        assert _stats(quest) == {date(2026, 2, 28): (0, 0, 0)}


def test_aggregate_analytics_uses_the_configured_timezone(tmp_path, database_url):
    # 00:05 in New York on the 15th is 04:05 UTC; "yesterday" is the 14th, New York time.
    with pattern_quest(
        tmp_path, database_url, now="2026-03-15T04:05:00+00:00", timezone="America/New_York"
    ) as quest:
        _views(
            quest,
            ("early", "2026-03-14T03:00:00+00:00"),  # 23:00 on the 13th in New York
            ("late", "2026-03-15T03:30:00+00:00"),  # 23:30 on the 14th in New York
        )
        outcome = quest.run("aggregate-analytics")
        assert outcome.ok, outcome.error
        assert _stats(quest) == {YESTERDAY: (1, 1, 0)}


def test_warm_dashboard_cache_stores_fresh_stats(tmp_path, database_url):
    with pattern_quest(tmp_path, database_url) as quest:
        with quest.store.sessions.begin() as db:
            users = [
                User(
                    email="new@example.com",
                    full_name="New",
                    created_at=T0 - timedelta(days=2),
                    last_active_at=T0 - timedelta(hours=1),
                ),
                User(
                    email="old@example.com",
                    full_name="Old",
                    created_at=T0 - timedelta(days=90),
                    last_active_at=T0 - timedelta(days=10),
                ),
                User(
                    email="gone@example.com",
                    full_name="Gone",
                    created_at=T0 - timedelta(days=400),
                    last_active_at=T0 - timedelta(days=60),
                ),
            ]
            db.add_all(users)
            customer = Customer(full_name="Ada", email="ada@example.com")
            db.add(customer)
            db.flush()
            for amount, status in [
                ("10.50", OrderStatus.completed),
                ("4.50", OrderStatus.completed),
                ("99.00", OrderStatus.refunded),
            ]:
                db.add(
                    Order(
                        customer_id=customer.id,
                        amount=Decimal(amount),
                        status=status,
                        created_at=T0 - timedelta(days=1),
                    )
                )

        outcome = quest.run("warm-dashboard-cache")
        assert outcome.ok, outcome.error

        with quest.store.sessions() as db:
            entry = db.get(CacheEntry, "dashboard-stats")
        assert entry.expires_at == T0 + timedelta(minutes=20)
        assert json.loads(entry.value) == {
            "total_users": 3,
            "active_users": 2,
            "total_orders": 3,
            "revenue": "15.00",
            "recent_signups": 1,
            "computed_at": T0.isoformat(),
        }

        quest.clock.advance(timedelta(minutes=15))
        assert quest.run("warm-dashboard-cache").ok
        with quest.store.sessions() as db:
            entries = db.scalars(select(CacheEntry)).all()
        assert [e.key for e in entries] == ["dashboard-stats"]
        assert entries[0].expires_at == T0 + timedelta(minutes=35)
