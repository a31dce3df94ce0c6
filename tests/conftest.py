"""Shared test helpers: tiny configs, the official fixtures folder, seeding."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# The tiers' hooks (markers, CONDSYNTH_REQUIRE_ALL) live in tests/tiers.py, which loads no torch.
from tests.tiers import pytest_collection_modifyitems, pytest_runtest_makereport  # noqa: F401

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """``../shared`` beside the clone (CI puts it there), or $CONDSYNTH_SHARED."""
    return Path(os.environ.get("CONDSYNTH_SHARED", REPO.parent / "shared"))


@pytest.fixture
def official_fixtures() -> Path:
    """The official pix2pixHD/SPADE fixtures; the test is skipped when they are absent."""
    path = shared_dir() / "fixtures" / "official"
    if not path.is_dir():
        pytest.skip(f"official fixtures not found at {path} (set CONDSYNTH_SHARED to the folder "
                    "holding fixtures/official)")
    return path


@pytest.fixture
def official_train_fixtures() -> Path:
    """What the official pix2pixHD/SPADE train.py did from known checkpoints; the test is
    skipped when they are absent."""
    path = shared_dir() / "fixtures" / "official-train"
    if not path.is_dir():
        pytest.skip(f"official training fixtures not found at {path} (set CONDSYNTH_SHARED to "
                    "the folder holding fixtures/official-train)")
    return path


@pytest.fixture(autouse=True)
def _seed_and_threads() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def scenes(tmp_path_factory) -> Path:
    """A tiny procedural dataset (8 train + 2 test scenes, 32x32) in the pix2pixHD layout."""
    from condsynth.data.procedural import write_dataset

    root = tmp_path_factory.mktemp("scenes")
    write_dataset(root, 8, 32, seed=0, test_count=2, progress=False)
    return root
