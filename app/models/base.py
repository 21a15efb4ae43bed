from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Declarative base of the application's models."""
