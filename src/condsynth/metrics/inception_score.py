"""Inception Score (Salimans et al., 2016, "Improved Techniques for Training GANs"):
``exp(E_x KL(p(y|x) || p(y)))``, computed over splits and reported as mean ± std.

As in the original code (OpenAI's ``improved-gan``), ``p(y|x)`` is the softmax of the FID
Inception graph's 1008 logits taken without the classifier bias, the images are cut into 10
consecutive splits, and ``p(y)`` is the mean prediction within a split. torch-fidelity's
``isc`` uses the same logits; it shuffles before splitting, which changes the std, not the mean.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax, rel_entr

from condsynth.errors import CondsynthError


def inception_score(logits: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """Mean and standard deviation of the score over ``splits`` (fewer when there are fewer
    images than splits) of (N, K) logits."""
    logits = np.asarray(logits, np.float64)
    if logits.ndim != 2 or logits.shape[0] < 1:
        raise CondsynthError(f"the Inception Score needs (N, K) logits, found {logits.shape}")
    splits = max(1, min(splits, logits.shape[0]))
    scores = []
    n = logits.shape[0]
    for i in range(splits):
        part = logits[i * n // splits: (i + 1) * n // splits]         # the original's bounds
        p_yx = np.exp(log_softmax(part, axis=1))          # (n, K) p(y|x)
        p_y = p_yx.mean(axis=0, keepdims=True)            # (1, K) p(y)
        kl = rel_entr(p_yx, p_y).sum(axis=1)              # (n,) KL per image; 0 log 0 = 0
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))
