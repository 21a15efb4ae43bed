"""Without Chromium the browser tests are skipped, with the reason; under CI they fail."""

from __future__ import annotations

from pathlib import Path

import pytest
from dashboard_demo import chromium_or_skip


def test_no_chromium_skips_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(pytest.skip.Exception, match=r"need Chromium at .*apt-get install"):
        chromium_or_skip(tmp_path / "chromium", in_ci=False)


def test_no_chromium_under_ci_is_a_failure(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match="under CI the browser tests must run"):
        chromium_or_skip(tmp_path / "chromium", in_ci=True)


def test_chromium_present_goes_on(tmp_path: Path) -> None:
    (tmp_path / "chromium").touch()
    chromium_or_skip(tmp_path / "chromium", in_ci=True)
