"""Losses as plain functions: adversarial (vanilla, LSGAN, hinge, WGAN), the WGAN-GP gradient
penalty and ProGAN's drift term, feature matching,
VGG19 perceptual, VGG16 feature (Auto-painter), L1, total variation and KL divergence.

Discriminator outputs come in three shapes, all accepted: a tensor (one patch map), a list of
tensors (one patch map per scale), or a list of lists of features per scale whose last entry is
the patch map (multi-scale discriminators with intermediate features, pix2pixHD and SPADE).
A single :class:`~condsynth.discriminators.PatchDiscriminator`'s feature list is none of these:
pass its last entry, or wrap it in a list.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condsynth.errors import CheckpointError

GanMode = Literal["vanilla", "lsgan", "hinge", "wgan"]
Predictions = Tensor | Sequence[Tensor] | Sequence[Sequence[Tensor]]


def _patch_maps(pred: Predictions) -> list[Tensor]:
    """The final patch map of every discriminator scale."""
    if isinstance(pred, Tensor):
        return [pred]
    return [p[-1] if isinstance(p, (list, tuple)) else p for p in pred]


def d_adversarial_loss(pred: Predictions, real: bool, mode: GanMode,
                       real_target: float = 1.0) -> Tensor:
    """Discriminator loss on real (``real=True``) or fake predictions, summed over scales.
    ``real_target`` < 1 is one-sided label smoothing (Salimans et al., 2016) of the vanilla and
    LSGAN losses: the real target only, fakes keep 0."""
    if real_target != 1.0 and mode not in ("vanilla", "lsgan"):
        raise ValueError(f"label smoothing applies to the vanilla and lsgan losses, not {mode}")
    losses = []
    for p in _patch_maps(pred):
        if mode == "vanilla":
            target = torch.full_like(p, real_target) if real else torch.zeros_like(p)
            losses.append(F.binary_cross_entropy_with_logits(p, target))
        elif mode == "lsgan":
            losses.append(F.mse_loss(p, torch.full_like(p, real_target if real else 0.0)))
        elif mode == "hinge":
            losses.append(F.relu(1.0 - p).mean() if real else F.relu(1.0 + p).mean())
        elif mode == "wgan":
            losses.append(-p.mean() if real else p.mean())
        else:
            raise ValueError(f"unknown GAN loss mode {mode!r}")
    return torch.stack(losses).sum()


def g_adversarial_loss(pred: Predictions, mode: GanMode) -> Tensor:
    """Generator loss on the discriminator's predictions for fakes, summed over scales."""
    losses = []
    for p in _patch_maps(pred):
        if mode == "vanilla":
            losses.append(F.binary_cross_entropy_with_logits(p, torch.ones_like(p)))
        elif mode == "lsgan":
            losses.append(F.mse_loss(p, torch.ones_like(p)))
        elif mode in ("hinge", "wgan"):
            losses.append(-p.mean())
        else:
            raise ValueError(f"unknown GAN loss mode {mode!r}")
    return torch.stack(losses).sum()


def feature_matching_loss(fake: Sequence[Sequence[Tensor]], real: Sequence[Sequence[Tensor]],
                          layer_weight: float = 1.0, scale_weight: float | None = None) -> Tensor:
    """L1 between the discriminators' intermediate features on fake and (detached) real.

    Every feature but the final patch map counts, weighted ``layer_weight * scale_weight``;
    ``scale_weight`` defaults to 1 / number of scales (pix2pixHD and SPADE both average the
    scales; pix2pixHD also weights each layer by 4 / (n_layers + 1)).
    """
    scale_weight = 1.0 / len(fake) if scale_weight is None else scale_weight
    total = fake[0][0].new_zeros(())
    for fake_feats, real_feats in zip(fake, real, strict=True):
        for f, r in zip(fake_feats[:-1], real_feats[:-1], strict=True):
            total = total + F.l1_loss(f, r.detach()) * (layer_weight * scale_weight)
    return total


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) summed over all elements, as the SPADE VAE uses it."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def mean_kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) per element, averaged over all elements:
    -1/2 mean(1 + log sigma^2 - mu^2 - sigma^2), as Di & Patel's CVAE weighs it."""
    return -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())


def gaussian_nll(mean: Tensor, logvar: Tensor, target: Tensor) -> Tensor:
    """Negative log-likelihood of ``target`` under per-pixel Gaussians N(mean, exp(logvar)),
    summed over all elements: sum 1/2 (log sigma^2 + log 2 pi) + (x - mu)^2 / (2 sigma^2)
    (the reconstruction term of Di & Patel's CVAE)."""
    return torch.sum(0.5 * (logvar + math.log(2 * math.pi))
                     + 0.5 * (target - mean).pow(2) / logvar.exp())


def total_variation(x: Tensor) -> Tensor:
    """Anisotropic total variation: mean absolute difference of vertical and horizontal
    neighbours, added. x: (B, C, H, W)."""
    dh = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().mean()
    dw = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean()
    return dh + dw


def isotropic_total_variation(x: Tensor) -> Tensor:
    """Total variation as Auto-painter (Liu et al., 2017) writes it: per pixel the root of the
    squared vertical and horizontal neighbour differences, sqrt((y[i+1,j] - y[i,j])^2 +
    (y[i,j+1] - y[i,j])^2), averaged over the (H-1) x (W-1) pixels that have both neighbours and
    over batch and channels. The mean (not the sum) keeps its weight independent of the size.
    x: (B, C, H, W)."""
    dh = x[:, :, 1:, :-1] - x[:, :, :-1, :-1]
    dw = x[:, :, :-1, 1:] - x[:, :, :-1, :-1]
    squared = dh.pow(2) + dw.pow(2)
    # Where the image is flat the root has no derivative; take 0 there, not NaN.
    flat = squared == 0
    return torch.where(flat, 0.0, torch.where(flat, 1.0, squared).sqrt()).mean()


# --------------------------------------------------------------------------------- WGAN-GP


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor,
                     target: float = 1.0, norm_scale: float = 1.0) -> Tensor:
    """The WGAN-GP penalty (Gulrajani et al., 2017) with a target norm as ProGAN's code writes
    it: per sample, ``(||grad D(x_mix)|| * norm_scale - target)^2 / target^2`` at
    ``x_mix = real + (fake - real) * u``, u ~ U(0, 1) per sample; the batch mean. Weight it by
    lambda. ``norm_scale`` rescales the norm when D sees images at another size than the one
    the norm is meant at (ProGAN's lower levels). The mix, the gradient and the norm are float32
    whatever autocast computes inside ``critic``; the graph is kept (``create_graph``) so that
    the penalty trains D. real, fake: (B, C, H, W); returns a scalar."""
    u = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    mixed = torch.lerp(real.detach().float(), fake.detach().float(), u).requires_grad_(True)
    scores = critic(mixed).float()
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    norms = grad.float().flatten(1).square().sum(dim=1).sqrt() * norm_scale     # (B,)
    return ((norms - target).square() / target ** 2).mean()


def drift_penalty(real_scores: Tensor) -> Tensor:
    """ProGAN's drift term E[D(x)^2] over real images (weight it by epsilon, 0.001): it keeps
    the critic's outputs near zero."""
    return real_scores.float().square().mean()


# --------------------------------------------------------------------------------- VGG19

VGG19_CACHE_NAME = "vgg19-dcbb9e9d.pth"   # torchvision's file name for the ImageNet weights
# The five slices of the VGG19 feature extractor the pix2pixHD/SPADE perceptual loss reads
# (ending after relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1) and their weights.
VGG19_SLICES = ((0, 2), (2, 7), (7, 12), (12, 21), (21, 30))
VGG19_LAYER_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)


def torchvision_cache_path(filename: str) -> Path:
    """Where torchvision keeps a downloaded weights file (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def resolve_weights(path: str | None, filename: str, option: str, what: str) -> Path:
    """A local weights file: the given path, else the torchvision cache; never a download."""
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise CheckpointError(f"{what} weights file {p} does not exist. Fix: give the path "
                                  f"of a torchvision-format file with {option}.")
        return p
    cached = torchvision_cache_path(filename)
    if cached.is_file():
        return cached
    raise CheckpointError(
        f"{what} weights are needed but none were given and {cached} does not exist. "
        f"condsynth never downloads weights by itself. Fix: pass {option} PATH (a torchvision "
        f"state dict), or place torchvision's {filename} in {cached.parent}.")


def vgg_trunk(widths: list[int | str]) -> list[nn.Module]:
    """torchvision's VGG ``features`` layers for a width list (``"M"`` = max-pool), so that
    their indices match torchvision's state-dict keys."""
    layers: list[nn.Module] = []
    in_ch = 3
    for v in widths:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_ch, int(v), 3, padding=1), nn.ReLU(inplace=False)]
            in_ch = int(v)
    return layers


def vgg19_feature_layers() -> nn.Sequential:
    """VGG19's convolutional trunk up to relu5_1 (``features.0`` .. ``features.29``)."""
    return nn.Sequential(*vgg_trunk([64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                                     512, 512, 512, 512, "M", 512]))   # 30 modules: 0..29


class VGG19Loss(nn.Module):
    """Perceptual loss of pix2pixHD and SPADE: weighted L1 between VGG19 activations.

    As in both official implementations, images in [-1, 1] go into VGG19 as they are (no
    ImageNet normalization). Takes (B, 3, H, W) fake and real; returns a scalar.
    """

    def __init__(self, weights_path: str | None = None) -> None:
        super().__init__()
        features = vgg19_feature_layers()
        path = resolve_weights(weights_path or os.environ.get("CONDSYNTH_VGG19_WEIGHTS"),
                               VGG19_CACHE_NAME, "--vgg-weights", "VGG19")
        load_vgg19_features(features, path)
        self.slices = nn.ModuleList(nn.Sequential(*features[a:b]) for a, b in VGG19_SLICES)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19Loss:
        return super().train(False)   # VGG19 has no train-mode behaviour; keep it fixed

    def forward(self, fake: Tensor, real: Tensor) -> Tensor:
        x, y = fake, real
        loss = fake.new_zeros(())
        for weight, block in zip(VGG19_LAYER_WEIGHTS, self.slices, strict=True):
            x, y = block(x), block(y)
            loss = loss + weight * F.l1_loss(x, y.detach())
        return loss


def load_vgg19_features(features: nn.Sequential, path: Path) -> None:
    """Load the ``features.*`` tensors of a torchvision VGG19 state dict (full or trunk only)."""
    load_vgg_features(features, path, "VGG19")


def load_vgg_features(features: nn.Sequential, path: Path, what: str) -> None:
    """Load the ``features.*`` tensors that ``features`` holds from a torchvision VGG state dict
    (the full model or only its trunk); ``what`` ("VGG16", "VGG19") names it in errors."""
    from condsynth.checkpoint import safe_torch_load

    state = safe_torch_load(path, f"the {what} weights", "give a torchvision-format state dict "
                            "(torch.save(model.state_dict()))")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    wanted = features.state_dict()
    found = {}
    for key in wanted:
        full = f"features.{key}"
        if full not in state:
            raise CheckpointError(f"{what} weights {path} lack the tensor '{full}'; it does not "
                                  f"look like a torchvision {what} state dict.")
        if state[full].shape != wanted[key].shape:
            raise CheckpointError(f"{what} weights {path}: '{full}' has shape "
                                  f"{tuple(state[full].shape)}, expected "
                                  f"{tuple(wanted[key].shape)}")
        found[key] = state[full]
    features.load_state_dict(found)


# --------------------------------------------------------------------------------- VGG16

VGG16_CACHE_NAME = "vgg16-397923af.pth"   # torchvision's file name for the ImageNet weights
# ``features.0`` .. ``features.22`` of torchvision's VGG16 end with relu4_3, the last activation
# of the fourth convolution block (before its max-pool).
VGG16_RELU4_3_END = 23
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg16_feature_layers(end: int = VGG16_RELU4_3_END) -> nn.Sequential:
    """VGG16's convolutional trunk ``features.0`` .. ``features.{end-1}`` (relu4_3 by default)."""
    layers = vgg_trunk([64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                        512, 512, 512])
    return nn.Sequential(*layers[:end])


class VGG16FeatureLoss(nn.Module):
    """Auto-painter's feature loss (Liu et al., 2017): the mean squared distance between the
    VGG16 activations of fake and real at the fourth block (relu4_3).

    Images in [-1, 1] are mapped to [0, 1] and normalized with the ImageNet mean and deviation
    before VGG16, as its ImageNet weights expect (the official Auto-painter code subtracts the
    ImageNet mean too; pix2pixHD's VGG19 loss instead feeds [-1, 1] as it is). Fake and real go
    through VGG16 as one batch. Takes (B, 3, H, W) fake and real; returns a scalar.

    Args:
        weights_path: a torchvision-format VGG16 state dict (full model or trunk); None = the
            ``CONDSYNTH_VGG16_WEIGHTS`` environment variable, else torchvision's cache file.
            Nothing is ever downloaded.
        end: the trunk ``features.0`` .. ``features.{end-1}`` is read (23: relu4_3; 4: relu1_2,
            the layer of Di & Patel's perceptual loss).
        distance: ``mse`` (Auto-painter) or ``l1`` (Di & Patel) between the activations.
    """

    def __init__(self, weights_path: str | None = None, end: int = VGG16_RELU4_3_END,
                 distance: Literal["mse", "l1"] = "mse") -> None:
        super().__init__()
        self.features = vgg16_feature_layers(end)
        self.distance = distance
        path = resolve_weights(weights_path or os.environ.get("CONDSYNTH_VGG16_WEIGHTS"),
                               VGG16_CACHE_NAME, "model.vgg_weights", "VGG16")
        load_vgg_features(self.features, path, "VGG16")
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG16FeatureLoss:
        return super().train(False)   # VGG16 has no train-mode behaviour; keep it fixed

    def forward(self, fake: Tensor, real: Tensor) -> Tensor:
        both = torch.cat([fake, real.detach()], 0)             # (2B, 3, H, W) in [-1, 1]
        both = ((both + 1.0) / 2.0 - self.mean) / self.std
        fake_feat, real_feat = self.features(both).chunk(2)     # (B, 512, H/8, W/8) each
        if self.distance == "l1":
            return F.l1_loss(fake_feat, real_feat)
        return F.mse_loss(fake_feat, real_feat)
