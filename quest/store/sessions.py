"""The application's ORM sessions on the store's engine, made on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from sqlalchemy.orm import Session, sessionmaker


class Sessions:
    """A ``sessionmaker`` bound to the store's writing engine (``expire_on_commit=False``),
    made the first time it is used: ``ctx.db()`` and ``ctx.db.begin()`` give sessions as the
    ``sessionmaker`` would, and every other attribute is the ``sessionmaker``'s. A process whose
    runs open no session never imports SQLAlchemy's ORM (35-50 ms of its start)."""

    __slots__ = ("_bind", "_made")

    def __init__(self, bind: Engine) -> None:
        self._bind = bind
        self._made: sessionmaker[Session] | None = None

    def maker(self) -> sessionmaker[Session]:
        """The ``sessionmaker`` itself."""
        made = self._made
        if made is None:
            from sqlalchemy.orm import sessionmaker

            made = self._made = sessionmaker(bind=self._bind, expire_on_commit=False)
        return made

    def __call__(self, **options: Any) -> Session:
        return self.maker()(**options)

    def begin(self) -> AbstractContextManager[Session]:
        return self.maker().begin()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in self.__slots__:
            # Special lookups (copy, pickle) and a half-built copy's own slots stay this
            # object's: they must not make the sessionmaker, nor recurse into it.
            raise AttributeError(name)
        return getattr(self.maker(), name)
