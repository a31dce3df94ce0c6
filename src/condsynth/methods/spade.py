"""SPADE / GauGAN: Semantic Image Synthesis with Spatially-Adaptive Normalization (Park et al.,
CVPR 2019).

The generator has no encoder: it starts from the label map down-sampled to a small grid (or,
with the VAE, from a latent code z) and up-samples through SPADE residual blocks, each of which
re-injects the label map through spatially-adaptive normalization. A multi-scale PatchGAN with
spectral norm judges (label, image) pairs; the losses are hinge GAN + discriminator feature
matching + VGG19 perceptual (+ KL divergence for the VAE image encoder). Optimization follows the
official code: TTUR (G 1e-4, D 4e-4), Adam betas (0, 0.9).

Output size. The official generator takes its latent grid from the training crop:
``sw = crop_size // 2**num_up``, ``sh = round(sw / aspect_ratio)`` (num_up = 5, 6, 7 for normal,
more, most), whatever the input size. Here the grid comes from the input when its height and
width are multiples of ``2**num_up`` (so a model trained on 256x512 crops also synthesizes
512x1024 or 256x256 layouts, and the output always has the input's size), and from
``data.crop_size`` / ``data.aspect_ratio`` otherwise, as the official code does. For inputs of the
training size both rules agree. With the VAE, ``fc(z)`` is laid out on the crop's grid and
resized (nearest) to the input's grid when the two differ.

Small sizes. At crops under 128 pixels (``normal``) the official grid is smaller than 4x4: 1x1
at 32 pixels, where the first blocks read the label map at a single pixel and batch norm sees
one value for the whole batch, and trained SPADE then paints the same picture for every label
map. With ``model.fit_size`` (the default) the coarsest doublings are left out until the grid
is at least 4x4 (:func:`fit_to_size`); the choice is printed and written into config.yaml as
``model.num_upsampling``. ``model.fit_size=false`` keeps the official networks at any size.

Module names inside the generator and the encoder follow NVlabs' code (``head_0``,
``G_middle_0``, ``up_0``, ``layer1``, ``fc_mu``, ...), so official checkpoints map one to one.

Speed. The SPADE modulation convolutions dominate the cost (about two thirds of the generator's
FLOPs). The label map is resized once per resolution; at inference γ and β run as one cached
convolution (:class:`~condsynth.layers.spade.SPADE`); on the CPU the activations are kept
channels-last. Under ``torch.autocast("cpu", dtype=torch.bfloat16)`` everything runs in bf16.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condsynth.config import Config, ranged
from condsynth.discriminators import DiscriminatorNorm, MultiscaleDiscriminator
from condsynth.errors import CondsynthError, ConfigError
from condsynth.layers.init import init_weights
from condsynth.layers.norms import norm_layer
from condsynth.layers.spade import ParamFreeNorm, SPADEResBlock, resize_nearest
from condsynth.losses import (
    GanMode,
    VGG19Loss,
    d_adversarial_loss,
    feature_matching_loss,
    g_adversarial_loss,
    kl_divergence,
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

UpsamplingLayers = Literal["normal", "more", "most"]
NUM_UPSAMPLINGS: dict[str, int] = {"normal": 5, "more": 6, "most": 7}


@dataclass
class SPADEConfig:
    ngf: int = ranged(64, at_least=1)  # generator width: blocks of 16, 16, 16, 8, 4, 2, 1 x ngf
    ndf: int = ranged(64, at_least=1)  # discriminator width
    num_upsampling_layers: UpsamplingLayers = "normal"   # 5, 6 or 7 doublings of the grid
    # Doublings actually made; None = those of num_upsampling_layers, fewer where fit_size
    # asks for it (the first, coarsest ones are left out; every block is kept).
    num_upsampling: int | None = ranged(None, at_least=0)
    fit_size: bool = True            # at crops that give the official generator a starting
                                     # grid under 4x4, fewer up-samplings (see fit_to_size);
                                     # false = the official networks at any size
    norm_g: ParamFreeNorm = "sync_batch"   # parameter-free norm inside every SPADE
    spectral_g: bool = True          # spectral norm on the residual blocks' convolutions
    spade_kernel_size: int = 3       # kernel of the SPADE convolutions (norm_G "...3x3")
    spade_hidden: int = 128          # width of SPADE's shared convolution
    num_d: int = 2                   # discriminator scales
    n_layers_d: int = ranged(4, at_least=1)  # official n_layers_D: n_layers_d - 1 normed convs
    norm_d: DiscriminatorNorm = "instance"
    spectral_d: bool = True
    use_vae: bool = False            # image encoder -> z: multimodal and style-guided synthesis
    z_dim: int = ranged(256, at_least=1)
    norm_e: DiscriminatorNorm = "instance"
    spectral_e: bool = True
    gan_mode: GanMode = "hinge"
    label_smoothing: float = ranged(0.0, at_least=0, below=1)  # one-sided label smoothing
                                     # (Salimans et al., 2016): D's real targets 1 - s; vanilla
                                     # and lsgan losses only; 0 = off
    lambda_feat: float = 10.0        # feature matching; 0 = off (--no_ganFeat_loss)
    lambda_vgg: float = 10.0         # VGG19 perceptual loss; 0 = off (--no_vgg_loss)
    lambda_kld: float = 0.05         # KL divergence of the VAE encoder
    vgg_weights: str | None = None   # torchvision VGG19 weights; None = the torchvision cache
    init_type: Literal["xavier", "normal"] = "xavier"
    init_gain: float = 0.02          # SPADE's --init_variance
    style_temperature: float = 0.0   # generate(style=...): z = mu + t * sigma * eps; 0 = mu
    step_order: StepOrder = "official"   # official: G's step, then D's on a fresh fake of the
                                     # updated G; d_first: D, then G against the updated D, one
                                     # fake for both (condsynth's default phases)


def cpu_channels_last(x: Tensor) -> Tensor:
    """``x`` in channels-last layout on the CPU, where oneDNN's convolutions run faster in it
    (measured on SPADE at 256x512: 1.2-1.3x in fp32, 1.1-1.2x more under bf16 autocast); other
    devices keep the caller's layout."""
    return x.contiguous(memory_format=torch.channels_last) if x.device.type == "cpu" else x


def latent_grid(crop_size: int, aspect_ratio: float, num_upsampling: int) -> tuple[int, int]:
    """The official generator's starting grid (sh, sw) for a training crop."""
    sh, sw = _grid(crop_size, aspect_ratio, num_upsampling)
    if sw < 1 or sh < 1:
        raise ConfigError(f"crop_size {crop_size} with aspect_ratio {aspect_ratio} gives a "
                          f"{sh}x{sw} starting grid for {num_upsampling} up-samplings. Fix: use "
                          f"a crop of at least {2 ** num_upsampling} pixels, or fewer "
                          "up-sampling layers.")
    return sh, sw


MIN_GRID = 4   # the smallest starting grid (shorter side) fit_to_size lets the generator have


def fit_to_size(cfg: SPADEConfig, crop_size: int, aspect_ratio: float) -> list[str]:
    """Resolve ``cfg.num_upsampling`` for a training crop, in place; what changed, for the log.

    The official generator starts from ``crop_size / 2**num_up`` (see :func:`latent_grid`):
    a 1x1 grid at a 32-pixel crop with ``normal`` up-sampling, where every label map is read
    at one pixel and batch norm sees the same value in every sample. With ``cfg.fit_size`` and
    an unset ``num_upsampling``, the coarsest doublings are left out until the grid's shorter
    side is at least :data:`MIN_GRID` (3 doublings at 32 pixels, 4 at 64); from 128 pixels up
    (``normal``) nothing changes.
    """
    official = NUM_UPSAMPLINGS[cfg.num_upsampling_layers]
    changes = []
    if cfg.num_upsampling is None:
        chosen = official
        if cfg.fit_size:
            while chosen > 0 and min(_grid(crop_size, aspect_ratio, chosen)) < MIN_GRID:
                chosen -= 1
        if chosen != official:
            sh, sw = _grid(crop_size, aspect_ratio, official)
            h, w = _grid(crop_size, aspect_ratio, chosen)
            changes.append(f"model.num_upsampling {chosen} instead of {official} "
                           f"({cfg.num_upsampling_layers}): a {h}x{w} starting grid instead "
                           f"of {sh}x{sw}")
        cfg.num_upsampling = chosen
    return changes


def _grid(crop_size: int, aspect_ratio: float, num_upsampling: int) -> tuple[int, int]:
    """(sh, sw) as :func:`latent_grid` computes it, without its check."""
    sw = crop_size // 2 ** num_upsampling
    return round(sw / aspect_ratio), sw


class SPADEGenerator(nn.Module):
    """SPADE generator: a small grid up-sampled by nearest x2 through SPADE residual blocks.

    Args:
        label_channels: channels L of the condition (one-hot + dont-care + edges, or an image).
        ngf: width of the last block; the blocks have 16, 16, 16, 8, 4, 2, 1 (, 1/2) x ngf.
        num_upsampling_layers: ``normal`` (5 doublings), ``more`` (one more between the middle
            blocks) or ``most`` (and one more block, ``up_4``, at the end).
        base_grid: (sh, sw), the starting grid of the training crop (see :func:`latent_grid`);
            used with the VAE and for inputs that are not multiples of ``2**num_up``.
        num_upsampling: the doublings made, at most those of ``num_upsampling_layers`` (None:
            all of them); with fewer, the first (coarsest) are left out and the blocks before
            the first doubling run on the starting grid. Every block is kept.
        norm, spectral, kernel_size, hidden: of the SPADE residual blocks.
        z_dim: with a value, the VAE generator: it starts from ``fc(z)`` instead of the label.
    Forward: segmap (B, L, H, W), z (B, z_dim) or None -> (B, 3, H', W') in [-1, 1], where
    (H', W') = (H, W) for multiples of ``2**num_up`` and ``base_grid * 2**num_up`` otherwise.
    """

    def __init__(self, label_channels: int, ngf: int = 64,
                 num_upsampling_layers: UpsamplingLayers = "normal",
                 base_grid: tuple[int, int] = (8, 8), norm: ParamFreeNorm = "sync_batch",
                 spectral: bool = True, kernel_size: int = 3, hidden: int = 128,
                 z_dim: int | None = None, num_upsampling: int | None = None) -> None:
        super().__init__()
        self.ngf = ngf
        self.num_upsampling_layers = num_upsampling_layers
        full = NUM_UPSAMPLINGS[num_upsampling_layers]
        if num_upsampling is None:
            num_upsampling = full
        if not 0 <= num_upsampling <= full:
            raise ConfigError(f"model.num_upsampling is {num_upsampling}; "
                              f"num_upsampling_layers {num_upsampling_layers} has {full} "
                              f"doublings. Fix: a number from 0 to {full}, or leave it unset.")
        self.num_upsampling = num_upsampling
        # The blocks entered after a doubling, in order; the first ones are left out when
        # num_upsampling is smaller than the layout's count.
        doubled = ["G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3", "up_4"]
        if num_upsampling_layers == "normal":
            doubled.remove("G_middle_1")
        if num_upsampling_layers != "most":
            doubled.remove("up_4")
        self.doubled_before = frozenset(doubled[full - num_upsampling:])
        self.base_grid = tuple(base_grid)
        self.z_dim = z_dim
        # Training in the contiguous layout computes as the official code does (the float
        # rounding of channels-last convolutions differs); inference always uses channels-last.
        self.channels_last_training = True
        sh, sw = self.base_grid
        nf = ngf

        def block(cin: int, cout: int) -> SPADEResBlock:
            return SPADEResBlock(cin, cout, label_channels, norm, spectral, kernel_size, hidden)

        if z_dim is not None:
            self.fc = nn.Linear(z_dim, 16 * nf * sh * sw)
        else:
            self.fc = nn.Conv2d(label_channels, 16 * nf, 3, padding=1)
        self.head_0 = block(16 * nf, 16 * nf)
        self.G_middle_0 = block(16 * nf, 16 * nf)
        self.G_middle_1 = block(16 * nf, 16 * nf)
        self.up_0 = block(16 * nf, 8 * nf)
        self.up_1 = block(8 * nf, 4 * nf)
        self.up_2 = block(4 * nf, 2 * nf)
        self.up_3 = block(2 * nf, 1 * nf)
        final = nf
        if num_upsampling_layers == "most":
            self.up_4 = block(1 * nf, nf // 2)
            final = nf // 2
        self.conv_img = nn.Conv2d(final, 3, 3, padding=1)

    def grid_for(self, height: int, width: int) -> tuple[int, int]:
        """The starting grid for an input of this size (see the class docstring)."""
        factor = 2 ** self.num_upsampling
        if height % factor == 0 and width % factor == 0:
            return height // factor, width // factor
        return self.base_grid

    def forward(self, segmap: Tensor, z: Tensor | None = None) -> Tensor:
        grid = self.grid_for(*segmap.shape[-2:])
        channels_last = self.channels_last_training or not self.training
        if channels_last:
            segmap = cpu_channels_last(segmap)   # every later activation inherits the layout
        if self.z_dim is not None:
            if z is None:
                z = torch.randn(segmap.shape[0], self.z_dim, device=segmap.device)
            x = self.fc(z).view(-1, 16 * self.ngf, *self.base_grid)   # (B, 16ngf, sh, sw)
            x = resize_nearest(x, grid)
            x = cpu_channels_last(x) if channels_last else x
        else:
            x = self.fc(resize_nearest(segmap, grid))                    # (B, 16ngf, sh, sw)

        def up(x: Tensor) -> tuple[Tensor, Tensor]:
            """x doubled, and the label map at its new resolution, resized once per resolution
            and shared by every block there."""
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            return x, resize_nearest(segmap, x.shape[-2:])

        seg = resize_nearest(segmap, x.shape[-2:])
        x = self.head_0(x, seg)
        blocks = [("G_middle_0", self.G_middle_0), ("G_middle_1", self.G_middle_1),
                  ("up_0", self.up_0), ("up_1", self.up_1), ("up_2", self.up_2),
                  ("up_3", self.up_3)]
        if self.num_upsampling_layers == "most":
            blocks.append(("up_4", self.up_4))
        for name, block in blocks:
            if name in self.doubled_before:
                x, seg = up(x)
            x = block(x, seg)
        x = self.conv_img(F.leaky_relu(x, 0.2))
        return torch.tanh(x).contiguous()


class ConvEncoder(nn.Module):
    """SPADE's VAE image encoder: six stride-2 3x3 convolutions, then two linear layers giving
    the mean and log-variance of q(z | image).

    As the official encoder, it first resizes the image to 256x256 (bilinear), so any image size
    works, and its width is the generator's ``ngf``. Unlike the official one, which only builds
    its sixth layer for ``crop_size >= 256`` (and then fails on smaller crops) and always outputs
    256 numbers, it always has six layers and outputs ``z_dim``; for ``z_dim`` 256 it is the
    official network.

    Args:
        width: channels of the first layer (x1, 2, 4, 8, 8, 8).
        z_dim: size of mu and logvar.
        norm: normalization after each convolution (instance: affine-free, as the official).
        spectral: spectral norm on the convolutions.
    Forward: image (B, 3, H, W) in [-1, 1] -> mu (B, z_dim), logvar (B, z_dim).
    """

    input_size = 256

    def __init__(self, width: int = 64, z_dim: int = 256, norm: DiscriminatorNorm = "instance",
                 spectral: bool = True) -> None:
        super().__init__()

        def stage(cin: int, cout: int) -> nn.Sequential:
            # A normalized convolution's bias would be removed by the norm: the official drops it.
            conv = nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=norm == "none")
            if spectral:
                conv = nn.utils.spectral_norm(conv)
            return nn.Sequential(conv, norm_layer(norm, cout, affine=norm != "instance"))

        self.layer1 = stage(3, width)                   # 256 -> 128
        self.layer2 = stage(width, 2 * width)           # -> 64
        self.layer3 = stage(2 * width, 4 * width)       # -> 32
        self.layer4 = stage(4 * width, 8 * width)       # -> 16
        self.layer5 = stage(8 * width, 8 * width)       # -> 8
        self.layer6 = stage(8 * width, 8 * width)       # -> 4
        features = 8 * width * 4 * 4
        self.fc_mu = nn.Linear(features, z_dim)
        self.fc_var = nn.Linear(features, z_dim)

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        x = image
        if tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                              align_corners=False)
        x = self.layer1(x)
        for layer in (self.layer2, self.layer3, self.layer4, self.layer5, self.layer6):
            x = layer(F.leaky_relu(x, 0.2))
        x = F.leaky_relu(x, 0.2).flatten(1)                           # (B, 8 width * 16)
        return self.fc_mu(x), self.fc_var(x)


def reparameterize(mu: Tensor, logvar: Tensor, eps: Tensor | None = None) -> Tensor:
    """z = mu + eps * sigma with sigma = exp(logvar / 2) and eps ~ N(0, I) unless given."""
    std = torch.exp(0.5 * logvar)
    if eps is None:
        eps = torch.randn_like(std)
    return eps * std + mu


def split_fake_real(pred: list[list[Tensor]], batch: int
                    ) -> tuple[list[list[Tensor]], list[list[Tensor]]]:
    """Split a discriminator's output on cat([fake, real]) into its fake and real halves."""
    fake = [[f[:batch] for f in scale] for scale in pred]
    real = [[f[batch:] for f in scale] for scale in pred]
    return fake, real


@register_method("spade", SPADEConfig)
class GauGAN(Method):
    """SPADE (GauGAN). Batches hold ``label`` (+ ``instance``) or ``source``, and ``image``.

    With ``model.use_vae`` the method also owns ``encoder`` (a :class:`ConvEncoder`): training
    encodes the real image, and :meth:`generate` takes a style image or an explicit z.
    A batch may carry ``eps`` (B, z_dim), the reparameterization noise, to reproduce a recorded
    run exactly; it is drawn from N(0, I) otherwise.
    """

    size_settings = ("model.num_upsampling_layers: normal, more, most need multiples of 32, "
                     "64, 128; or model.num_upsampling: multiples of 2**num_upsampling")
    optim_defaults = OptimDefaults(lr_g=1e-4, lr_d=4e-4, beta1=0.0, beta2=0.9)

    @classmethod
    def saved_run_config(cls, config: Config) -> Config:
        """Every run trained since ``model.fit_size`` exists records ``model.num_upsampling``;
        a run without it was trained with the official networks, which it keeps."""
        if config.model.num_upsampling is None:
            config.model.fit_size = False
        return config

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        cfg: SPADEConfig = config.model
        if cfg.label_smoothing and cfg.gan_mode not in ("vanilla", "lsgan"):
            raise ConfigError(f"model.label_smoothing needs the vanilla or lsgan loss, not "
                              f"model.gan_mode={cfg.gan_mode}. Fix: set model.label_smoothing=0 "
                              "or model.gan_mode=vanilla.")
        if cfg.n_layers_d < 2:
            raise ConfigError(f"model.n_layers_d is {cfg.n_layers_d}; SPADE's discriminator "
                              "needs at least 2 (4 is the official default)")
        label_channels = config.condition.input_channels
        changes = fit_to_size(cfg, config.data.crop_size, config.data.aspect_ratio)
        if changes:                           # written back: config.yaml holds the choice
            print(f"spade at a {config.data.crop_size}-pixel crop: {'; '.join(changes)} "
                  "(model.fit_size=false keeps the official networks)")
        base_grid = latent_grid(config.data.crop_size, config.data.aspect_ratio,
                                cfg.num_upsampling)
        self.generator = SPADEGenerator(
            label_channels, cfg.ngf, cfg.num_upsampling_layers, base_grid, cfg.norm_g,
            cfg.spectral_g, cfg.spade_kernel_size, cfg.spade_hidden,
            z_dim=cfg.z_dim if cfg.use_vae else None, num_upsampling=cfg.num_upsampling)
        self.discriminator = MultiscaleDiscriminator(
            label_channels + 3, cfg.num_d, cfg.ndf, cfg.n_layers_d - 1, norm=cfg.norm_d,
            spectral=cfg.spectral_d, normed_conv_bias=cfg.norm_d == "none", padding=2,
            max_channels=512)
        self.generator.channels_last_training = config.train.channels_last
        networks: list[nn.Module] = [self.generator, self.discriminator]
        if cfg.use_vae:
            self.encoder = ConvEncoder(cfg.ngf, cfg.z_dim, cfg.norm_e, cfg.spectral_e)
            networks.append(self.encoder)
            self.network_names = ("generator", "discriminator", "encoder")
            self.inference_networks = ("generator", "encoder")
        for network in networks:
            init_weights(network, cfg.init_type, cfg.init_gain)
        # The VGG19 of the perceptual loss is built on the first generator step (it needs a
        # weights file) and kept outside the module tree: it is a fixed measuring instrument,
        # not part of the model, never saved and never trained.
        object.__setattr__(self, "_vgg", None)

    def size_multiple(self) -> int:
        return 2 ** self.generator.num_upsampling

    # ----------------------------------------------------------------------------- training
    def forward_generator(self, batch: Batch) -> dict[str, Tensor]:
        condition = self.condition(batch)                                  # (B, L, H, W)
        out: dict[str, Tensor] = {"condition": condition}
        z = None
        if self.config.model.use_vae:
            mu, logvar = self.encoder(batch["image"])                     # (B, z_dim) each
            z = reparameterize(mu, logvar, batch.get("eps"))
            out.update(mu=mu, logvar=logvar, z=z)
        out["fake"] = self.generator(condition, z)                         # (B, 3, H, W)
        return out

    def phases(self) -> list[Phase]:
        if self.config.model.step_order == "official":
            return generator_first()
        return super().phases()

    def phase_losses(self, phase: Phase, batch: Batch, cache: dict[str, Any]
                     ) -> dict[str, Tensor]:
        """In the official order D learns from a new fake of the generator after its step,
        made in training mode under no_grad: the generator's spectral-norm vectors and
        batch-norm statistics advance a second time in the iteration, as in NVlabs' trainer
        (with the VAE the real image is encoded again and z drawn again)."""
        if phase.name == "discriminator" and self.config.model.step_order == "official":
            with torch.no_grad():
                out = self.forward_generator(batch)
            cache["discriminator_out"] = out    # for inspection: what D learned from
            return self.discriminator_step(batch, out)
        return super().phase_losses(phase, batch, cache)

    def _discriminate(self, discriminator: nn.Module, condition: Tensor, fake: Tensor,
                      real: Tensor) -> tuple[list[list[Tensor]], list[list[Tensor]]]:
        # Fake and real pairs go through D as one batch, as the official code does: one forward
        # per step (what DistributedDataParallel allows) and one spectral-norm power iteration.
        pairs = torch.cat([torch.cat([condition, fake], 1), torch.cat([condition, real], 1)], 0)
        return split_fake_real(discriminator(self._layout(pairs)), fake.shape[0])

    def discriminator_step(self, batch: Batch, out: dict[str, Tensor]) -> dict[str, Tensor]:
        cfg: SPADEConfig = self.config.model
        pred_fake, pred_real = self._discriminate(self.discriminator, out["condition"],
                                                  out["fake"].detach(), batch["image"])
        # SPADE's GAN loss averages the scales (pix2pixHD's sums them).
        return {"d_fake": d_adversarial_loss(pred_fake, False, cfg.gan_mode) / cfg.num_d,
                "d_real": d_adversarial_loss(pred_real, True, cfg.gan_mode,
                                             1.0 - cfg.label_smoothing) / cfg.num_d}

    def generator_step(self, batch: Batch, out: dict[str, Tensor]) -> dict[str, Tensor]:
        cfg: SPADEConfig = self.config.model
        fake, real = out["fake"], batch["image"]
        with self.frozen(self.discriminator) as discriminator:
            pred_fake, pred_real = self._discriminate(discriminator, out["condition"], fake, real)
        losses = {"g_gan": g_adversarial_loss(pred_fake, cfg.gan_mode) / cfg.num_d}
        if cfg.lambda_feat > 0:
            # L1 per layer, 1/num_D per scale, no per-layer factor (pix2pixHD has one).
            losses["g_feat"] = cfg.lambda_feat * feature_matching_loss(pred_fake, pred_real)
        if cfg.lambda_vgg > 0:
            vgg = self.vgg_loss(fake.device)
            losses["g_vgg"] = cfg.lambda_vgg * vgg(self._layout(fake), self._layout(real))
        if cfg.use_vae:
            losses["g_kl"] = cfg.lambda_kld * kl_divergence(out["mu"], out["logvar"])
        return losses

    def _layout(self, x: Tensor) -> Tensor:
        """A training activation in the layout ``train.channels_last`` asks for."""
        return cpu_channels_last(x) if self.config.train.channels_last else x

    def vgg_loss(self, device: torch.device) -> VGG19Loss:
        """The perceptual loss network, built from ``model.vgg_weights`` on first use."""
        if self._vgg is None:
            object.__setattr__(self, "_vgg", VGG19Loss(self.config.model.vgg_weights))
        vgg: VGG19Loss = self._vgg
        if next(vgg.parameters()).device != device:
            vgg.to(device)
        return vgg

    # ----------------------------------------------------------------------------- inference
    @torch.no_grad()
    def encode_style(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """mu and logvar (B, z_dim) of the encoder for style images (B, 3, H, W) in [-1, 1]."""
        if not self.config.model.use_vae:
            raise CondsynthError(self._no_encoder_message("a style image"))
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            with self.inference_autocast():
                mu, logvar = self.encoder(image.to(self.device))
            return mu.float(), logvar.float()
        finally:
            self.encoder.train(was_training)

    @inference
    def generate(self, cond: Tensor | None = None, *, batch_size: int | None = None,
                 z: Tensor | None = None, style: Tensor | None = None,
                 instance: Tensor | None = None) -> Tensor:
        """Synthesize (B, 3, H, W) images in [-1, 1] from (B, H, W) label maps ``cond``.

        Without the VAE the output is a function of the layout alone. With it:

        - ``z`` (B, z_dim) or (z_dim,) given: that code (it overrides ``style``);
        - else ``style`` (B or 1, 3, h, w) in [-1, 1] given: style-guided synthesis, z = the
          encoder's mu for that image, or mu + t * sigma * eps with ``model.style_temperature``
          t > 0 (t = 1 samples q(z | style) as the official test script does);
        - else z ~ N(0, I) from torch's global generator: multimodal synthesis, a different
          image for each draw.

        Output size: see the module docstring (the input's size for multiples of
        :meth:`size_multiple`). Networks run in eval mode and are returned to their mode after.
        """
        cfg: SPADEConfig = self.config.model
        condition = self.encode(cond, instance)
        batch = condition.shape[0]
        if not cfg.use_vae and (style is not None or z is not None):
            raise CondsynthError(self._no_encoder_message("a style image or z"))
        if cfg.use_vae:
            if z is not None:
                z = z.to(self.device, torch.float32)
                if z.dim() == 1:
                    z = z.unsqueeze(0)
                if z.shape[-1] != cfg.z_dim or z.shape[0] not in (1, batch):
                    raise CondsynthError(f"z has shape {tuple(z.shape)}; this model expects "
                                         f"({batch}, {cfg.z_dim}) or ({cfg.z_dim},)")
            elif style is not None:
                mu, logvar = self.encode_style(style)
                z = mu
                if cfg.style_temperature > 0:
                    z = mu + cfg.style_temperature * torch.exp(0.5 * logvar) * torch.randn_like(mu)
                if z.shape[0] not in (1, batch):
                    raise CondsynthError(f"{z.shape[0]} style images for {batch} label maps: give "
                                         "one style image, or one per label map")
            else:
                z = torch.randn(batch, cfg.z_dim, device=self.device)
            z = z.expand(batch, -1)
        was_training = self.generator.training
        self.generator.eval()
        try:
            return self.generator(condition, z)
        finally:
            self.generator.train(was_training)

    def capabilities(self) -> frozenset[Capability]:
        vae = {Capability.STYLE_IMAGE, Capability.RANDOM_LOOKS, Capability.LATENT}
        return super().capabilities() | (vae if self.config.model.use_vae else set())

    @staticmethod
    def _no_encoder_message(what: str) -> str:
        return (f"{what} was given, but this SPADE model was trained without the VAE image "
                "encoder (model.use_vae false), so its output depends on the layout alone. "
                "Fix: leave it out, or use a model trained with model.use_vae=true.")
