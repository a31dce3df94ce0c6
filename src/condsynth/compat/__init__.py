"""Import of checkpoints trained with the official pix2pixHD (NVIDIA) and SPADE (NVlabs) code.

``official`` reads their option files and ``.pth`` weights safely; ``pix2pixhd`` and ``spade``
turn an official checkpoint folder into a native condsynth run directory.
"""
