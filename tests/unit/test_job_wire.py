"""A run's context identity crossing to a worker: compact on the wire, the same on arrival."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum

from hypothesis import given, settings
from hypothesis import strategies as st

from quest.enums import Trigger
from quest.worker import Job, portable, restored

zones = st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=9))])
instants = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=zones
)


@settings(max_examples=200, deadline=None)
@given(
    now=instants,
    scheduled_for=st.none() | instants,
    trigger=st.sampled_from(list(Trigger)),
    attempt=st.integers(1, 10),
    key=st.none() | st.text(max_size=20),
)
def test_the_identity_arrives_as_it_left(
    now: datetime, scheduled_for: datetime | None, trigger: Trigger, attempt: int, key: str | None
) -> None:
    identity = {
        "run_id": "a" * 32,
        "now": now,
        "trigger": trigger,
        "attempt": attempt,
        "max_attempts": attempt,
        "scheduled_for": scheduled_for,
        "key": key,
        "root_id": "b" * 32,
    }
    job = Job("a" * 32, "noop", {}, portable(identity), ())
    arrived = restored(pickle.loads(pickle.dumps(job, pickle.HIGHEST_PROTOCOL)).context)
    assert arrived == identity
    assert arrived["trigger"] is trigger
    for key_ in ("now", "scheduled_for"):
        if identity[key_] is not None:
            assert arrived[key_].utcoffset() == identity[key_].utcoffset()


def test_on_the_wire_utc_instants_are_plain_and_the_trigger_is_its_value() -> None:
    now = datetime(2026, 12, 5, 1, 2, 3, 456789, tzinfo=UTC)
    wire = portable({"now": now, "scheduled_for": now, "trigger": Trigger.scheduled})
    assert wire == {
        "now": now.replace(tzinfo=None),
        "scheduled_for": now.replace(tzinfo=None),
        "trigger": "scheduled",
    }
    assert not any(isinstance(value, Enum) for value in wire.values())
