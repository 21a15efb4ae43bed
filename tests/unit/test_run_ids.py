"""Run ids: a random version 4 UUID's 32 hex digits."""

from __future__ import annotations

import uuid

from quest.runner import new_run_id


def test_a_run_id_is_a_version_4_uuid_in_hex() -> None:
    ids = [new_run_id() for _ in range(2000)]
    for run_id in ids:
        assert len(run_id) == 32
        parsed = uuid.UUID(hex=run_id)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert parsed.hex == run_id
    assert len(set(ids)) == len(ids)


def test_run_ids_use_every_random_bit() -> None:
    """Beyond the six fixed bits (version and variant) every bit of the id varies."""
    seen_one = 0
    seen_zero = 0
    for _ in range(400):
        value = int(new_run_id(), 16)
        seen_one |= value
        seen_zero |= ~value
    fixed = (0xF << 76) | (0x3 << 62)
    mask = (1 << 128) - 1
    assert seen_one & seen_zero & mask == mask & ~fixed
