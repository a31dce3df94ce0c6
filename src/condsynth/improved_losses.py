"""Losses of "Improved Techniques for Training GANs" (Salimans et al., NeurIPS 2016) as plain
functions, written as the official code (openai/improved-gan) computes them: feature matching
on batch means, one-sided label smoothing, the historical-averaging penalty and the
semi-supervised K+1 losses with the generated class's logit fixed at 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from condsynth.layers.improved import flat_parameters

FeatureDistance = Literal["l1", "l2"]


def batch_mean_matching(real: Tensor, fake: Tensor, distance: FeatureDistance = "l1") -> Tensor:
    """Feature matching (the paper's section 3.1): G matches the batch means of an
    intermediate discriminator layer, ``mean(|m_real - m_fake|)`` (``l1``, the official
    CIFAR/SVHN code) or ``mean((m_real - m_fake)^2)`` (``l2``, the official MNIST code).
    Features (N, ...) are averaged over the batch; the real ones carry no gradient."""
    difference = real.detach().flatten(1).mean(0) - fake.flatten(1).mean(0)
    return difference.abs().mean() if distance == "l1" else difference.square().mean()


def d_smoothed_loss(real_logits: Tensor, fake_logits: Tensor, real_target: float = 1.0
                    ) -> tuple[Tensor, Tensor]:
    """One-sided label smoothing (section 3.4): binary cross-entropy with real targets
    ``real_target`` (the paper's 0.9; 1.0 is no smoothing) and fake targets 0.
    Returns (real term, fake term)."""
    real = F.binary_cross_entropy_with_logits(real_logits,
                                              torch.full_like(real_logits, real_target))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real, fake


def historical_average_penalty(flat: Tensor, average: Tensor) -> Tensor:
    """Historical averaging (section 3.3): ``||theta - (1/t) sum_i theta_i||^2`` for a player's
    parameters ``flat`` (with gradient) and their running mean ``average`` (constant)."""
    return (flat - average.detach()).square().sum()


def historical_average_step(params: Sequence[Tensor], history: Tensor, count: Tensor
                            ) -> Tensor:
    """One step of historical averaging for one player: its running mean ``history`` (P,)
    takes in the current parameters (``count``, the steps so far, goes up by one; both are
    updated in place and belong in the method state), then
    :func:`historical_average_penalty` of the parameters against it."""
    with torch.no_grad():
        count.add_(1)
        history.add_((flat_parameters(params) - history) / count)
    return historical_average_penalty(torch.cat([p.reshape(-1) for p in params]), history)


def kplus1_labeled_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """The labelled loss of the K+1 discriminator, as coded: ``-mean(l_y) + mean(LSE(l))``,
    the cross-entropy over the K real classes. ``logits`` (N, K), ``labels`` (N,) int64."""
    chosen = logits.gather(1, labels[:, None]).squeeze(1)
    return -chosen.mean() + torch.logsumexp(logits, 1).mean()


def kplus1_unlabeled_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """The unlabelled loss of the K+1 discriminator (the generated class's logit is 0, so
    D(x) = Z / (Z + 1) with Z = sum exp(l)), as coded:
    ``-0.5 mean(LSE(l_real)) + 0.5 mean(softplus(LSE(l_real))) + 0.5 mean(softplus(LSE(l_fake)))``,
    i.e. -0.5 E log D(x) - 0.5 E log(1 - D(G(z)))."""
    lse_real = torch.logsumexp(real_logits, 1)
    lse_fake = torch.logsumexp(fake_logits, 1)
    return (-0.5 * lse_real.mean() + 0.5 * F.softplus(lse_real).mean()
            + 0.5 * F.softplus(lse_fake).mean())


def kplus1_generator_loss(fake_logits: Tensor) -> Tensor:
    """The generator loss of the official minibatch-discrimination variant, as coded:
    ``-mean(softplus(LSE(l_fake)))``."""
    return -F.softplus(torch.logsumexp(fake_logits, 1)).mean()
