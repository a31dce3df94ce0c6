"""Human preference studies as Auto-painter (Liu et al., 2017) ran them: a judge sees, for each
input, the outputs of several systems in random order, picks the best and the worst; each
system's like rate and dislike rate (the paper's popularity index) summarise the answers.

``build_study`` writes a self-contained folder (``index.html``, the pictures under opaque
names, ``manifest.json``; the name key in ``key.json``); ``serve_study`` serves it on
127.0.0.1 and stores every answer atomically in ``results.json``; ``study_report`` computes the
rates. ``build_turing_study`` builds SimGAN's real-or-refined test on the same machinery.
Opened straight from disk, the page keeps answers in the browser and offers them as a
JSON download that ``study_report`` also reads.
"""

from condsynth.study.build import build_study
from condsynth.study.report import study_report
from condsynth.study.server import StudyServer, serve_study
from condsynth.study.turing import build_turing_study

__all__ = ["build_study", "build_turing_study", "serve_study", "StudyServer", "study_report"]
