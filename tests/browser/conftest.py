"""The browser tests' fixtures (defined in dashboard_demo.py): ``demo``, ``browser``, ``page``."""

from dashboard_demo import browser, demo, page

__all__ = ["browser", "demo", "page"]
