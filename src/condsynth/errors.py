"""Errors meant for the user: the CLI prints them without a traceback."""

from __future__ import annotations


class CondsynthError(Exception):
    """A problem the user can fix: the message names the file, the value and the fix."""


class DataError(CondsynthError):
    """Bad input data: a label map, an instance map, an image or a dataset layout."""


class ConfigError(CondsynthError):
    """A configuration key or value that is unknown or of the wrong type."""


class CheckpointError(CondsynthError):
    """A run directory or an official checkpoint that is missing, corrupt or mismatched."""
