"""Evaluation as the papers do it: FID and KID (:mod:`.fid`) and the Inception Score
(:mod:`.inception_score`) on the standard FID Inception network (:mod:`.inception`) or a domain
classifier (:mod:`.classifier`), ProGAN's sliced Wasserstein distance (:mod:`.swd`),
segmentation consistency (:mod:`.segmentation`), MS-SSIM diversity (:mod:`.msssim`), and whole
evaluations with their reports (:mod:`.evaluate`, :mod:`.report`). Importing this package loads
no network and reads no file.
"""

from condsynth.metrics.classifier import (
    DomainClassifier,
    load_classifier,
    load_feature_classifier,
    train_classifier,
)
from condsynth.metrics.fid import (
    feature_statistics,
    fid_from_features,
    frechet_distance,
    kernel_inception_distance,
)
from condsynth.metrics.inception_score import inception_score
from condsynth.metrics.msssim import mean_pairwise_ms_ssim, ms_ssim
from condsynth.metrics.segmentation import (
    confusion_matrix,
    load_segmenter,
    register_segmenter,
    segmentation_scores,
)
from condsynth.metrics.swd import DescriptorSet, swd_between

__all__ = [
    "DescriptorSet",
    "DomainClassifier",
    "confusion_matrix",
    "feature_statistics",
    "fid_from_features",
    "frechet_distance",
    "inception_score",
    "kernel_inception_distance",
    "load_classifier",
    "load_feature_classifier",
    "load_segmenter",
    "mean_pairwise_ms_ssim",
    "ms_ssim",
    "register_segmenter",
    "segmentation_scores",
    "swd_between",
    "train_classifier",
]
