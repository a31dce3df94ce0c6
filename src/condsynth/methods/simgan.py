"""SimGAN: Learning from Simulated and Unsupervised Images through Adversarial Training
(Shrivastava, Pfister, Tuzel, Susskind, Wang and Webb, CVPR 2017).

A *refiner* R makes synthetic images (whose labels are exact and free) look like unlabelled
real ones, while keeping what the labels describe:

- **Refiner** (:class:`Refiner`): fully convolutional, as the paper's appendix: a 3x3
  convolution to 64 maps, N ResNet blocks of two 3x3 convolutions (4 for the eye images), and a
  1x1 convolution to the image's channels. Any size, any channel count.
- **Local adversarial loss** (:class:`LocalDiscriminator`, :func:`patch_cross_entropy`): D
  is small and fully convolutional (conv 3x3 stride 2 to 96, conv 3x3 stride 2 to 64, max-pool
  3x3 stride 1, conv 3x3 to 32, conv 1x1 to 32, conv 1x1 to 2), so each output position is a
  two-way softmax over one patch of its receptive field: real or refined. The loss is the
  cross-entropy of every patch.
- **Self-regularization** (:func:`self_regularization`): λ·‖ψ(R(x)) − ψ(x)‖₁ with ψ the
  identity (the paper's eyes and hands), the mean of the colour channels, the image gradients,
  a down-sampled image, or a frozen network saved with ``torch.export`` (:func:`load_psi_network`).
- **History of refined images** (:func:`mix_with_history`, :func:`update_history`): half of
  each D batch of refined images comes from a buffer of earlier refiners' images; after each
  D step, b/2 random entries are replaced by current ones. The buffer is method state
  (``history``), saved in the checkpoint, so a resumed run repeats a straight one.
- **Schedule** (:meth:`SimGAN.phases`): R is pre-trained on self-regularization alone (1000
  steps), D for 200 steps, then every iteration takes K_g refiner steps and K_d discriminator
  steps. The paper's text says both "R twice per D update" and K_g = 50; the reimplementations
  that train use K_g = 2 (K_g = 50 collapsed without batch norm), which is the default here.

Not given by the paper: the buffer size and λ. condsynth's defaults (λ = 2 with the mean
reductions below, 1024 images) are the best of those measured on the Fashion-MNIST garment
check (λ 0.1, 0.5, 2, 5; history 0 or 1024; see ``presets/simgan_garments.yaml``). Nor the
optimizer settings with certainty (SGD lr 1e-3 is reported, unverified): the default here is
Adam lr 1e-4, β = (0.9, 0.999), ``model.optimizer=sgd`` the alternative.

Losses are means: the patch cross-entropy over patches and images (``patch_reduction: sum``
sums over patches, as the paper writes it), the L1 over pixels, so λ does not depend on the
image size. Each iteration uses one batch: the K_g refiner steps of an iteration see the same
synthetic images (the paper draws a new minibatch per step).

Batches hold ``source`` (synthetic images, the condition) and ``image`` (unpaired real ones):
the ``unpaired`` data layout (``A/`` synthetic, optionally labelled, ``B/`` real).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condsynth.config import Config, ranged
from condsynth.errors import ConfigError
from condsynth.methods.base import Batch, Method, OptimizerSpec, Phase, inference
from condsynth.registry import register_method

Psi = Literal["identity", "mean", "gradients", "downsample", "network"]

REAL, REFINED = 0, 1          # the two classes of D's per-patch softmax


@dataclass
class SimGANConfig:
    refiner_channels: int = ranged(64, at_least=1)        # maps of every refiner convolution
    refiner_blocks: int = ranged(4, at_least=0)           # ResNet blocks (4 in the appendix)
    refiner_output: Literal["tanh", "linear"] = "tanh"    # linear: the appendix's bare 1x1 conv
    discriminator_channels: list[int] = field(default_factory=lambda: [96, 64, 32, 32])
    patch_reduction: Literal["mean", "sum"] = "mean"      # sum: over patches, as the paper
    lambda_reg: float = ranged(2.0, at_least=0.0)         # λ (measured: see the module doc)
    psi: Psi = "identity"                                 # the feature map ψ compared in L1
    psi_factor: int = ranged(4, at_least=1)               # psi=downsample: average pool size
    psi_network: str = ""                                 # psi=network: a torch.export file
    history_size: int = ranged(1024, at_least=0)          # refined images kept (0: no history)
    pretrain_refiner_steps: int = ranged(1000, at_least=0)      # self-regularization alone
    pretrain_discriminator_steps: int = ranged(200, at_least=0)  # then D alone
    refiner_steps: int = ranged(2, at_least=1)            # K_g per iteration
    discriminator_steps: int = ranged(1, at_least=1)      # K_d per iteration
    optimizer: Literal["adam", "sgd"] = "adam"            # sgd: momentum = train.beta1


# ----------------------------------------------------------------------------- networks


class ResnetBlock(nn.Module):
    """x + conv3x3(ReLU(conv3x3(x))), then ReLU: (B, C, H, W) → (B, C, H, W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


class Refiner(nn.Module):
    """(B, in_channels, H, W) synthetic images → (B, out_channels, H, W) refined ones, any
    H and W (fully convolutional, no down-sampling)."""

    def __init__(self, in_channels: int, out_channels: int, channels: int = 64,
                 blocks: int = 4, output: Literal["tanh", "linear"] = "tanh") -> None:
        super().__init__()
        self.input = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.blocks = nn.Sequential(*[ResnetBlock(channels) for _ in range(blocks)])
        self.output = nn.Conv2d(channels, out_channels, 1)
        self.tanh = output == "tanh"

    def forward(self, x: Tensor) -> Tensor:
        y = self.output(self.blocks(F.relu(self.input(x))))
        return torch.tanh(y) if self.tanh else y


class LocalDiscriminator(nn.Module):
    """(B, channels, H, W) images → (B, 2, ceil(H/4), ceil(W/4)) logits of (real, refined),
    one two-way softmax per patch of the receptive field (the appendix's network)."""

    def __init__(self, channels: int, widths: list[int]) -> None:
        super().__init__()
        if len(widths) != 4 or min(widths) < 1:
            raise ConfigError(f"model.discriminator_channels is {widths}; expected 4 positive "
                              "widths (the appendix's [96, 64, 32, 32]).")
        a, b, c, d = widths
        self.layers = nn.Sequential(
            nn.Conv2d(channels, a, 3, stride=2, padding=1), nn.ReLU(True),
            nn.Conv2d(a, b, 3, stride=2, padding=1), nn.ReLU(True),
            nn.MaxPool2d(3, stride=1, padding=1),
            nn.Conv2d(b, c, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(c, d, 1), nn.ReLU(True),
            nn.Conv2d(d, 2, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


# ----------------------------------------------------------------------------- losses


def patch_cross_entropy(logits: Tensor, target: int,
                        reduction: Literal["mean", "sum"] = "mean") -> Tensor:
    """Cross-entropy of every patch's two-way softmax against ``target`` (:data:`REAL` or
    :data:`REFINED`) for (B, 2, h, w) logits: the mean over patches and images, or (``sum``)
    the sum over each image's patches averaged over the images."""
    labels = torch.full((logits.shape[0], *logits.shape[2:]), target, dtype=torch.long,
                        device=logits.device)
    per_patch = F.cross_entropy(logits.float(), labels, reduction="none")      # (B, h, w)
    if reduction == "sum":
        return per_patch.flatten(1).sum(1).mean()
    return per_patch.mean()


def image_gradients(x: Tensor) -> Tensor:
    """(B, C, H, W) → (B, C·H·(W−1) + C·(H−1)·W): the horizontal and vertical differences of
    neighbouring pixels, flattened side by side."""
    dx = x[..., :, 1:] - x[..., :, :-1]
    dy = x[..., 1:, :] - x[..., :-1, :]
    return torch.cat([dx.flatten(1), dy.flatten(1)], 1)


def psi_features(x: Tensor, psi: Psi, factor: int = 4, network: nn.Module | None = None) -> Tensor:
    """ψ(x) of the self-regularization for (B, C, H, W) images in [-1, 1]."""
    if psi == "identity":
        return x
    if psi == "mean":
        return x.mean(1, keepdim=True)                             # (B, 1, H, W)
    if psi == "gradients":
        return image_gradients(x)
    if psi == "downsample":
        return F.avg_pool2d(x, factor, stride=factor, ceil_mode=True)
    if network is None:
        raise ConfigError("model.psi is network but no network was loaded. Fix: set "
                          "model.psi_network to a torch.export file.")
    try:
        return network(x)
    except (AssertionError, RuntimeError) as err:    # an exported program's shape guards
        raise ConfigError(f"model.psi_network refused images of shape {tuple(x.shape)}: "
                          f"{err}. Fix: export it with dynamic_shapes for the batch (and the "
                          "height and width), and for these channels.") from None


def self_regularization(refined: Tensor, synthetic: Tensor, psi: Psi, weight: float,
                        factor: int = 4, network: nn.Module | None = None) -> Tensor:
    """λ · mean |ψ(R(x)) − ψ(x)|: the refined image keeps the synthetic one's ψ features."""
    with torch.no_grad():
        target = psi_features(synthetic, psi, factor, network)
    return weight * F.l1_loss(psi_features(refined, psi, factor, network), target)


def load_psi_network(path: str | Path) -> nn.Module:
    """A frozen feature network ψ from a ``torch.export.save`` file (``.pt2``): built with a
    dynamic batch size (and image size, if it will see other sizes), taking (B, C, H, W) images
    in [-1, 1]. Its parameters are never trained."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"model.psi_network: {path} not found. Fix: save the feature network "
                          "with torch.export.save(torch.export.export(net, (example,), "
                          "dynamic_shapes=...), 'psi.pt2') and give that path.")
    try:
        network = torch.export.load(str(path)).module()
    except Exception as err:                  # a torch error of any kind: say which file
        raise ConfigError(f"model.psi_network: {path} is not a torch.export program ({err}). "
                          "Fix: save it with torch.export.save.") from None
    for p in network.parameters():
        p.requires_grad_(False)
    return network


# ----------------------------------------------------------------------------- history


def mix_with_history(refined: Tensor, history: Tensor) -> Tensor:
    """D's batch of refined images: with at least b/2 images in the history, the first
    b − b/2 current ones and b/2 drawn at random (torch's RNG, without replacement) from the
    history; else the current batch alone."""
    half = refined.shape[0] // 2
    if half == 0 or history.shape[0] < half:
        return refined
    drawn = torch.randperm(history.shape[0], device=history.device)[:half]
    return torch.cat([refined[:refined.shape[0] - half], history[drawn].to(refined.dtype)])


def update_history(history: Tensor, refined: Tensor, capacity: int) -> Tensor:
    """The history after a D step: while it holds fewer than ``capacity`` images, the current
    ones are appended (up to ``capacity``); then b/2 random entries are replaced by b/2
    random current images. Returns the new buffer (``refined`` is not kept by reference)."""
    refined = refined.detach().float()
    if capacity == 0:
        return history
    if history.shape[0] == 0 or history.shape[1:] != refined.shape[1:]:
        if history.shape[0] and history.shape[1:] != refined.shape[1:]:
            raise ConfigError(f"the history holds refined images of shape "
                              f"{tuple(history.shape[1:])}, this batch's are "
                              f"{tuple(refined.shape[1:])}. Fix: train at one image size (data."
                              "crop_size, preprocess fixed), or start a new run.")
        return refined[:capacity].clone()
    if history.shape[0] < capacity:
        room = capacity - history.shape[0]
        return torch.cat([history, refined[:room]])
    half = max(1, refined.shape[0] // 2)
    slots = torch.randperm(capacity, device=history.device)[:half]
    chosen = torch.randperm(refined.shape[0], device=refined.device)[:half]
    history = history.clone()
    history[slots] = refined[chosen]
    return history


# ----------------------------------------------------------------------------- the method


@register_method("simgan", SimGANConfig)
class SimGAN(Method):
    """SimGAN. Batches hold ``source`` (synthetic images) and ``image`` (real ones)."""

    condition_kinds = ("image",)
    size_settings = "nothing: the refiner is fully convolutional"
    config_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "condition": {"kind": "image"},
        "data": {"preprocess": "fixed", "flip": False},
        "train": {"decay_start": 1.0},              # a constant learning rate
    }

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        cfg: SimGANConfig = config.model
        in_channels = config.condition.image_channels
        out_channels = config.data.channels
        if in_channels != out_channels and cfg.psi in ("identity", "gradients", "downsample"):
            raise ConfigError(
                f"model.psi={cfg.psi} compares the refined image ({out_channels} channel(s), "
                f"data.channels) with the synthetic one ({in_channels}, "
                "condition.image_channels) pixel for pixel, so both need the same channels. "
                "Fix: set both to the same count, or model.psi=mean.")
        if cfg.psi == "network" and not cfg.psi_network:
            raise ConfigError("model.psi is network but model.psi_network is empty. Fix: give "
                              "the torch.export file of the frozen feature network.")
        self.generator = Refiner(in_channels, out_channels, cfg.refiner_channels,
                                 cfg.refiner_blocks, cfg.refiner_output)
        self.discriminator = LocalDiscriminator(out_channels, list(cfg.discriminator_channels))
        # Refined images of earlier steps (method state: saved, restored on resume).
        self.register_buffer("history", torch.zeros(0, out_channels, 1, 1))
        self._psi: list[nn.Module] = []          # the frozen ψ network, loaded when first used

    # ----------------------------------------------------------------------------- schedule
    def optimizers(self) -> dict[str, OptimizerSpec]:
        kind = self.config.model.optimizer
        return {"generator": OptimizerSpec(lr=1e-4, betas=(0.9, 0.999), kind=kind),
                "discriminator": OptimizerSpec(lr=1e-4, betas=(0.9, 0.999), kind=kind)}

    def phases(self) -> list[Phase]:
        """R on self-regularization alone, then D alone, then K_g refiner steps and K_d
        discriminator steps per iteration (the paper's Algorithm 1 order)."""
        cfg: SimGANConfig = self.config.model
        r_end = cfg.pretrain_refiner_steps
        d_end = r_end + cfg.pretrain_discriminator_steps
        return [Phase("self_regularization", "generator", stop=r_end),
                Phase("discriminator", "discriminator", start=r_end, stop=d_end),
                Phase("refiner", "generator", repeats=cfg.refiner_steps, start=d_end),
                Phase("discriminator", "discriminator", repeats=cfg.discriminator_steps,
                      start=d_end)]

    # ----------------------------------------------------------------------------- losses
    def _psi_network(self, device: torch.device) -> nn.Module | None:
        if self.config.model.psi != "network":
            return None
        if not self._psi:
            self._psi.append(load_psi_network(self.config.model.psi_network))
        self._psi[0] = self._psi[0].to(device)
        return self._psi[0]

    def _self_regularization(self, refined: Tensor, synthetic: Tensor) -> Tensor:
        cfg: SimGANConfig = self.config.model
        return self_regularization(refined, synthetic, cfg.psi, cfg.lambda_reg, cfg.psi_factor,
                                   self._psi_network(refined.device))

    def phase_losses(self, phase: Phase, batch: Batch, cache: dict[str, Any]) -> dict[str, Tensor]:
        cfg: SimGANConfig = self.config.model
        synthetic = self.condition(batch)                                  # (B, C_in, H, W)
        if phase.name == "self_regularization":
            refined = self.generator(synthetic)
            return {"g_self_reg": self._self_regularization(refined, synthetic)}
        if phase.name == "refiner":
            refined = self.generator(synthetic)
            with self.frozen(self.discriminator) as discriminator:
                logits = discriminator(refined)
            # -log(1 - D(R(x))): every patch of a refined image should pass as real.
            return {"g_local": patch_cross_entropy(logits, REAL, cfg.patch_reduction),
                    "g_self_reg": self._self_regularization(refined, synthetic)}
        if phase.name == "discriminator":
            with torch.no_grad():
                refined = self.generator(synthetic)
            fake = mix_with_history(refined, self.history)
            self.history = update_history(self.history, refined, cfg.history_size)
            return {"d_real": patch_cross_entropy(self.discriminator(batch["image"]), REAL,
                                                  cfg.patch_reduction),
                    "d_refined": patch_cross_entropy(self.discriminator(fake), REFINED,
                                                     cfg.patch_reduction)}
        raise ValueError(f"simgan has no phase {phase.name!r}")

    def discriminate(self, image: Tensor, cond: Tensor | None = None) -> Tensor:
        """(B, 2, h, w) per-patch logits of (real, refined)."""
        return self.discriminator(image)

    # ----------------------------------------------------------------------------- inference
    @inference
    def generate(self, cond: Tensor | None = None, *, batch_size: int | None = None,
                 z: Tensor | None = None, style: Tensor | None = None,
                 instance: Tensor | None = None) -> Tensor:
        """Refine (B, C_in, H, W) synthetic images in [-1, 1] into (B, C_out, H, W) ones."""
        if z is not None or style is not None or instance is not None:
            raise ConfigError("simgan refines a synthetic image: it takes no z, style image "
                              "or instance map")
        synthetic = self.encode(cond)
        was_training = self.generator.training
        self.generator.eval()
        try:
            return self.generator(synthetic).clamp(-1, 1)
        finally:
            self.generator.train(was_training)
