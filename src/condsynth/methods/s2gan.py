"""S2-GAN: Generative Image Modeling using Style and Structure Adversarial Networks (Wang and
Gupta, ECCV 2016); the layer plans and settings of the official code (xiaolonw/ss-gan).

Images are made in two stages that a person can look at: the **Structure-GAN** draws the 3D
structure of a scene as a surface-normal map from noise, the **Style-GAN** paints a picture of
those normals. Four registered methods, trained in order by the ``s2gan`` pipeline
(:mod:`condsynth.pipeline`):

``s2gan_structure``  z → normals. G: a 9x9 (size/8) full convolution from z, a doubling, four
                     3x3 convolutions (128, 256, 512, 512), a doubling to 256, a 3x3 to 128, a
                     doubling to 64 and a 5x5 to 3 channels; tanh, then each pixel's vector
                     scaled to unit length. D: 5x5/2 64, 5x5 128, 3x3/2 256, 3x3/2 512 (spatial
                     dropout 0.2 after both), 3x3 128, dropout, linear. 72x72 in the paper.
``s2gan_estimator``  the pixel-wise constraint's normal estimator: a fully convolutional
                     AlexNet-like network that reads an image (upsampled 4x, as the official
                     code feeds it) and classifies each pixel of a size/4 map into one of 40
                     directions, the k-means codebook of the training normals. SGD lr 0.01,
                     momentum 0.9, weight decay 5e-4, as the official FCN.
``s2gan_style``      (normals, z) → image. G: the normals by two 5x5/2 convolutions, z by a full
                     convolution and two doublings, both at size/4, concatenated; 3x3 256, 3x3/2
                     512, 3x3 512, three doublings (256, 128, 64) and a 5x5 to RGB, tanh. D sees
                     the image concatenated with the normals (6 channels). The frozen estimator's
                     cross-entropy on the generated image against the input normals' classes is
                     added to G's loss with weight 0.1 (``--lamda 0.1``). 128x128 in the paper.
``s2gan_joint``      both GANs fine-tuned together without the constraint: Structure-G's normals,
                     resized (bilinear) to the Style-GAN's size and made unit length again, are
                     painted by Style-G; Style-D's gradient reaches Structure-G through them
                     scaled by 0.1 (``lamda0``), Structure-D's with weight 1 (``lamda``). Adam lr
                     1e-6 for the Style-GAN and 1e-7 for the Structure-GAN (the official
                     ``learningRate * 0.1``).

All four use Adam β1 0.5 (but the estimator), weights N(0, 0.02), batch norm scales N(1, 0.02),
and noise z of 100 numbers from U(-1, 1) as the official code draws it. Discriminators end in
one logit; the losses are the sigmoid cross-entropies of the official ``BCECriterion``.

Where condsynth differs from the official code: the official training skips D's update when
its real or fake error is below 0.3 and G's when above 0.7, and divides the learning rate by
50 for the first 10 updates and by 5 until the 30th; condsynth steps every player every
iteration at the configured rate. The official FCN is trained on 512x512 photographs; here the
estimator trains on the dataset's images upsampled 4x, the input it meets in the Style-GAN. The
frozen estimator runs in evaluation mode (its batch norm uses its running statistics).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condsynth.config import Config
from condsynth.data.normals import kmeans_directions, normal_classes, unit_normals
from condsynth.errors import ConfigError
from condsynth.layers.init import init_weights
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

Noise = Literal["uniform", "normal"]


# ----------------------------------------------------------------------------- losses


def draw_noise(count: int, z_dim: int, kind: Noise, device: torch.device) -> Tensor:
    """(count, z_dim) codes: U(-1, 1) as the official code draws them, or N(0, I)."""
    if kind == "uniform":
        return torch.rand(count, z_dim, device=device) * 2 - 1
    return torch.randn(count, z_dim, device=device)


def d_loss(real: Tensor, fake: Tensor) -> dict[str, Tensor]:
    """The discriminator's sigmoid cross-entropy on real (target 1) and fake (target 0)
    logits."""
    return {"d_real": F.binary_cross_entropy_with_logits(real, torch.ones_like(real)),
            "d_fake": F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))}


def g_loss(fake: Tensor) -> Tensor:
    """The generator's sigmoid cross-entropy with target "real" (the official G loss)."""
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def codebook_cross_entropy(logits: Tensor, normals: Tensor, codebook: Tensor) -> Tensor:
    """The pixel-wise constraint: cross-entropy of (B, K, h, w) estimator logits against the
    codebook classes of (B, 3, H, W) normals (resized to h x w), averaged over pixels."""
    target = normal_classes(normals, codebook, tuple(logits.shape[-2:]))
    return F.cross_entropy(logits, target)


class _ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.scale, None


def scale_gradient(x: Tensor, scale: float) -> Tensor:
    """``x`` unchanged forwards; its gradient multiplied by ``scale`` backwards (the joint
    training's ``lamda0`` on the Style-GAN's gradient reaching Structure-G)."""
    return _ScaleGradient.apply(x, scale)


def resize_normals(normals: Tensor, size: tuple[int, int]) -> Tensor:
    """Normals resized (bilinear) and made unit length again, as the joint training feeds
    Structure-G's normals to Style-G."""
    if tuple(normals.shape[-2:]) != tuple(size):
        normals = F.interpolate(normals, size=size, mode="bilinear", align_corners=False)
    return unit_normals(normals)


def fibonacci_directions(count: int) -> Tensor:
    """``count`` unit directions spread evenly over the hemisphere facing the camera (z > 0):
    the estimator's codebook until k-means of the training normals replaces it."""
    i = torch.arange(count, dtype=torch.float64) + 0.5
    z = 1 - i / count                                   # (0, 1): the visible hemisphere
    r = torch.sqrt(1 - z * z)
    phi = i * math.pi * (3 - math.sqrt(5))
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], 1).float()


# ----------------------------------------------------------------------------- networks


def _bn_relu(channels: int, leaky: bool = False) -> list[nn.Module]:
    return [nn.BatchNorm2d(channels), nn.LeakyReLU(0.2, True) if leaky else nn.ReLU(True)]


class StructureGenerator(nn.Module):
    """(B, z_dim) codes → (B, 3, size, size) unit normals; ``size`` a multiple of 8."""

    def __init__(self, z_dim: int, size: int, ngf: int) -> None:
        super().__init__()
        n = ngf
        self.layers = nn.Sequential(
            nn.ConvTranspose2d(z_dim, n * 2, size // 8), *_bn_relu(n * 2),       # size/8
            nn.ConvTranspose2d(n * 2, n * 2, 4, 2, 1), *_bn_relu(n * 2),         # size/4
            nn.Conv2d(n * 2, n * 2, 3, 1, 1), *_bn_relu(n * 2),
            nn.Conv2d(n * 2, n * 4, 3, 1, 1), *_bn_relu(n * 4),
            nn.Conv2d(n * 4, n * 8, 3, 1, 1), *_bn_relu(n * 8),
            nn.Conv2d(n * 8, n * 8, 3, 1, 1), *_bn_relu(n * 8, leaky=True),
            nn.ConvTranspose2d(n * 8, n * 4, 4, 2, 1), *_bn_relu(n * 4, leaky=True),  # size/2
            nn.Conv2d(n * 4, n * 2, 3, 1, 1), *_bn_relu(n * 2, leaky=True),
            nn.ConvTranspose2d(n * 2, n, 4, 2, 1), *_bn_relu(n, leaky=True),     # size
            nn.Conv2d(n, 3, 5, 1, 2), nn.Tanh())

    def forward(self, z: Tensor) -> Tensor:
        return unit_normals(self.layers(z[:, :, None, None]))


class GANDiscriminator(nn.Module):
    """S2-GAN's discriminator: (B, channels, size, size) → (B,) logits. ``second_stride`` 1
    (Structure-D: features at size/8) or 2 (Style-D: size/16)."""

    def __init__(self, channels: int, size: int, ndf: int, second_stride: int) -> None:
        super().__init__()
        n = ndf
        side = size // (4 * second_stride * 2)
        self.features = nn.Sequential(
            nn.Conv2d(channels, n, 5, 2, 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(n, n * 2, 5, second_stride, 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(n * 2, n * 4, 3, 2, 1), nn.LeakyReLU(0.2, True), nn.Dropout2d(0.2),
            nn.Conv2d(n * 4, n * 8, 3, 2, 1), nn.LeakyReLU(0.2, True), nn.Dropout2d(0.2),
            nn.Conv2d(n * 8, n * 2, 3, 1, 1), nn.LeakyReLU(0.2, True))
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Linear(n * 2 * side * side, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1)).flatten()


class StyleGenerator(nn.Module):
    """(B, z_dim) codes and (B, 3, size, size) normals → (B, 3, size, size) images in [-1, 1];
    ``size`` a multiple of 16."""

    def __init__(self, z_dim: int, size: int, ngf: int) -> None:
        super().__init__()
        n = ngf
        self.normals = nn.Sequential(
            nn.Conv2d(3, n, 5, 2, 2), *_bn_relu(n),
            nn.Conv2d(n, n * 2, 5, 2, 2), *_bn_relu(n * 2))                      # size/4
        self.noise = nn.Sequential(
            nn.ConvTranspose2d(z_dim, n, size // 16), *_bn_relu(n),              # size/16
            nn.ConvTranspose2d(n, n, 4, 2, 1), *_bn_relu(n),
            nn.ConvTranspose2d(n, n, 4, 2, 1), *_bn_relu(n))                     # size/4
        self.body = nn.Sequential(
            nn.Conv2d(n * 3, n * 4, 3, 1, 1), *_bn_relu(n * 4),
            nn.Conv2d(n * 4, n * 8, 3, 2, 1), *_bn_relu(n * 8),                  # size/8
            nn.Conv2d(n * 8, n * 8, 3, 1, 1), *_bn_relu(n * 8, leaky=True),
            nn.ConvTranspose2d(n * 8, n * 4, 4, 2, 1), *_bn_relu(n * 4, leaky=True),
            nn.ConvTranspose2d(n * 4, n * 2, 4, 2, 1), *_bn_relu(n * 2, leaky=True),
            nn.ConvTranspose2d(n * 2, n, 4, 2, 1), *_bn_relu(n, leaky=True),     # size
            nn.Conv2d(n, 3, 5, 1, 2), nn.Tanh())

    def forward(self, z: Tensor, normals: Tensor) -> Tensor:
        return self.body(torch.cat([self.normals(normals), self.noise(z[:, :, None, None])], 1))


def estimator_output_size(size: int) -> int:
    """The side of the estimator's class map for a ``size`` image (upsampled 4x, then the
    official paddings): size/4 for the sizes it is made for."""
    s = (4 * size + 2 * 68 - 11) // 4 + 1          # conv 11x11 / 4, padding 68
    for _ in range(3):
        s = (s - 3) // 2 + 1                       # max pooling 3x3 / 2
    return (s + 2 - 6 + 1) * 2                     # conv 6x6 (padding 1), then a doubling


class NormalEstimator(nn.Module):
    """(B, 3, S, S) images → (B, K, S/4, S/4) logits over the codebook's K directions.

    The official FCN: 11x11/4 (96) with LeakyReLU, max pooling, 5x5 (256), pooling, three 3x3
    (384, 384, 256), pooling, 6x6 (1024), a doubling (512) and a 3x3 classifier, batch norm
    throughout; ``width`` scales every width. The codebook (K, 3) and whether k-means fitted it
    are buffers, saved with the weights."""

    def __init__(self, num_classes: int, width: float) -> None:
        super().__init__()
        c1, c2, c3, c4, c5, c6, c7 = (max(1, round(c * width))
                                      for c in (96, 256, 384, 384, 256, 1024, 512))
        self.layers = nn.Sequential(
            nn.Conv2d(3, c1, 11, 4, 68), *_bn_relu(c1, leaky=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(c1, c2, 5, 1, 2), *_bn_relu(c2), nn.MaxPool2d(3, 2),
            nn.Conv2d(c2, c3, 3, 1, 1), *_bn_relu(c3),
            nn.Conv2d(c3, c4, 3, 1, 1), *_bn_relu(c4),
            nn.Conv2d(c4, c5, 3, 1, 1), *_bn_relu(c5), nn.MaxPool2d(3, 2),
            nn.Conv2d(c5, c6, 6, 1, 1), *_bn_relu(c6),
            nn.ConvTranspose2d(c6, c7, 4, 2, 1), *_bn_relu(c7),
            nn.Conv2d(c7, num_classes, 3, 1, 1))
        self.register_buffer("codebook", fibonacci_directions(num_classes))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def forward(self, image: Tensor) -> Tensor:
        return self.layers(F.interpolate(image, scale_factor=4, mode="nearest"))

    def read_normals(self, image: Tensor) -> Tensor:
        """(B, 3, S, S) images → (B, 3, S, S) unit normals: each pixel's expected codeword
        under the predicted class probabilities, resized (bilinear) to the image's size."""
        probabilities = self(image).softmax(1)
        normals = torch.einsum("bkhw,kc->bchw", probabilities, self.codebook)
        return resize_normals(normals, tuple(image.shape[-2:]))


def _check_square(config: Config, multiple: int, name: str) -> int:
    size = config.data.crop_size
    if size % multiple or size < multiple or config.data.aspect_ratio != 1.0:
        raise ConfigError(f"{name} makes square maps whose side is a multiple of {multiple}; "
                          f"data.crop_size is {size} and data.aspect_ratio "
                          f"{config.data.aspect_ratio}. Fix: --size "
                          f"{max(multiple, round(size / multiple) * multiple)}.")
    return size


_NORMALS_DATA = {"layout": "normals", "preprocess": "fixed", "flip": False}


def _check_direction(config: Config, wanted: str, what: str) -> None:
    """On the normals layout, ``data.direction`` decides which of the pair the method reads
    as what; the other one would train on the wrong pictures without any error."""
    data = config.data
    if data.layout == "normals" and data.direction != wanted:
        raise ConfigError(f"{config.method} reads {what} from the normals layout, which "
                          f"data.direction={wanted} gives; it is {data.direction}. Fix: "
                          f"data.direction={wanted}.")


# ----------------------------------------------------------------------------- Structure-GAN


@dataclass
class StructureGANConfig:
    z_dim: int = 100               # length of z
    ngf: int = 64                  # G's width (nplanes)
    ndf: int = 64                  # D's width
    noise: Noise = "uniform"       # z ~ U(-1, 1) (official) or N(0, I)


@register_method("s2gan_structure", StructureGANConfig)
class StructureGAN(Method):
    """S2-GAN's Structure-GAN: z → surface normals. Batches hold ``image``: real normal maps
    (the ``normals`` layout with ``data.direction: BtoA``)."""

    optim_defaults = OptimDefaults(lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999)
    condition_kinds = ("none",)
    size_settings = "data.crop_size (a multiple of 8)"
    config_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "condition": {"kind": "none"},
        "data": {**_NORMALS_DATA, "direction": "BtoA", "load_size": 72, "crop_size": 72},
        "train": {"batch_size": 64, "decay_start": 1.0},
    }

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        cfg: StructureGANConfig = config.model
        _check_direction(config, "BtoA", "the normals as the pictures to learn")
        size = _check_square(config, 8, "s2gan_structure")
        self.generator = StructureGenerator(cfg.z_dim, size, cfg.ngf)
        self.discriminator = GANDiscriminator(3, size, cfg.ndf, second_stride=1)
        init_weights(self.generator)
        init_weights(self.discriminator)

    def size_multiple(self) -> int:
        return 8

    def discriminate(self, image: Tensor, cond: Tensor | None = None) -> Tensor:
        return self.discriminator(image)

    def forward_generator(self, batch: Batch) -> dict[str, Tensor]:
        cfg = self.config.model
        z = draw_noise(batch["image"].shape[0], cfg.z_dim, cfg.noise, batch["image"].device)
        return {"fake": self.generator(z)}

    def discriminator_step(self, batch: Batch, out: dict[str, Tensor]) -> dict[str, Tensor]:
        return d_loss(self.discriminator(batch["image"]), self.discriminator(out["fake"].detach()))

    def generator_step(self, batch: Batch, out: dict[str, Tensor]) -> dict[str, Tensor]:
        with self.frozen(self.discriminator) as discriminator:
            return {"g_gan": g_loss(discriminator(out["fake"]))}

    def latent_size(self) -> int:
        return self.config.model.z_dim

    @inference
    def generate(self, cond: Tensor | None = None, *, batch_size: int | None = None,
                 z: Tensor | None = None, style: Tensor | None = None,
                 instance: Tensor | None = None) -> Tensor:
        """(B, 3, size, size) unit normals from ``z`` (B, z_dim), or from ``batch_size`` draws
        of the noise (torch's global RNG)."""
        if cond is not None or style is not None or instance is not None:
            raise ConfigError("s2gan_structure draws normals from noise: it takes no condition, "
                              "style image or instance map")
        cfg = self.config.model
        if z is None:
            z = draw_noise(batch_size or 1, cfg.z_dim, cfg.noise, self.device)
        elif z.dim() != 2 or z.shape[1] != cfg.z_dim:
            raise ConfigError(f"z of shape {tuple(z.shape)}; this model takes (B, {cfg.z_dim})")
        return _in_eval(self.generator, z.to(self.device))


def _in_eval(network: nn.Module, *inputs: Tensor) -> Tensor:
    was_training = network.training
    network.eval()
    try:
        return network(*inputs)
    finally:
        network.train(was_training)


# ----------------------------------------------------------------------------- estimator


@dataclass
class EstimatorConfig:
    num_classes: int = 40          # codebook directions (codebook_40.txt)
    width: float = 1.0             # multiplies every layer's width (1 = the official FCN)
    codebook: Literal["kmeans", "fibonacci"] = "kmeans"  # k-means of the training normals
                                   # (at the start of training), or evenly spread directions
    codebook_items: int = 500      # training items whose normals k-means reads
    kmeans_iterations: int = 30


@register_method("s2gan_estimator", EstimatorConfig)
class NormalEstimatorMethod(Method):
    """The pixel-wise constraint's normal estimator, trained on (image, normals) pairs: the
    ``normals`` layout with ``data.direction: BtoA`` (``source`` the image, ``image`` the
    normals). ``generate(image)`` reads (B, 3, H, W) unit normals from images."""

    condition_kinds = ("image",)
    network_names = ("estimator",)
    inference_networks = ("estimator",)
    size_settings = "data.crop_size (a multiple of 4 whose estimator map is a quarter of it)"
    config_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "condition": {"kind": "image", "image_channels": 3},
        "data": {**_NORMALS_DATA, "direction": "BtoA", "load_size": 128, "crop_size": 128,
                 "flip": True},
        "train": {"batch_size": 10, "decay_start": 1.0},
    }

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        cfg: EstimatorConfig = config.model
        if config.condition.image_channels != 3:
            raise ConfigError("s2gan_estimator reads RGB images: condition.image_channels "
                              "must be 3")
        _check_direction(config, "BtoA", "images as inputs and normals as targets")
        size = _check_square(config, 4, "s2gan_estimator")
        if estimator_output_size(size) != size // 4:
            raise ConfigError(f"the estimator's layer plan gives a {estimator_output_size(size)}"
                              f" map for {size}x{size} images, not {size // 4}. Fix: a size "
                              "of 16, 32, 64 or 128 (--size).")
        if cfg.num_classes < 2 or cfg.width <= 0 or cfg.codebook_items < 1:
            raise ConfigError("model.num_classes must be at least 2, model.width positive and "
                              "model.codebook_items at least 1")
        self.estimator = NormalEstimator(cfg.num_classes, cfg.width)
        init_weights(self.estimator)

    def size_multiple(self) -> int:
        return 4

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"estimator": list(self.estimator.parameters())}

    def optimizers(self) -> dict[str, OptimizerSpec]:
        return {"estimator": OptimizerSpec(lr=0.01, betas=(0.9, 0.999), weight_decay=5e-4,
                                           kind="sgd")}

    def phases(self) -> list[Phase]:
        return [Phase("estimator", "estimator")]

    def phase_losses(self, phase: Phase, batch: Batch, cache: dict[str, Any]) -> dict[str, Tensor]:
        logits = self.estimator(self.condition(batch))
        return {"ce": codebook_cross_entropy(logits, batch["image"], self.estimator.codebook)}

    def prepare(self, dataset: torch.utils.data.Dataset) -> None:
        """Fit the codebook: k-means of the normals of the first ``codebook_items`` training
        items (every 4th pixel of each), seeded by ``train.seed``; kept when the estimator
        came from another run already fitted."""
        cfg: EstimatorConfig = self.config.model
        if cfg.codebook != "kmeans" or bool(self.estimator.fitted):
            return
        count = min(cfg.codebook_items, len(dataset))
        normals = torch.cat([dataset[i]["image"][:, ::4, ::4].reshape(3, -1).T
                             for i in range(count)])
        normals = unit_normals(normals[:, :, None, None]).flatten(1)
        generator = torch.Generator().manual_seed(self.config.train.seed)
        codebook = kmeans_directions(normals, cfg.num_classes, cfg.kmeans_iterations, generator)
        self.estimator.codebook.copy_(codebook.to(self.estimator.codebook.device))
        self.estimator.fitted.fill_(True)

    @inference
    def generate(self, cond: Tensor | None = None, *, batch_size: int | None = None,
                 z: Tensor | None = None, style: Tensor | None = None,
                 instance: Tensor | None = None) -> Tensor:
        """(B, 3, H, W) unit normals read from (B, 3, H, W) images in [-1, 1]."""
        if cond is None or z is not None or style is not None or instance is not None:
            raise ConfigError("s2gan_estimator reads normals from images: give the images "
                              "(B, 3, H, W), nothing else")
        was_training = self.estimator.training
        self.estimator.eval()
        try:
            return self.estimator.read_normals(self.encode(cond))
        finally:
            self.estimator.train(was_training)


# ----------------------------------------------------------------------------- Style-GAN


@dataclass
class StyleGANConfig:
    z_dim: int = 100               # length of z
    ngf: int = 64                  # G's width (nplanes)
    ndf: int = 64                  # D's width
    noise: Noise = "uniform"       # z ~ U(-1, 1) (official) or N(0, I)
    lambda_fcn: float = 0.1        # weight of the pixel-wise constraint (--lamda); 0 = the
                                   # Style-GAN without it (style-gan-nofcn)
    estimator_classes: int = 40    # the frozen estimator's codebook size and width, as the
    estimator_width: float = 1.0   # s2gan_estimator run it is loaded from (--init-from)


@register_method("s2gan_style", StyleGANConfig)
class StyleGAN(Method):
    """S2-GAN's Style-GAN: (normals, z) → image. Batches hold ``source`` (normals) and
    ``image`` (the ``normals`` layout, ``data.direction: AtoB``). With the pixel-wise
    constraint (``model.lambda_fcn`` > 0) the frozen estimator comes from a trained
    ``s2gan_estimator`` run (``--init-from RUN``, or the pipeline's ``init_from``)."""

    optim_defaults = OptimDefaults(lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999)
    condition_kinds = ("image",)
    network_names = ("generator", "discriminator", "estimator")
    size_settings = "data.crop_size (a multiple of 16)"
    config_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "condition": {"kind": "image", "image_channels": 3},
        "data": {**_NORMALS_DATA, "direction": "AtoB", "load_size": 128, "crop_size": 128},
        "train": {"batch_size": 64, "decay_start": 1.0},
    }

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        cfg: StyleGANConfig = config.model
        if config.condition.image_channels != 3:
            raise ConfigError("s2gan_style paints surface normals: condition.image_channels "
                              "must be 3")
        if cfg.lambda_fcn < 0:
            raise ConfigError(f"model.lambda_fcn is {cfg.lambda_fcn}; it must be at least 0")
        _check_direction(config, "AtoB", "normals as inputs and images as targets")
        size = _check_square(config, 16, "s2gan_style")
        self.generator = StyleGenerator(cfg.z_dim, size, cfg.ngf)
        self.discriminator = GANDiscriminator(6, size, cfg.ndf, second_stride=2)
        self.estimator = NormalEstimator(cfg.estimator_classes, cfg.estimator_width)
        for network in (self.generator, self.discriminator, self.estimator):
            init_weights(network)
        self.estimator.requires_grad_(False).eval()        # frozen (learningRate_FCN 0)

    def train(self, mode: bool = True) -> StyleGAN:
        super().train(mode)
        self.estimator.eval()
        return self

    def size_multiple(self) -> int:
        return 16

    def _judge(self, discriminator: nn.Module, image: Tensor, normals: Tensor) -> Tensor:
        return discriminator(torch.cat([image, normals], 1))

    def discriminate(self, image: Tensor, cond: Tensor | None = None) -> Tensor:
        if cond is None:                   # a neutral condition: a wall facing the camera
            cond = torch.zeros_like(image)
            cond[:, 2] = 1
        return self._judge(self.discriminator, image, cond)

    def forward_generator(self, batch: Batch) -> dict[str, Tensor]:
        cfg = self.config.model
        normals = self.condition(batch)
        z = draw_noise(normals.shape[0], cfg.z_dim, cfg.noise, normals.device)
        return {"normals": normals, "fake": self.generator(z, normals)}

    def discriminator_step(self, batch: Batch, out: dict[str, Tensor]) -> dict[str, Tensor]:
        return d_loss(self._judge(self.discriminator, batch["image"], out["normals"]),
                      self._judge(self.discriminator, out["fake"].detach(), out["normals"]))

    def generator_step(self, batch: Batch, out: dict[str, Tensor]) -> dict[str, Tensor]:
        with self.frozen(self.discriminator) as discriminator:
            terms = {"g_gan": g_loss(self._judge(discriminator, out["fake"], out["normals"]))}
        weight = self.config.model.lambda_fcn
        if weight > 0:
            if not bool(self.estimator.fitted):
                raise ConfigError(
                    "the Style-GAN's pixel-wise constraint needs a trained normal estimator, "
                    "and none was loaded. Fix: train an s2gan_estimator run and start from it "
                    "(--init-from ESTIMATOR_RUN, or the s2gan pipeline), or train without the "
                    "constraint (model.lambda_fcn=0).")
            logits = self.estimator(out["fake"])
            terms["g_fcn"] = weight * codebook_cross_entropy(logits, out["normals"],
                                                             self.estimator.codebook)
        return terms

    def capabilities(self) -> frozenset[Capability]:
        return super().capabilities() | {Capability.RANDOM_LOOKS}

    @inference
    def generate(self, cond: Tensor | None = None, *, batch_size: int | None = None,
                 z: Tensor | None = None, style: Tensor | None = None,
                 instance: Tensor | None = None) -> Tensor:
        """(B, 3, H, W) images of ``cond``: (B, 3, H, W) surface normals (made unit length
        first), with ``z`` (B, z_dim) or fresh noise."""
        if cond is None or style is not None or instance is not None:
            raise ConfigError("s2gan_style paints surface normals: give them as the condition "
                              "(B, 3, H, W), no style image or instance map")
        cfg = self.config.model
        normals = unit_normals(self.encode(cond))
        if z is None:
            z = draw_noise(normals.shape[0], cfg.z_dim, cfg.noise, self.device)
        elif z.shape != (normals.shape[0], cfg.z_dim):
            raise ConfigError(f"z of shape {tuple(z.shape)}; this model takes "
                              f"({normals.shape[0]}, {cfg.z_dim})")
        return _in_eval(self.generator, z.to(self.device), normals)


# ----------------------------------------------------------------------------- joint


@dataclass
class JointConfig:
    z_dim: int = 100               # the Style-GAN's z, G and D widths (as its run)
    ngf: int = 64
    ndf: int = 64
    structure_z_dim: int = 100     # the Structure-GAN's (as its run)
    structure_ngf: int = 64
    structure_ndf: int = 64
    structure_size: int = 72       # side of the Structure-GAN's normals (72 in the paper)
    noise: Noise = "uniform"
    lambda_structure: float = 1.0  # weight of Structure-D's loss on Structure-G (lamda)
    structure_grad_scale: float = 0.1  # Style-D's gradient reaching Structure-G (lamda0)


@register_method("s2gan_joint", JointConfig)
class JointS2GAN(Method):
    """Joint fine-tuning of the Structure-GAN and the Style-GAN (the constraint removed).
    Batches hold ``source`` (real normals) and ``image`` (the ``normals`` layout, ``AtoB``).
    ``generate()`` draws normals and paints them; ``generate(normals)`` paints given ones."""

    condition_kinds = ("image",)
    network_names = ("structure_generator", "structure_discriminator", "generator",
                     "discriminator")
    inference_networks = ("structure_generator", "generator")
    size_settings = "data.crop_size (a multiple of 16) and model.structure_size (of 8)"
    config_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "condition": {"kind": "image", "image_channels": 3},
        "data": {**_NORMALS_DATA, "direction": "AtoB", "load_size": 128, "crop_size": 128},
        "train": {"batch_size": 64, "decay_start": 1.0},
    }

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        cfg: JointConfig = config.model
        _check_direction(config, "AtoB", "normals as inputs and images as targets")
        size = _check_square(config, 16, "s2gan_joint")
        if cfg.structure_size % 8 or cfg.structure_size < 8:
            raise ConfigError(f"model.structure_size is {cfg.structure_size}; the "
                              "Structure-GAN needs a multiple of 8 (72 in the paper)")
        if cfg.structure_grad_scale < 0 or cfg.lambda_structure < 0:
            raise ConfigError("model.structure_grad_scale and model.lambda_structure must be "
                              "at least 0")
        self.structure_generator = StructureGenerator(cfg.structure_z_dim, cfg.structure_size,
                                                      cfg.structure_ngf)
        self.structure_discriminator = GANDiscriminator(3, cfg.structure_size, cfg.structure_ndf,
                                                        second_stride=1)
        self.generator = StyleGenerator(cfg.z_dim, size, cfg.ngf)
        self.discriminator = GANDiscriminator(6, size, cfg.ndf, second_stride=2)
        for network in self.networks().values():
            init_weights(network)

    def size_multiple(self) -> int:
        return 16

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {name: list(net.parameters()) for name, net in self.networks().items()}

    def optimizers(self) -> dict[str, OptimizerSpec]:
        style, structure = OptimizerSpec(lr=1e-6), OptimizerSpec(lr=1e-7)
        return {"generator": style, "discriminator": style,
                "structure_generator": structure, "structure_discriminator": structure}

    def phases(self) -> list[Phase]:
        # D and Structure-D, then Structure-G (its gradient taken at Style-G's weights before
        # Style-G's update, as the official step computes both before updating either), then
        # Style-G on the normals drawn before Structure-G's update.
        return [Phase("discriminator", "discriminator"),
                Phase("structure_discriminator", "structure_discriminator"),
                Phase("structure_generator", "structure_generator"),
                Phase("generator", "generator")]

    def _style_size(self) -> tuple[int, int]:
        return self.config.data.crop_hw

    def phase_losses(self, phase: Phase, batch: Batch, cache: dict[str, Any]) -> dict[str, Tensor]:
        cfg: JointConfig = self.config.model
        real_normals = self.condition(batch)
        if "structure" not in cache:
            count, device = real_normals.shape[0], real_normals.device
            cache["z_structure"] = draw_noise(count, cfg.structure_z_dim, cfg.noise, device)
            cache["z_style"] = draw_noise(count, cfg.z_dim, cfg.noise, device)
            cache["structure"] = self.structure_generator(cache["z_structure"])   # with graph
            cache["normals"] = resize_normals(cache["structure"].detach(), self._style_size())
        normals = cache["normals"]                     # (B, 3, H, W) unit, no graph
        if phase.name == "discriminator":
            fake = self.generator(cache["z_style"], normals).detach()
            return d_loss(self.discriminator(torch.cat([batch["image"], real_normals], 1)),
                          self.discriminator(torch.cat([fake, normals], 1)))
        if phase.name == "structure_discriminator":
            small = resize_normals(real_normals, (cfg.structure_size, cfg.structure_size))
            return {f"structure_{k}": v for k, v in d_loss(
                self.structure_discriminator(small),
                self.structure_discriminator(cache["structure"].detach())).items()}
        if phase.name == "structure_generator":
            structure = cache["structure"]
            with (self.frozen(self.structure_discriminator) as structure_d,
                  self.frozen(self.generator) as generator,
                  self.frozen(self.discriminator) as discriminator):
                g_structure = g_loss(structure_d(structure))
                # Style-G's input carries the scaled gradient; Style-D's condition does not
                # pass its gradient on (the official step takes D's image gradient only).
                fed = scale_gradient(resize_normals(structure, self._style_size()),
                                     cfg.structure_grad_scale)
                fake = generator(cache["z_style"], fed)
                g_style = g_loss(discriminator(torch.cat([fake, normals], 1)))
            return {"g_structure": cfg.lambda_structure * g_structure,
                    "g_style_to_structure": g_style}
        if phase.name == "generator":
            fake = self.generator(cache["z_style"], normals)
            with self.frozen(self.discriminator) as discriminator:
                return {"g_gan": g_loss(discriminator(torch.cat([fake, normals], 1)))}
        raise ValueError(f"s2gan_joint has no phase {phase.name!r}")

    def capabilities(self) -> frozenset[Capability]:
        return super().capabilities() | {Capability.UNCONDITIONAL, Capability.RANDOM_LOOKS}

    @inference
    def generate(self, cond: Tensor | None = None, *, batch_size: int | None = None,
                 z: Tensor | None = None, style: Tensor | None = None,
                 instance: Tensor | None = None) -> Tensor:
        """Images (B, 3, H, W): of ``cond`` (B, 3, H, W) normals when given, else of normals
        that Structure-G draws (``batch_size`` of them); ``z`` (B, z_dim) is Style-G's."""
        if style is not None or instance is not None:
            raise ConfigError("s2gan_joint takes no style image or instance map")
        cfg: JointConfig = self.config.model
        if cond is None:
            count = z.shape[0] if z is not None else batch_size or 1
            codes = draw_noise(count, cfg.structure_z_dim, cfg.noise, self.device)
            normals = resize_normals(_in_eval(self.structure_generator, codes),
                                     self._style_size())
        else:
            normals = unit_normals(self.encode(cond))
        if z is None:
            z = draw_noise(normals.shape[0], cfg.z_dim, cfg.noise, self.device)
        return _in_eval(self.generator, z.to(self.device), normals)
