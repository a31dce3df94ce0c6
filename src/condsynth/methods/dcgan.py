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

The techniques of "Improved Techniques for Training GANs" (Salimans et al., 2016) are switches
of ``model`` (all off by default): ``feature_matching`` (G matches the batch means of D's last
hidden layer instead of fooling D), ``minibatch_kernels`` (minibatch discrimination after D's
last hidden layer, then a linear logit), ``historical_averaging`` (the penalty
||theta - mean of past theta||^2 on both players), ``label_smoothing`` (one-sided: real
targets 1 - s), ``generator_norm: virtual_batch`` (VBN in G with a reference batch of codes
drawn once) and ``d_average_decay`` (an exponential moving average of D's parameters, which
:meth:`DCGAN.discriminate` uses). Their running averages and the reference batch are method
state, saved with the networks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condsynth.config import Config, ranged
from condsynth.errors import ConfigError
from condsynth.improved_losses import (
    batch_mean_matching,
    d_smoothed_loss,
    historical_average_step,
)
from condsynth.layers.improved import (
    MinibatchDiscrimination,
    VirtualBatchNorm,
    flat_parameters,
    swapped_parameters,
)
from condsynth.layers.init import init_weights
from condsynth.methods.base import Batch, Method, OptimDefaults, inference, unwrap
from condsynth.registry import register_method


@dataclass
class DCGANConfig:
    z_dim: int = 100               # length of z ~ N(0, I)
    ngf: int = 64                  # channels of G's last hidden layer (doubling towards z)
    ndf: int = 64                  # channels of D's first layer (doubling towards the logit)
    # Improved-GAN techniques (Salimans et al., 2016); all off by default.
    feature_matching: Literal["none", "l1", "l2"] = "none"  # G's loss: match the batch means
                                   # of D's last hidden layer (l1 official CIFAR, l2 MNIST)
    minibatch_kernels: int = ranged(0, at_least=0)  # minibatch discrimination kernels B after
                                   # D's last hidden layer (paper 100; 0 = off)
    minibatch_dim: int = ranged(5, at_least=1)  # C: dimensions per kernel
    historical_averaging: float = ranged(0.0, at_least=0)  # weight of ||theta - mean||^2
    label_smoothing: float = ranged(0.0, at_least=0, below=1)  # one-sided: real target 1 - s
                                   # (paper 0.1, official ImageNet code 0.25)
    generator_norm: Literal["batch", "virtual_batch"] = "batch"  # G's normalization
    vbn_reference_size: int = ranged(64, at_least=1)  # codes in VBN's reference batch
    d_average_decay: float = ranged(0.0, at_least=0, below=1)  # EMA of D's parameters for
                                   # discriminate() (official 0.9999, from zero); 0 = off


class DCGANGenerator(nn.Module):
    """(B, z_dim + classes) codes → (B, channels, size, size) images in [-1, 1]."""

    def __init__(self, z_dim: int, channels: int, size: int, ngf: int,
                 vbn_reference_size: int = 0) -> None:
        super().__init__()
        ups = int(math.log2(size)) - 2                   # 4x4 → size: this many doublings
        width = ngf * 2 ** (ups - 1)

        def norm(features: int) -> nn.Module:
            # Virtual batch norm: the first vbn_reference_size rows are the reference batch.
            if vbn_reference_size:
                return VirtualBatchNorm(features, vbn_reference_size)
            return nn.BatchNorm2d(features)

        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim, width, 4, 1, 0, bias=False),
                                   norm(width), nn.ReLU(True)]                  # (B, width, 4, 4)
        for _ in range(ups - 1):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                       norm(width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.layers = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.layers(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    """(B, channels (+ class planes), size, size) → (B,) logits of "real"."""

    def __init__(self, channels: int, size: int, ndf: int, minibatch_kernels: int = 0,
                 minibatch_dim: int = 5) -> None:
        super().__init__()
        downs = int(math.log2(size)) - 2                 # size → 4x4
        layers: list[nn.Module] = [nn.Conv2d(channels, ndf, 4, 2, 1, bias=False),
                                   nn.LeakyReLU(0.2, True)]      # no batch norm at the input
        width = ndf
        for _ in range(downs - 1):
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(width * 2), nn.LeakyReLU(0.2, True)]
            width *= 2
        self.minibatch = None
        if minibatch_kernels:
            # Minibatch features of the (B, width * 16) last hidden layer, then a linear logit.
            self.minibatch = MinibatchDiscrimination(width * 16, minibatch_kernels,
                                                     minibatch_dim)
            self.logit = nn.Linear(width * 16 + minibatch_kernels, 1)
        else:
            layers.append(nn.Conv2d(width, 1, 4, 1, 0, bias=False))   # (B, 1, 1, 1)
        self.layers = nn.Sequential(*layers)

    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """((B, width * 16) last hidden features, (B,) logits)."""
        if self.minibatch is None:
            hidden = self.layers[:-1](x)
            return hidden.flatten(1), self.layers[-1](hidden).flatten()
        hidden = self.layers(x).flatten(1)
        return hidden, self.logit(self.minibatch(hidden)).flatten()

    def forward(self, x: Tensor) -> Tensor:
        return self.features_and_logits(x)[1]


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
        virtual = cfg.vbn_reference_size if cfg.generator_norm == "virtual_batch" else 0
        self.generator = DCGANGenerator(cfg.z_dim + self.num_classes, channels, size, cfg.ngf,
                                        virtual)
        self.discriminator = DCGANDiscriminator(channels + self.num_classes, size, cfg.ndf,
                                                cfg.minibatch_kernels, cfg.minibatch_dim)
        init_weights(self.generator)
        init_weights(self.discriminator)
        # Method state of the improved techniques (saved with the networks: exact resume).
        if virtual:
            # VBN's reference batch: codes (z, and a random class when conditional) drawn
            # once, when the model is built (the seeded start of training).
            codes = torch.randn(virtual, cfg.z_dim)
            if self.conditional:
                classes = torch.randint(0, self.num_classes, (virtual,))
                codes = torch.cat([codes, F.one_hot(classes, self.num_classes).float()], 1)
            self.register_buffer("vbn_reference", codes)
        if cfg.historical_averaging > 0:
            for name in ("generator", "discriminator"):
                flat = flat_parameters(getattr(self, name).parameters())
                self.register_buffer(f"{name}_history", torch.zeros_like(flat))
                self.register_buffer(f"{name}_history_count", torch.zeros((), dtype=torch.int64))
        if cfg.d_average_decay > 0:
            self.register_buffer("d_average", torch.zeros_like(
                flat_parameters(self.discriminator.parameters())))

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

    def _features(self, discriminator: nn.Module, image: Tensor, classes: Tensor | None
                  ) -> tuple[Tensor, Tensor]:
        """D's last hidden features and logits (feature matching)."""
        if classes is not None:
            planes = classes[:, :, None, None].expand(-1, -1, *image.shape[-2:])
            image = torch.cat([image, planes.to(image.dtype)], 1)
        return unwrap(discriminator).features_and_logits(image)

    def _generate(self, codes: Tensor) -> Tensor:
        """G on codes; with virtual batch norm the reference codes go first and are dropped."""
        if "vbn_reference" not in self._buffers:
            return self.generator(codes)
        reference = self.vbn_reference.to(codes.dtype)
        return self.generator(torch.cat([reference, codes]))[reference.shape[0]:]

    def discriminate(self, image: Tensor, cond: Tensor | None = None) -> Tensor:
        """D's logits of "real"; the averaged D's when ``model.d_average_decay`` is on."""
        classes = None
        if self.conditional:          # a neutral condition when none is given (the probe)
            classes = (self.encode(cond) if cond is not None
                       else image.new_zeros(image.shape[0], self.num_classes))
        if self.config.model.d_average_decay <= 0:
            return self._judge(self.discriminator, image, classes)
        with swapped_parameters(list(self.discriminator.parameters()), self.d_average):
            return self._judge(self.discriminator, image, classes).detach()

    # ----------------------------------------------------------------------------- training
    def _history_penalty(self, name: str) -> dict[str, Tensor]:
        """Historical averaging of player ``name``: its running parameter mean takes in the
        current parameters, then weight * ||theta - (1/t) sum_i theta_i||^2."""
        weight = self.config.model.historical_averaging
        if weight <= 0:
            return {}
        penalty = historical_average_step(list(getattr(self, name).parameters()),
                                          getattr(self, f"{name}_history"),
                                          getattr(self, f"{name}_history_count"))
        return {f"{name[0]}_history": weight * penalty}

    def forward_generator(self, batch: Batch) -> dict[str, Tensor]:
        classes = self.condition(batch)                                  # (B, K) or None
        z = torch.randn(batch["image"].shape[0], self.config.model.z_dim,
                        device=batch["image"].device)
        return {"classes": classes, "fake": self._generate(self._codes(z, classes))}

    def discriminator_step(self, batch: Batch, out: dict[str, Tensor]) -> dict[str, Tensor]:
        cfg: DCGANConfig = self.config.model
        if cfg.d_average_decay > 0:
            with torch.no_grad():         # the parameters before this step, as the official code
                self.d_average.lerp_(flat_parameters(self.discriminator.parameters()),
                                     1.0 - cfg.d_average_decay)
        fake = self._judge(self.discriminator, out["fake"].detach(), out["classes"])
        real = self._judge(self.discriminator, batch["image"], out["classes"])
        d_real, d_fake = d_smoothed_loss(real, fake, 1.0 - cfg.label_smoothing)
        return {"d_real": d_real, "d_fake": d_fake} | self._history_penalty("discriminator")

    def generator_step(self, batch: Batch, out: dict[str, Tensor]) -> dict[str, Tensor]:
        cfg: DCGANConfig = self.config.model
        with self.frozen(self.discriminator) as discriminator:
            if cfg.feature_matching != "none":
                features_fake, _ = self._features(discriminator, out["fake"], out["classes"])
                with torch.no_grad():
                    features_real, _ = self._features(discriminator, batch["image"],
                                                      out["classes"])
                losses = {"g_feature_matching": batch_mean_matching(
                    features_real, features_fake, cfg.feature_matching)}
            else:
                fake = self._judge(discriminator, out["fake"], out["classes"])
                # The non-saturating loss: G maximizes log D(G(z)).
                losses = {"g_gan": F.binary_cross_entropy_with_logits(fake,
                                                                      torch.ones_like(fake))}
        return losses | self._history_penalty("generator")

    # ----------------------------------------------------------------------------- inference
    def latent_size(self) -> int:
        return self.config.model.z_dim

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
            return self._generate(self._codes(z.to(self.device), classes))
        finally:
            self.generator.train(was_training)
