"""The test tiers: CONDSYNTH_REQUIRE_ALL=1 turns a skipped parity or browser test into a
failure (what CI relies on), and leaves other skips alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

INNER_TESTS = '''
import pytest

@pytest.mark.browser
def test_browser():
    pytest.skip("no chromium here")

@pytest.mark.parity
@pytest.mark.skipif(True, reason="no fixtures here")
def test_parity():
    pass

def test_plain():
    pytest.skip("an ordinary skip")
'''


@pytest.mark.parametrize("require_all", ["0", "1"])
def test_require_all_fails_skipped_parity_and_browser_tests(tmp_path, require_all):
    (tmp_path / "conftest.py").write_text(
        "from tests.tiers import pytest_runtest_makereport  # noqa: F401\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    parity\n    browser\n")
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    env = {**os.environ, "CONDSYNTH_REQUIRE_ALL": require_all,
           "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
                           str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    out = proc.stdout
    if require_all == "1":
        assert proc.returncode == 1, out
        assert "1 failed" in out and "1 skipped" in out and "1 error" in out, out
        assert "this browser test was skipped: no chromium here" in out
        assert "this parity test was skipped: no fixtures here" in out
    else:
        assert proc.returncode == 0, out
        assert "3 skipped" in out, out
