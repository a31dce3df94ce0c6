"""The studio: paint a layout in the browser, watch a picture appear.

GauGAN's web demo (Park et al., CVPR 2019, "Semantic Image Synthesis with Spatially-Adaptive
Normalization") made semantic synthesis famous; NVIDIA never released it. ``condsynth studio
RUN_DIR [RUN_DIR ...]`` serves one for any condsynth run: paint mode for label-map models
(pix2pix, pix2pixHD, SPADE), sketch mode for Auto-painter, style controls where the model has
them. It uses only the public API (:func:`condsynth.api.load` and ``Method.generate``).

The server is :mod:`condsynth.studio.server` (not imported here; the ``studio`` command,
:mod:`condsynth.cli.studio`, imports it when it runs); the page is ``static/``.
"""
