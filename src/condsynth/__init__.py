"""condsynth: conditional image synthesis (pix2pix, pix2pixHD, SPADE, Auto-painter)."""

__version__ = "0.1.0"
