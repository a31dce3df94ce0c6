"""Built-in methods; importing this package registers them."""

from condsynth.methods import pix2pix  # noqa: F401
