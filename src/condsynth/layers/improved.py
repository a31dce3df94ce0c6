"""Layers of "Improved Techniques for Training GANs" (Salimans et al., NeurIPS 2016), as the
official code (openai/improved-gan) computes them: minibatch discrimination, virtual batch
normalization, weight normalization with data-dependent initialization, Gaussian noise, and
the flat parameter vectors that historical averaging and the averaged test-time
discriminator keep.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class GaussianNoise(nn.Module):
    """Adds N(0, sigma^2) noise in training mode; the identity in eval mode (the official
    ``GaussianNoiseLayer``, off when ``deterministic``)."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.sigma == 0:
            return x
        return x + torch.randn_like(x) * self.sigma

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}"


class WeightNorm(nn.Module):
    """A linear, convolution or transposed convolution with weight normalization
    (Salimans & Kingma, 2016): ``W = g * V / ||V||``, the norm over every axis but the output
    one; with ``data_init`` (:func:`data_dependent_init`) ``g`` and the bias are set so that
    the first batch's pre-activations have mean 0 and standard deviation ``init_stdv``.

    ``train_scale=False`` keeps ``g`` as a buffer (set once by the initialization, as the
    official hidden layers do); ``bias=False`` leaves the bias to a following batch norm;
    ``data_init=False`` keeps ``g`` = 1 through the initialization (the official
    ``l2normalize`` layers).

    Args:
        kind: ``linear`` (B, in) → (B, out); ``conv`` and ``deconv`` (B, in, H, W) →
            (B, out, H', W').
        kernel_size, stride, padding, output_padding: of the convolutions.
    """

    def __init__(self, kind: Literal["linear", "conv", "deconv"], in_features: int,
                 out_features: int, *, kernel_size: int = 1, stride: int = 1, padding: int = 0,
                 output_padding: int = 0, train_scale: bool = True, init_stdv: float = 1.0,
                 bias: bool = True, weight_std: float = 0.05, data_init: bool = True) -> None:
        super().__init__()
        self.kind = kind
        self.data_init = data_init
        self.stride, self.padding, self.output_padding = stride, padding, output_padding
        self.init_stdv = init_stdv
        shape = {"linear": (out_features, in_features),
                 "conv": (out_features, in_features, kernel_size, kernel_size),
                 "deconv": (in_features, out_features, kernel_size, kernel_size)}[kind]
        self.direction = nn.Parameter(torch.randn(shape) * weight_std)
        scale = torch.ones(out_features)
        if train_scale:
            self.scale = nn.Parameter(scale)
        else:
            self.register_buffer("scale", scale)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.initializing = False

    def weight(self) -> Tensor:
        out_axis = 1 if self.kind == "deconv" else 0
        dims = [d for d in range(self.direction.dim()) if d != out_axis]
        norm = self.direction.square().sum(dims, keepdim=True).add(1e-6).sqrt()
        shape = [1] * self.direction.dim()
        shape[out_axis] = -1
        return self.direction * self.scale.view(shape) / norm

    def _apply_weight(self, x: Tensor) -> Tensor:
        weight = self.weight()
        if self.kind == "linear":
            return F.linear(x, weight)
        if self.kind == "conv":
            return F.conv2d(x, weight, stride=self.stride, padding=self.padding)
        return F.conv_transpose2d(x, weight, stride=self.stride, padding=self.padding,
                                  output_padding=self.output_padding)

    def forward(self, x: Tensor) -> Tensor:
        out = self._apply_weight(x)
        axes = [0] if out.dim() == 2 else [0, 2, 3]
        shape = [1, -1] + [1] * (out.dim() - 2)
        if self.initializing:
            with torch.no_grad():
                mean = out.mean(axes)
                inv_std = self.init_stdv / (out - mean.view(shape)).square().mean(axes).sqrt()
                self.scale.mul_(inv_std)
                if self.bias is not None:
                    self.bias.copy_(-mean * inv_std)
            out = self._apply_weight(x)
        if self.bias is not None:
            out = out + self.bias.view(shape)
        return out


class MinibatchDiscrimination(nn.Module):
    """Minibatch discrimination (the paper's section 3.2, the official ``MinibatchLayer``).

    Each sample's features f (A) are projected by a tensor T (A × B × C) to B rows of C numbers
    M_i; ``c_b(x_i, x_j) = exp(-||M_i,b - M_j,b||_1)`` is summed over the other samples of
    the batch and, with a learned bias per kernel, concatenated to the features:
    (N, A) → (N, A + B). T is weight-normalized as in the official code (``theta`` with a
    log-scale per kernel row) and the bias starts at -1. The official code leaves a sample's
    distance to itself out of the sum (the paper's sum includes it: a constant 1 per kernel,
    which the bias absorbs).
    """

    def __init__(self, in_features: int, num_kernels: int = 100, kernel_dim: int = 5) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.randn(in_features, num_kernels, kernel_dim) * 0.05)
        self.log_weight_scale = nn.Parameter(torch.zeros(num_kernels, kernel_dim))
        self.bias = nn.Parameter(torch.full((num_kernels,), -1.0))
        self.initializing = False

    def tensor(self) -> Tensor:
        """T (A, B, C): ``theta`` normalized over A, scaled by exp(log_weight_scale)."""
        norm = self.theta.square().sum(0, keepdim=True).sqrt()
        return self.theta * self.log_weight_scale.exp()[None] / norm

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(1)                                               # (N, A)
        rows = torch.einsum("na,abc->nbc", x, self.tensor())           # (N, B, C)
        distance = (rows[:, None] - rows[None]).abs().sum(-1)          # (N, N, B)
        eye = torch.eye(x.shape[0], device=x.device, dtype=x.dtype)
        distance = distance + 1e6 * eye[:, :, None]                    # not to itself
        if self.initializing:
            with torch.no_grad():
                mean_min = 0.5 * distance.min(1).values.mean(0)         # (B,)
                self.log_weight_scale.sub_(mean_min.log()[:, None])
            distance = distance / mean_min
        features = torch.exp(-distance).sum(1)                         # (N, B)
        if self.initializing:
            with torch.no_grad():
                self.bias.copy_(-features.mean(0))
        return torch.cat([x, features + self.bias], 1)


class VirtualBatchNorm(nn.Module):
    """Virtual batch normalization (the paper's section 3.5; the official ImageNet code's VBN).

    The first ``reference_size`` rows of the input are the reference batch, chosen once at the
    start of training and passed through the network with every batch: they are normalized
    with their own statistics. Every other example is normalized with the reference
    statistics mixed with its own, the example weighing 1/(B + 1) (B = ``reference_size``):
    ``mean = w * mean(x) + (1 - w) * mean_ref`` and the same for the mean of squares; the
    per-example statistics are over the spatial positions of (N, C, H, W) inputs, the value
    itself for (N, C). A learned scale and shift per feature follow.

    Input and output: (R + N, C) or (R + N, C, H, W).
    """

    def __init__(self, num_features: int, reference_size: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.reference_size = reference_size
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: Tensor) -> Tensor:
        r = self.reference_size
        if x.shape[0] <= r:
            raise ValueError(f"VirtualBatchNorm takes the {r} reference rows first, then the "
                             f"batch; got {x.shape[0]} rows")
        spatial = list(range(2, x.dim()))
        shape = [1, -1] + [1] * len(spatial)
        ref = x[:r]
        ref_mean = ref.mean([0, *spatial])
        ref_sq = ref.square().mean([0, *spatial])
        w = 1.0 / (r + 1)
        own = x[r:]
        own_mean = own.mean(spatial, keepdim=True) if spatial else own
        own_sq = own.square().mean(spatial, keepdim=True) if spatial else own.square()
        mean = w * own_mean + (1 - w) * ref_mean.view(shape)
        sq = w * own_sq + (1 - w) * ref_sq.view(shape)
        normal_ref = (ref - ref_mean.view(shape)) / (ref_sq - ref_mean.square() + self.eps
                                                     ).sqrt().view(shape)
        normal = (own - mean) / (sq - mean.square() + self.eps).sqrt()
        out = torch.cat([normal_ref, normal], 0)
        return out * self.weight.view(shape) + self.bias.view(shape)


@contextlib.contextmanager
def _initializing(net: nn.Module) -> Iterator[None]:
    layers = [m for m in net.modules() if isinstance(m, MinibatchDiscrimination)
              or (isinstance(m, WeightNorm) and m.data_init)]
    for layer in layers:
        layer.initializing = True
    try:
        yield
    finally:
        for layer in layers:
            layer.initializing = False


@torch.no_grad()
def data_dependent_init(net: nn.Module, *inputs: Tensor) -> None:
    """The official data-dependent initialization: one forward pass of ``inputs`` in which
    every :class:`WeightNorm` layer sets its scale and bias so that its outputs have mean 0 and
    standard deviation ``init_stdv`` (and :class:`MinibatchDiscrimination` its scale and
    bias), layer after layer."""
    with _initializing(net):
        net(*inputs)


def flat_parameters(params: Iterable[Tensor]) -> Tensor:
    """The parameters as one detached vector (historical averaging, the averaged D)."""
    return torch.cat([p.detach().reshape(-1) for p in params])


def load_flat_parameters(params: Iterable[Tensor], flat: Tensor) -> None:
    """Copy a vector of :func:`flat_parameters` back into ``params``."""
    offset = 0
    with torch.no_grad():
        for p in params:
            p.copy_(flat[offset:offset + p.numel()].view_as(p))
            offset += p.numel()


@contextlib.contextmanager
def swapped_parameters(params: list[Tensor], flat: Tensor) -> Iterator[None]:
    """Within the block ``params`` hold the values of ``flat`` (an average); their own values
    come back after it. The module itself runs, so hooks on its layers see the calls."""
    saved = flat_parameters(params).clone()
    load_flat_parameters(params, flat)
    try:
        yield
    finally:
        load_flat_parameters(params, saved)
