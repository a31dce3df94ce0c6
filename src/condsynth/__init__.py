"""condsynth: conditional image synthesis (pix2pix, pix2pixHD, SPADE, Auto-painter).

``condsynth.load(run_dir)`` returns a trained method; ``method.generate(label, instance=None)``
turns (B, H, W) int64 label maps into (B, 3, H, W) images in [-1, 1].
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["load", "__version__"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so that `import condsynth` itself stays free of side effects.
    if name == "load":
        from condsynth.api import load

        return load
    raise AttributeError(f"module 'condsynth' has no attribute {name!r}")
