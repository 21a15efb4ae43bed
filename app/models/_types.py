from enum import Enum as PyEnum

from sqlalchemy import Enum


def status_enum(kind: type[PyEnum]) -> Enum:
    """A status column stored as its text value, checked against the enum on both backends."""
    return Enum(
        kind,
        native_enum=False,
        length=20,
        validate_strings=True,
        values_callable=lambda members: [m.value for m in members],
    )
