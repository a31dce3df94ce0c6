"""Semi-supervised learning with a K+1 GAN, from "Improved Techniques for Training GANs"
(Salimans, Goodfellow, Zaremba, Cheung, Radford and Chen, NeurIPS 2016), as the official code
(openai/improved-gan, ``mnist_svhn_cifar10/``) trains it.

The discriminator is a K-class classifier whose logits l (K) stand for the K real classes; the
"generated" class has its logit fixed at 0, so D(x) = Z / (Z + 1) with Z = sum exp(l). Each
step draws a labelled batch (``labeled_image``, ``labeled_class``: the dataset's
``data.labeled_batch``) and an unlabelled one (``image``, every training item); D minimises
``loss_lab + unlabeled_weight * loss_unl`` (:mod:`condsynth.improved_losses`), then G
minimises feature matching on D's last hidden layer (or, in the minibatch-discrimination
variant, the non-saturating loss, several G steps per D step).

Two architectures, the official ones:

- ``mlp`` (MNIST): D 784-1000-500-250-250-250-K, weight-normalized, ReLU, Gaussian noise
  sigma 0.3 on the input and 0.5 after every hidden layer, on pixels in [0, 1];
  G 100-500-500-784 with batch norm (no gain) and softplus, a weight-normalized sigmoid output.
- ``conv`` (CIFAR-10, SVHN; 32x32): D of nine weight-normalized 3x3 convolutions and NIN
  layers with LeakyReLU 0.2, dropout, global mean pooling and a dense K layer; G dense
  z → 512x4x4 then 5x5 transposed convolutions to 256@8, 128@16 and the image (tanh, weight
  norm), batch norm without gain in between.

Weight-normalized layers get the official data-dependent initialization on the first batch.
An exponential moving average of D's parameters (rate 1e-4, started at zero as the official
code does) is the test-time classifier (:meth:`ImprovedGAN.classifier`). ``supervised_only``
trains the same D on the labelled batches alone: the baseline that measures what the
unlabelled data and the generator add.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condsynth.config import Config, ranged
from condsynth.errors import ConfigError
from condsynth.improved_losses import (
    batch_mean_matching,
    historical_average_step,
    kplus1_generator_loss,
    kplus1_labeled_loss,
    kplus1_unlabeled_loss,
)
from condsynth.layers.improved import (
    GaussianNoise,
    MinibatchDiscrimination,
    WeightNorm,
    data_dependent_init,
    flat_parameters,
    load_flat_parameters,
    swapped_parameters,
)
from condsynth.methods.base import Batch, Method, OptimDefaults, Phase, inference
from condsynth.registry import register_method


@dataclass
class ImprovedGANConfig:
    architecture: Literal["mlp", "conv"] = "mlp"   # official MNIST MLP / CIFAR-SVHN convnet
    num_classes: int = ranged(10, at_least=2)      # K: the real classes (labels 0..K-1)
    z_dim: int = ranged(100, at_least=1)           # length of z
    z_distribution: Literal["uniform", "normal"] = "uniform"  # official: U(0, 1)
    d_widths: list[int] = field(default_factory=lambda: [1000, 500, 250, 250, 250])  # mlp D
    conv_widths: list[int] = field(default_factory=lambda: [96, 192])  # conv D: two widths
                                     # (CIFAR-10 96/192, SVHN 64/128)
    g_widths: list[int] = field(default_factory=lambda: [500, 500])  # mlp G hidden layers
    input_noise: float = ranged(0.3, at_least=0)   # Gaussian sigma on D's input
    hidden_noise: float = ranged(0.5, at_least=0)  # mlp: sigma after every hidden layer
    input_dropout: float = ranged(0.0, at_least=0, below=1)  # conv: dropout on D's input
    dropout: float = ranged(0.5, at_least=0, below=1)  # conv: after each stride-2 block
    minibatch_kernels: int = ranged(0, at_least=0)  # minibatch discrimination after D's last
                                     # hidden layer: B kernels (official variant 100; 0 = off)
    minibatch_dim: int = ranged(5, at_least=1)     # C: dimensions per kernel
    generator_loss: Literal["feature_matching", "non_saturating"] = "feature_matching"
    feature_distance: Literal["l1", "l2"] = "l2"   # feature matching: official MNIST l2,
                                     # CIFAR/SVHN l1
    unlabeled_weight: float = ranged(1.0, at_least=0)  # weight of loss_unl in D's loss
    g_steps: int = ranged(1, at_least=1)           # G updates per D update (minibatch: 3)
    ema_decay: float = ranged(0.9999, at_least=0, below=1)  # averaged D for testing; 0 = off
    historical_averaging: float = ranged(0.0, at_least=0)  # weight of the paper's penalty
                                     # ||theta - mean of past theta||^2 on both players
    data_init: bool = True           # official data-dependent init on the first batch
    supervised_only: bool = False    # baseline: D on the labelled batches alone, no G


class _ShiftBatchNorm(nn.Module):
    """Batch norm without a gain, then a learned shift (the official ``batch_norm(g=None)``):
    batch statistics in training (eps 1e-6; running averages with momentum 0.1 for eval),
    computed here so that a batch of one normalizes to the shift instead of failing."""

    def __init__(self, features: int, spatial: bool) -> None:
        super().__init__()
        self.axes = [0, 2, 3] if spatial else [0]
        self.bias = nn.Parameter(torch.zeros(features))
        self.register_buffer("running_mean", torch.zeros(features))
        self.register_buffer("running_var", torch.ones(features))

    def forward(self, x: Tensor) -> Tensor:
        shape = [1, -1] + [1] * (x.dim() - 2)
        if self.training:
            mean = x.mean(self.axes)
            var = (x - mean.view(shape)).square().mean(self.axes)
            count = x.numel() // x.shape[1]
            with torch.no_grad():
                self.running_mean.lerp_(mean, 0.1)
                self.running_var.lerp_(var * (count / max(count - 1, 1)), 0.1)
        else:
            mean, var = self.running_mean, self.running_var
        return (x - mean.view(shape)) / (var.view(shape) + 1e-6).sqrt() + self.bias.view(shape)


class MLPGenerator(nn.Module):
    """(B, z_dim) → (B, C, H, W) in [-1, 1]: softplus hidden layers with batch norm and a
    weight-normalized sigmoid output (official MNIST G), mapped from [0, 1] to [-1, 1]."""

    def __init__(self, z_dim: int, widths: list[int], shape: tuple[int, int, int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = z_dim
        for out in widths:
            linear = nn.Linear(width, out, bias=False)
            nn.init.xavier_uniform_(linear.weight)        # Lasagne's default GlorotUniform
            layers += [linear, _ShiftBatchNorm(out, spatial=False), nn.Softplus()]
            width = out
        # The official l2normalize: a trainable scale, no data-dependent initialization.
        layers.append(WeightNorm("linear", width, shape[0] * shape[1] * shape[2],
                                 data_init=False))
        self.layers = nn.Sequential(*layers)
        self.shape = shape

    def forward(self, z: Tensor) -> Tensor:
        return torch.sigmoid(self.layers(z)).view(-1, *self.shape) * 2 - 1


class MLPDiscriminator(nn.Module):
    """(B, C, H, W) in [-1, 1] → ((B, K) logits, (B, F) last hidden features): the official
    MNIST D on pixels in [0, 1]."""

    def __init__(self, in_features: int, widths: list[int], num_classes: int,
                 input_noise: float, hidden_noise: float, minibatch: tuple[int, int]) -> None:
        super().__init__()
        body: list[nn.Module] = [GaussianNoise(input_noise)]
        width = in_features
        for i, out in enumerate(widths):
            if i:
                body.append(GaussianNoise(hidden_noise))
            body += [WeightNorm("linear", width, out, train_scale=False, weight_std=0.1),
                     nn.ReLU()]
            width = out
        self.body = nn.Sequential(*body)
        head: list[nn.Module] = [GaussianNoise(hidden_noise)]
        if minibatch[0]:
            head.append(MinibatchDiscrimination(width, *minibatch))
            width += minibatch[0]
        head.append(WeightNorm("linear", width, num_classes, train_scale=True, weight_std=0.1))
        self.head = nn.Sequential(*head)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.body(((x + 1) / 2).flatten(1))
        return self.head(features), features


class ConvGenerator(nn.Module):
    """(B, z_dim) → (B, C, 32, 32) in [-1, 1] (official CIFAR-10/SVHN G)."""

    def __init__(self, z_dim: int, channels: int) -> None:
        super().__init__()
        self.dense = nn.Linear(z_dim, 512 * 4 * 4, bias=False)
        nn.init.normal_(self.dense.weight, 0.0, 0.05)
        self.dense_norm = _ShiftBatchNorm(512 * 4 * 4, spatial=False)
        layers: list[nn.Module] = []
        for width_in, width_out in ((512, 256), (256, 128)):
            deconv = nn.ConvTranspose2d(width_in, width_out, 5, 2, 2, output_padding=1,
                                        bias=False)
            nn.init.normal_(deconv.weight, 0.0, 0.05)
            layers += [deconv, _ShiftBatchNorm(width_out, spatial=True), nn.ReLU()]
        layers += [WeightNorm("deconv", 128, channels, kernel_size=5, stride=2, padding=2,
                              output_padding=1, init_stdv=0.1), nn.Tanh()]
        self.layers = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        x = F.relu(self.dense_norm(self.dense(z)))
        return self.layers(x.view(-1, 512, 4, 4))


class ConvDiscriminator(nn.Module):
    """(B, C, 32, 32) → ((B, K) logits, (B, F) globally pooled features): the official
    CIFAR-10/SVHN D (widths w1, w2: 96/192 or 64/128)."""

    def __init__(self, channels: int, widths: list[int], num_classes: int, input_noise: float,
                 input_dropout: float, dropout: float, minibatch: tuple[int, int]) -> None:
        super().__init__()
        w1, w2 = widths

        def conv(a: int, b: int, stride: int = 1, padding: int = 1, kernel: int = 3
                 ) -> list[nn.Module]:
            return [WeightNorm("conv", a, b, kernel_size=kernel, stride=stride, padding=padding,
                               train_scale=False), nn.LeakyReLU(0.2)]

        self.body = nn.Sequential(
            GaussianNoise(input_noise), nn.Dropout(input_dropout),
            *conv(channels, w1), *conv(w1, w1), *conv(w1, w1, stride=2), nn.Dropout(dropout),
            *conv(w1, w2), *conv(w2, w2), *conv(w2, w2, stride=2), nn.Dropout(dropout),
            *conv(w2, w2, padding=0), *conv(w2, w2, padding=0, kernel=1),
            *conv(w2, w2, padding=0, kernel=1))
        width = w2
        head: list[nn.Module] = []
        if minibatch[0]:
            head.append(MinibatchDiscrimination(width, *minibatch))
            width += minibatch[0]
        head.append(WeightNorm("linear", width, num_classes, train_scale=True, init_stdv=0.1))
        self.head = nn.Sequential(*head)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.body(x).mean((2, 3))                          # global mean pool
        return self.head(features), features


@register_method("improved_gan", ImprovedGANConfig)
class ImprovedGAN(Method):
    """The semi-supervised K+1 GAN. Batches hold ``image`` (unlabelled) and ``labeled_image``,
    ``labeled_class`` (a labelled batch of the same size)."""

    optim_defaults = OptimDefaults(lr_g=0.003, lr_d=0.003, beta1=0.5, beta2=0.999)
    condition_kinds = ("none",)
    config_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "condition": {"kind": "none"},
        "data": {"load_size": 28, "crop_size": 28, "preprocess": "fixed", "flip": False,
                 "channels": 1, "labeled_batch": True},
        "train": {"batch_size": 100, "decay_start": 1.0},
    }

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        cfg: ImprovedGANConfig = config.model
        data = config.data
        height, width = data.crop_hw
        channels = data.channels
        minibatch = (cfg.minibatch_kernels, cfg.minibatch_dim)
        if cfg.architecture == "conv":
            if (height, width) != (32, 32):
                raise ConfigError(f"the conv improved_gan networks are made for 32x32 images; "
                                  f"data.crop_size is {data.crop_size}. Fix: --size 32, or "
                                  "model.architecture=mlp.")
            if len(cfg.conv_widths) != 2:
                raise ConfigError(f"model.conv_widths is {cfg.conv_widths}; expected two widths "
                                  "(CIFAR-10 [96, 192], SVHN [64, 128]).")
            self.generator = ConvGenerator(cfg.z_dim, channels)
            self.discriminator = ConvDiscriminator(channels, cfg.conv_widths, cfg.num_classes,
                                                   cfg.input_noise, cfg.input_dropout,
                                                   cfg.dropout, minibatch)
        else:
            if not cfg.d_widths or not cfg.g_widths:
                raise ConfigError("model.d_widths and model.g_widths need at least one layer")
            self.generator = MLPGenerator(cfg.z_dim, cfg.g_widths, (channels, height, width))
            self.discriminator = MLPDiscriminator(channels * height * width, cfg.d_widths,
                                                  cfg.num_classes, cfg.input_noise,
                                                  cfg.hidden_noise, minibatch)
        # Method state (saved with the networks, so a resumed run continues exactly).
        self.register_buffer("initialized", torch.zeros((), dtype=torch.int64))
        if cfg.ema_decay > 0:
            self.register_buffer("d_average", torch.zeros_like(
                flat_parameters(self.discriminator.parameters())))
        if cfg.historical_averaging > 0:
            for name in ("generator", "discriminator"):
                net = getattr(self, name)
                self.register_buffer(f"{name}_history",
                                     torch.zeros_like(flat_parameters(net.parameters())))
                self.register_buffer(f"{name}_history_count", torch.zeros((), dtype=torch.int64))

    # ----------------------------------------------------------------------------- training
    def phases(self) -> list[Phase]:
        phases = [Phase("discriminator", "discriminator")]
        if not self.config.model.supervised_only:
            phases.append(Phase("generator", "generator", repeats=self.config.model.g_steps))
        return phases

    def _noise(self, count: int, device: torch.device) -> Tensor:
        shape = (count, self.config.model.z_dim)
        if self.config.model.z_distribution == "uniform":
            return torch.rand(shape, device=device)
        return torch.randn(shape, device=device)

    def _labeled(self, batch: Batch) -> tuple[Tensor, Tensor]:
        if "labeled_image" not in batch or "labeled_class" not in batch:
            raise ConfigError("improved_gan trains on a labelled batch beside the unlabelled "
                              "one, which this batch lacks. Fix: train on class data (class "
                              "folders, IDX files) with data.labeled_batch=true (the default) "
                              "and data.labeled_per_class=N to keep N labels per class.")
        labels = batch["labeled_class"]
        k = self.config.model.num_classes
        if labels.min() < 0 or labels.max() >= k:
            raise ConfigError(f"a labelled batch holds class {int(labels.max())} (or -1) but "
                              f"model.num_classes is {k}. Fix: set model.num_classes to the "
                              "number of classes of the data.")
        return batch["labeled_image"], labels

    def _history_penalty(self, name: str) -> dict[str, Tensor]:
        """The historical-averaging term of player ``name``: the running mean of its
        parameters takes in the current ones, then ||theta - mean||^2 (the paper's (1/t) sum
        over the t steps so far)."""
        weight = self.config.model.historical_averaging
        if weight <= 0:
            return {}
        penalty = historical_average_step(list(getattr(self, name).parameters()),
                                          getattr(self, f"{name}_history"),
                                          getattr(self, f"{name}_history_count"))
        return {f"{name[0]}_history": weight * penalty}

    def phase_losses(self, phase: Phase, batch: Batch, cache: dict[str, Any]) -> dict[str, Tensor]:
        cfg: ImprovedGANConfig = self.config.model
        unlabeled = batch["image"]
        device = unlabeled.device
        if phase.name == "discriminator":
            images, labels = self._labeled(batch)
            if cfg.data_init and not int(self.initialized):
                # The official data-dependent initialization, on the first batch (statistics
                # over one example would divide by zero: a batch of one keeps the initial
                # scales).
                if unlabeled.shape[0] > 1:
                    data_dependent_init(self.generator, self._noise(images.shape[0], device))
                    data_dependent_init(self.discriminator, unlabeled)
                else:
                    warnings.warn("improved_gan: a first batch of one image cannot set the "
                                  "data-dependent initialization; the initial scales stay",
                                  stacklevel=2)
                self.initialized.fill_(1)
            if cfg.ema_decay > 0:
                # The official update uses the parameters before this step's update.
                with torch.no_grad():
                    self.d_average.lerp_(flat_parameters(self.discriminator.parameters()),
                                         1.0 - cfg.ema_decay)
            logits_lab, _ = self.discriminator(images)
            losses = {"d_labeled": kplus1_labeled_loss(logits_lab, labels)}
            if not cfg.supervised_only:
                with torch.no_grad():
                    fake = self.generator(self._noise(unlabeled.shape[0], device))
                logits_unl, _ = self.discriminator(unlabeled)
                logits_fake, _ = self.discriminator(fake)
                losses["d_unlabeled"] = cfg.unlabeled_weight * kplus1_unlabeled_loss(
                    logits_unl, logits_fake)
            return losses | self._history_penalty("discriminator")
        if phase.name == "generator":
            fake = self.generator(self._noise(unlabeled.shape[0], device))
            with self.frozen(self.discriminator) as discriminator:
                logits_fake, features_fake = discriminator(fake)
                if cfg.generator_loss == "feature_matching":
                    with torch.no_grad():
                        _, features_real = discriminator(unlabeled)
                    losses = {"g_feature_matching": batch_mean_matching(
                        features_real, features_fake, cfg.feature_distance)}
                else:
                    losses = {"g_gan": kplus1_generator_loss(logits_fake)}
            return losses | self._history_penalty("generator")
        raise ValueError(f"{self.name} has no phase {phase.name!r}")

    # ----------------------------------------------------------------------------- testing
    def classifier(self) -> nn.Module:
        """The test-time classifier, in eval mode: D with the averaged parameters when
        ``ema_decay`` is on (the official test model), else D. It maps (B, C, H, W) images in
        [-1, 1] to ((B, K) logits, features)."""
        net = copy.deepcopy(self.discriminator).eval()
        if self.config.model.ema_decay > 0:
            load_flat_parameters(net.parameters(), self.d_average)
        return net

    @contextlib.contextmanager
    def _testing(self) -> Iterator[nn.Module]:
        """D as :meth:`classifier` is, in place: eval mode, the averaged parameters."""
        was_training = self.discriminator.training
        self.discriminator.eval()
        averaged = (swapped_parameters(list(self.discriminator.parameters()), self.d_average)
                    if self.config.model.ema_decay > 0 else contextlib.nullcontext())
        try:
            with averaged, torch.no_grad():
                yield self.discriminator
        finally:
            self.discriminator.train(was_training)

    def _test_outputs(self, images: Tensor, batch_size: int = 500) -> tuple[Tensor, Tensor]:
        with self._testing() as net:
            outputs = [net(chunk.to(self.device)) for chunk in images.split(batch_size)]
        return torch.cat([o[0] for o in outputs]), torch.cat([o[1] for o in outputs])

    def classify(self, images: Tensor, batch_size: int = 500) -> Tensor:
        """Class probabilities (B, K) of (B, C, H, W) images in [-1, 1] (:meth:`classifier`)."""
        return torch.softmax(self._test_outputs(images, batch_size)[0], 1)

    def classify_logits(self, images: Tensor) -> Tensor:
        """The test classifier's K logits (B, K): the run as the feature network of
        ``evaluate --classifier RUN``."""
        return self._test_outputs(images)[0]

    def classifier_features(self, images: Tensor) -> Tensor:
        """The test classifier's last hidden features (B, F), the feature-matching layer."""
        return self._test_outputs(images)[1]

    def discriminate(self, image: Tensor, cond: Tensor | None = None) -> Tensor:
        """D's "real" logit, log Z = LSE(l) (the generated class's logit is 0)."""
        return torch.logsumexp(self.discriminator(image)[0], 1)

    # ----------------------------------------------------------------------------- inference
    def latent_size(self) -> int:
        return self.config.model.z_dim

    @inference
    def generate(self, cond: Tensor | None = None, *, batch_size: int | None = None,
                 z: Tensor | None = None, style: Tensor | None = None,
                 instance: Tensor | None = None) -> Tensor:
        """Images (B, C, H, W) in [-1, 1] from ``z`` (B, z_dim), or from ``batch_size``
        (default 1) draws of the training noise (torch's global RNG)."""
        if cond is not None or style is not None or instance is not None:
            raise ConfigError("improved_gan generates from noise alone: it takes no condition, "
                              "style image or instance map (use `condsynth classify` to "
                              "classify images)")
        if z is None:
            z = self._noise(batch_size or 1, self.device)
        elif z.dim() != 2 or z.shape[1] != self.config.model.z_dim:
            raise ConfigError(f"z of shape {tuple(z.shape)}; this model takes "
                              f"(B, {self.config.model.z_dim})")
        was_training = self.generator.training
        self.generator.eval()
        try:
            return self.generator(z.to(self.device))
        finally:
            self.generator.train(was_training)
