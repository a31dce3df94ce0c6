"""Flags that several subcommands share, each spelled once."""

from __future__ import annotations

import argparse

from condsynth.config import PRECISIONS

DEVICES = ["auto", "cpu", "cuda"]


def add_device_flag(p: argparse.ArgumentParser, default: str | None = None,
                    help: str = "where to run (default: CUDA when available, else CPU)") -> None:
    """``--device``. ``None`` leaves the choice to the command (train reads it from the
    config); the commands that only run a model default to ``auto``."""
    p.add_argument("--device", choices=DEVICES, default=default, help=help)


def add_quiet_flag(p: argparse.ArgumentParser) -> None:
    """``--quiet``: no progress bars."""
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_fast_path_flags(p: argparse.ArgumentParser, channels_last: bool = True) -> None:
    """``--precision`` (and ``--channels-last``) of commands that run inference."""
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="inference precision: bf16 (CPU/GPU) or fp16 (GPU) is the fast path")
    if channels_last:
        p.add_argument("--channels-last", action="store_true",
                       help="channels_last weights (faster convolutions on CPUs and GPUs)")


def add_config_flag(p: argparse.ArgumentParser, help: str) -> None:
    """``--config``: a YAML config file or the name of a preset (see condsynth.presets)."""
    p.add_argument("--config", help=help)


def add_overrides(p: argparse.ArgumentParser) -> None:
    """The trailing ``section.key=value`` config overrides."""
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
