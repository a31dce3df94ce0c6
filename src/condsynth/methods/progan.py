"""ProGAN: Progressive Growing of GANs for Improved Quality, Stability, and Variation (Karras,
Aila, Laine and Lehtinen, ICLR 2018), as its official code (tkarras/progressive_growing_of_gans:
``networks.G_paper``/``D_paper``, ``loss.py``, ``train.TrainingSchedule``) trains it.

**Growing.** G and D start at ``initial_resolution`` (4x4) and double up to the image size.
Time is counted in real images shown (one minibatch per iteration). Each level is first
stabilised for ``stabilize_images``, then the next one is faded in over ``fade_images``: the
level of detail ``lod`` (log2 of the target over the resolution) falls linearly from an integer
to the next, and its fraction ``t`` blends the new block with the nearest-upsampled output of
the previous level in G (``fade``), and, in D, the new block with the previous level's fromRGB
of the 2x2-averaged input; the real images are blended the same way with their 2x2 averages.
As in the official loop, the schedule is evaluated every ``minibatch_repeats`` iterations, the
batch size and the learning rate may change per resolution (``batch_sizes``,
``learning_rates``), and Adam's state is reset whenever the floor or ceiling of ``lod``
changes (``reset_optimizers``). Everything is a function of the iteration, so a resume at any
iteration (mid-fade too) continues the straight run exactly.

**Networks** (``G_paper``, ``D_paper``): feature maps ``nf(stage) = min(fmap_base /
2^(stage * fmap_decay), fmap_max)``; every layer with an equalized learning rate; leaky ReLU
0.2. G: the latent, pixel-normalised, through a dense layer to 4x4 (gain sqrt(2)/4) and a 3x3
convolution, then per level a nearest x2 upsampling and two 3x3 convolutions, pixel norm after
every convolution; toRGB 1x1 convolutions (gain 1), no tanh. D: fromRGB 1x1, per level two 3x3
convolutions and 2x2 average pooling, and at 4x4 the minibatch standard deviation (group 4), a
3x3 convolution, a dense layer and the dense output. (The official code fuses the up- and
down-sampling into the convolutions at every level; condsynth runs them as the separate
layers the paper describes, its ``fused_scale=False``.)

**Loss** (``G_wgan_acgan``, ``D_wgangp_acgan``): WGAN-GP with lambda 10 and target gamma
(penalty ``(||grad|| - gamma)^2 / gamma^2``), the drift ``0.001 * E[D(x)^2]``; G and D each draw
their own latents. The official networks always take full-size images (lower levels are
nearest-upsampled in, average-pooled inside D); condsynth runs them at the current resolution,
which computes the same outputs, and scales the gradient norm by resolution / size to give the
norm of the official full-size input. Adam lr 0.001, betas (0, 0.99), eps 1e-8. The smoothed
generator ``generator_smoothed`` (the official ``Gs``: G's weights averaged with decay 0.999,
updated with every D step) draws the samples. Mirror augmentation is ``data.flip``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condsynth.config import Config
from condsynth.errors import ConfigError
from condsynth.layers.progan import (
    EqualConv2d,
    EqualLinear,
    MinibatchStdDev,
    PixelNorm,
    downscale2d,
    fade,
    upscale2d,
)
from condsynth.losses import drift_penalty, gradient_penalty
from condsynth.methods.base import (
    Batch,
    Method,
    OptimDefaults,
    Phase,
    StepSchedule,
    inference,
)
from condsynth.registry import register_method


@dataclass
class ProGANConfig:
    # --- networks (G_paper / D_paper)
    fmap_base: int = 8192          # nf(stage) = min(fmap_base / 2^(stage * fmap_decay), fmap_max)
    fmap_decay: float = 1.0
    fmap_max: int = 512
    latent_size: int | None = None  # None = nf(0), as the official code
    normalize_latents: bool = True  # pixel norm on z before the first layer
    pixelnorm: bool = True         # pixel norm after every convolution of G
    pixelnorm_eps: float = 1e-8
    mbstd_group_size: int = 4      # minibatch standard deviation group; 0 = none
    # --- growing (TrainingSchedule), in real images shown
    initial_resolution: int = 4    # lod_initial_resolution; the image size = no growing
    stabilize_images: int = 600_000  # lod_training_kimg * 1000 (the paper's runs: 800k)
    fade_images: int = 600_000     # lod_transition_kimg * 1000 (the paper's runs: 800k)
    minibatch_repeats: int = 4     # iterations between evaluations of the schedule
    batch_sizes: dict[int, int] = field(default_factory=dict)   # per resolution
                                   # (minibatch_dict); others: train.batch_size
    learning_rates: dict[int, float] = field(default_factory=dict)  # G's and D's per
                                   # resolution (G_lrate_dict = D_lrate_dict); others: lr_g/lr_d
    reset_optimizers: bool = True  # reset_opt_for_new_lod
    # --- loss and averaging
    gp_lambda: float = 10.0        # wgan_lambda
    gp_target: float = 1.0         # wgan_target (iwass_target; the CIFAR-10 run: 750)
    drift: float = 0.001           # wgan_epsilon
    g_smoothing: float = 0.999     # decay of the smoothed generator Gs; 0 = a copy of G
    # --- the run's page
    progress_images: int = 256     # SWD and MS-SSIM on this many images at each samples
                                   # refresh; 0 = none


def feature_maps(cfg: ProGANConfig) -> Any:
    """The official ``nf(stage)``: feature maps of a stage (stage s works at 2^(s+1))."""
    def nf(stage: int) -> int:
        return min(int(cfg.fmap_base / (2.0 ** (stage * cfg.fmap_decay))), cfg.fmap_max)
    return nf


class ProGANGenerator(nn.Module):
    """(B, latent) codes → (B, channels, r, r) images at the resolution ``r`` a ``lod`` gives
    (``r = size / 2^floor(lod)``; a fractional lod fades the newest block in)."""

    def __init__(self, latent_size: int, channels: int, size: int, cfg: ProGANConfig) -> None:
        super().__init__()
        nf = feature_maps(cfg)
        self.levels = int(math.log2(size)) - 1                # 4x4 .. size
        # The latents are normalized whatever ``pixelnorm`` says, as in the official code.
        self.latent_norm = PixelNorm(cfg.pixelnorm_eps) if cfg.normalize_latents else nn.Identity()
        self.norm = PixelNorm(cfg.pixelnorm_eps) if cfg.pixelnorm else nn.Identity()
        width = nf(1)
        self.dense = EqualLinear(latent_size, width * 16, gain=math.sqrt(2) / 4)
        self.blocks = nn.ModuleList([EqualConv2d(width, width, 3)])      # the 4x4 block's conv
        self.to_rgb = nn.ModuleList([EqualConv2d(width, channels, 1, gain=1.0)])
        for level in range(1, self.levels):
            out = nf(level + 1)
            self.blocks.append(nn.ModuleList([EqualConv2d(width, out, 3),
                                              EqualConv2d(out, out, 3)]))
            self.to_rgb.append(EqualConv2d(out, channels, 1, gain=1.0))
            width = out

    def _act(self, x: Tensor) -> Tensor:
        return self.norm(F.leaky_relu(x, 0.2))

    def forward(self, z: Tensor, lod: float) -> Tensor:
        top = self.levels - 1 - math.floor(lod)              # the highest level that runs
        t = lod - math.floor(lod)                           # weight of the previous level
        z = self.latent_norm(z)
        x = self._act(self.dense(z).view(z.shape[0], -1, 4, 4))       # (B, nf(1), 4, 4)
        x = self._act(self.blocks[0](x))
        previous = x
        for level in range(1, top + 1):
            previous = x
            conv0, conv1 = self.blocks[level]
            x = self._act(conv0(upscale2d(x)))
            x = self._act(conv1(x))
        image = self.to_rgb[top](x)
        if top > 0 and t > 0:
            image = fade(image, upscale2d(self.to_rgb[top - 1](previous)), t)
        return image


class ProGANDiscriminator(nn.Module):
    """(B, channels, r, r) images at the resolution a ``lod`` gives → (B,) critic scores."""

    def __init__(self, channels: int, size: int, cfg: ProGANConfig) -> None:
        super().__init__()
        nf = feature_maps(cfg)
        self.levels = int(math.log2(size)) - 1
        self.from_rgb = nn.ModuleList([EqualConv2d(channels, nf(level + 1), 1)
                                       for level in range(self.levels)])
        self.blocks = nn.ModuleList([nn.ModuleList([EqualConv2d(nf(level + 1), nf(level + 1), 3),
                                                    EqualConv2d(nf(level + 1), nf(level), 3)])
                                     for level in range(1, self.levels)])
        stddev = cfg.mbstd_group_size > 1
        self.stddev = MinibatchStdDev(cfg.mbstd_group_size) if stddev else nn.Identity()
        self.conv = EqualConv2d(nf(1) + int(stddev), nf(1), 3)
        self.dense0 = EqualLinear(nf(1) * 16, nf(0))
        self.dense1 = EqualLinear(nf(0), 1, gain=1.0)

    def forward(self, image: Tensor, lod: float) -> Tensor:
        top = self.levels - 1 - math.floor(lod)
        t = lod - math.floor(lod)
        x = F.leaky_relu(self.from_rgb[top](image), 0.2)
        for level in range(top, 0, -1):
            conv0, conv1 = self.blocks[level - 1]
            x = F.leaky_relu(conv0(x), 0.2)
            x = downscale2d(F.leaky_relu(conv1(x), 0.2))
            if level == top and t > 0:
                x = fade(x, F.leaky_relu(self.from_rgb[top - 1](downscale2d(image)), 0.2), t)
        x = F.leaky_relu(self.conv(self.stddev(x)), 0.2)             # (B, nf(1), 4, 4)
        x = F.leaky_relu(self.dense0(x.flatten(1)), 0.2)
        return self.dense1(x).flatten()


@dataclass(frozen=True)
class Growth:
    """Where the growing stands at an iteration."""

    images: int          # real images shown before the iteration
    lod: float           # level of detail: log2(size / resolution), fractional while fading
    resolution: int      # the resolution G and D run at
    batch_size: int


@register_method("progan", ProGANConfig)
class ProGAN(Method):
    """ProGAN, unconditional. Batches hold ``image``."""

    optim_defaults = OptimDefaults(lr_g=1e-3, lr_d=1e-3, beta1=0.0, beta2=0.99)
    network_names = ("generator", "discriminator", "generator_smoothed")
    inference_networks = ("generator_smoothed",)
    condition_kinds = ("none",)
    size_settings = "data.crop_size (a power of two)"
    config_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "condition": {"kind": "none"},
        "data": {"load_size": 32, "crop_size": 32, "preprocess": "fixed", "flip": False},
        "train": {"batch_size": 16, "decay_start": 1.0},     # minibatch_base; a constant lr
    }

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        cfg: ProGANConfig = config.model
        size = config.data.crop_size
        if size < 4 or size & (size - 1) or config.data.aspect_ratio != 1.0:
            raise ConfigError(f"progan makes square images whose side is a power of two (4, 8, "
                              f"..., 1024); data.crop_size is {size} and data.aspect_ratio "
                              f"{config.data.aspect_ratio}. Fix: --size 32 (or 64, 128, ...).")
        start = cfg.initial_resolution
        if start < 4 or start & (start - 1) or start > size:
            raise ConfigError(f"model.initial_resolution is {start}; it must be a power of two "
                              f"from 4 to the image size {size}. Fix: model.initial_resolution=4 "
                              f"(growing) or ={size} (no growing).")
        positive = {"fmap_base": cfg.fmap_base, "fmap_max": cfg.fmap_max,
                    "minibatch_repeats": cfg.minibatch_repeats}
        if cfg.latent_size is not None:
            positive["latent_size"] = cfg.latent_size
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"model.{name} is {value}; it must be at least 1")
        smallest = feature_maps(cfg)(int(math.log2(size)) - 1)
        if smallest < 1:
            raise ConfigError(f"model.fmap_base {cfg.fmap_base} leaves the {size}x{size} level "
                              f"with {smallest} feature maps. Fix: model.fmap_base of at least "
                              f"{math.ceil(2 ** ((math.log2(size) - 1) * cfg.fmap_decay))}.")
        if cfg.stabilize_images < 0 or cfg.fade_images < 0:
            raise ConfigError("model.stabilize_images and model.fade_images count images: "
                              "they must be 0 or more")
        if not 0 <= cfg.g_smoothing < 1:
            raise ConfigError(f"model.g_smoothing is {cfg.g_smoothing}; it must be in [0, 1)")
        if cfg.gp_target <= 0:
            raise ConfigError(f"model.gp_target is {cfg.gp_target}; it must be above 0")
        if cfg.progress_images < 0 or cfg.progress_images == 1:
            raise ConfigError("model.progress_images must be 0 (off) or at least 2")
        levels = {4 * 2 ** k for k in range(int(math.log2(size)) - 1)}
        for name, table in (("batch_sizes", cfg.batch_sizes), ("learning_rates",
                                                              cfg.learning_rates)):
            stray = sorted(set(table) - levels)
            if stray:
                raise ConfigError(f"model.{name} names the resolutions {stray}, which a "
                                  f"{size}x{size} progan never trains at. Fix: use "
                                  f"{sorted(levels)}.")
            bad = [k for k, v in table.items() if v <= 0]
            if bad:
                raise ConfigError(f"model.{name} at {bad}: values must be above 0")
        if config.train.ema > 0:
            raise ConfigError("progan keeps its own smoothed generator (model.g_smoothing), "
                              "which draws the samples. Fix: train.ema=0.")
        group = cfg.mbstd_group_size
        if group > 1:
            for res in sorted(levels):
                b = cfg.batch_sizes.get(res, config.train.batch_size)
                if b % min(group, b):
                    raise ConfigError(f"the batch size {b} at {res}x{res} is not a multiple "
                                      f"of model.mbstd_group_size {group}, as the minibatch "
                                      f"standard deviation needs. Fix: a batch size that "
                                      f"{group} divides, or model.mbstd_group_size=0.")
        self.size = size
        self.max_lod = int(math.log2(size)) - int(math.log2(start))
        self.full_lod = int(math.log2(size)) - 2
        channels = config.data.channels
        latent = self.latent_size()
        self.generator = ProGANGenerator(latent, channels, size, cfg)
        self.discriminator = ProGANDiscriminator(channels, size, cfg)
        self.generator_smoothed = ProGANGenerator(latent, channels, size, cfg).requires_grad_(False)
        self.generator_smoothed.load_state_dict(self.generator.state_dict())
        # The level of detail the networks last trained at: what ``generate`` draws at.
        self.register_buffer("lod", torch.tensor(float(self.max_lod), dtype=torch.float64))
        self._chunk_images = [0]          # images shown at the start of each schedule chunk
        self._world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self._progress_reals: Tensor | None = None

    # ----------------------------------------------------------------------------- growing
    def lod_for(self, images: int) -> float:
        """The official ``TrainingSchedule`` lod after ``images`` real images."""
        cfg: ProGANConfig = self.config.model
        phase_length = cfg.stabilize_images + cfg.fade_images
        phase = images // phase_length if phase_length > 0 else 0
        into = images - phase * phase_length
        lod = float(self.max_lod - phase)
        if cfg.fade_images > 0:
            lod -= max(into - cfg.stabilize_images, 0) / cfg.fade_images
        return max(lod, 0.0)

    def _at(self, images: int) -> Growth:
        lod = self.lod_for(images)
        resolution = 2 ** (self.full_lod + 2 - math.floor(lod))
        batch = self.config.model.batch_sizes.get(resolution, self.config.train.batch_size)
        return Growth(images, lod, resolution, batch)

    def growth(self, step: int) -> Growth:
        """The schedule of iteration ``step``: evaluated at the start of its chunk of
        ``minibatch_repeats`` iterations (as the official loop does), ``images`` counted up to
        the iteration itself (every process's batch)."""
        repeats = self.config.model.minibatch_repeats
        chunk = step // repeats
        while len(self._chunk_images) <= chunk:
            start = self._chunk_images[-1]
            self._chunk_images.append(start + repeats * self._at(start).batch_size
                                      * self._world_size)
        plan = self._at(self._chunk_images[chunk])
        shown = plan.images + (step - chunk * repeats) * plan.batch_size * self._world_size
        return Growth(shown, plan.lod, plan.resolution, plan.batch_size)

    def images_shown(self, step: int) -> int:
        """Real images shown in iterations 0 .. step - 1."""
        return self.growth(step).images

    def schedule(self, step: int) -> StepSchedule:
        cfg: ProGANConfig = self.config.model
        plan = self.growth(step)
        scale = 1.0
        if plan.resolution in cfg.learning_rates:
            t = self.config.train
            lr_g = t.lr_g if t.lr_g is not None else self.optim_defaults.lr_g
            lr_d = t.lr_d if t.lr_d is not None else self.optim_defaults.lr_d
            if lr_g != lr_d:
                raise ConfigError(f"model.learning_rates sets G's and D's rate together, but "
                                  f"train.lr_g {lr_g} and train.lr_d {lr_d} differ. Fix: equal "
                                  "rates, or leave model.learning_rates empty.")
            scale = cfg.learning_rates[plan.resolution] / lr_g
        reset = False
        repeats = cfg.minibatch_repeats
        if cfg.reset_optimizers and step > 0 and step % repeats == 0:
            before = self.growth(step - repeats).lod
            reset = (math.floor(before) != math.floor(plan.lod)
                     or math.ceil(before) != math.ceil(plan.lod))
        return StepSchedule(batch_size=plan.batch_size, resolution=plan.resolution,
                            lr_scale=scale, reset_optimizers=reset)

    def on_step(self, step: int, max_steps: int) -> None:
        self.lod.fill_(self.growth(step).lod)

    @property
    def resolution(self) -> int:
        """The resolution G and D work at now (from the ``lod`` buffer)."""
        return self.size >> math.floor(float(self.lod))

    def may_leave_parameters_unused(self) -> bool:
        return True                                 # the levels not grown yet

    # ----------------------------------------------------------------------------- training
    def _latents(self, count: int) -> Tensor:
        return torch.randn(count, self.latent_size(), device=self.device)

    def _reals(self, batch: Batch, lod: float) -> Tensor:
        """The batch's images at the current resolution, blended with their 2x2 averages by
        the fade fraction (the official ``process_reals``)."""
        real = batch["image"]
        resolution = self.size >> math.floor(lod)
        if real.shape[-1] != resolution:
            if real.shape[-1] < resolution or real.shape[-1] % resolution:
                raise ConfigError(f"progan at {resolution}x{resolution} got "
                                  f"{real.shape[-1]}x{real.shape[-2]} images")
            real = downscale2d(real, real.shape[-1] // resolution)
        t = lod - math.floor(lod)
        if t > 0:
            real = torch.lerp(real, upscale2d(downscale2d(real)), t)
        return real

    @torch.no_grad()
    def _smooth(self) -> None:
        """Gs = beta * Gs + (1 - beta) * G, before G's step of the iteration (as the official
        loop runs the update with D's step)."""
        beta = self.config.model.g_smoothing
        for s, p in zip(self.generator_smoothed.parameters(), self.generator.parameters(),
                        strict=True):
            s.lerp_(p.detach(), 1.0 - beta)

    def phase_losses(self, phase: Phase, batch: Batch, cache: dict[str, Any]) -> dict[str, Tensor]:
        cfg: ProGANConfig = self.config.model
        lod = float(self.lod)
        count = batch["image"].shape[0]
        if phase.name == "discriminator":
            if not cache.get("smoothed"):
                self._smooth()
                cache["smoothed"] = True
            real = self._reals(batch, lod)
            with torch.no_grad():
                fake = self.generator(self._latents(count), lod)
            real_scores = self.discriminator(real, lod)
            fake_scores = self.discriminator(fake, lod)
            # The official D sees full-size images: its input gradient is this one's,
            # nearest-upsampled and divided by the area factor, so its norm is this norm
            # times resolution / size.
            penalty = gradient_penalty(lambda x: self.discriminator(x, lod), real, fake,
                                       cfg.gp_target, norm_scale=real.shape[-1] / self.size)
            return {"d_wgan": (fake_scores.float() - real_scores.float()).mean(),
                    "d_gp": cfg.gp_lambda * penalty,
                    "d_drift": cfg.drift * drift_penalty(real_scores)}
        if phase.name == "generator":
            fake = self.generator(self._latents(count), lod)
            with self.frozen(self.discriminator) as discriminator:
                scores = discriminator(fake, lod)
            return {"g_wgan": -scores.float().mean()}
        raise ValueError(f"progan has no phase {phase.name!r}")

    def discriminate(self, image: Tensor, cond: Tensor | None = None) -> Tensor:
        lod = float(self.lod)
        return self.discriminator(self._reals({"image": image}, lod), lod)

    # ----------------------------------------------------------------------------- inference
    def latent_size(self) -> int:
        cfg: ProGANConfig = self.config.model
        return cfg.latent_size if cfg.latent_size is not None else feature_maps(cfg)(0)

    @inference
    def generate(self, cond: Tensor | None = None, *, batch_size: int | None = None,
                 z: Tensor | None = None, style: Tensor | None = None,
                 instance: Tensor | None = None, native: bool = False) -> Tensor:
        """Images (B, C, size, size) in [-1, 1] from the smoothed generator at the level of
        detail trained so far, nearest-upsampled to the image size as the official snapshots
        are (``native``: at the resolution reached, not upsampled); from ``z`` (B, latent), or
        from ``batch_size`` draws of N(0, I) (torch's global RNG). Values are clipped to
        [-1, 1], as the official code clips when it writes images."""
        if style is not None or instance is not None or cond is not None:
            raise ConfigError("progan is unconditional: it takes no condition, style image or "
                              "instance map")
        latent = self.latent_size()
        if z is None:
            z = torch.randn(batch_size or 1, latent, device=self.device)
        elif z.dim() != 2 or z.shape[1] != latent:
            raise ConfigError(f"z of shape {tuple(z.shape)}; this model takes (B, {latent})")
        lod = float(self.lod)
        image = self.generator_smoothed(z.to(self.device), lod)
        if not native:
            image = upscale2d(image, self.size // image.shape[-1])
        return image.clamp(-1.0, 1.0)

    # ----------------------------------------------------------------------------- the page
    def progress_notes(self, dataset: Any, run_dir: Path, step: int) -> list[str]:
        """SWD (ProGAN's protocol, per pyramid level, x1e3) between the first
        ``progress_images`` training images and as many samples of the smoothed generator at
        the image size, and the mean MS-SSIM of sample pairs (the real pairs' beside), appended
        to ``progress.jsonl``; the page lists every measurement so far."""
        count = min(self.config.model.progress_images, len(dataset))
        if count < 2:
            return []
        from condsynth.metrics.msssim import ms_ssim, usable_scales
        from condsynth.metrics.swd import MIN_RESOLUTION, DescriptorSet, swd_between

        if self._progress_reals is None or self._progress_reals.shape[0] != count:
            self._progress_reals = torch.stack([dataset[i]["image"] for i in range(count)])
        reals = self._progress_reals
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.train.seed)
            with self.detached():
                fakes = torch.cat([self.generate(batch_size=min(64, count - i)).cpu()
                                   for i in range(0, count, 64)])
        record: dict[str, Any] = {"step": step, "images": self.images_shown(step),
                                  "resolution": self.resolution, "lod": float(self.lod)}
        if self.size >= MIN_RESOLUTION:
            sets = []
            for images in (reals, fakes):
                descriptors = DescriptorSet(images.shape[-2:], seed=0)
                descriptors.add(images.add(1).mul(127.5).round().clamp(0, 255))
                sets.append(descriptors)
            result = swd_between(*sets)
            record["swd"] = result.to_dict()
        if usable_scales(self.size, self.size) > 0:
            half = count // 2
            record["ms_ssim"] = float(ms_ssim(fakes[:half], fakes[half:2 * half]).mean())
            record["ms_ssim_real"] = float(ms_ssim(reals[:half], reals[half:2 * half]).mean())
        path = Path(run_dir) / "progress.jsonl"
        records = []
        if path.is_file():            # a resumed run measures its steps again
            records = [r for r in map(json.loads, path.read_text().splitlines())
                       if r["step"] < step]
        records.append(record)
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        lines = [f"ProGAN progress on {count} images (SWD x1e3 per pyramid level at "
                 f"{self.size}x{self.size}, finest first; MS-SSIM of sample pairs, lower = "
                 f"more varied; real pairs in brackets):"]
        for r in records:
            text = (f"step {r['step']}: {r['images'] / 1000:.1f}k images, {r['resolution']}x"
                    f"{r['resolution']} (lod {r['lod']:.2f})")
            if "swd" in r:
                levels = ", ".join(f"{k} {v:.1f}" for k, v in r["swd"]["levels"].items())
                text += f"; SWD {levels}, mean {r['swd']['mean']:.1f}"
            if "ms_ssim" in r:
                text += f"; MS-SSIM {r['ms_ssim']:.3f} ({r['ms_ssim_real']:.3f})"
            lines.append(text)
        return lines
