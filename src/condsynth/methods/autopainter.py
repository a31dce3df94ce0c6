"""Auto-painter: Cartoon Image Generation from Sketch by Using Conditional Generative
Adversarial Networks (Liu, Qin, Luo and Wang, 2017), with optional colour hints.

A U-Net generator (pix2pix's, whose skip connections carry the sketch's lines straight to the
output) turns a line sketch into a colour picture; a PatchGAN discriminator judges (sketch,
picture) pairs. The generator's loss is

    lambda_adv * GAN + lambda_pix * L1 + lambda_feat * feature + lambda_tv * total variation

where the feature loss is the mean squared distance of VGG16's fourth-block activations
(relu4_3; :class:`condsynth.losses.VGG16FeatureLoss`) and the total variation is anisotropic,
absolute neighbour differences (``tv_norm: anisotropic``, the default), or the root of squared
ones (``isotropic``, one reading of the paper's formula). A weight of 0 switches its term off
(it is then not computed, and VGG16 is never loaded), so the paper's ablation (pix2pix, +TV,
+feature, full) is four configs: the ``autopainter_*`` presets.

Colour hints (an extension users of sketch colorization expect): four more input channels,
hint RGB and a hint mask (:mod:`condsynth.data.sketches`). Training samples a few strokes of the
real image's colours, none for a share of the items, so the model colours without hints too.

Batches: ``source`` (B, 1, H, W) sketch in [-1, 1] (white paper 1, black lines -1, from the
``sketch`` layout with ``data.line_extraction`` or from ``sketch_pairs``), ``image``
(B, 3, H, W), optionally ``hints`` (B, 4, H, W); without ``hints`` they are sampled.

Default weights. The paper's text was not at hand to confirm its values; the official code
uses GAN 1, L1 50, TV 1e-3 on the *sum* of squared neighbour differences and feature 1e-4 on
the mean absolute difference of conv3_2 activations of 0-255 input. lambda_adv = 1 and
lambda_pix = 50 carry over (both terms are means there too). The feature and TV terms here are
means with another norm, so their weights are our own choice: lambda_feat = 1 (MSE of relu4_3
activations of ImageNet-normalized input is of order 0.1-1, a few percent to a tenth of the L1
term) and lambda_tv = 5 (per-pixel TV of a photo is about 0.05-0.1: a term of 0.25-0.5 that
flattens noise without washing out edges). Raise them for a flatter, cartoon-like look.

Where this differs from the official code (TensorFlow, irfanICMLL/Auto_painter): it uses the
shared U-Net with pix2pix's 4x4 kernels (the official code uses 3x3 and ngf 48), instance norm
in the discriminator so that real and fake pairs go through it in one batch (one forward per
step, as distributed training needs; a joint batch under batch norm would mix their
statistics), the feature loss at relu4_3 with MSE as the paper describes (the official code
takes the L1 of conv3_2), and mean-normalized TV and feature terms with their own weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from condsynth.config import Config, ranged
from condsynth.data.sketches import HINT_CHANNELS, sample_hints
from condsynth.discriminators import DiscriminatorNorm, PatchDiscriminator
from condsynth.errors import ConfigError, DataError
from condsynth.layers.init import init_weights
from condsynth.layers.norms import Norm
from condsynth.layers.unet import UNetGenerator, depth_for_size
from condsynth.losses import (
    GanMode,
    VGG16FeatureLoss,
    d_adversarial_loss,
    g_adversarial_loss,
    isotropic_total_variation,
    total_variation,
)
from condsynth.methods.base import Batch, Capability, Method, OptimDefaults, inference
from condsynth.registry import register_method


@dataclass
class AutopainterConfig:
    ngf: int = ranged(64, at_least=1)  # generator width
    ndf: int = ranged(64, at_least=1)  # discriminator width
    # U-Net depth; None = what the training size takes (8 for 256x256, 9 for 512x512)
    num_downs: int | None = ranged(None, at_least=2)
    n_layers_d: int = ranged(3, at_least=1)  # PatchGAN stride-2 layers (3 = the 70x70 PatchGAN)
    norm: Norm = "batch"           # generator normalization, as pix2pix
    norm_d: DiscriminatorNorm = "instance"   # see the module docstring
    dropout: bool = True           # dropout in the decoder, pix2pix's noise
    gan_mode: GanMode = "vanilla"
    lambda_adv: float = 1.0        # GAN term (official code: 1)
    lambda_pix: float = 50.0       # L1 term (official code: 50; pix2pix: 100)
    lambda_feat: float = 1.0       # VGG16 relu4_3 MSE (needs model.vgg_weights or the cache)
    lambda_tv: float = 5.0         # total variation of the output
    tv_norm: Literal["isotropic", "anisotropic"] = "anisotropic"  # or the isotropic reading
    vgg_weights: str | None = None  # torchvision VGG16 state dict; None = torchvision's cache
    hints: bool = True             # colour-hint input channels (RGB + mask)
    hint_max_strokes: int = 16     # training: at most this many hint strokes per item
    hint_none_prob: float = 0.3    # training: share of items given no hint at all
    test_time_noise: bool = False  # at inference keep dropout and batch statistics (official
                                   # code); false = deterministic eval mode


@register_method("autopainter", AutopainterConfig)
class Autopainter(Method):
    """Auto-painter. ``generate(sketch, hints=None)``: (B, 1, H, W) sketch in [-1, 1] and
    optional (B, 4, H, W) hints → (B, 3, H, W) picture in [-1, 1]."""

    size_settings = "model.num_downs: 2**num_downs must divide the size"
    optim_defaults = OptimDefaults(lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999)
    condition_kinds = ("image",)
    config_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "condition": {"kind": "image", "image_channels": 1},
        "data": {"layout": "sketch", "line_extraction": "xdog_random"},
    }

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        cfg: AutopainterConfig = config.model
        if config.condition.image_channels != 1:
            raise ConfigError(
                "autopainter takes a one-channel sketch as its condition, but the config has "
                f"condition.image_channels {config.condition.image_channels}. Fix: set "
                "condition.kind=image and condition.image_channels=1 (the autopainter presets "
                "do).")
        for name in ("lambda_adv", "lambda_pix", "lambda_feat", "lambda_tv", "hint_max_strokes"):
            if getattr(cfg, name) < 0:
                raise ConfigError(f"model.{name} is {getattr(cfg, name)}; it must be >= 0.")
        if not 0 <= cfg.hint_none_prob <= 1:
            raise ConfigError(f"model.hint_none_prob is {cfg.hint_none_prob}; it is a share of "
                              "training items, between 0 and 1.")
        if config.data.layout == "sketch" and config.data.line_extraction == "none":
            raise ConfigError(f"{config.data.root or 'the dataset'}: the sketch layout is a "
                              "folder of pictures, and data.line_extraction=none draws no "
                              "sketches from them, so there is no condition to train on. Fix: "
                              "data.line_extraction=xdog_random (or xdog), or sketch/colour "
                              "pairs from `condsynth data sketches` (data.layout=sketch_pairs).")
        if cfg.num_downs is None:             # written back: config.yaml holds the depth
            cfg.num_downs = depth_for_size(*config.data.crop_hw)
        self.hint_channels = HINT_CHANNELS if cfg.hints else 0
        in_channels = 1 + self.hint_channels
        self.generator = UNetGenerator(in_channels, 3, cfg.ngf, cfg.num_downs, cfg.norm,
                                       cfg.dropout)
        self.discriminator = PatchDiscriminator(
            in_channels + 3, cfg.ndf, cfg.n_layers_d, norm=cfg.norm_d,
            normed_conv_bias=cfg.norm_d in ("instance", "none"), padding=1,
            max_channels=8 * cfg.ndf)
        init_weights(self.generator)
        init_weights(self.discriminator)
        self.feature_loss: VGG16FeatureLoss | None = None   # built on first use (training only)

    def size_multiple(self) -> int:
        return 2 ** self.config.model.num_downs

    # ----------------------------------------------------------------------------- training
    def forward_generator(self, batch: Batch) -> dict[str, Tensor]:
        sketch = self.condition(batch)                                    # (B, 1, H, W)
        condition = sketch
        if self.hint_channels:
            hints = batch.get("hints")
            if hints is None:
                cfg: AutopainterConfig = self.config.model
                hints = sample_hints(batch["image"], cfg.hint_max_strokes, cfg.hint_none_prob)
            condition = torch.cat([sketch, hints.to(sketch.dtype)], 1)   # (B, 5, H, W)
        return {"condition": condition, "fake": self.generator(condition)}

    def discriminator_step(self, batch: Batch, out: dict[str, Tensor]) -> dict[str, Tensor]:
        mode = self.config.model.gan_mode
        condition = out["condition"]
        # One forward over fake and real pairs together (instance norm keeps them apart).
        pairs = torch.cat([torch.cat([condition, out["fake"].detach()], 1),
                           torch.cat([condition, batch["image"]], 1)], 0)
        pred_fake, pred_real = self.discriminator(pairs)[-1].chunk(2)   # (B, 1, h, w) each
        # The official code's D loss is the sum of the two terms (pix2pix halves it). The
        # order is the default one, as there: D's step first, then G's, on one forward.
        return {"d_fake": d_adversarial_loss(pred_fake, False, mode),
                "d_real": d_adversarial_loss(pred_real, True, mode)}

    def generator_step(self, batch: Batch, out: dict[str, Tensor]) -> dict[str, Tensor]:
        cfg: AutopainterConfig = self.config.model
        fake, real = out["fake"], batch["image"]
        losses: dict[str, Tensor] = {}
        if cfg.lambda_adv > 0:
            with self.frozen(self.discriminator) as discriminator:
                pred_fake = discriminator(torch.cat([out["condition"], fake], 1))[-1]
            losses["g_gan"] = cfg.lambda_adv * g_adversarial_loss(pred_fake, cfg.gan_mode)
        if cfg.lambda_pix > 0:
            losses["g_l1"] = cfg.lambda_pix * F.l1_loss(fake, real)
        if cfg.lambda_feat > 0:
            losses["g_feat"] = cfg.lambda_feat * self.vgg16()(fake, real)
        if cfg.lambda_tv > 0:
            tv = isotropic_total_variation if cfg.tv_norm == "isotropic" else total_variation
            losses["g_tv"] = cfg.lambda_tv * tv(fake)
        if not losses:
            raise ConfigError("every generator loss weight (model.lambda_adv, lambda_pix, "
                              "lambda_feat, lambda_tv) is 0: nothing would train the generator.")
        return losses

    def vgg16(self) -> VGG16FeatureLoss:
        """The feature-loss network, loaded from the weights file on first use."""
        if self.feature_loss is None:
            self.feature_loss = VGG16FeatureLoss(self.config.model.vgg_weights).to(self.device)
        return self.feature_loss

    # ----------------------------------------------------------------------------- inference
    @inference
    def generate(self, cond: Tensor | None = None, *, batch_size: int | None = None,
                 z: Tensor | None = None, style: Tensor | None = None,
                 instance: Tensor | None = None, hints: Tensor | None = None) -> Tensor:
        """Colour sketches.

        Args:
            cond: the sketches, (B, 1, H, W) float in [-1, 1], white paper 1, black lines -1
                (see :mod:`condsynth.data.sketches` to read and clean user drawings).
            batch_size, z, style, instance: unused (Auto-painter has no latent, style input
                or instance maps).
            hints: (B, 4, H, W) colour hints (RGB in [-1, 1], 0 where none, then a 0/1 mask), or
                None to colour without hints.
        Returns:
            (B, 3, H, W) pictures in [-1, 1].
        """
        if cond is None:
            raise DataError("Auto-painter colours a sketch: pass one (B, 1, H, W)")
        sketch = cond.to(self.device)
        if sketch.dim() != 4 or sketch.shape[1] != 1 or not sketch.is_floating_point():
            raise DataError(f"expected sketches of shape (B, 1, H, W) in [-1, 1], found "
                            f"{tuple(sketch.shape)} {sketch.dtype}")
        condition = sketch
        if self.hint_channels:
            wanted = (sketch.shape[0], HINT_CHANNELS, *sketch.shape[2:])
            if hints is None:
                hints = sketch.new_zeros(wanted)
            elif tuple(hints.shape) != wanted:
                raise DataError(f"hints of shape {tuple(hints.shape)} do not fit sketches of "
                                f"shape {tuple(sketch.shape)}; expected {wanted}.")
            condition = torch.cat([sketch, hints.to(sketch)], 1)
        elif hints is not None:
            raise DataError("this model was trained without colour hints (model.hints false); "
                            "it cannot use a hint image. Fix: leave the hints out.")
        return self.run_generator(condition, self.config.model.test_time_noise)

    def capabilities(self) -> frozenset[Capability]:
        cfg: AutopainterConfig = self.config.model
        extra = {Capability.HINTS} if cfg.hints else set()
        if cfg.test_time_noise and self.has_dropout():
            extra.add(Capability.RANDOM_LOOKS)
        return super().capabilities() | extra
