"""pix2pixHD: High-Resolution Image Synthesis and Semantic Manipulation with Conditional GANs
(Wang, Liu, Zhu, Tao, Kautz, Catanzaro; CVPR 2018).

The pieces, as the paper and NVIDIA's implementation build them:

- a coarse-to-fine generator: the global generator G1 (:class:`GlobalGenerator`) and local
  enhancers G2 (:class:`LocalEnhancer`), where G1 runs on the 2x down-sampled input and its last
  feature map is added to the enhancer's down-sampled features;
- ``num_d`` PatchGAN discriminators on an image pyramid
  (:class:`condsynth.discriminators.MultiscaleDiscriminator`) returning their features;
- LSGAN (or vanilla) adversarial loss, discriminator feature matching and a VGG19 perceptual
  loss, each switchable;
- the instance boundary map as an input channel (``label.use_instance``);
- an instance-level feature encoder E (:class:`Encoder`) trained jointly, G(s, E(x)); after
  training, :func:`condsynth.methods.pix2pixhd_looks.compute_features` clusters each class's
  instance features with K-means (``condsynth features``), and
  at inference a look per class or per instance (chosen or random), or the features of a real
  style image, make one label map give many different images.

Staged training (paper, Sec. 3.2): train a ``n_local_enhancers: 0`` run (the global generator
alone) at half resolution, start the full-resolution run from it with :func:`init_from_global`,
and keep G1 frozen for the first ``niter_fix_global`` steps.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condsynth.conditions import batch_key, condition_of
from condsynth.config import Config, ranged
from condsynth.deploy import feature_map
from condsynth.discriminators import MultiscaleDiscriminator
from condsynth.errors import CheckpointError, CondsynthError, ConfigError, DataError
from condsynth.layers.norms import norm_layer
from condsynth.losses import (
    VGG19Loss,
    d_adversarial_loss,
    feature_matching_loss,
    g_adversarial_loss,
)
from condsynth.methods.base import (
    Batch,
    Capability,
    Method,
    OptimDefaults,
    Phase,
    StepOrder,
    generator_first,
    inference,
)
from condsynth.registry import register_method

__all__ = ["Pix2PixHDConfig", "Pix2PixHD", "GlobalGenerator", "LocalEnhancer",
           "LocalEnhancerBranch", "ResnetBlock", "Encoder", "instance_average", "class_of_ids",
           "init_from_global", "FEATURES_FILE"]

HDNorm = Literal["instance", "batch"]
FEATURES_FILE = "features.npz"     # cluster centres in a run directory (see pix2pixhd_looks)


@dataclass
class Pix2PixHDConfig:
    """pix2pixHD's model options (official option names in brackets where they differ)."""

    ngf: int = ranged(64, at_least=1)  # generator width: the outermost layer's channels
    n_downsample_global: int = 4      # stride-2 convolutions of the global generator G1
    n_blocks_global: int = 9          # residual blocks of G1
    n_local_enhancers: int = 0        # local enhancers G2 around G1; 0 = the global generator
                                      # alone [--netG global]; G1 then has ngf*2**n channels
    n_blocks_local: int = 3           # residual blocks of each local enhancer
    norm: HDNorm = "instance"         # normalization of G, D and E (instance: affine-free)
    ndf: int = ranged(64, at_least=1)  # discriminator width
    n_layers_d: int = ranged(3, at_least=1)  # stride-2 layers of each discriminator [n_layers_D]
    num_d: int = 2                    # discriminators on the image pyramid [num_D]
    gan_mode: Literal["lsgan", "vanilla"] = "lsgan"   # vanilla = [--no_lsgan]
    label_smoothing: float = ranged(0.0, at_least=0, below=1)  # one-sided label smoothing
                                      # (Salimans et al., 2016): D's real targets 1 - s; vanilla
                                      # and lsgan losses only; 0 = off
    feature_matching: bool = True     # discriminator feature-matching loss [not no_ganFeat_loss]
    vgg_loss: bool = True             # VGG19 perceptual loss [not no_vgg_loss]
    vgg_weights: str | None = None    # torchvision-format VGG19 file; None = torchvision cache
    lambda_feat: float = 10.0         # weight of feature matching and of the VGG loss (one
                                      # weight for both, as the official code)
    instance_feat: bool = False       # encode instance-wise features of the real image as input
    label_feat: bool = False          # the same, pooled per class instead of per instance
    feat_num: int = 3                 # channels of the encoded features
    nef: int = 16                     # encoder width
    n_downsample_e: int = 4           # stride-2 convolutions of the encoder [n_downsample_E]
    n_clusters: int = 10              # K-means clusters per class for compute_features
    niter_fix_global: int = 0         # train only the outermost local enhancer for this many
                                      # STEPS (the official option counts epochs), then all
    step_order: StepOrder = "official"  # official: one forward, G's step, then D's on the fake
                                      # G made before its step; d_first: D, then G against the
                                      # updated D (condsynth's default phases)


# ------------------------------------------------------------------------------------ networks


def _init_pix2pixhd(module: nn.Module) -> None:
    """The official initialization: conv weights ~ N(0, 0.02), batch-norm scales ~ N(1, 0.02)
    with zero shift. Conv biases keep PyTorch's default (the official code leaves them), which
    is why :func:`condsynth.layers.init.init_weights` (zero biases) is not used here."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def _conv_norm_relu(conv: nn.Module, channels: int, norm: HDNorm) -> list[nn.Module]:
    return [conv, norm_layer(norm, channels, affine=norm != "instance"), nn.ReLU(inplace=True)]


def _downsample(in_channels: int, out_channels: int, norm: HDNorm) -> nn.Sequential:
    """3x3 stride-2 conv + norm + ReLU: halves H and W."""
    return nn.Sequential(*_conv_norm_relu(
        nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1), out_channels, norm))


def _upsample(in_channels: int, out_channels: int, norm: HDNorm) -> nn.Sequential:
    """3x3 stride-2 transposed conv (output_padding 1: exactly doubles H and W) + norm + ReLU."""
    return nn.Sequential(*_conv_norm_relu(
        nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1),
        out_channels, norm))


def _stem(in_channels: int, out_channels: int, norm: HDNorm) -> nn.Sequential:
    """Reflection-padded 7x7 conv + norm + ReLU at full resolution."""
    return nn.Sequential(nn.ReflectionPad2d(3), *_conv_norm_relu(
        nn.Conv2d(in_channels, out_channels, 7), out_channels, norm))


def _to_image(in_channels: int, out_channels: int) -> nn.Sequential:
    """Reflection-padded 7x7 conv + tanh: features to an image in [-1, 1]."""
    return nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(in_channels, out_channels, 7), nn.Tanh())


class ResnetBlock(nn.Module):
    """Residual block of pix2pixHD's generators: x + (pad, 3x3 conv, norm, ReLU, pad, 3x3 conv,
    norm), reflection padding so that borders show no zero-padding artefacts.

    Forward: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, channels: int, norm: HDNorm = "instance") -> None:
        super().__init__()
        affine = norm != "instance"
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3),
            norm_layer(norm, channels, affine=affine), nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3),
            norm_layer(norm, channels, affine=affine))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


class GlobalGenerator(nn.Module):
    """G1, the global generator: 7x7 conv, ``n_downsampling`` stride-2 convs (doubling the
    channels), ``n_blocks`` residual blocks, as many transposed convs, 7x7 conv + tanh.

    Args:
        in_channels: channels of the generator input (encoded labels [+ features]).
        out_channels: image channels.
        ngf: channels after the first conv; the bottleneck has ``ngf * 2**n_downsampling``.
        n_downsampling: stride-2 convolutions; H and W must be multiples of 2**n_downsampling.
        n_blocks: residual blocks at the bottleneck.
        norm: ``instance`` (affine-free, as the official) or ``batch``.
        output_layer: False drops the final 7x7 conv + tanh, as inside :class:`LocalEnhancer`.
    Forward: (B, in_channels, H, W) -> (B, out_channels, H, W) in [-1, 1], or the last feature
    map (B, ngf, H, W) without the output layer.
    """

    def __init__(self, in_channels: int, out_channels: int = 3, ngf: int = 64,
                 n_downsampling: int = 3, n_blocks: int = 9, norm: HDNorm = "instance",
                 output_layer: bool = True) -> None:
        super().__init__()
        self.stem = _stem(in_channels, ngf, norm)
        self.downsample = nn.Sequential(*(
            _downsample(ngf * 2 ** i, ngf * 2 ** (i + 1), norm) for i in range(n_downsampling)))
        bottleneck = ngf * 2 ** n_downsampling
        self.blocks = nn.Sequential(*(ResnetBlock(bottleneck, norm) for _ in range(n_blocks)))
        self.upsample = nn.Sequential(*(
            _upsample(ngf * 2 ** (i + 1), ngf * 2 ** i, norm)
            for i in reversed(range(n_downsampling))))
        self.to_image = _to_image(ngf, out_channels) if output_layer else None

    def features(self, x: Tensor) -> Tensor:
        """The last feature map before the output layer: (B, ngf, H, W)."""
        return self.upsample(self.blocks(self.downsample(self.stem(x))))

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        return x if self.to_image is None else self.to_image(x)


class LocalEnhancerBranch(nn.Module):
    """One local enhancer G2 at one resolution: its own down-sampling front end, whose output
    is added to the coarser generator's last feature map, then residual blocks and a transposed
    conv back to its resolution (and the output layer when it is the outermost branch).

    Forward: ``(x, coarse)`` with x (B, in_channels, H, W) the input at this resolution and
    coarse (B, 2*ngf, H/2, W/2) -> (B, ngf, H, W) features, or the image when outermost.
    """

    def __init__(self, in_channels: int, out_channels: int, ngf: int, n_blocks: int,
                 norm: HDNorm, outermost: bool) -> None:
        super().__init__()
        self.downsample = nn.Sequential(*_stem(in_channels, ngf, norm),
                                        *_downsample(ngf, 2 * ngf, norm))
        self.upsample = nn.Sequential(*(ResnetBlock(2 * ngf, norm) for _ in range(n_blocks)),
                                      *_upsample(2 * ngf, ngf, norm))
        self.to_image = _to_image(ngf, out_channels) if outermost else None

    def forward(self, x: Tensor, coarse: Tensor) -> Tensor:
        x = self.upsample(self.downsample(x) + coarse)
        return x if self.to_image is None else self.to_image(x)


class LocalEnhancer(nn.Module):
    """The coarse-to-fine generator G = {G1, G2, ...}: G1 (a :class:`GlobalGenerator` of width
    ``ngf * 2**n_local_enhancers`` without its output layer) runs on the input down-sampled
    ``n_local_enhancers`` times; each :class:`LocalEnhancerBranch` doubles the resolution.

    The input pyramid uses 3x3 average pooling, stride 2, padding 1, not counting the padding,
    as the official code does.

    Args: as :class:`GlobalGenerator`, plus ``n_local_enhancers`` and ``n_blocks_local``.
    H and W must be multiples of ``2**(n_downsample_global + n_local_enhancers)``.
    Forward: (B, in_channels, H, W) -> (B, out_channels, H, W) in [-1, 1].
    """

    def __init__(self, in_channels: int, out_channels: int = 3, ngf: int = 32,
                 n_downsample_global: int = 3, n_blocks_global: int = 9,
                 n_local_enhancers: int = 1, n_blocks_local: int = 3,
                 norm: HDNorm = "instance") -> None:
        super().__init__()
        if n_local_enhancers < 1:
            raise ValueError("a LocalEnhancer needs n_local_enhancers >= 1 (0 is the "
                             "GlobalGenerator alone)")
        self.global_generator = GlobalGenerator(in_channels, out_channels,
                                                ngf * 2 ** n_local_enhancers,
                                                n_downsample_global, n_blocks_global, norm,
                                                output_layer=False)
        # branches[0] is the coarsest enhancer (the official model1_*), branches[-1] the
        # outermost one, which works at full resolution and ends in the output layer.
        self.branches = nn.ModuleList(
            LocalEnhancerBranch(in_channels, out_channels, ngf * 2 ** (n_local_enhancers - n),
                                n_blocks_local, norm, outermost=n == n_local_enhancers)
            for n in range(1, n_local_enhancers + 1))

    def forward(self, x: Tensor) -> Tensor:
        pyramid = [x]                                         # full resolution first
        for _ in self.branches:
            pyramid.append(F.avg_pool2d(pyramid[-1], 3, stride=2, padding=1,
                                        count_include_pad=False))
        out = self.global_generator(pyramid.pop())            # (B, ngf*2**n, H/2**n, W/2**n)
        for branch in self.branches:
            out = branch(pyramid.pop(), out)
        return out


def instance_average(features: Tensor, ids: Tensor) -> Tensor:
    """Instance-wise average pooling: every pixel's features replaced by the mean over the
    pixels of its image that share its id (pix2pixHD's encoder output layer).

    Args:
        features: (B, C, H, W).
        ids: (B, H, W) integer instance (or class) ids.
    Returns:
        (B, C, H, W), differentiable (each mean passes 1/n of the gradient to its pixels).
    """
    batch, channels, height, width = features.shape
    if ids.shape != (batch, height, width):
        raise DataError(f"instance map of shape {tuple(ids.shape)} does not match the image "
                        f"({batch}, {height}, {width})")
    ids = ids.to(features.device, torch.int64)
    # One slot per (image, id) pair: shift each image's ids into a range of its own.
    low = ids.amin()
    span = ids.amax() - low + 1
    key = (ids - low) + span * torch.arange(batch, device=ids.device).view(batch, 1, 1)
    _, slot = torch.unique(key.reshape(-1), return_inverse=True)          # (B*H*W,)
    count = torch.bincount(slot).unsqueeze(1)                              # (N, 1)
    flat = features.permute(0, 2, 3, 1).reshape(-1, channels)              # (B*H*W, C)
    # Sums in float64: a float32 running sum over a megapixel region drifts by ~1e-4.
    sums = flat.new_zeros(count.shape[0], channels, dtype=torch.float64)
    means = (sums.index_add(0, slot, flat.double()) / count).to(features.dtype)
    return means[slot].view(batch, height, width, channels).permute(0, 3, 1, 2)


def class_of_ids(ids: int | Tensor) -> int | Tensor:
    """The class of Cityscapes-encoded ids: ``id // 1000`` for instances (ids >= 1000), the id
    itself for stuff, as the official feature sampling reads it."""
    if isinstance(ids, Tensor):
        return torch.where(ids >= 1000, ids // 1000, ids)
    return ids // 1000 if ids >= 1000 else ids


class Encoder(nn.Module):
    """E, the instance-level feature encoder: an encoder-decoder (7x7 conv, ``n_downsampling``
    stride-2 convs, as many transposed convs, 7x7 conv + tanh) whose output is averaged over
    every instance, so each object gets one feature vector (paper, Sec. 3.4).

    Args:
        in_channels: image channels (3).
        feat_num: feature channels.
        nef: channels after the first conv (doubled per down-sampling, no cap).
        n_downsampling: stride-2 convolutions.
        norm: ``instance`` or ``batch``.
    Forward: image (B, 3, H, W), ids (B, H, W) -> (B, feat_num, H, W), constant per instance.
    """

    def __init__(self, in_channels: int = 3, feat_num: int = 3, nef: int = 16,
                 n_downsampling: int = 4, norm: HDNorm = "instance") -> None:
        super().__init__()
        self.stem = _stem(in_channels, nef, norm)
        self.downsample = nn.Sequential(*(
            _downsample(nef * 2 ** i, nef * 2 ** (i + 1), norm) for i in range(n_downsampling)))
        self.upsample = nn.Sequential(*(
            _upsample(nef * 2 ** (i + 1), nef * 2 ** i, norm)
            for i in reversed(range(n_downsampling))))
        self.to_features = _to_image(nef, feat_num)

    def forward(self, image: Tensor, ids: Tensor) -> Tensor:
        x = self.to_features(self.upsample(self.downsample(self.stem(image))))
        return instance_average(x, ids)


# ------------------------------------------------------------------------------------ method


@register_method("pix2pixhd", Pix2PixHDConfig)
class Pix2PixHD(Method):
    """pix2pixHD. Batches hold ``label`` (+ ``instance``) or ``source``, and ``image``.

    Networks: ``generator`` (:class:`GlobalGenerator` or :class:`LocalEnhancer`),
    ``discriminator`` (multi-scale, index 0 at full resolution) and, with ``instance_feat`` or
    ``label_feat``, ``encoder`` (:class:`Encoder`).

    Looks (with an encoder): ``generate(..., style=image)`` encodes a real image;
    :meth:`feature_map` builds the feature map from the clustered features that
    :func:`condsynth.methods.pix2pixhd_looks.compute_features` made, a cluster per class or
    per instance, chosen or random;
    :meth:`cluster_centres` lists the looks each class offers.
    """

    size_settings = ("model.n_downsample_global and model.n_local_enhancers (and "
                     "model.n_downsample_e with an encoder): 2**(sum) must divide the size")
    optim_defaults = OptimDefaults(lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999)

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        cfg: Pix2PixHDConfig = config.model
        _validate(config)
        label_channels = config.condition.input_channels
        self.uses_features = cfg.instance_feat or cfg.label_feat
        if self.uses_features:
            # The encoder is trained with G and needed at inference to encode style images.
            self.network_names = ("generator", "discriminator", "encoder")
            self.inference_networks = ("generator", "encoder")
        g_channels = label_channels + (cfg.feat_num if self.uses_features else 0)
        if cfg.n_local_enhancers == 0:
            self.generator = GlobalGenerator(g_channels, 3, cfg.ngf, cfg.n_downsample_global,
                                             cfg.n_blocks_global, cfg.norm)
        else:
            self.generator = LocalEnhancer(g_channels, 3, cfg.ngf, cfg.n_downsample_global,
                                           cfg.n_blocks_global, cfg.n_local_enhancers,
                                           cfg.n_blocks_local, cfg.norm)
        # D judges (condition, image) pairs; it never sees the encoded features.
        self.discriminator = MultiscaleDiscriminator(
            label_channels + 3, num_d=cfg.num_d, ndf=cfg.ndf, num_downsampling=cfg.n_layers_d,
            norm=cfg.norm, normed_conv_bias=True, padding=2, max_channels=512)
        self.encoder = (Encoder(3, cfg.feat_num, cfg.nef, cfg.n_downsample_e, cfg.norm)
                        if self.uses_features else None)
        for name in self.network_names:
            _init_pix2pixhd(getattr(self, name))
        self._centres: dict[int, np.ndarray] = {}
        self._vgg: list[VGG19Loss] = []       # built on the first G step; never saved
        self._global_frozen = False

    # ----------------------------------------------------------------------------- inputs
    def size_multiple(self) -> int:
        cfg: Pix2PixHDConfig = self.config.model
        multiple = 2 ** (cfg.n_downsample_global + cfg.n_local_enhancers)
        return max(multiple, 2 ** cfg.n_downsample_e) if self.uses_features else multiple

    def _check_size(self, height: int, width: int, source: str) -> None:
        m = self.size_multiple()
        if height % m or width % m:
            raise DataError(
                f"{source}: size {width}x{height} (width x height) is not a multiple of {m}, "
                f"which this pix2pixHD model's down-sampling needs (2**(n_downsample_global + "
                f"n_local_enhancers), 2**n_downsample_e with an encoder). Fix: resize or crop "
                f"to {width // m * m or m}x"
                f"{height // m * m or m} (the dataset does so when given size_multiple).")

    def _pool_ids(self, label: Tensor, instance: Tensor | None, source: str) -> Tensor:
        """The ids the encoder averages over: classes with ``label_feat``, else instances."""
        if self.config.model.label_feat:
            return label
        if instance is None:
            raise DataError(f"{source}: this model encodes instance-wise features "
                            "(instance_feat) and needs the instance map. Fix: pass it.")
        return instance

    def _condition(self, label: Tensor, instance: Tensor | None, source: str) -> Tensor:
        key = batch_key(self.config.condition)
        condition = self.condition({key: label, "instance": instance, "path": source})
        self._check_size(condition.shape[-2], condition.shape[-1], source)
        return condition

    # ----------------------------------------------------------------------------- training
    def forward_generator(self, batch: Batch) -> dict[str, Tensor]:
        source = str(batch.get("path", "batch"))
        label = condition_of(batch, self.config.condition)
        condition = self._condition(label, batch.get("instance"), source)   # (B, L, H, W)
        out = {"condition": condition}
        g_input = condition
        if self.encoder is not None:
            # G(s, E(x)): the features of the real image, one vector per instance.
            ids = self._pool_ids(label, batch.get("instance"), source)
            out["features"] = self.encoder(batch["image"], ids)        # (B, feat_num, H, W)
            g_input = torch.cat([condition, out["features"]], 1)
        out["fake"] = self.generator(g_input)                         # (B, 3, H, W)
        return out

    def phases(self) -> list[Phase]:
        """The official iteration computes G's output once, steps G, then steps D on that
        (pre-step) fake; the default ``phase_losses`` caches the output for both, so only the
        order changes. D's weights are the same in both phases: G's phase freezes D."""
        if self.config.model.step_order == "official":
            return generator_first()
        return super().phases()

    def _discriminate(self, discriminator: nn.Module, condition: Tensor, fake: Tensor,
                      real: Tensor) -> tuple[list[list[Tensor]], list[list[Tensor]]]:
        """D on (condition, fake) and (condition, real). With instance norm one forward on the
        two concatenated along the batch is exact (statistics are per sample) and keeps a
        distributed D to one forward per step; batch norm would mix them, so it gets two."""
        fake_pair = torch.cat([condition, fake], 1)
        real_pair = torch.cat([condition, real], 1)
        if self.config.model.norm == "batch":
            return discriminator(fake_pair), discriminator(real_pair)
        both = discriminator(torch.cat([fake_pair, real_pair], 0))
        n = fake.shape[0]
        return ([[f[:n] for f in scale] for scale in both],
                [[f[n:] for f in scale] for scale in both])

    def discriminator_step(self, batch: Batch, out: dict[str, Tensor]) -> dict[str, Tensor]:
        mode = self.config.model.gan_mode
        pred_fake, pred_real = self._discriminate(self.discriminator, out["condition"],
                                                  out["fake"].detach(), batch["image"])
        # The official train loop halves the sum of the two: (D_fake + D_real) * 0.5.
        return {"d_fake": 0.5 * d_adversarial_loss(pred_fake, False, mode),
                "d_real": 0.5 * d_adversarial_loss(pred_real, True, mode,
                                                   1.0 - self.config.model.label_smoothing)}

    def generator_step(self, batch: Batch, out: dict[str, Tensor]) -> dict[str, Tensor]:
        cfg: Pix2PixHDConfig = self.config.model
        condition, fake, real = out["condition"], out["fake"], batch["image"]
        with self.frozen(self.discriminator) as discriminator:
            pred_fake = discriminator(torch.cat([condition, fake], 1))
            losses = {"g_gan": g_adversarial_loss(pred_fake, cfg.gan_mode)}
            if cfg.feature_matching:
                # The real features are only targets: no graph is needed for them.
                with torch.no_grad():
                    pred_real = discriminator(torch.cat([condition, real], 1))
                losses["g_feat"] = cfg.lambda_feat * feature_matching_loss(
                    pred_fake, pred_real, layer_weight=4.0 / (cfg.n_layers_d + 1),
                    scale_weight=1.0 / cfg.num_d)
        if cfg.vgg_loss:
            losses["g_vgg"] = cfg.lambda_feat * self._vgg_loss(fake.device)(fake, real)
        return losses

    def _vgg_loss(self, device: torch.device) -> VGG19Loss:
        """VGG19 is built on first use, so inference never needs its weights."""
        if not self._vgg:
            self._vgg.append(VGG19Loss(self.config.model.vgg_weights))
        vgg = self._vgg[0]
        if next(vgg.parameters()).device != device:
            vgg.to(device)
        return vgg

    def _frozen_while_fixing_global(self) -> list[nn.Parameter]:
        """Every generator parameter but the outermost enhancer's (the official
        ``niter_fix_global`` trains only the parameters named ``model<n_local_enhancers>_*``)."""
        generator = self.networks()["generator"]
        if not isinstance(generator, LocalEnhancer):
            return []
        keep = {id(p) for p in generator.branches[-1].parameters()}
        return [p for p in generator.parameters() if id(p) not in keep]

    def on_step(self, step: int, max_steps: int) -> None:
        """Staged training: G1 (and the inner enhancers) stay fixed for the first
        ``niter_fix_global`` steps. Frozen parameters get no gradient, so Adam starts their
        state fresh when they join, as the official optimizer rebuilt at that point does.

        Under DistributedDataParallel the generator then has unused parameters for a while:
        wrap it with ``find_unused_parameters=True`` when ``niter_fix_global > 0``.
        """
        fix = step < self.config.model.niter_fix_global
        if fix != self._global_frozen:
            for p in self._frozen_while_fixing_global():
                p.requires_grad_(not fix)
            self._global_frozen = fix

    def may_leave_parameters_unused(self) -> bool:
        return self.config.model.niter_fix_global > 0

    def initialize_from(self, run_dir: Path, networks: dict[str, str] | None = None,
                        ) -> list[str]:
        """A local-enhancer run starts from a global run (:func:`init_from_global`); any other
        run from one of the same architecture."""
        if networks is None and isinstance(self.networks()["generator"], LocalEnhancer):
            return init_from_global(self, run_dir)
        return super().initialize_from(run_dir, networks)

    # ----------------------------------------------------------------------------- inference
    @inference
    def generate(self, cond: Tensor | None = None, *, batch_size: int | None = None,
                 z: Tensor | None = None, style: Tensor | None = None,
                 instance: Tensor | None = None) -> Tensor:
        """Synthesize images (see :meth:`Method.generate`; ``cond`` is the label map).

        With an encoder the look comes from, in this order: ``z``, a ready (B, feat_num, H, W)
        feature map (e.g. from :meth:`feature_map`); ``style``, a (B, 3, H, W) image in
        [-1, 1] whose instance-wise features are encoded (the official ``--use_encoded_image``);
        else a random cluster per instance from the run's clustered features (all zeros, with
        a warning, while the run has none).
        """
        device = self.device
        label = cond.to(device)
        instance = None if instance is None else instance.to(device)
        condition = self._condition(label, instance, "label map")
        if self.encoder is None:
            if style is not None or z is not None:
                raise CondsynthError("this pix2pixHD model has no feature encoder (it was "
                                     "trained without instance_feat/label_feat), so a style "
                                     "image or feature map cannot steer it. Fix: leave them out.")
            return self.generator(condition)
        if z is not None:
            features = z.to(device, condition.dtype)
            expected = (condition.shape[0], self.config.model.feat_num, *condition.shape[2:])
            if tuple(features.shape) != expected:
                raise DataError(f"feature map (z) of shape {tuple(features.shape)}, expected "
                                f"{expected}. Fix: build it with feature_map().")
        elif style is not None:
            style = style.to(device, condition.dtype)
            if style.shape != (condition.shape[0], 3, *condition.shape[2:]):
                raise DataError(f"style image of shape {tuple(style.shape)} does not match the "
                                f"label map {tuple(label.shape)}. Fix: resize the style image to "
                                "the label map's size.")
            features = self.encoder(style, self._pool_ids(label, instance, "label map"))
        elif self._centres:
            features = self.feature_map(label, instance)
        else:
            # No looks yet (before compute_features): the neutral all-zero feature map, so that
            # samples during training and quick tries still work, with a word about why.
            warnings.warn("this pix2pixHD run has no clustered features yet, so every instance "
                          "gets the neutral (zero) feature vector. Run `condsynth features "
                          "RUN_DIR --data DIR` for looks, or give a style image.", UserWarning,
                          stacklevel=3)   # the caller of generate, past torch.no_grad
            features = condition.new_zeros(condition.shape[0], self.config.model.feat_num,
                                           *condition.shape[2:])
        return self.generator(torch.cat([condition, features], 1))

    def capabilities(self) -> frozenset[Capability]:
        extra = set()
        if self.uses_features:
            extra.add(Capability.STYLE_IMAGE)          # the instance features of a real image
        if self._centres:
            extra |= {Capability.CLUSTER_LOOKS, Capability.RANDOM_LOOKS}
        return super().capabilities() | extra

    def cluster_centres(self) -> dict[int, np.ndarray]:
        """The looks on offer: ``{class id: (K, feat_num) centres}`` from
        :func:`~condsynth.methods.pix2pixhd_looks.compute_features` (or an imported official
        ``features_clustered_*.npy``); empty before that."""
        return {c: v.copy() for c, v in sorted(self._centres.items())}

    def set_cluster_centres(self, centres: Mapping[int, np.ndarray]) -> None:
        """Install ``{class id: (K, feat_num)}`` centres (what
        :func:`~condsynth.methods.pix2pixhd_looks.compute_features` does)."""
        feat_num = self.config.model.feat_num
        checked = {}
        for c, v in centres.items():
            v = np.asarray(v, dtype=np.float32)
            if v.ndim != 2 or v.shape[1] != feat_num or not np.isfinite(v).all():
                raise CheckpointError(f"cluster centres of class {c}: expected a finite "
                                      f"(K, {feat_num}) array, found shape {v.shape}")
            checked[int(c)] = v
        self._centres = checked

    @torch.no_grad()
    def feature_map(self, label: Tensor, instance: Tensor | None = None,
                    looks: Mapping[int, int] | None = None,
                    instance_looks: Mapping[int, int] | None = None, seed: int | None = None,
                    random_per: Literal["instance", "class"] = "instance") -> Tensor:
        """The encoder-feature input built from the cluster centres: "pick a look".

        Args:
            label: (B, H, W) class ids (or the (B, C, H, W) source image of image conditions).
            instance: (B, H, W) instance ids (Cityscapes encoding); needed with instance_feat.
            looks: ``{class id: cluster index}``, the look of every instance of that class.
            instance_looks: ``{instance id: cluster index}``, overriding ``looks`` for one
                instance (ids as in the instance map; with ``label_feat`` these are class ids).
            seed: seed of the random choice for the rest; None draws it from torch's global
                generator, so ``torch.manual_seed`` makes a random look reproducible.
            random_per: a random look per ``instance`` (the official sampling) or one per
                ``class`` shared by its instances.
        Returns:
            (B, feat_num, H, W) on the model's device; classes without centres get zeros.
        """
        if self.encoder is None:
            raise CondsynthError("this pix2pixHD model has no feature encoder, so it has no "
                                 "looks to choose. Train it with model.instance_feat: true.")
        if not self._centres:
            raise CondsynthError(
                "this run holds no clustered features, so looks cannot be sampled. Fix: run "
                "`condsynth features RUN_DIR --data DIR` (compute_features) first, or give a "
                "style image.")
        # The one implementation, in numpy, which exported models use as well.
        ids = self._pool_ids(label, instance, "label map").to(torch.int64).cpu().numpy()
        if seed is None:
            seed = int(torch.randint(0, 2**62, ()).item())
        features = feature_map(ids, self._centres, self.config.model.feat_num, looks,
                               instance_looks, seed, random_per)
        return torch.from_numpy(features).to(self.device)

    # ----------------------------------------------------------------------------- run files
    def extra_files(self) -> dict[str, bytes]:
        if not self._centres:
            return {}
        buffer = io.BytesIO()
        np.savez(buffer, **{f"class_{c}": v for c, v in sorted(self._centres.items())})
        return {FEATURES_FILE: buffer.getvalue()}

    def load_extras(self, run_dir: Path) -> None:
        path = Path(run_dir) / FEATURES_FILE
        if not path.is_file():
            return
        try:
            with np.load(path, allow_pickle=False) as data:
                centres = {int(name.removeprefix("class_")): data[name] for name in data.files}
        except (OSError, ValueError) as err:
            raise CheckpointError(f"{path} could not be read ({err}). Fix: recompute it with "
                                  "`condsynth features`.") from None
        self.set_cluster_centres(centres)


def _validate(config: Config) -> None:
    cfg: Pix2PixHDConfig = config.model
    checks = [
        (cfg.n_local_enhancers >= 0, "model.n_local_enhancers must be >= 0"),
        (cfg.n_downsample_global >= 0 and cfg.n_blocks_global >= 0 and cfg.n_blocks_local >= 0,
         "model.n_downsample_global, n_blocks_global and n_blocks_local must be >= 0"),
        (cfg.num_d >= 1 and cfg.n_layers_d >= 1, "model.num_d and model.n_layers_d must be >= 1"),
        (cfg.ngf >= 1 and cfg.ndf >= 1 and cfg.nef >= 1, "model widths must be >= 1"),
        (cfg.feat_num >= 1 and cfg.n_clusters >= 1, "model.feat_num and n_clusters must be >= 1"),
        (not cfg.instance_feat or cfg.label_feat or config.condition.use_instance,
         "model.instance_feat pools the encoder features over instances and needs instance "
         "maps: set label.use_instance: true (or use model.label_feat)"),
        (not cfg.label_feat or config.condition.num_classes != 0,
         "model.label_feat pools the encoder features over classes and needs label maps "
         "(label.num_classes > 0)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


# ------------------------------------------------------------------------------------ staging


def init_from_global(method: Pix2PixHD, global_run_dir: str | Path) -> list[str]:
    """Start a local-enhancer run from a trained global run (the paper's staged training; the
    official ``--load_pretrain``).

    G1 takes the global run's generator without its output layer (which the coarse-to-fine
    generator drops). Discriminator scales are copied by resolution: the global run's scale
    ``d`` (trained at half resolution) becomes scale ``d + n_local_enhancers`` when shapes
    match, as the official partial loading does; the encoder is copied when it fits.

    Returns the names of what was copied (``generator.global_generator``,
    ``discriminator.discriminators.1``, ``encoder``, ...).
    """
    from condsynth import checkpoint

    cfg: Pix2PixHDConfig = method.config.model
    run = Path(global_run_dir)
    source = checkpoint.read_config(run)
    if source.method != "pix2pixhd":
        raise CheckpointError(f"{run} holds a {source.method} run, not a pix2pixhd one.")
    scfg: Pix2PixHDConfig = source.model
    generator = method.networks()["generator"]
    if not isinstance(generator, LocalEnhancer):
        raise ConfigError("init_from_global starts a local-enhancer run (model.n_local_enhancers "
                          ">= 1); this run has none.")
    if scfg.n_local_enhancers != 0:
        raise CheckpointError(f"{run} is not a global-generator run (its n_local_enhancers is "
                              f"{scfg.n_local_enhancers}). Fix: give the run trained with "
                              "model.n_local_enhancers: 0.")
    wanted = cfg.ngf * 2 ** cfg.n_local_enhancers
    needed = {"ngf": wanted, "n_downsample_global": cfg.n_downsample_global,
              "n_blocks_global": cfg.n_blocks_global, "norm": cfg.norm}
    mismatch = [(name, getattr(scfg, name), value) for name, value in needed.items()
                if getattr(scfg, name) != value]
    if source.condition.input_channels != method.config.condition.input_channels:
        mismatch.append(("label input channels", source.condition.input_channels,
                         method.config.condition.input_channels))
    if method.uses_features != (scfg.instance_feat or scfg.label_feat) or (
            method.uses_features and scfg.feat_num != cfg.feat_num):
        mismatch.append(("encoded features", scfg.feat_num if scfg.instance_feat else 0,
                         cfg.feat_num if method.uses_features else 0))
    if mismatch:
        shown = ", ".join(f"{n} {a} (global run) vs {b} (needed)" for n, a, b in mismatch)
        raise CheckpointError(f"{run} does not fit as G1 of this run: {shown}. Fix: train the "
                              f"global run with ngf = model.ngf * 2**n_local_enhancers = "
                              f"{wanted} and the same labels and depths.")
    in_channels = source.condition.input_channels + (scfg.feat_num if method.uses_features else 0)
    full = GlobalGenerator(in_channels, 3, scfg.ngf, scfg.n_downsample_global,
                           scfg.n_blocks_global, scfg.norm)
    checkpoint.load_network(run, "generator", full)
    state = {k: v for k, v in full.state_dict().items() if not k.startswith("to_image.")}
    generator.global_generator.load_state_dict(state, strict=True)
    copied = ["generator.global_generator"]

    theirs = MultiscaleDiscriminator(source.condition.input_channels + 3, scfg.num_d, scfg.ndf,
                                     scfg.n_layers_d, scfg.norm, normed_conv_bias=True, padding=2)
    if checkpoint.has_network(run, "discriminator"):
        checkpoint.load_network(run, "discriminator", theirs)
        ours = method.networks()["discriminator"].discriminators
        for d, scale in enumerate(theirs.discriminators):
            target = d + cfg.n_local_enhancers
            if target < len(ours) and _same_shapes(ours[target], scale):
                ours[target].load_state_dict(scale.state_dict())
                copied.append(f"discriminator.discriminators.{target}")
    if method.encoder is not None and checkpoint.has_network(run, "encoder"):
        encoder = Encoder(3, scfg.feat_num, scfg.nef, scfg.n_downsample_e, scfg.norm)
        checkpoint.load_network(run, "encoder", encoder)
        if _same_shapes(method.networks()["encoder"], encoder):
            method.networks()["encoder"].load_state_dict(encoder.state_dict())
            copied.append("encoder")
    return copied


def _same_shapes(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(sa[k].shape == sb[k].shape for k in sa)
