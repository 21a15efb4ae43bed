"""The aware UTC datetime column type: SQLite's bind processing in one function, the same text
as SQLAlchemy's own processing gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.types import TypeDecorator

from quest.models import UTCDateTime, sqlite_text

SQLITE = sqlite.dialect()
ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))]
)


def processors(dialect: object) -> tuple[object, object]:
    kind = UTCDateTime().dialect_impl(dialect)  # type: ignore[arg-type]
    general = TypeDecorator.bind_processor(kind, dialect)  # type: ignore[arg-type]
    return kind.bind_processor(dialect), general  # type: ignore[arg-type]


@given(
    moment=st.datetimes(
        min_value=datetime(1900, 1, 2), max_value=datetime(9999, 12, 30), timezones=ZONES
    )
)
def test_sqlite_text_is_sqlalchemy_s_own(moment: datetime) -> None:
    fast, general = processors(SQLITE)
    assert fast is sqlite_text, "one function on SQLite"
    assert fast(moment) == general(moment)  # type: ignore[operator]


def test_sqlite_none_and_naive_datetimes() -> None:
    fast, _ = processors(SQLITE)
    assert fast(None) is None  # type: ignore[operator]
    assert fast(datetime(2026, 3, 2, 9, 0, 0, 5, tzinfo=UTC)) == "2026-03-02 09:00:00.000005"  # type: ignore[operator]
    with pytest.raises(ValueError, match="naive datetime"):
        fast(datetime(2026, 3, 2, 9, 0))  # type: ignore[operator]


def test_postgresql_keeps_the_aware_value_in_utc() -> None:
    fast, _ = processors(postgresql.psycopg.dialect())
    moment = datetime(2026, 3, 2, 9, 0, tzinfo=timezone(timedelta(hours=2)))
    processed = fast(moment)  # type: ignore[operator]
    assert processed == moment
    assert processed.tzinfo is UTC
