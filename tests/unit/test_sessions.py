"""``ctx.db``: a sessionmaker made on first use, which copies without making it."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import create_engine, text

from quest.store import Sessions


def test_sessions_behave_as_the_sessionmaker() -> None:
    sessions = Sessions(create_engine("sqlite://"))
    with sessions() as session:
        assert session.execute(text("SELECT 1")).scalar() == 1
    with sessions.begin() as session:
        assert session.execute(text("SELECT 2")).scalar() == 2
    assert sessions.kw["expire_on_commit"] is False
    assert sessions.maker() is sessions.maker()


def test_a_copy_works_and_nothing_is_made_until_used() -> None:
    code = (
        "import copy, sys\n"
        "from sqlalchemy import create_engine\n"
        "from quest.store import Sessions\n"
        "sessions = copy.copy(Sessions(create_engine('sqlite://')))\n"
        "print('sqlalchemy.orm' in sys.modules)\n"
        "with sessions() as session:\n"
        "    pass\n"
        "print('sqlalchemy.orm' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"], done.stderr


def test_an_unknown_attribute_is_the_sessionmaker_s_error() -> None:
    sessions = Sessions(create_engine("sqlite://"))
    try:
        sessions.no_such_attribute  # noqa: B018
    except AttributeError as exc:
        assert "no_such_attribute" in str(exc)
    else:
        raise AssertionError("an unknown attribute was found")
