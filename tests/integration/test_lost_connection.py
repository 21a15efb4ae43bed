"""A database connection that dies inside the transaction recording a run's end.

PostgreSQL ends a backend (``pg_terminate_backend``, a failover, an idle timeout) while a serve's
worker claims its next run in the transaction that records the end of the last one: the claim is
void, but the end itself must still be recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from quest import RunStatus, script
from quest.enums import Trigger
from quest.runner import RunRequest
from quest.testing import temporary_quest
from tests.conftest import postgres_schema

pytestmark = pytest.mark.postgres


@script(quest={"without_overlapping": False})
def quick(inputs: Any, ctx: Any) -> str:
    return "ok"


class DyingClaim:
    """A follow-up whose claim finds its connection ended by the server."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.rows: list[Any] = []
        self.discarded = False

    def claim(self) -> None:
        db = self.app.store.db
        connection = db.current().connection_for(db.writer)
        backend = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with self.app.store.engine.connect() as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({int(backend)})")
        connection.exec_driver_sql("SELECT 1")  # as the claim's query would: the backend is gone

    def discard(self) -> None:
        self.discarded = True


def test_a_connection_lost_in_the_follow_up_claim_does_not_lose_the_run_s_end(
    tmp_path: Path, postgres_url: str
) -> None:
    with (
        postgres_schema(postgres_url) as url,
        temporary_quest(tmp_path, scripts=[quick], database_url=url) as app,
    ):
        follow = DyingClaim(app)
        request = RunRequest(trigger=Trigger.enqueued, follow=follow)
        outcome = app.runner.run("quick", {}, request)
        assert outcome.status is RunStatus.succeeded
        assert follow.discarded
        [row] = app.store.history("quick", limit=None)
        assert row["status"] is RunStatus.succeeded
        assert row["result"] == "ok"
