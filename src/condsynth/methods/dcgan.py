"""DCGAN: Unsupervised Representation Learning with Deep Convolutional Generative Adversarial
Networks (Radford, Metz and Chintala, ICLR 2016).

The paper's architecture rules: strided convolutions in D and fractionally-strided ones in G
(no pooling), batch norm in both except D's input layer and G's output layer, no fully
connected hidden layers, ReLU in G with a Tanh output, LeakyReLU 0.2 in D; weights N(0, 0.02);
Adam lr 2e-4, beta1 0.5; z of 100 numbers from N(0, I). The layer plan is the one of the
PyTorch reference (4x4 kernels: z → 4x4 by a stride-1 transposed convolution, then doubling
up to the image size; D mirrors it down to 4x4 and one logit), so any power-of-two size from 8
works: 32x32 and 64x64 are the paper's.

Unconditional (``condition.kind: none``) or class-conditional (``condition.kind: class``): the
class, one-hot, is appended to z and to D's input as constant planes, as in the paper's
conditional MNIST model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condsynth.config import Config
from condsynth.errors import ConfigError
from condsynth.layers.init import init_weights
from condsynth.methods.base import Batch, Capability, Method, OptimDefaults, inference
from condsynth.registry import register_method


@dataclass
class DCGANConfig:
    z_dim: int = 100               # length of z ~ N(0, I)
    ngf: int = 64                  # channels of G's last hidden layer (doubling towards z)
    ndf: int = 64                  # channels of D's first layer (doubling towards the logit)


class DCGANGenerator(nn.Module):
    """(B, z_dim + classes) codes → (B, channels, size, size) images in [-1, 1]."""

    def __init__(self, z_dim: int, channels: int, size: int, ngf: int) -> None:
        super().__init__()
        ups = int(math.log2(size)) - 2                   # 4x4 → size: this many doublings
        width = ngf * 2 ** (ups - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim, width, 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(width), nn.ReLU(True)]        # (B, width, 4, 4)
        for _ in range(ups - 1):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.layers = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.layers(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    """(B, channels (+ class planes), size, size) → (B,) logits of "real"."""

    def __init__(self, channels: int, size: int, ndf: int) -> None:
        super().__init__()
        downs = int(math.log2(size)) - 2                 # size → 4x4
        layers: list[nn.Module] = [nn.Conv2d(channels, ndf, 4, 2, 1, bias=False),
                                   nn.LeakyReLU(0.2, True)]      # no batch norm at the input
        width = ndf
        for _ in range(downs - 1):
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(width * 2), nn.LeakyReLU(0.2, True)]
            width *= 2
        layers.append(nn.Conv2d(width, 1, 4, 1, 0, bias=False))       # (B, 1, 1, 1)
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x).flatten()


@register_method("dcgan", DCGANConfig)
class DCGAN(Method):
    """DCGAN. Batches hold ``image`` (+ ``class`` when class-conditional)."""

    optim_defaults = OptimDefaults(lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999)
    condition_kinds = ("none", "class")
    config_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "condition": {"kind": "none"},
        "data": {"load_size": 64, "crop_size": 64, "preprocess": "fixed", "flip": False},
        "train": {"batch_size": 128, "decay_start": 1.0},     # a constant learning rate
    }

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        cfg: DCGANConfig = config.model
        size = config.data.crop_size
        if size < 8 or size & (size - 1) or config.data.aspect_ratio != 1.0:
            raise ConfigError(f"dcgan makes square images whose side is a power of two (8, 16, "
                              f"32, 64, ...); data.crop_size is {size} and data.aspect_ratio "
                              f"{config.data.aspect_ratio}. Fix: --size 32 or --size 64.")
        if cfg.z_dim < 1 or cfg.ngf < 1 or cfg.ndf < 1:
            raise ConfigError("model.z_dim, model.ngf and model.ndf must be at least 1")
        self.num_classes = config.condition.input_channels if self.conditional else 0
        channels = config.data.channels
        self.generator = DCGANGenerator(cfg.z_dim + self.num_classes, channels, size, cfg.ngf)
        self.discriminator = DCGANDiscriminator(channels + self.num_classes, size, cfg.ndf)
        init_weights(self.generator)
        init_weights(self.discriminator)

    @property
    def conditional(self) -> bool:
        return self.config.condition.kind == "class"

    # ----------------------------------------------------------------------------- networks
    def _codes(self, z: Tensor, classes: Tensor | None) -> Tensor:
        return z if classes is None else torch.cat([z, classes], 1)

    def _judge(self, discriminator: nn.Module, image: Tensor, classes: Tensor | None) -> Tensor:
        if classes is not None:
            planes = classes[:, :, None, None].expand(-1, -1, *image.shape[-2:])
            image = torch.cat([image, planes.to(image.dtype)], 1)
        return discriminator(image)

    def discriminate(self, image: Tensor, cond: Tensor | None = None) -> Tensor:
        classes = None
        if self.conditional:          # a neutral condition when none is given (the probe)
            classes = (self.encode(cond) if cond is not None
                       else image.new_zeros(image.shape[0], self.num_classes))
        return self._judge(self.discriminator, image, classes)

    # ----------------------------------------------------------------------------- training
    def forward_generator(self, batch: Batch) -> dict[str, Tensor]:
        classes = self.condition(batch)                                  # (B, K) or None
        z = torch.randn(batch["image"].shape[0], self.config.model.z_dim,
                        device=batch["image"].device)
        return {"classes": classes, "fake": self.generator(self._codes(z, classes))}

    def discriminator_step(self, batch: Batch, out: dict[str, Tensor]) -> dict[str, Tensor]:
        fake = self._judge(self.discriminator, out["fake"].detach(), out["classes"])
        real = self._judge(self.discriminator, batch["image"], out["classes"])
        return {"d_real": F.binary_cross_entropy_with_logits(real, torch.ones_like(real)),
                "d_fake": F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))}

    def generator_step(self, batch: Batch, out: dict[str, Tensor]) -> dict[str, Tensor]:
        with self.frozen(self.discriminator) as discriminator:
            fake = self._judge(discriminator, out["fake"], out["classes"])
        # The non-saturating loss: G maximizes log D(G(z)).
        return {"g_gan": F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))}

    # ----------------------------------------------------------------------------- inference
    def latent_size(self) -> int:
        return self.config.model.z_dim

    def capabilities(self) -> frozenset[Capability]:
        return super().capabilities() | {Capability.LATENT, Capability.RANDOM_LOOKS}

    @inference
    def generate(self, cond: Tensor | None = None, *, batch_size: int | None = None,
                 z: Tensor | None = None, style: Tensor | None = None,
                 instance: Tensor | None = None) -> Tensor:
        """Images (B, C, size, size) in [-1, 1] from ``z`` (B, z_dim), or from B draws of
        N(0, I) (torch's global RNG) where B comes from ``cond`` (class-conditional: (B,)
        class ids, required), else ``batch_size`` (default 1)."""
        if style is not None or instance is not None:
            raise ConfigError("dcgan takes no style image or instance map")
        classes = self.encode(cond) if self.conditional else None
        if cond is not None and not self.conditional:
            raise ConfigError("this dcgan model is unconditional: it takes no classes")
        count = (z.shape[0] if z is not None else cond.shape[0] if cond is not None
                 else batch_size or 1)
        if z is None:
            z = torch.randn(count, self.config.model.z_dim, device=self.device)
        elif z.dim() != 2 or z.shape[1] != self.config.model.z_dim:
            raise ConfigError(f"z of shape {tuple(z.shape)}; this model takes "
                              f"(B, {self.config.model.z_dim})")
        if classes is not None and classes.shape[0] != count:
            raise ConfigError(f"{classes.shape[0]} classes for {count} codes")
        was_training = self.generator.training
        self.generator.eval()
        try:
            return self.generator(self._codes(z.to(self.device), classes))
        finally:
            self.generator.train(was_training)
