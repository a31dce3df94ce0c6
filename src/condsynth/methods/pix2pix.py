"""pix2pix: Image-to-Image Translation with Conditional Adversarial Networks (Isola et al.,
CVPR 2017), the baseline of the pix2pixHD paper.

U-Net generator with dropout as the noise source, a PatchGAN discriminator that judges
(condition, image) pairs, and the loss GAN + lambda * L1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from condsynth.config import Config, ranged
from condsynth.discriminators import PatchDiscriminator
from condsynth.errors import ConfigError
from condsynth.layers.init import init_weights
from condsynth.layers.norms import Norm
from condsynth.layers.unet import UNetGenerator, depth_for_size
from condsynth.losses import GanMode, d_adversarial_loss, g_adversarial_loss
from condsynth.methods.base import Batch, Capability, Method, OptimDefaults, inference
from condsynth.registry import register_method


@dataclass
class Pix2PixConfig:
    ngf: int = ranged(64, at_least=1)  # generator width
    ndf: int = ranged(64, at_least=1)  # discriminator width
    # U-Net depth; None = what the training size takes (8 for 256x256: a 1x1 bottleneck)
    num_downs: int | None = ranged(None, at_least=2)
    n_layers_d: int = ranged(3, at_least=1)  # PatchGAN stride-2 layers (3 = the 70x70 PatchGAN)
    norm: Norm = "batch"
    dropout: bool = True           # dropout in the decoder, the paper's noise
    gan_mode: GanMode = "vanilla"
    lambda_l1: float = 100.0
    label_smoothing: float = ranged(0.0, at_least=0, below=1)  # one-sided label smoothing
                                   # (Salimans et al., 2016): D's real targets 1 - s; vanilla
                                   # and lsgan losses only; 0 = off
    test_time_noise: bool = True   # at inference keep dropout on and use batch statistics,
                                   # as the paper does; false = deterministic eval mode


@register_method("pix2pix", Pix2PixConfig)
class Pix2Pix(Method):
    """pix2pix. Batches hold ``label`` (+ ``instance``) or ``source``, and ``image``."""

    size_settings = "model.num_downs: 2**num_downs must divide the size"
    optim_defaults = OptimDefaults(lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999)

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        cfg: Pix2PixConfig = config.model
        if cfg.label_smoothing and cfg.gan_mode not in ("vanilla", "lsgan"):
            raise ConfigError(f"model.label_smoothing needs the vanilla or lsgan loss, not "
                              f"model.gan_mode={cfg.gan_mode}. Fix: set model.label_smoothing=0 "
                              "or model.gan_mode=vanilla.")
        if cfg.num_downs is None:             # written back: config.yaml holds the depth
            cfg.num_downs = depth_for_size(*config.data.crop_hw)
        in_channels = config.condition.input_channels
        self.generator = UNetGenerator(in_channels, 3, cfg.ngf, cfg.num_downs, cfg.norm,
                                       cfg.dropout)
        self.discriminator = PatchDiscriminator(
            in_channels + 3, cfg.ndf, cfg.n_layers_d, norm=cfg.norm,
            normed_conv_bias=cfg.norm == "instance", padding=1, max_channels=8 * cfg.ndf)
        init_weights(self.generator)
        init_weights(self.discriminator)

    def size_multiple(self) -> int:
        return 2 ** self.config.model.num_downs

    def forward_generator(self, batch: Batch) -> dict[str, Tensor]:
        condition = self.condition(batch)
        return {"condition": condition, "fake": self.generator(condition)}

    # The default phases are the reference code's order (pytorch-CycleGAN-and-pix2pix):
    # one forward of G, D's step on the detached fake with its loss halved, then G's step
    # against the updated D.

    def discriminator_step(self, batch: Batch, out: dict[str, Tensor]) -> dict[str, Tensor]:
        mode = self.config.model.gan_mode
        condition, fake = out["condition"], out["fake"].detach()
        # Real and fake go through D separately: with batch norm, one joint batch would mix
        # their statistics.
        # The last of the discriminator's feature maps is its patch logits.
        pred_fake = self.discriminator(torch.cat([condition, fake], 1))[-1]
        pred_real = self.discriminator(torch.cat([condition, batch["image"]], 1))[-1]
        return {"d_fake": 0.5 * d_adversarial_loss(pred_fake, False, mode),
                "d_real": 0.5 * d_adversarial_loss(pred_real, True, mode,
                                                   1.0 - self.config.model.label_smoothing)}

    def generator_step(self, batch: Batch, out: dict[str, Tensor]) -> dict[str, Tensor]:
        cfg: Pix2PixConfig = self.config.model
        with self.frozen(self.discriminator) as discriminator:
            pred_fake = discriminator(torch.cat([out["condition"], out["fake"]], 1))[-1]
        return {"g_gan": g_adversarial_loss(pred_fake, cfg.gan_mode),
                "g_l1": cfg.lambda_l1 * F.l1_loss(out["fake"], batch["image"])}

    @inference
    def generate(self, cond: Tensor | None = None, *, batch_size: int | None = None,
                 z: Tensor | None = None, style: Tensor | None = None,
                 instance: Tensor | None = None) -> Tensor:
        return self.run_generator(self.encode(cond, instance), self.config.model.test_time_noise)

    def capabilities(self) -> frozenset[Capability]:
        # Test-time dropout makes another seed another picture.
        noisy = self.config.model.test_time_noise and self.has_dropout()
        return super().capabilities() | ({Capability.RANDOM_LOOKS} if noisy else set())
