"""Test tiers: the markers' rules, shared by tests/conftest.py (which imports these hooks).

- A test that reads the official fixtures must be marked ``parity``.
- With ``CONDSYNTH_REQUIRE_ALL=1`` (set by .ci/run) a skipped ``parity`` or ``browser`` test is
  a failure that gives the skip's reason: CI has the fixtures and Chromium, so a skip there
  means something went missing.

Kept free of torch so that tests of these rules can run them in a quick subprocess.
"""

from __future__ import annotations

import os

import pytest

# Tests that must run, not skip, when CONDSYNTH_REQUIRE_ALL=1.
REQUIRED_MARKERS = ("parity", "browser")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that reads the official fixtures must carry the parity marker, so that it cannot
    escape the parity tier or CONDSYNTH_REQUIRE_ALL."""
    unmarked = [item.nodeid for item in items if "official_fixtures" in item.fixturenames
                and item.get_closest_marker("parity") is None]
    if unmarked:
        raise pytest.UsageError("tests reading the official fixtures without "
                                f"@pytest.mark.parity: {', '.join(unmarked)}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    """With CONDSYNTH_REQUIRE_ALL=1, a skipped parity or browser test is a failure that gives
    the skip's reason: CI has what they need, so a skip there means something went missing."""
    report = yield
    if (report.skipped and not hasattr(report, "wasxfail")
            and os.environ.get("CONDSYNTH_REQUIRE_ALL") == "1"):
        marker = next((m for m in REQUIRED_MARKERS if item.get_closest_marker(m)), None)
        if marker is not None:
            reason = (report.longrepr[2] if isinstance(report.longrepr, tuple)
                      else str(report.longrepr))
            report.outcome = "failed"
            report.longrepr = (f"CONDSYNTH_REQUIRE_ALL=1 and this {marker} test was skipped: "
                               f"{reason.removeprefix('Skipped: ')}")
    return report
