"""SPADE, spatially-adaptive (de)normalization, and the SPADE residual block (Park et al.,
"Semantic Image Synthesis with Spatially-Adaptive Normalization", CVPR 2019).

A SPADE layer normalizes its input without learned parameters, then modulates it with a scale
γ and a shift β that vary per pixel: both are predicted from the label map (resized to the
activation's size) by a small convolutional network. Unlike batch-norm's per-channel affine
transform, this keeps the layout from being "washed away" by normalization.

Module and parameter names (``param_free_norm``, ``mlp_shared.0``, ``mlp_gamma``, ``mlp_beta``,
``conv_0``, ``conv_1``, ``conv_s``, ``norm_0``, ``norm_1``, ``norm_s``) follow NVlabs' code, so
an official state dict maps one to one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condsynth.layers.norms import norm_layer

ParamFreeNorm = Literal["instance", "batch", "sync_batch"]


class FusedConvWeights:
    """Several convolutions' weights and biases concatenated along the output channels, kept
    for inference so that convolutions reading the same input run as one.

    Called without gradients. The concatenation is kept, in the autocast dtype when autocast is
    on, and rebuilt only when a source tensor changes (an optimizer step or ``load_state_dict``
    bumps its version, ``.to()`` moves it): repeated inference pays neither the copy nor the
    cast again.
    """

    def __init__(self) -> None:
        # (key, (weight, bias)), swapped as one reference so concurrent callers (a web server's
        # threads) always see a matching pair.
        self._cached: tuple[tuple, tuple[Tensor, Tensor]] | None = None

    @torch.no_grad()
    def __call__(self, weights: Sequence[Tensor], biases: Sequence[Tensor],
                 bias_offsets: Sequence[float]) -> tuple[Tensor, Tensor]:
        """(cat(weights), cat(biases + offsets)), ``bias_offsets`` a constant per part."""
        device = weights[0].device
        dtype = (torch.get_autocast_dtype(device.type)
                 if torch.is_autocast_enabled(device.type) else weights[0].dtype)
        key = (dtype, tuple(bias_offsets),
               *((t.data_ptr(), t._version, t.dtype, t.stride()) for t in (*weights, *biases)))
        cached = self._cached
        if cached is not None and cached[0] == key:
            return cached[1]
        self._cached = None               # free the old copy before building the new one
        biases = [b + offset for b, offset in zip(biases, bias_offsets, strict=True)]
        value = (torch.cat(list(weights)).to(dtype), torch.cat(biases).to(dtype))
        self._cached = (key, value)
        return value

    def __deepcopy__(self, memo: dict) -> FusedConvWeights:
        return FusedConvWeights()         # a cache: copies start empty


def resize_nearest(x: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
    """``x`` (a label map) at ``size`` by nearest-neighbour resizing, as SPADE resizes its label
    maps; a map already at that size is returned as it is, so callers can resize once per
    resolution and share the result."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="nearest")


class SPADE(nn.Module):
    """Spatially-adaptive normalization: ``norm(x) * (1 + γ(m)) + β(m)``.

    Args:
        norm_channels: channels C of the activation to normalize.
        label_channels: channels L of the label map m (one-hot classes, dont-care, edges).
        param_free_norm: the parameter-free normalization: ``instance``, ``batch``, or
            ``sync_batch`` (a plain ``BatchNorm2d`` that distributed training converts with
            :func:`torch.nn.SyncBatchNorm.convert_sync_batchnorm`).
        kernel_size: kernel of the three convolutions (the ``3x3`` of SPADE's ``norm_G``).
        hidden: channels of the shared convolution (128 in the paper).
    Forward: x (B, C, H, W), segmap (B, L, h, w) -> (B, C, H, W).

    Without gradients (inference), γ and β come from one convolution whose weight is the
    concatenation of ``mlp_gamma`` and ``mlp_beta``, kept between calls
    (:class:`FusedConvWeights`), with the 1 of ``1 + γ`` folded into its bias: the same
    arithmetic, one pass over the shared activation instead of two, and no per-call weight copy
    or autocast cast. The two stay separate parameters, so state dicts keep the official names.
    """

    def __init__(self, norm_channels: int, label_channels: int,
                 param_free_norm: ParamFreeNorm = "batch", kernel_size: int = 3,
                 hidden: int = 128) -> None:
        super().__init__()
        if param_free_norm not in ("instance", "batch", "sync_batch"):
            raise ValueError(f"SPADE param_free_norm must be instance, batch or sync_batch, "
                             f"found {param_free_norm!r}")
        padding = kernel_size // 2
        self.param_free_norm = norm_layer(param_free_norm, norm_channels, affine=False)
        self.mlp_shared = nn.Sequential(
            nn.Conv2d(label_channels, hidden, kernel_size, padding=padding), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, norm_channels, kernel_size, padding=padding)
        self.mlp_beta = nn.Conv2d(hidden, norm_channels, kernel_size, padding=padding)
        self.fused_gamma_beta = FusedConvWeights()

    def modulation(self, segmap: Tensor) -> tuple[Tensor, Tensor]:
        """The scale 1 + γ and the shift β, each (B, C, h, w), for a label map already at the
        activation's size."""
        actv = self.mlp_shared(segmap)                                    # (B, hidden, h, w)
        if torch.is_grad_enabled() or self.training:
            # Training: two convolutions. Measured on CPU, the fused one is no faster here: its
            # weight concatenation and gradient split cost what the shared pass saves. (Also
            # without gradients, as SPADE's discriminator step regenerates its fake: the
            # weights change at every step, a cached concatenation would only be rebuilt.)
            return 1 + self.mlp_gamma(actv), self.mlp_beta(actv)
        weights = [self.mlp_gamma.weight, self.mlp_beta.weight]
        biases = [self.mlp_gamma.bias, self.mlp_beta.bias]
        if torch.compiler.is_compiling():
            # Traced (torch.compile, ONNX export): the concatenation becomes part of the graph,
            # which folds it into constants once; the cache's pointer checks cannot be traced.
            weight, bias = torch.cat(weights), torch.cat([biases[0] + 1.0, biases[1]])
        else:
            weight, bias = self.fused_gamma_beta(weights, biases,         # (2C, hidden, k, k)
                                                 bias_offsets=(1.0, 0.0))
        scale, shift = F.conv2d(actv, weight, bias, padding=self.mlp_gamma.padding).chunk(2, 1)
        return scale, shift

    def forward(self, x: Tensor, segmap: Tensor) -> Tensor:
        normalized = self.param_free_norm(x)
        scale, shift = self.modulation(resize_nearest(segmap, x.shape[-2:]))
        return torch.addcmul(shift, normalized, scale)


class SPADEResBlock(nn.Module):
    """SPADE residual block: two SPADE - LeakyReLU(0.2) - conv3x3 stages around a shortcut.

    The shortcut is learned (SPADE, then a 1x1 convolution without bias) when the channel count
    changes, the identity otherwise. The middle width is ``min(in_channels, out_channels)``.

    Args:
        in_channels, out_channels: channels of the input and the output.
        label_channels: channels of the label map.
        norm: the parameter-free normalization inside each SPADE.
        spectral: spectral norm on ``conv_0``, ``conv_1`` and ``conv_s`` (SPADE's default). It is
            :func:`torch.nn.utils.spectral_norm`: in training mode every forward runs one power
            iteration and updates ``weight_u``/``weight_v`` in place; in eval mode the stored
            vectors are used as they are.
        kernel_size, hidden: of the SPADE layers.
    Forward: x (B, in_channels, H, W), segmap (B, L, h, w) -> (B, out_channels, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int, label_channels: int,
                 norm: ParamFreeNorm = "batch", spectral: bool = True, kernel_size: int = 3,
                 hidden: int = 128) -> None:
        super().__init__()
        middle = min(in_channels, out_channels)
        self.learned_shortcut = in_channels != out_channels

        def maybe_spectral(conv: nn.Conv2d) -> nn.Conv2d:
            return nn.utils.spectral_norm(conv) if spectral else conv

        # Registration order matches the official block, so its state dict lines up in order.
        self.conv_0 = maybe_spectral(nn.Conv2d(in_channels, middle, 3, padding=1))
        self.conv_1 = maybe_spectral(nn.Conv2d(middle, out_channels, 3, padding=1))
        if self.learned_shortcut:
            self.conv_s = maybe_spectral(nn.Conv2d(in_channels, out_channels, 1, bias=False))
        self.norm_0 = SPADE(in_channels, label_channels, norm, kernel_size, hidden)
        self.norm_1 = SPADE(middle, label_channels, norm, kernel_size, hidden)
        if self.learned_shortcut:
            self.norm_s = SPADE(in_channels, label_channels, norm, kernel_size, hidden)

    def forward(self, x: Tensor, segmap: Tensor) -> Tensor:
        segmap = resize_nearest(segmap, x.shape[-2:])   # once for the block's SPADEs
        shortcut = self.conv_s(self.norm_s(x, segmap)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, segmap), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, segmap), 0.2))
        return shortcut + dx
