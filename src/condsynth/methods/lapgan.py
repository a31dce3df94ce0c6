"""LAPGAN: Deep Generative Image Models using a Laplacian Pyramid of Adversarial Networks
(Denton, Chintala, Szlam and Fergus, NeurIPS 2015), as its official code (facebook/eyescream,
``cifar/scripts/train_cifar*.lua``) builds and trains it.

A Laplacian pyramid (:mod:`condsynth.layers.pyramid`) with level sizes s_0 < s_1 < ... < s_K
(coarsest first; the last is the image size): the real image's Gaussian levels I_k, the
low-pass context l_k = u(I_{k-1}) and the band-pass target h_k = I_k − l_k. One GAN per level:

- **Level 0** (coarsest) is an ordinary fully connected GAN (``train_cifar.lua``): G is
  z (100, uniform(−1, 1)) → 8000 ReLU → 8000 sigmoid → image (linear output); D is image →
  1600 ReLU → dropout → 1600 ReLU → dropout → 1 (BCE). Weights N(0, 0.05) in G, N(0, 0.005)
  in D, biases 0.
- **Level k ≥ 1** is a conditional convnet (``train_cifar_coarse_to_fine.lua``): G takes a
  noise plane (uniform(−1, 1)) joined to l_k and predicts h_k through conv 7x7 → ReLU →
  conv 7x7 → ReLU → conv 5x5 (64 hidden channels, same padding, linear output); D sums its
  two inputs (h + l: it judges the reconstructed image, not a concatenation) and runs conv 5x5
  → ReLU → conv 5x5 stride 2 → ReLU → dropout → linear → 1 (BCE). Torch's default init.

Each level trains **on its own**: its own phases (D then G) and optimizers, on the real
pyramid of the batch; no gradient crosses levels. Sampling is the cascade Ĩ_0 = G_0(z_0),
Ĩ_k = u(Ĩ_{k−1}) + G_k(z_k, u(Ĩ_{k−1})); the final image is clamped to [−1, 1].

**Class-conditional** (``condition.kind: class``, ``*_classcond.lua``): at every conv level the
one-hot class goes through Linear → ReLU into one extra s_k x s_k plane, joined to G's input
(noise, class plane, l_k) and to D's summed image; the fully connected level joins the one-hot
to z and to D's flattened image (and its G's second hidden layer is ReLU, as that script has).

**Optimizer.** The official one is SGD, lr 0.02, momentum 0.5 (torch7's ``optim.sgd``:
dampening equal to the momentum), and after every epoch momentum += 0.0008 (at most 0.7) and
lr /= 1.000004 (at least 1e-6): ``model.optimizer: sgd`` (preset ``lapgan_cifar10``). Adam
(lr 2e-4, beta1 0.5) is the practical default. D's loss is the BCE mean over its real and fake
halves, as the official criterion averages over the mixed batch.

**Noise and z.** ``generate(z=...)`` takes one N(0, I) code of :meth:`LAPGAN.latent_size`
numbers: z_0 then each conv level's plane, row-major; each number goes through
erf(z / √2) = 2Φ(z) − 1, which makes N(0, 1) exactly uniform(−1, 1), the training noise. So a
code fixes every level's noise, and walks and the studio's sample mode work as for DCGAN.

Differences from the official code: images in [−1, 1] instead of the dataset's mean/std
normalization; D sees a whole batch of real images and one of fakes (official: half a batch
each, drawn with replacement) and G's step reuses the fakes of D's step (official: fresh
noise and contexts); the bilinear d(.) is antialiased (torch7's ``image.scale``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condsynth.config import Config
from condsynth.errors import ConfigError
from condsynth.layers.pyramid import Resample, gaussian_pyramid, upsample
from condsynth.methods.base import (
    Batch,
    Method,
    OptimizerSpec,
    Phase,
    inference,
    unwrap,
)
from condsynth.registry import register_method


@dataclass
class LAPGANConfig:
    levels: int = 2                # pyramid levels, halving from data.crop_size (16 → 32)
    sizes: list[int] = field(default_factory=list)  # or the level sizes, coarsest first, the
                                   # last data.crop_size (the paper's CIFAR: [8, 14, 28])
    resample: Resample = "bilinear"  # d(.) and u(.): bilinear (image.scale) or binomial
    z_dim: int = 100               # the coarsest G's noise length
    coarse_hidden_g: int = 8000    # the fully connected coarsest level's hidden units
    coarse_hidden_d: int = 1600
    hidden_g: int = 64             # conv levels' hidden channels [hidden_G, hidden_D]
    hidden_d: int = 64
    dropout: float = 0.5           # in every D, before its last linear layer(s)
    optimizer: Literal["adam", "sgd"] = "adam"  # sgd: the official SGD and its per-epoch rule
    momentum_step: float = 0.0008  # sgd: momentum added after every epoch ...
    momentum_max: float = 0.7      # ... up to this
    lr_divisor: float = 1.000004   # sgd: lr divided by this after every epoch ...
    lr_min: float = 1e-6           # ... down to this


def uniform_noise(z: Tensor) -> Tensor:
    """N(0, 1) numbers → uniform(−1, 1) numbers: erf(z / √2) = 2Φ(z) − 1, elementwise."""
    return torch.erf(z / math.sqrt(2.0))


class CoarseGenerator(nn.Module):
    """Level 0: (B, z_dim) uniform noise (+ (B, K) one-hot) → (B, C, s, s), fully connected."""

    def __init__(self, z_dim: int, channels: int, size: int, hidden: int,
                 num_classes: int) -> None:
        super().__init__()
        self.shape = (channels, size, size)
        # train_cifar.lua: ReLU then sigmoid; train_cifar_classcond.lua: ReLU twice.
        second = nn.ReLU() if num_classes else nn.Sigmoid()
        self.layers = nn.Sequential(nn.Linear(z_dim + num_classes, hidden), nn.ReLU(),
                                    nn.Linear(hidden, hidden), second,
                                    nn.Linear(hidden, channels * size * size))

    def forward(self, z: Tensor, classes: Tensor | None = None) -> Tensor:
        if classes is not None:
            z = torch.cat([z, classes.to(z.dtype)], 1)
        return self.layers(z).view(z.shape[0], *self.shape)


class CoarseDiscriminator(nn.Module):
    """Level 0: (B, C, s, s) images (+ (B, K) one-hot) → (B,) logits, fully connected."""

    def __init__(self, channels: int, size: int, hidden: int, num_classes: int,
                 dropout: float) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(channels * size * size + num_classes, hidden), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, 1))

    def forward(self, image: Tensor, classes: Tensor | None = None) -> Tensor:
        x = image.flatten(1)
        if classes is not None:
            x = torch.cat([x, classes.to(x.dtype)], 1)
        return self.layers(x).flatten()


class ClassPlane(nn.Module):
    """(B, K) one-hot → (B, 1, s, s): Linear → ReLU, reshaped (the class-conditional scripts)."""

    def __init__(self, num_classes: int, size: int) -> None:
        super().__init__()
        self.size = size
        self.linear = nn.Linear(num_classes, size * size)

    def forward(self, classes: Tensor) -> Tensor:
        return F.relu(self.linear(classes)).view(-1, 1, self.size, self.size)


class LevelGenerator(nn.Module):
    """Level k ≥ 1: (B, 1, s, s) noise plane and (B, C, s, s) low-pass l_k (+ (B, K) one-hot)
    → (B, C, s, s) band-pass h_k."""

    def __init__(self, channels: int, size: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.class_plane = ClassPlane(num_classes, size) if num_classes else None
        inputs = 1 + (1 if num_classes else 0) + channels
        self.layers = nn.Sequential(
            nn.Conv2d(inputs, hidden, 7, padding=3), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 7, padding=3), nn.ReLU(),
            nn.Conv2d(hidden, channels, 5, padding=2))

    def forward(self, noise: Tensor, low: Tensor, classes: Tensor | None = None) -> Tensor:
        planes = [noise]
        if self.class_plane is not None:
            planes.append(self.class_plane(classes.to(low.dtype)))
        return self.layers(torch.cat([*planes, low], 1))


class LevelDiscriminator(nn.Module):
    """Level k ≥ 1: (B, C, s, s) band h and low-pass l (+ (B, K) one-hot) → (B,) logits of
    "real" for the image h + l."""

    def __init__(self, channels: int, size: int, hidden: int, num_classes: int,
                 dropout: float) -> None:
        super().__init__()
        self.class_plane = ClassPlane(num_classes, size) if num_classes else None
        inputs = channels + (1 if num_classes else 0)
        side = (size - 4 - 5) // 2 + 1            # after a valid 5x5, then a valid 5x5 stride 2
        self.layers = nn.Sequential(
            nn.Conv2d(inputs, hidden, 5), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 5, stride=2), nn.ReLU(),
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(hidden * side * side, 1))

    def forward(self, band: Tensor, low: Tensor, classes: Tensor | None = None) -> Tensor:
        x = band + low                              # the official CAddTable
        if self.class_plane is not None:
            x = torch.cat([x, self.class_plane(classes.to(x.dtype))], 1)
        return self.layers(x).flatten()


class LaplacianGenerator(nn.Module):
    """The cascade: level 0's G, then one conditional G per finer level.

    Forward: noises [(B, z_dim), (B, 1, s_1, s_1), ...] uniform(−1, 1) (+ (B, K) one-hot) →
    the images Ĩ_0, ..., Ĩ_K of every level (coarsest first, unclamped).
    """

    def __init__(self, sizes: list[int], channels: int, cfg: LAPGANConfig,
                 num_classes: int) -> None:
        super().__init__()
        self.sizes = list(sizes)
        self.resample = cfg.resample
        self.levels = nn.ModuleList(
            [CoarseGenerator(cfg.z_dim, channels, sizes[0], cfg.coarse_hidden_g, num_classes)]
            + [LevelGenerator(channels, s, cfg.hidden_g, num_classes) for s in sizes[1:]])

    def forward(self, noises: list[Tensor], classes: Tensor | None = None) -> list[Tensor]:
        image = self.levels[0](noises[0], classes)
        images = [image]
        for level, size, noise in zip(self.levels[1:], self.sizes[1:], noises[1:], strict=True):
            low = upsample(image, (size, size), self.resample)
            image = low + level(noise, low, classes)
            images.append(image)
        return images


def pyramid_sizes(cfg: LAPGANConfig, crop: int) -> list[int]:
    """The level sizes, coarsest first, from ``model.sizes`` or ``model.levels``."""
    if cfg.sizes:
        sizes = list(cfg.sizes)
        if sizes[-1] != crop or any(a >= b for a, b in zip(sizes, sizes[1:], strict=False)):
            raise ConfigError(f"model.sizes {sizes} must rise strictly and end at the image "
                              f"size data.crop_size {crop}. Fix: e.g. model.sizes=[{crop // 2},"
                              f"{crop}], or leave model.sizes empty and set model.levels.")
        if len(sizes) < 2:
            raise ConfigError("model.sizes needs at least two levels (a coarsest GAN and one "
                              f"conditional level). Fix: model.sizes=[{crop // 2},{crop}]")
        return sizes
    if cfg.levels < 2:
        raise ConfigError(f"model.levels is {cfg.levels}; a Laplacian pyramid GAN needs at "
                          "least 2. Fix: model.levels=2 (the official 16 → 32).")
    sizes = [crop]
    for _ in range(cfg.levels - 1):
        sizes.insert(0, (sizes[0] + 1) // 2)
    return sizes


@register_method("lapgan", LAPGANConfig)
class LAPGAN(Method):
    """LAPGAN. Batches hold ``image`` (+ ``class`` when class-conditional)."""

    condition_kinds = ("none", "class")
    config_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "condition": {"kind": "none"},
        "data": {"load_size": 32, "crop_size": 32, "preprocess": "fixed", "flip": False},
        "train": {"batch_size": 128, "decay_start": 1.0},     # constant (sgd: its own rule)
    }
    size_settings = "model.sizes or model.levels"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        cfg: LAPGANConfig = config.model
        crop = config.data.crop_size
        if config.data.aspect_ratio != 1.0:
            raise ConfigError(f"lapgan makes square images; data.aspect_ratio is "
                              f"{config.data.aspect_ratio}. Fix: data.aspect_ratio=1.")
        self.sizes = pyramid_sizes(cfg, crop)
        small = [s for s in self.sizes[1:] if s < 9]
        if small:
            raise ConfigError(f"the conv levels' discriminators need at least 9x9 pixels (a "
                              f"5x5 then a strided 5x5 convolution); the pyramid {self.sizes} "
                              f"has conv levels of {small}. Fix: fewer model.levels, or "
                              "larger model.sizes.")
        if cfg.resample == "binomial":
            for coarse, fine in zip(self.sizes, self.sizes[1:], strict=False):
                if coarse != (fine + 1) // 2:
                    raise ConfigError(f"model.resample=binomial halves each level, but the "
                                      f"pyramid {self.sizes} goes {fine} → {coarse}. Fix: "
                                      "model.resample=bilinear, or sizes that halve.")
        for name in ("z_dim", "coarse_hidden_g", "coarse_hidden_d", "hidden_g", "hidden_d"):
            if getattr(cfg, name) < 1:
                raise ConfigError(f"model.{name} must be at least 1, not {getattr(cfg, name)}")
        if not 0 <= cfg.dropout < 1:
            raise ConfigError(f"model.dropout must lie in [0, 1), not {cfg.dropout}")
        self.num_classes = config.condition.input_channels if self.conditional else 0
        channels = config.data.channels
        self.generator = LaplacianGenerator(self.sizes, channels, cfg, self.num_classes)
        self.discriminator = nn.ModuleList(
            [CoarseDiscriminator(channels, self.sizes[0], cfg.coarse_hidden_d,
                                 self.num_classes, cfg.dropout)]
            + [LevelDiscriminator(channels, s, cfg.hidden_d, self.num_classes, cfg.dropout)
               for s in self.sizes[1:]])
        # The fully connected level's initialization of train_cifar.lua.
        for module, std in ((self.generator.levels[0], 0.05), (self.discriminator[0], 0.005)):
            for layer in module.modules():
                if isinstance(layer, nn.Linear):
                    nn.init.normal_(layer.weight, 0.0, std)
                    nn.init.zeros_(layer.bias)

    @property
    def conditional(self) -> bool:
        return self.config.condition.kind == "class"

    # ----------------------------------------------------------------------------- training
    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """``generator_<size>`` and ``discriminator_<size>`` per pyramid level."""
        generator, discriminator = unwrap(self.generator), unwrap(self.discriminator)
        groups = {}
        for k, size in enumerate(self.sizes):
            groups[f"generator_{size}"] = list(generator.levels[k].parameters())
            groups[f"discriminator_{size}"] = list(discriminator[k].parameters())
        return groups

    def optimizers(self) -> dict[str, OptimizerSpec]:
        """Per level: SGD lr 0.02, momentum 0.5 (``model.optimizer: sgd``) or Adam lr 2e-4,
        betas (0.5, 0.999); ``train.lr_g`` / ``train.lr_d`` set every level's G / D rate."""
        t = self.config.train
        sgd = self.config.model.optimizer == "sgd"
        lr = 0.02 if sgd else 2e-4
        specs = {}
        for size in self.sizes:
            for player, own in (("generator", t.lr_g), ("discriminator", t.lr_d)):
                specs[f"{player}_{size}"] = OptimizerSpec(
                    lr=lr if own is None else own, betas=(0.5, 0.999),
                    kind="sgd" if sgd else "adam")
        return specs

    def epoch_settings(self, name: str, spec: OptimizerSpec, epoch: int,
                       lr: float) -> dict[str, float]:
        """The official SGD rule: after each epoch momentum += ``momentum_step`` (at most
        ``momentum_max``) and lr /= ``lr_divisor`` (at least ``lr_min``); dampening follows
        the momentum, as torch7's ``optim.sgd`` does by default."""
        if spec.kind != "sgd":
            return {}
        cfg: LAPGANConfig = self.config.model
        momentum = spec.betas[0]
        if epoch > 0:
            momentum = min(momentum + cfg.momentum_step * epoch, cfg.momentum_max)
            lr = max(lr / cfg.lr_divisor ** epoch, cfg.lr_min)
        return {"lr": lr, "momentum": momentum, "dampening": momentum}

    def phases(self) -> list[Phase]:
        """Per level, coarsest first: its D, then its G (each level on its own)."""
        out = []
        for size in self.sizes:
            out += [Phase(f"discriminator_{size}", f"discriminator_{size}"),
                    Phase(f"generator_{size}", f"generator_{size}")]
        return out

    def level_targets(self, image: Tensor) -> list[tuple[Tensor | None, Tensor]]:
        """Per level, coarsest first, of a real (B, C, H, W) batch: (l_k, h_k); level 0 has
        no context and its "band" is the coarsest Gaussian level I_0."""
        sizes = [(s, s) for s in reversed(self.sizes)]
        resample = self.config.model.resample
        gauss = gaussian_pyramid(image, sizes, resample)[::-1]       # coarsest first
        out: list[tuple[Tensor | None, Tensor]] = [(None, gauss[0])]
        for coarse, fine in zip(gauss[:-1], gauss[1:], strict=True):
            low = upsample(coarse, fine.shape[-2:], resample)
            out.append((low, fine - low))
        return out

    def _level_noise(self, k: int, count: int, device: torch.device) -> Tensor:
        """Uniform(−1, 1) noise of level ``k`` (the official ``noise_inputs:uniform(-1, 1)``)."""
        shape = ((count, self.config.model.z_dim) if k == 0
                 else (count, 1, self.sizes[k], self.sizes[k]))
        return torch.rand(shape, device=device) * 2 - 1

    def phase_losses(self, phase: Phase, batch: Batch, cache: dict[str, Any]) -> dict[str, Tensor]:
        player, _, size = phase.name.rpartition("_")
        if player not in ("generator", "discriminator") or int(size) not in self.sizes:
            raise ValueError(f"lapgan has no phase {phase.name!r}")
        k = self.sizes.index(int(size))
        if "targets" not in cache:
            with torch.no_grad():
                cache["targets"] = self.level_targets(batch["image"])
            cache["classes"] = self.condition(batch)                     # (B, K) or None
        low, band = cache["targets"][k]
        classes = cache["classes"]
        generator = unwrap(self.generator).levels[k]
        if f"fake_{k}" not in cache:                 # G_k once, used by its D and G steps
            noise = self._level_noise(k, band.shape[0], band.device)
            cache[f"fake_{k}"] = (generator(noise, classes) if k == 0
                                  else generator(noise, low, classes))
        fake = cache[f"fake_{k}"]
        discriminator = unwrap(self.discriminator)[k]

        def judge(net: nn.Module, x: Tensor) -> Tensor:
            return net(x, classes) if k == 0 else net(x, low, classes)

        if player == "discriminator":
            real_logits, fake_logits = judge(discriminator, band), judge(discriminator,
                                                                         fake.detach())
            # The BCE mean over the mixed batch of the official criterion: half each.
            return {f"d_real_{size}": 0.5 * F.binary_cross_entropy_with_logits(
                        real_logits, torch.ones_like(real_logits)),
                    f"d_fake_{size}": 0.5 * F.binary_cross_entropy_with_logits(
                        fake_logits, torch.zeros_like(fake_logits))}
        with self.frozen(discriminator) as frozen:
            logits = judge(frozen, fake)
        return {f"g_gan_{size}": F.binary_cross_entropy_with_logits(
            logits, torch.ones_like(logits))}

    def discriminate(self, image: Tensor, cond: Tensor | None = None) -> Tensor:
        """The finest level's D on (B, C, H, W) images (a neutral class when none is given)."""
        classes = None
        if self.conditional:
            classes = (self.encode(cond) if cond is not None
                       else image.new_zeros(image.shape[0], self.num_classes))
        return unwrap(self.discriminator)[-1](image, torch.zeros_like(image), classes)

    # ----------------------------------------------------------------------------- inference
    def latent_size(self) -> int:
        """z_dim, then one number per pixel of every conv level's noise plane."""
        return self.config.model.z_dim + sum(s * s for s in self.sizes[1:])

    def noises(self, z: Tensor) -> list[Tensor]:
        """A (B, latent_size) N(0, I) code → each level's uniform(−1, 1) noise."""
        z = uniform_noise(z)
        out = [z[:, : self.config.model.z_dim]]
        start = self.config.model.z_dim
        for size in self.sizes[1:]:
            out.append(z[:, start:start + size * size].reshape(-1, 1, size, size))
            start += size * size
        return out

    def _codes(self, cond: Tensor | None, batch_size: int | None,
               z: Tensor | None) -> tuple[Tensor, Tensor | None]:
        if cond is not None and not self.conditional:
            raise ConfigError("this lapgan model is unconditional: it takes no classes")
        classes = self.encode(cond) if self.conditional else None
        count = (z.shape[0] if z is not None else cond.shape[0] if cond is not None
                 else batch_size or 1)
        if z is None:
            z = torch.randn(count, self.latent_size(), device=self.device)
        elif z.dim() != 2 or z.shape[1] != self.latent_size():
            raise ConfigError(f"z of shape {tuple(z.shape)}; this model takes "
                              f"(B, {self.latent_size()}): z_dim {self.config.model.z_dim} "
                              f"and the noise planes of the levels {self.sizes[1:]}")
        if classes is not None and classes.shape[0] != count:
            raise ConfigError(f"{classes.shape[0]} classes for {count} codes")
        return z.to(self.device), classes

    def upsample(self, image: Tensor, size: int) -> Tensor:
        """u(.) of this model's pyramid: (B, C, s, s) → (B, C, size, size)."""
        return upsample(image, (size, size), self.config.model.resample)

    def cascade(self, cond: Tensor | None = None, *, batch_size: int | None = None,
                z: Tensor | None = None) -> list[Tensor]:
        """Every level's image Ĩ_0, ..., Ĩ_K of the cascade (coarsest first, unclamped), from
        ``z`` (B, latent_size) or B draws of N(0, I) (torch's global RNG)."""
        z, classes = self._codes(cond, batch_size, z)
        generator = unwrap(self.generator)
        was_training = generator.training
        generator.eval()
        try:
            with torch.no_grad():
                return generator(self.noises(z), classes)
        finally:
            generator.train(was_training)

    @inference
    def generate(self, cond: Tensor | None = None, *, batch_size: int | None = None,
                 z: Tensor | None = None, style: Tensor | None = None,
                 instance: Tensor | None = None) -> Tensor:
        """Images (B, C, size, size) in [-1, 1], the cascade's last level clamped, from ``z``
        (B, latent_size) or B draws of N(0, I) where B comes from ``cond`` (class-conditional:
        (B,) class ids, required), else ``batch_size`` (default 1)."""
        if style is not None or instance is not None:
            raise ConfigError("lapgan takes no style image or instance map")
        return self.cascade(cond, batch_size=batch_size, z=z)[-1].clamp(-1.0, 1.0)
