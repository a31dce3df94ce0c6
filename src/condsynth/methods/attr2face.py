"""Face synthesis from visual attributes via sketch (Di and Patel, 2017, "Face Synthesis from
Visual Attributes via Sketch using Conditional VAEs and GANs", arXiv 1801.00077; official code
xingdi1990/Attribute2Sketch2Face), as three methods that run one after another:

``attr2sketch``  **Stage 1**, attributes → sketch: a conditional VAE. Two encoders map to one
                 latent space: q_phi(z | sketch, attributes) reads a real sketch, q_beta(z |
                 noise, attributes) reads noise; one decoder turns z into a Gaussian over
                 pixels (a tanh mean and a log-variance per pixel). The loss is, as the
                 official code writes it,
                 KL(q_beta || N(0, I)) + KL(q_phi || N(0, I))
                 + 1e-4 * [NLL(sketch | z_phi) + NLL(sketch | z_beta)],
                 the KL terms per element averaged, the Gaussian NLL summed over every pixel.
                 Sampling: noise n and attributes → z ~ q_beta → decoder mean.
``sketch2sketch`` **Stage 2**, coarse sketch → sharp sketch: a U-Net of dense blocks
                 (:class:`~condsynth.layers.dense.DenseUNet`) with the encoded attributes
                 joined at its bottleneck, a PatchGAN on (coarse, refined) pairs; the generator
                 loss is GAN + 50 L1 + 10 perceptual (L1 between feature maps of a fixed
                 network, VGG16 relu1_2 in the official code).
``sketch2face``  **Stage 3**, sketch + attributes → image: pix2pix's U-Net with the attribute
                 vector tiled over its bottleneck, a PatchGAN on (sketch, image) pairs; GAN +
                 50 L1 + 5 perceptual.

Data: an attribute table (``attributes_csv`` or the CelebA release) read with
``data.line_extraction`` set, so that every item holds ``image``, ``attributes`` and
``source``: the image's XDoG line drawing (the paper draws its sketches with a pencil-sketch
synthesis method, which condsynth does not have; XDoG lines stand in for it).

Where this differs from the official code, and why:

- The official encoder applies a ReLU to the layer that outputs (mu, log sigma^2), so that mu
  >= 0 and sigma >= 1 always and neither KL term can reach 0; here that layer is linear.
- The official stage-2 network (``Dense``) builds on ImageNet DenseNet-121 weights and its
  forward pass refers to layers it never defines; condsynth's dense U-Net is its own, with the
  paper's parts (dense blocks, transitions, U-Net skips, attributes at the bottleneck).
- The official stage 2 trains on stage 1's reconstructions and stage 3 on stage 2's; each
  stage here trains on its own: stage 2's coarse input is stage 1's reconstruction when
  ``model.coarse_run`` names a trained ``attr2sketch`` run, else the real sketch blurred
  (``model.coarse_blur``, a stand-in for the CVAE's smooth output); stage 3 trains on real
  sketches. A pipeline chains the trained stages at sampling time.
- The perceptual network is VGG16's relu1_2 (official) from a local file
  (``model.perceptual_weights``, never downloaded) on images at their own size (the official
  code resizes to 224 first); sketches go in as three equal channels, as there. Where ImageNet
  features mean little (grey 28x28 garments), ``model.perceptual_network=classifier`` takes the
  penultimate features of a condsynth domain classifier file instead.
- Stage 3 uses pix2pix's U-Net (4x4 convolutions, batch norm) with the attributes tiled at the
  bottleneck; the official ``ConUnetGenerator`` adds two residual blocks there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condsynth.config import Config, ranged
from condsynth.discriminators import DiscriminatorNorm, PatchDiscriminator
from condsynth.errors import ConfigError, DataError
from condsynth.layers.dense import DenseUNet
from condsynth.layers.init import init_weights
from condsynth.layers.unet import UNetGenerator, depth_for_size
from condsynth.losses import (
    VGG16FeatureLoss,
    d_adversarial_loss,
    g_adversarial_loss,
    gaussian_nll,
    mean_kl_divergence,
)
from condsynth.methods.base import (
    Batch,
    Capability,
    Method,
    OptimDefaults,
    OptimizerSpec,
    Phase,
    inference,
)
from condsynth.registry import register_method

# Every stage trains on attribute tables with XDoG sketches drawn from the photos.
_DATA_DEFAULTS = {"load_size": 64, "crop_size": 64, "preprocess": "fixed", "flip": False,
                  "line_extraction": "xdog"}
_TRAIN_DEFAULTS = {"batch_size": 128, "lr_schedule": "epochs", "constant_epochs": 5,
                   "decay_epochs": 5}           # niter 5 + niter_decay 5, per stage
VGG16_RELU1_2_END = 4                           # features.0 .. features.3 of torchvision's VGG16


def _check_square_power_of_two(config: Config, method: str, smallest: int) -> int:
    size = config.data.crop_size
    if size < smallest or size & (size - 1) or config.data.aspect_ratio != 1.0:
        raise ConfigError(f"{method} makes square images whose side is a power of two of at "
                          f"least {smallest}; data.crop_size is {size} and data.aspect_ratio "
                          f"{config.data.aspect_ratio}. Fix: --size 64 (the paper's) or 32.")
    return size


def _sketch_of(batch: Batch, method: str) -> Tensor:
    sketch = batch.get("source")
    if sketch is None or sketch.dim() != 4 or sketch.shape[1] != 1:
        found = "none" if sketch is None else str(tuple(sketch.shape))
        raise DataError(f"{method} trains on sketches (batch 'source' (B, 1, H, W)), found "
                        f"{found}. Fix: read an attribute table with data.line_extraction=xdog "
                        "(the presets do), so that every item gets its XDoG sketch.")
    return sketch


def _attributes_of(values: Tensor | None, names: list[str], method: str, device: torch.device,
                   count: int | None = None) -> Tensor:
    """(B, A) float attributes, checked against the model's attribute names."""
    if values is None:
        raise DataError(f"{method} is conditioned on the attributes {', '.join(names)}; none "
                        "were given. Fix: pass attributes= (B, A) or --attributes "
                        f"\"{names[0] if names else 'Name'}=1,...\".")
    if values.dim() != 2 or values.shape[1] != len(names):
        raise DataError(f"{method}: expected (B, {len(names)}) attribute values "
                        f"({', '.join(names)}), found {tuple(values.shape)}")
    if count is not None and values.shape[0] != count:
        raise DataError(f"{method}: {values.shape[0]} attribute rows for {count} sketches")
    return values.to(device).float()


class PerceptualLoss(nn.Module):
    """Di & Patel's perceptual term: L1 between the activations of a fixed network for fake
    and real pictures.

    ``network``: ``vgg16`` (official): VGG16's trunk up to ``end`` (relu1_2 by default) with
    weights read from a local torchvision file, 1-channel pictures given as three equal
    channels; ``classifier``: a condsynth domain classifier file (``condsynth classifier
    train``), its penultimate features (for data where no ImageNet network applies).
    Takes (B, C, H, W) fake and real in [-1, 1]; returns a scalar.
    """

    def __init__(self, network: str, weights_path: str | None,
                 end: int = VGG16_RELU1_2_END) -> None:
        super().__init__()
        self.network = network
        if network == "classifier":
            from condsynth.metrics.classifier import load_classifier

            if not weights_path:
                raise ConfigError("model.perceptual_network is classifier but "
                                  "model.perceptual_weights names no file. Fix: train one with "
                                  "`condsynth classifier train --data DIR --out F.safetensors` "
                                  "and set model.perceptual_weights=F.safetensors.")
            self.classifier = load_classifier(weights_path)
            self.classifier.net.requires_grad_(False).eval()
        else:
            self.vgg = VGG16FeatureLoss(weights_path, end=end, distance="l1")

    def forward(self, fake: Tensor, real: Tensor) -> Tensor:
        if self.network == "classifier":
            clf = self.classifier
            clf.device = fake.device
            clf.net.to(fake.device)
            fake_features = clf.net(clf.prepare(fake))[0]          # (B, F), with gradients
            real_features = clf.net(clf.prepare(real.detach()))[0]
            return F.l1_loss(fake_features, real_features.detach())
        if fake.shape[1] == 1:
            fake, real = fake.expand(-1, 3, -1, -1), real.expand(-1, 3, -1, -1)
        return self.vgg(fake, real)


# =================================================================================== stage 1


@dataclass
class Attr2SketchConfig:
    ngf: int = ranged(64, at_least=1)       # channels of the 4x4 latent map (latent: 16 * ngf)
    z_dim: int = ranged(1024, at_least=1)   # length of the noise n that q_beta reads [nz]
    embed_dim: int = ranged(256, at_least=1)  # attribute embedding [nt]
    lambda_kl_sketch: float = ranged(1.0, at_least=0)   # KL(q_phi(z | sketch, a) || N(0, I))
    lambda_kl_noise: float = ranged(1.0, at_least=0)    # KL(q_beta(z | noise, a) || N(0, I))
    lambda_nll: float = ranged(1e-4, at_least=0)   # both Gaussian NLLs (sums over pixels)
    sample_posterior: bool = True   # sampling: z drawn from q_beta(z | n, a) as the official
                                    # test does (torch's RNG); false: its mean, so that the
                                    # noise n alone fixes the sketch


class CVAEEncoder(nn.Module):
    """The two encoders of stage 1 and the attribute embedding they share.

    q_phi reads a sketch (convolutions down to one 16*ngf vector), q_beta reads noise (a linear
    layer to 16*ngf); either is joined with the embedded attributes and goes through the same
    two layers to (mu, log sigma^2) of a 16*ngf latent, as in the official code.
    Forward (``sketch`` or ``noise``): → (mu, logvar), each (B, 16*ngf).
    """

    def __init__(self, num_attributes: int, size: int, ngf: int, z_dim: int,
                 embed_dim: int) -> None:
        super().__init__()
        latent = 16 * ngf
        self.embed = nn.Sequential(nn.Linear(num_attributes, embed_dim, bias=False),
                                   nn.BatchNorm1d(embed_dim), nn.ReLU())
        layers: list[nn.Module] = [
            nn.Conv2d(1, ngf, 5, 1, 2, bias=False), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(ngf, 2 * ngf, 5, 1, 2, bias=False), nn.BatchNorm2d(2 * ngf), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * ngf, 4 * ngf, 3, 1, 1, bias=False), nn.BatchNorm2d(4 * ngf),
            nn.ReLU(), nn.MaxPool2d(2)]                                   # (B, 4ngf, S/8, S/8)
        width, side = 4 * ngf, size // 8
        while side > 4:
            layers += [nn.Conv2d(width, 8 * ngf, 3, 2, 1, bias=False), nn.BatchNorm2d(8 * ngf),
                       nn.ReLU()]
            width, side = 8 * ngf, side // 2
        layers += [nn.Conv2d(width, latent, 4, 1, 0, bias=False), nn.ReLU(),   # (B, 16ngf, 1, 1)
                   nn.Dropout(0.5)]
        self.sketch_encoder = nn.Sequential(*layers)
        self.noise_encoder = nn.Sequential(nn.Linear(z_dim, latent, bias=False),
                                           nn.BatchNorm1d(latent), nn.ReLU())
        self.joint = nn.Sequential(nn.Linear(latent + embed_dim, latent, bias=False),
                                   nn.BatchNorm1d(latent), nn.ReLU())
        self.posterior = nn.Linear(latent, 2 * latent)

    def _posterior(self, code: Tensor, attributes: Tensor) -> tuple[Tensor, Tensor]:
        joint = self.joint(torch.cat([code, self.embed(attributes)], 1))
        mu, logvar = self.posterior(joint).chunk(2, 1)
        return mu, logvar

    def q_sketch(self, sketch: Tensor, attributes: Tensor) -> tuple[Tensor, Tensor]:
        """q_phi(z | sketch, attributes): (B, 1, S, S), (B, A) → mu, logvar (B, 16*ngf)."""
        return self._posterior(self.sketch_encoder(sketch).flatten(1), attributes)

    def q_noise(self, noise: Tensor, attributes: Tensor) -> tuple[Tensor, Tensor]:
        """q_beta(z | noise, attributes): (B, z_dim), (B, A) → mu, logvar (B, 16*ngf)."""
        return self._posterior(self.noise_encoder(noise), attributes)


class CVAEDecoder(nn.Module):
    """z (B, 16*ngf) seen as (B, ngf, 4, 4) → nearest up-sampling + 3x3 conv + BN + ReLU
    blocks (halving the channels) up to S x S → per-pixel Gaussian: mean (tanh) and
    log-variance, each (B, 1, S, S)."""

    def __init__(self, size: int, ngf: int) -> None:
        super().__init__()
        self.ngf = ngf
        layers: list[nn.Module] = []
        width = ngf
        for _ in range(int(math.log2(size)) - 2):
            out = max(width // 2, 1)
            layers += [nn.Upsample(scale_factor=2, mode="nearest"),
                       nn.Conv2d(width, out, 3, 1, 1, bias=False), nn.BatchNorm2d(out),
                       nn.ReLU()]
            width = out
        self.body = nn.Sequential(*layers)
        self.mean = nn.Sequential(nn.Conv2d(width, 1, 3, 1, 1, bias=False), nn.Tanh())
        self.logvar = nn.Conv2d(width, 1, 3, 1, 1, bias=False)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        h = self.body(z.view(z.shape[0], self.ngf, 4, 4))
        return self.mean(h), self.logvar(h)


def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
    """z = mu + sigma * eps, eps ~ N(0, I) (torch's global RNG)."""
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)


@register_method("attr2sketch", Attr2SketchConfig)
class Attr2Sketch(Method):
    """Stage 1, attributes → sketch (conditional VAE). ``generate(attributes, z=noise)``:
    (B, A) attributes and optional (B, z_dim) noise → (B, 1, S, S) sketches in [-1, 1]."""

    network_names = ("encoder", "generator")
    inference_networks = ("encoder", "generator")      # q_beta is part of sampling
    min_batch_size = 2          # batch norm over the fully connected codes, as the official code
    condition_kinds = ("vector",)
    optim_defaults = OptimDefaults(lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999)
    config_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "condition": {"kind": "vector"}, "data": _DATA_DEFAULTS, "train": _TRAIN_DEFAULTS}

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        cfg: Attr2SketchConfig = config.model
        size = _check_square_power_of_two(config, "attr2sketch", 32)
        if config.train.batch_size < self.min_batch_size:
            raise ConfigError(f"attr2sketch normalizes its fully connected codes with batch norm "
                              f"(as the official code), which needs batches of at least "
                              f"{self.min_batch_size}; train.batch_size is "
                              f"{config.train.batch_size}. Fix: --batch-size 2 or more (the "
                              "paper's is 128).")
        if not config.condition.attributes:
            raise ConfigError("attr2sketch needs the attribute names (condition.attributes); "
                              "they come from the data. Fix: give --data with an "
                              "attributes.csv or the CelebA files, or set condition.attributes.")
        self.encoder = CVAEEncoder(len(config.condition.attributes), size, cfg.ngf, cfg.z_dim,
                                   cfg.embed_dim)
        self.generator = CVAEDecoder(size, cfg.ngf)
        init_weights(self.encoder)
        init_weights(self.generator)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        # The official code has one Adam per network with the same settings: the same as one.
        return {"generator": [*self.encoder.parameters(), *self.generator.parameters()]}

    def optimizers(self) -> dict[str, OptimizerSpec]:
        d = self.optim_defaults
        return {"generator": OptimizerSpec(lr=d.lr_g, betas=(d.beta1, d.beta2))}

    def phases(self) -> list[Phase]:
        return [Phase("cvae", "generator")]

    def phase_losses(self, phase: Phase, batch: Batch, cache: dict[str, Any]) -> dict[str, Tensor]:
        if phase.name != "cvae":
            raise ValueError(f"attr2sketch has no phase {phase.name!r}")
        cfg: Attr2SketchConfig = self.config.model
        attributes = self.condition(batch)                               # (B, A)
        sketch = _sketch_of(batch, "attr2sketch")                        # (B, 1, S, S)
        noise = torch.randn(sketch.shape[0], cfg.z_dim, device=sketch.device)
        mu_s, logvar_s = self.encoder.q_sketch(sketch, attributes)
        mu_n, logvar_n = self.encoder.q_noise(noise, attributes)
        recon_mean, recon_logvar = self.generator(reparameterize(mu_s, logvar_s))
        fake_mean, fake_logvar = self.generator(reparameterize(mu_n, logvar_n))
        return {"kl_sketch": cfg.lambda_kl_sketch * mean_kl_divergence(mu_s, logvar_s),
                "kl_noise": cfg.lambda_kl_noise * mean_kl_divergence(mu_n, logvar_n),
                "nll_sketch": cfg.lambda_nll * gaussian_nll(recon_mean, recon_logvar, sketch),
                "nll_noise": cfg.lambda_nll * gaussian_nll(fake_mean, fake_logvar, sketch)}

    # ----------------------------------------------------------------------------- inference
    def latent_size(self) -> int:
        return self.config.model.z_dim

    def _eval(self) -> dict[nn.Module, bool]:
        modes = {m: m.training for m in (self.encoder, self.generator)}
        for m in modes:
            m.eval()
        return modes

    @inference
    def generate(self, cond: Tensor | None = None, *, batch_size: int | None = None,
                 z: Tensor | None = None, style: Tensor | None = None,
                 instance: Tensor | None = None) -> Tensor:
        """Sketches from attributes.

        Args:
            cond: (B, A) attribute values, in the order of ``condition.attributes``.
            z: (B, z_dim) noise n that q_beta reads; None = B draws of N(0, I) (torch's global
                RNG). The latent is drawn from q_beta for that noise (torch's global RNG), or is
                its mean with ``model.sample_posterior`` false.
            batch_size, style, instance: unused.
        Returns:
            (B, 1, S, S) sketches in [-1, 1] (the decoder's per-pixel mean).
        """
        if style is not None or instance is not None:
            raise ConfigError("attr2sketch takes no style image or instance map")
        attributes = _attributes_of(cond, self.config.condition.attributes, "attr2sketch",
                                    self.device)
        count = attributes.shape[0]
        z_dim = self.config.model.z_dim
        if z is None:
            z = torch.randn(count, z_dim, device=self.device)
        elif z.dim() != 2 or tuple(z.shape) != (count, z_dim):
            raise ConfigError(f"z of shape {tuple(z.shape)}; this model takes ({count}, {z_dim})")
        modes = self._eval()
        try:
            mu, logvar = self.encoder.q_noise(z.to(self.device).float(), attributes)
            latent = reparameterize(mu, logvar) if self.config.model.sample_posterior else mu
            return self.generator(latent)[0]
        finally:
            for m, mode in modes.items():
                m.train(mode)

    @torch.no_grad()
    def reconstruct(self, sketch: Tensor, attributes: Tensor) -> Tensor:
        """Stage 1's reconstruction of real sketches (the mean of q_phi, decoded): the coarse
        sketches stage 2 learns to sharpen. (B, 1, S, S), (B, A) → (B, 1, S, S)."""
        modes = self._eval()
        try:
            mu, _ = self.encoder.q_sketch(sketch.to(self.device).float(),
                                          attributes.to(self.device).float())
            return self.generator(mu)[0]
        finally:
            for m, mode in modes.items():
                m.train(mode)


# =================================================================================== stages 2, 3


@dataclass
class SketchGanConfig:
    """What stages 2 and 3 share: widths, the PatchGAN and the loss weights."""

    ngf: int = ranged(64, at_least=1)
    ndf: int = ranged(64, at_least=1)
    n_layers_d: int = ranged(4, at_least=1)   # PatchGAN stride-2 layers (official n_layers 4)
    norm_d: DiscriminatorNorm = "batch"       # official: batch norm
    lambda_adv: float = ranged(1.0, at_least=0)
    lambda_l1: float = ranged(50.0, at_least=0)        # official lambda_A
    perceptual_network: Literal["vgg16", "classifier"] = "vgg16"   # the fixed network
                                            # (classifier: a condsynth domain classifier file)
    perceptual_weights: str | None = None   # vgg16: a torchvision VGG16 state dict (a trunk up
                                            # to relu1_2 is enough), None = $CONDSYNTH_VGG16_
                                            # WEIGHTS or torchvision's cache; classifier: the
                                            # .safetensors file. Never downloaded.
    perceptual_end: int = ranged(VGG16_RELU1_2_END, at_least=1, at_most=30)  # VGG16 trunk
                                            # features.0 .. end-1 (4: relu1_2, official)


@dataclass
class Sketch2SketchConfig(SketchGanConfig):
    lambda_perceptual: float = ranged(10.0, at_least=0)   # official: 10
    embed_dim: int = ranged(256, at_least=1)    # attribute embedding at the bottleneck [nt]
    growth: int = ranged(16, at_least=1)        # channels each dense layer adds
    layers_per_block: int = ranged(4, at_least=1)
    levels: int = ranged(3, at_least=1)         # halvings: 64 → 8 at the bottleneck
    coarse_run: str | None = None   # a trained attr2sketch run: train on its reconstructions
    coarse_blur: float = ranged(1.5, at_least=0)  # else: the real sketch blurred (sigma, px)


@dataclass
class Sketch2FaceConfig(SketchGanConfig):
    lambda_perceptual: float = ranged(5.0, at_least=0)    # official: 5
    num_downs: int | None = ranged(None, at_least=2)  # U-Net depth; None = what the size takes
    norm: str = "batch"


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (B, C, H, W) with reflected borders (radius 3 sigma)."""
    if sigma <= 0:
        return x
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


class _SketchGan(Method):
    """Stages 2 and 3: a generator on (sketch, attributes), a PatchGAN on (input, output)
    pairs, GAN + L1 + perceptual. Subclasses build ``self.generator`` and say what the input
    and target are."""

    condition_kinds = ("image",)
    optim_defaults = OptimDefaults(lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999)
    out_channels: int = 1

    def _common(self, config: Config, out_channels: int) -> None:
        cfg: SketchGanConfig = config.model
        if config.condition.image_channels != 1:
            raise ConfigError(f"{self.name} takes a one-channel sketch (condition.image_channels "
                              f"1), not {config.condition.image_channels}. Fix: "
                              "condition.image_channels=1.")
        if not config.condition.attributes:
            raise ConfigError(f"{self.name} is conditioned on attributes beside the sketch; "
                              "condition.attributes is empty. Fix: give --data with an "
                              "attributes.csv or the CelebA files (they name the attributes).")
        self.out_channels = out_channels
        self.discriminator = PatchDiscriminator(
            1 + out_channels, cfg.ndf, cfg.n_layers_d, norm=cfg.norm_d,
            normed_conv_bias=cfg.norm_d in ("instance", "none"), padding=2,
            max_channels=8 * cfg.ndf)
        init_weights(self.discriminator)
        self.perceptual: PerceptualLoss | None = None     # built on first use (training only)

    @property
    def attribute_names(self) -> list[str]:
        return self.config.condition.attributes

    def batch_inputs(self, batch: Batch) -> dict[str, Tensor]:
        return {"attributes": batch["attributes"]} if "attributes" in batch else {}

    def capabilities(self) -> frozenset[Capability]:
        return super().capabilities() | {Capability.ATTRIBUTES}

    def input_and_target(self, batch: Batch) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def forward_generator(self, batch: Batch) -> dict[str, Tensor]:
        source, target = self.input_and_target(batch)
        attributes = _attributes_of(batch.get("attributes"), self.attribute_names, self.name,
                                    source.device, source.shape[0])
        return {"input": source, "target": target, "fake": self.generator(source, attributes)}

    def discriminator_step(self, batch: Batch, out: dict[str, Tensor]) -> dict[str, Tensor]:
        # Separate forwards for fake and real pairs (batch norm, as the official code), each
        # term halved: (fake + real) / 2.
        pred_fake = self.discriminator(torch.cat([out["input"], out["fake"].detach()], 1))[-1]
        pred_real = self.discriminator(torch.cat([out["input"], out["target"]], 1))[-1]
        return {"d_fake": 0.5 * d_adversarial_loss(pred_fake, False, "vanilla"),
                "d_real": 0.5 * d_adversarial_loss(pred_real, True, "vanilla")}

    def generator_step(self, batch: Batch, out: dict[str, Tensor]) -> dict[str, Tensor]:
        cfg = self.config.model
        fake, target = out["fake"], out["target"]
        losses: dict[str, Tensor] = {}
        if cfg.lambda_adv > 0:
            with self.frozen(self.discriminator) as discriminator:
                pred = discriminator(torch.cat([out["input"], fake], 1))[-1]
            losses["g_gan"] = cfg.lambda_adv * g_adversarial_loss(pred, "vanilla")
        if cfg.lambda_l1 > 0:
            losses["g_l1"] = cfg.lambda_l1 * F.l1_loss(fake, target)
        if cfg.lambda_perceptual > 0:
            losses["g_perceptual"] = cfg.lambda_perceptual * self.perceptual_loss()(fake, target)
        if not losses:
            raise ConfigError(f"every generator loss weight of {self.name} is 0: nothing would "
                              "train the generator.")
        return losses

    def perceptual_loss(self) -> PerceptualLoss:
        """The perceptual network, loaded from its weights file on first use."""
        if self.perceptual is None:
            cfg = self.config.model
            self.perceptual = PerceptualLoss(cfg.perceptual_network, cfg.perceptual_weights,
                                             cfg.perceptual_end).to(self.device)
        return self.perceptual

    def _check_sketch(self, cond: Tensor | None) -> Tensor:
        if cond is None:
            raise DataError(f"{self.name} turns a sketch into a picture: pass one (B, 1, H, W)")
        sketch = cond.to(self.device)
        if sketch.dim() != 4 or sketch.shape[1] != 1 or not sketch.is_floating_point():
            raise DataError(f"{self.name}: expected sketches of shape (B, 1, H, W) in [-1, 1], "
                            f"found {tuple(sketch.shape)} {sketch.dtype}")
        return sketch

    @inference
    def generate(self, cond: Tensor | None = None, *, batch_size: int | None = None,
                 z: Tensor | None = None, style: Tensor | None = None,
                 instance: Tensor | None = None, attributes: Tensor | None = None) -> Tensor:
        """Turn sketches into pictures (stage 2: sharper sketches; stage 3: images).

        Args:
            cond: (B, 1, H, W) sketches in [-1, 1] (paper 1, lines -1).
            attributes: (B, A) attribute values, in the order of ``condition.attributes``.
            batch_size, z, style, instance: unused (these stages have no latent).
        Returns:
            (B, C, H, W) in [-1, 1]: C = 1 (stage 2) or ``data.channels`` (stage 3).
        """
        if z is not None or style is not None or instance is not None:
            raise ConfigError(f"{self.name} takes no z, style image or instance map")
        sketch = self._check_sketch(cond)
        values = _attributes_of(attributes, self.attribute_names, self.name, self.device,
                                sketch.shape[0])
        was_training = self.generator.training
        self.generator.eval()
        try:
            return self.generator(sketch, values)
        finally:
            self.generator.train(was_training)


@register_method("sketch2sketch", Sketch2SketchConfig)
class Sketch2Sketch(_SketchGan):
    """Stage 2, coarse sketch + attributes → sharp sketch (dense U-Net, PatchGAN).
    ``generate(coarse, attributes=A)``: (B, 1, S, S), (B, A) → (B, 1, S, S)."""

    size_settings = "model.levels: 2**levels must divide the size"
    config_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "condition": {"kind": "image", "image_channels": 1}, "data": _DATA_DEFAULTS,
        "train": _TRAIN_DEFAULTS}

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        cfg: Sketch2SketchConfig = config.model
        self._common(config, 1)
        self.generator = DenseUNet(1, 1, len(config.condition.attributes), cfg.embed_dim,
                                   cfg.ngf, cfg.growth, cfg.layers_per_block, cfg.levels)
        init_weights(self.generator)
        # model.coarse_run, loaded on first use; kept out of the module tree, so that it is
        # neither saved with this run nor trained.
        self._stage1: list[Attr2Sketch] = []

    def size_multiple(self) -> int:
        return 2 ** self.config.model.levels

    def coarse(self, sketch: Tensor, attributes: Tensor) -> Tensor:
        """The coarse sketch stage 2 learns to sharpen: stage 1's reconstruction
        (``model.coarse_run``), else the sketch blurred by ``model.coarse_blur``."""
        cfg: Sketch2SketchConfig = self.config.model
        if cfg.coarse_run is None:
            return gaussian_blur(sketch, cfg.coarse_blur)
        if not self._stage1:
            self._stage1.append(load_stage1(cfg.coarse_run, self.attribute_names, self.device))
        return self._stage1[0].reconstruct(sketch, attributes)

    def input_and_target(self, batch: Batch) -> tuple[Tensor, Tensor]:
        sketch = _sketch_of(batch, self.name)
        attributes = _attributes_of(batch.get("attributes"), self.attribute_names, self.name,
                                    sketch.device, sketch.shape[0])
        return self.coarse(sketch, attributes).detach(), sketch


@register_method("sketch2face", Sketch2FaceConfig)
class Sketch2Face(_SketchGan):
    """Stage 3, sketch + attributes → image (U-Net with attributes at the bottleneck,
    PatchGAN). ``generate(sketch, attributes=A)``: (B, 1, S, S), (B, A) → (B, C, S, S)."""

    size_settings = "model.num_downs: 2**num_downs must divide the size"
    config_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "condition": {"kind": "image", "image_channels": 1}, "data": _DATA_DEFAULTS,
        "train": _TRAIN_DEFAULTS}

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        cfg: Sketch2FaceConfig = config.model
        self._common(config, config.data.channels)
        if cfg.num_downs is None:             # written back: config.yaml holds the depth
            cfg.num_downs = depth_for_size(*config.data.crop_hw)
        if cfg.norm not in ("batch", "instance", "none"):
            raise ConfigError(f"model.norm is {cfg.norm!r}; expected batch, instance or none")
        self.generator = UNetGenerator(1, config.data.channels, cfg.ngf, cfg.num_downs,
                                       cfg.norm, dropout=False,
                                       vector_size=len(config.condition.attributes))
        init_weights(self.generator)

    def size_multiple(self) -> int:
        return 2 ** self.config.model.num_downs

    def input_and_target(self, batch: Batch) -> tuple[Tensor, Tensor]:
        return _sketch_of(batch, self.name), batch["image"]


def load_stage1(run_dir: str | Path, attributes: list[str], device: torch.device) -> Attr2Sketch:
    """A trained ``attr2sketch`` run, frozen, whose attributes are ``attributes``."""
    from condsynth.api import load

    stage1 = load(run_dir, device=str(device.type))
    if not isinstance(stage1, Attr2Sketch):
        raise ConfigError(f"model.coarse_run {run_dir} is a {stage1.config.method} run; stage 2 "
                          "needs an attr2sketch run. Fix: give the stage-1 run's folder.")
    if stage1.config.condition.attributes != list(attributes):
        raise ConfigError(f"model.coarse_run {run_dir} was trained on the attributes "
                          f"{stage1.config.condition.attributes}, this run has {attributes}. "
                          "Fix: train both stages on the same attribute table.")
    stage1.requires_grad_(False)
    return stage1
