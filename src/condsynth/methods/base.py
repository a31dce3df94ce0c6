"""The contract every method fulfils, so that one training loop, the CLI, the studio and the
metrics can drive any of them.

A training iteration, as ``train.py`` runs it::

    out = method.forward_generator(batch)            # G(condition) once, with gradients
    d_losses = method.discriminator_step(batch, out) # {"d_real": ..., "d_fake": ...}
    (sum of d_losses).backward(); D optimizer step
    g_losses = method.generator_step(batch, out)     # {"g_gan": ..., "g_feat": ..., ...}
    (sum of g_losses).backward(); G optimizer step

The discriminator step sees the fake detached; the generator step sees it with its graph, and the
discriminator frozen (:meth:`Method.frozen`). Every loss term a step returns is already weighted:
the trainer adds them up and logs each one.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from condsynth.config import Config
from condsynth.data.labels import encode_condition

Batch = dict[str, Any]


@dataclass(frozen=True)
class OptimDefaults:
    """A method's optimizer settings as its paper and official code use them."""

    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999


def inference(generate: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Decorates a method's ``generate``: no gradients, autocast at the method's
    ``inference_precision`` (the fast path), and float32 images out whatever ran inside."""

    @functools.wraps(generate)
    def wrapper(self: Method, *args: Any, **kwargs: Any) -> Tensor:
        with torch.no_grad(), self.inference_autocast():
            return generate(self, *args, **kwargs).float()

    return wrapper


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


class Method(nn.Module):
    """Base class of a conditional GAN: owns its networks and losses, not the schedule.

    Subclasses set ``self.generator`` and ``self.discriminator`` (and optionally
    ``self.encoder``) in ``__init__`` and implement the four methods below.
    """

    name: ClassVar[str] = ""
    optim_defaults: ClassVar[OptimDefaults] = OptimDefaults()
    # Networks saved as <name>.safetensors; the trainer may wrap them for distributed training.
    network_names: ClassVar[tuple[str, ...]] = ("generator", "discriminator")
    # Networks :meth:`generate` needs (the rest is not loaded for inference).
    inference_networks: ClassVar[tuple[str, ...]] = ("generator",)
    # Settings of the other config sections that ``default_config`` starts from, by section:
    # {"label": {...}, "data": {...}} (a method conditioned on sketches, not label maps).
    config_defaults: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config

    # ----------------------------------------------------------------------------- inputs
    def condition(self, batch: Batch) -> Tensor:
        """The generator's input for a batch: encoded labels, or the source image."""
        label = batch["source"] if self.config.label.num_classes == 0 else batch["label"]
        return encode_condition(label, batch.get("instance"), self.config.label,
                                source=str(batch.get("path", "label map")))

    def size_multiple(self) -> int:
        """Input height and width must be multiples of this (the network's down-sampling)."""
        return 1

    # ----------------------------------------------------------------------------- training
    def forward_generator(self, batch: Batch) -> dict[str, Tensor]:
        """Run G once with gradients: ``{"fake": (B, 3, H, W), ...}`` plus what the losses need."""
        raise NotImplementedError

    def discriminator_step(self, batch: Batch, out: dict[str, Tensor]) -> dict[str, Tensor]:
        """Weighted discriminator loss terms (``d_`` prefix) for this batch."""
        raise NotImplementedError

    def generator_step(self, batch: Batch, out: dict[str, Tensor]) -> dict[str, Tensor]:
        """Weighted generator loss terms (``g_`` prefix) for this batch."""
        raise NotImplementedError

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters of the G optimizer (``"generator"``, with the encoder) and of D."""
        groups = {"generator": list(self.generator.parameters()),
                  "discriminator": list(self.discriminator.parameters())}
        if "encoder" in self.network_names:
            groups["generator"] += list(self.encoder.parameters())
        return groups

    def on_step(self, step: int, max_steps: int) -> None:  # noqa: B027  (optional hook)
        """Called before each training step (staged training, fade-in, ...)."""

    def may_leave_parameters_unused(self) -> bool:
        """Whether some trainable parameters can get no gradient in a step (e.g. a frozen
        stage), which distributed training must be told about."""
        return False

    def initialize_from(self, run_dir: Path) -> list[str]:
        """Start from another run's weights (fine-tuning, staged training): every network of
        the same name and shape is copied. Returns the names of what was copied."""
        from condsynth import checkpoint

        copied = []
        for name, net in self.networks().items():
            if checkpoint.has_network(run_dir, name):
                checkpoint.load_network(run_dir, name, net)
                copied.append(name)
        return copied

    # ----------------------------------------------------------------------------- inference
    # Mixed precision of :meth:`generate` ("fp32", "bf16", "fp16"), set by
    # ``condsynth.load(..., precision=...)``; training takes its precision from the config.
    inference_precision: str = "fp32"

    def inference_autocast(self) -> contextlib.AbstractContextManager:
        """The autocast context :meth:`generate` runs in (a no-op in fp32)."""
        from condsynth.train import autocast

        return autocast(self.device, self.inference_precision)

    def cast_inference_weights(self, dtype: torch.dtype) -> int:
        """Store the plain convolution and linear layers of the inference networks in ``dtype``
        (the fast path's precision), so that autocast does not cast every weight again at every
        call (pix2pixHD 256x512 inference: 0.46 s instead of 0.54 s in bf16). Layers with
        spectral norm or other parametrizations, and normalization layers, stay in float32.
        For inference only: training needs the float32 weights. Returns the layers cast."""
        kinds = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
        count = 0
        for name in self.inference_networks:
            for module in self.networks()[name].modules():
                if (isinstance(module, kinds) and not hasattr(module, "weight_orig")
                        and not torch.nn.utils.parametrize.is_parametrized(module)):
                    module.to(dtype)
                    count += 1
        return count

    @inference
    def generate(self, label: Tensor, instance: Tensor | None = None, style: Tensor | None = None,
                 z: Tensor | None = None) -> Tensor:
        """Synthesize images.

        Args:
            label: (B, H, W) int64 class ids, or (B, C, H, W) float image for image conditions.
            instance: (B, H, W) int64 instance ids (Cityscapes encoding) when the model uses them.
            style: (B, 3, H, W) image in [-1, 1] whose look the output should take.
            z: latent code for multimodal methods.
        Returns:
            (B, 3, H, W) images in [-1, 1].
        """
        raise NotImplementedError

    def extra_files(self) -> dict[str, bytes]:
        """Non-network files a checkpoint should hold (e.g. clustered features), by name."""
        return {}

    def load_extras(self, run_dir: Path) -> None:  # noqa: B027  (optional hook)
        """Read back what :meth:`extra_files` wrote, when present."""

    # ----------------------------------------------------------------------------- helpers
    def run_generator(self, condition: Tensor, test_time_noise: bool) -> Tensor:
        """G on an encoded condition at inference. With ``test_time_noise`` it runs in training
        mode (dropout on, batch statistics), as the pix2pix paper samples; else in eval mode."""
        was_training = self.generator.training
        self.generator.train(test_time_noise)
        try:
            return self.generator(condition)
        finally:
            self.generator.train(was_training)

    def networks(self) -> dict[str, nn.Module]:
        """The saved networks by name, unwrapped from any distributed wrapper."""
        return {name: unwrap(self._modules[name]) for name in self.network_names}

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @contextlib.contextmanager
    def frozen(self, module: nn.Module) -> Iterator[nn.Module]:
        """Use ``module`` without training it: no parameter gradients and, when it is wrapped
        for distributed training, no gradient synchronization armed by its forward."""
        params = [p for p in module.parameters() if p.requires_grad]
        for p in params:
            p.requires_grad_(False)
        sync = (module.no_sync() if isinstance(module, nn.parallel.DistributedDataParallel)
                else contextlib.nullcontext())
        try:
            with sync:
                yield module
        finally:
            for p in params:
                p.requires_grad_(True)
