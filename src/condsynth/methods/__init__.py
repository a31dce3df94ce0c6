"""Built-in methods; importing this package registers them."""

from condsynth.methods import (
    autopainter,  # noqa: F401
    pix2pix,  # noqa: F401
    pix2pixhd,  # noqa: F401
    spade,  # noqa: F401
)
