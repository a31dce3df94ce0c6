"""Fixtures of the data tests: ``build`` writes tiny datasets of every layout to tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from .builders import Builder


@pytest.fixture
def build(tmp_path: Path) -> Builder:
    return Builder(tmp_path)
