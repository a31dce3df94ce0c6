"""Inception Score against closed forms and the original formula written out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from condsynth.metrics.inception_score import inception_score


def test_confident_and_evenly_spread_predictions_score_the_class_count():
    # p(y|x) one-hot, p(y) uniform over K classes: KL = log K for every image, IS = K.
    k = 7
    logits = np.full((14, 20), -1e3)
    logits[np.arange(14), np.arange(14) % k] = 0.0
    mean, std = inception_score(logits, splits=1)
    assert mean == pytest.approx(k, rel=1e-9) and std == 0.0


def test_identical_predictions_score_one():
    logits = np.tile(np.random.default_rng(0).normal(size=(1, 10)), (12, 1))
    assert inception_score(logits, splits=3) == pytest.approx((1.0, 0.0), abs=1e-12)


def test_splits_follow_the_original_formula():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(23, 6)) * 3
    preds = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    scores = []
    for i in range(5):                                    # the original's split bounds
        part = preds[i * 23 // 5:(i + 1) * 23 // 5]
        kl = part * (np.log(part) - np.log(part.mean(0, keepdims=True)))
        scores.append(np.exp(kl.sum(1).mean()))
    mean, std = inception_score(logits, splits=5)
    assert mean == pytest.approx(np.mean(scores), rel=1e-10)
    assert std == pytest.approx(np.std(scores), rel=1e-8)
    # More splits than images: one image per split, each scores exp(0) = 1.
    assert inception_score(logits[:3], splits=10) == pytest.approx((1.0, 0.0))
