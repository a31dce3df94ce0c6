"""The contract every method fulfils, so that one training loop, the CLI, the studio and the
metrics can drive any of them.

**Training** is a list of *phases* (:class:`Phase`), each stepping one named optimizer
(:meth:`Method.optimizers`, over :meth:`Method.parameter_groups`) with the loss terms
:meth:`Method.phase_losses` returns. ``train.train_step`` runs them in order, each as often and
as many times as it says (n_critic D steps per G step, K_g:K_d ratios, lazy regularization, a
pre-training phase for the first N steps, G-before-D or D-before-G). A two-player GAN needs
none of that: it implements the three methods below, and the default phases run::

    out = method.forward_generator(batch)            # G(condition) once, with gradients
    d_losses = method.discriminator_step(batch, out) # {"d_real": ..., "d_fake": ...}
    (sum of d_losses).backward(); D optimizer step
    g_losses = method.generator_step(batch, out)     # {"g_gan": ..., "g_feat": ..., ...}
    (sum of g_losses).backward(); G optimizer step

The discriminator step sees the fake detached; the generator step sees it with its graph, and the
discriminator frozen (:meth:`Method.frozen`). Every loss term a step returns is already weighted:
the trainer adds them up and logs each one.

**Method state**: what a method keeps between steps beyond its networks (history buffers,
parameter averages, reference batches, the current resolution) lives in persistent buffers
registered on the method itself (``self.register_buffer``), saved with the networks, so exact
resume holds with no extra code.

**Inference**: ``generate(cond=None, *, batch_size=None, z=None, style=None, instance=None,
...)`` returns (B, C, H, W) images in [-1, 1]; :meth:`Method.capabilities` says which inputs
and controls apply, and the CLI, the studio, the bench and the metrics read it.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from condsynth.conditions import condition_of, encode_condition
from condsynth.config import Config
from condsynth.errors import CheckpointError, ConfigError

Batch = dict[str, Any]


class Capability(StrEnum):
    """What a trained model can be asked for (:meth:`Method.capabilities`)."""

    UNCONDITIONAL = "unconditional"   # samples from noise alone
    CLASS = "class"                   # a class to generate
    ATTRIBUTES = "attributes"         # an attribute vector
    PAINT = "paint"                   # a label map (+ instance map) to paint
    SKETCH = "sketch"                 # a line drawing to colour
    IMAGE = "image"                   # another image to translate
    STYLE_IMAGE = "style_image"       # the look of a real image (``style=``)
    RANDOM_LOOKS = "random_looks"     # another seed gives another picture
    CLUSTER_LOOKS = "cluster_looks"   # chosen looks per class (pix2pixHD's K-means features)
    HINTS = "hints"                   # colour hint strokes
    LATENT = "latent"                 # a latent z to sample, walk and do arithmetic in


# The capability each condition kind gives (image conditions: 1 channel = a sketch).
KIND_CAPABILITY: dict[str, Capability] = {
    "none": Capability.UNCONDITIONAL, "class": Capability.CLASS,
    "vector": Capability.ATTRIBUTES, "label_map": Capability.PAINT, "image": Capability.IMAGE}


@dataclass(frozen=True)
class OptimDefaults:
    """A two-player method's optimizer settings as its paper and official code use them."""

    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999


@dataclass(frozen=True)
class OptimizerSpec:
    """One named optimizer over one parameter group."""

    lr: float
    betas: tuple[float, float] = (0.5, 0.999)   # Adam's; SGD uses betas[0] as its momentum
    eps: float = 1e-8
    weight_decay: float = 0.0
    kind: Literal["adam", "sgd"] = "adam"


@dataclass(frozen=True)
class Phase:
    """One optimizer step of a training iteration: ``method.phase_losses(phase, ...)`` summed,
    backpropagated, and ``optimizer`` stepped; ``repeats`` times, on the iterations
    ``start <= step < stop`` with ``step % every == 0``."""

    name: str                 # what phase_losses computes ("discriminator", "generator", ...)
    optimizer: str            # the parameter group it steps
    repeats: int = 1          # steps per iteration (n_critic, K_g / K_d)
    every: int = 1            # lazy regularization: only every k-th iteration
    start: int = 0            # first iteration (after a pre-training phase)
    stop: int | None = None   # iteration where it ends (a pre-training phase)

    def active(self, step: int) -> bool:
        return (step >= self.start and (self.stop is None or step < self.stop)
                and step % self.every == 0)


# The order of a two-player iteration: ``official`` as the method's reference code does it,
# ``d_first`` condsynth's default phases (D, then G against the updated D).
StepOrder = Literal["official", "d_first"]


def generator_first() -> list[Phase]:
    """G's step, then D's: the order of pix2pixHD's and SPADE's official iterations."""
    return [Phase("generator", "generator"), Phase("discriminator", "discriminator")]


@dataclass(frozen=True)
class StepSchedule:
    """What a method asks of an iteration: a batch size and a resolution (None: the configured
    batch size, the full size), a factor on every optimizer's learning rate, and whether the
    optimizers' state (Adam's moments) starts afresh before this iteration. Progressive growing
    changes all four."""

    batch_size: int | None = None
    resolution: int | None = None
    lr_scale: float = 1.0
    reset_optimizers: bool = False


def inference(generate: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Decorates a method's ``generate``: no gradients, autocast at the method's
    ``inference_precision`` (the fast path), and float32 images out whatever ran inside."""

    @functools.wraps(generate)
    def wrapper(self: Method, *args: Any, **kwargs: Any) -> Tensor:
        if len(args) > 1:
            # The former signature generate(label, instance, style, z) took them by position.
            warnings.warn("pass instance, style and z to generate() by keyword; by position "
                          "they are deprecated", DeprecationWarning, stacklevel=2)
            for name, value in zip(("instance", "style", "z"), args[1:], strict=False):
                kwargs[name] = value
            args = args[:1]
        with torch.no_grad(), self.inference_autocast():
            return generate(self, *args, **kwargs).float()

    return wrapper


def _local_batch_norm(sync: nn.SyncBatchNorm) -> nn.BatchNorm2d:
    """A BatchNorm2d on the same parameter and statistic tensors as ``sync``, without its
    collective (:meth:`Method.detached` restores what it changes)."""
    local = nn.BatchNorm2d(sync.num_features, sync.eps, sync.momentum, sync.affine,
                           sync.track_running_stats)
    local.weight, local.bias = sync.weight, sync.bias
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        setattr(local, name, getattr(sync, name))
    local.train(sync.training)
    return local


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


class Method(nn.Module):
    """Base class of a generative method: owns its networks, losses and phases, not the
    schedule.

    Subclasses set their networks in ``__init__`` (``self.generator``, ``self.discriminator``,
    optionally ``self.encoder``; names listed in ``network_names``) and implement either the
    two-player methods (:meth:`forward_generator`, :meth:`discriminator_step`,
    :meth:`generator_step`) or :meth:`phases` and :meth:`phase_losses`; and :meth:`generate`.
    """

    name: ClassVar[str] = ""
    optim_defaults: ClassVar[OptimDefaults] = OptimDefaults()
    # Networks saved as <name>.safetensors; the trainer may wrap them for distributed training.
    network_names: ClassVar[tuple[str, ...]] = ("generator", "discriminator")
    # Networks :meth:`generate` needs (the rest is not loaded for inference).
    inference_networks: ClassVar[tuple[str, ...]] = ("generator",)
    # Settings of the other config sections that ``default_config`` starts from, by section:
    # {"condition": {...}, "data": {...}} (a method conditioned on sketches, not label maps).
    config_defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    # The condition kinds the method takes (checked when it is built).
    condition_kinds: ClassVar[tuple[str, ...]] = ("label_map", "image")
    # The smallest training batch the method can learn from (batch norm over fully connected
    # features needs two items); the method refuses a smaller train.batch_size.
    min_batch_size: ClassVar[int] = 1
    # The settings that decide :meth:`size_multiple`, named in errors about sizes.
    size_settings: ClassVar[str] = "the model.* setting of its down-sampling"

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        kind = config.condition.kind
        if kind not in self.condition_kinds:
            raise ConfigError(f"{self.name} takes conditions of kind "
                              f"{' or '.join(self.condition_kinds)}, not condition.kind={kind}. "
                              f"Fix: set condition.kind to one of those, or choose a method "
                              f"made for {kind} conditions.")

    @classmethod
    def saved_run_config(cls, config: Config) -> Config:
        """The configuration of a saved run as this version must read it: a setting added
        after the run was written takes the value that reproduces the run's networks (the
        default for new runs may differ). Called on every run directory's config.yaml."""
        return config

    # ----------------------------------------------------------------------------- inputs
    def condition(self, batch: Batch) -> Tensor | None:
        """The generator's input for a batch: the condition of ``condition.kind``, encoded."""
        spec = self.config.condition
        cond = condition_of(batch, spec)
        return encode_condition(cond, spec, batch.get("instance"),
                                source=str(batch.get("path", f"{spec.kind} condition")))

    def encode(self, cond: Tensor | None, instance: Tensor | None = None) -> Tensor | None:
        """:meth:`condition` for ``generate``'s arguments, moved to the method's device."""
        device = self.device
        return encode_condition(None if cond is None else cond.to(device), self.config.condition,
                                None if instance is None else instance.to(device),
                                source=f"{self.config.condition.kind} condition")

    def batch_inputs(self, batch: Batch) -> dict[str, Tensor]:
        """Keyword inputs of :meth:`generate` that a batch holds besides the condition (e.g.
        the attributes beside a sketch), for the training's samples page; none by default."""
        return {}

    def size_multiple(self) -> int:
        """Input height and width must be multiples of this (the network's down-sampling)."""
        return 1

    def latent_size(self) -> int | None:
        """Length of the latent z that ``generate(z=...)`` takes as (B, latent_size); None
        for methods without one. A method with a latent has :attr:`Capability.LATENT` and
        :attr:`Capability.RANDOM_LOOKS` (a new z, a new picture)."""
        return None

    def capabilities(self) -> frozenset[Capability]:
        """What this model can be asked for: by default, what its condition kind gives
        (a 1-channel image condition is a sketch), and a latent's controls when it has
        one (:meth:`latent_size`); methods add their other controls."""
        spec = self.config.condition
        kind = KIND_CAPABILITY[spec.kind]
        if kind == Capability.IMAGE and spec.image_channels == 1:
            kind = Capability.SKETCH
        if self.latent_size() is not None:
            return frozenset({kind, Capability.LATENT, Capability.RANDOM_LOOKS})
        return frozenset({kind})

    def check_training_size(self) -> None:
        """Refuse a training crop that :meth:`size_multiple` does not divide: the data would
        be resized to another size than the one asked for, silently."""
        data = self.config.data
        if data.preprocess not in ("resize_and_crop", "scale_width_and_crop", "crop", "fixed"):
            return                            # sizes vary per image: rounded per image
        height, width = data.crop_hw
        multiple = self.size_multiple()
        if height % multiple == 0 and width % multiple == 0:
            return
        nearest = max(multiple, round(data.crop_size / multiple) * multiple)
        raise ConfigError(
            f"the training size {width}x{height} (data.crop_size {data.crop_size}, "
            f"data.aspect_ratio {data.aspect_ratio}) is not a multiple of {multiple}, which "
            f"this {self.config.method} network's down-sampling needs. Fix: --size {nearest} "
            f"(data.load_size and data.crop_size), or a network that fits the size (set "
            f"{self.size_settings}).")

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
        """Trainable parameters by optimizer name: a two-player method's ``"generator"`` (with
        the encoder) and ``"discriminator"``."""
        groups = {"generator": list(self.generator.parameters()),
                  "discriminator": list(self.discriminator.parameters())}
        if "encoder" in self.network_names:
            groups["generator"] += list(self.encoder.parameters())
        return groups

    def optimizers(self) -> dict[str, OptimizerSpec]:
        """The default settings of each named optimizer (``train.lr_g``/``lr_d``/``beta1``/
        ``beta2`` and ``train.optimizers.<name>`` override them)."""
        d = self.optim_defaults
        betas = (d.beta1, d.beta2)
        return {"generator": OptimizerSpec(lr=d.lr_g, betas=betas),
                "discriminator": OptimizerSpec(lr=d.lr_d, betas=betas)}

    def epoch_settings(self, name: str, spec: OptimizerSpec, epoch: int,
                       lr: float) -> dict[str, float]:
        """Settings of optimizer ``name`` (resolved as ``spec``) for iterations of ``epoch``
        (from 0) that replace its parameter groups' ones, given the ``lr`` the trainer's
        schedule sets: a per-epoch momentum or learning-rate rule of the method's official
        code (LAPGAN's SGD); nothing by default."""
        return {}

    def phases(self) -> list[Phase]:
        """The steps of one training iteration, in order: by default D, then G against the
        updated D, each once."""
        return [Phase("discriminator", "discriminator"), Phase("generator", "generator")]

    def schedule(self, step: int) -> StepSchedule:
        """The batch size and resolution iteration ``step`` trains at (default: as configured)."""
        return StepSchedule()

    def phase_losses(self, phase: Phase, batch: Batch, cache: dict[str, Any]) -> dict[str, Tensor]:
        """The weighted loss terms of ``phase`` for ``batch``. ``cache`` lives for one
        iteration: the default keeps G's output there, computed once for both players."""
        if "out" not in cache:
            cache["out"] = self.forward_generator(batch)
        if phase.name == "discriminator":
            return self.discriminator_step(batch, cache["out"])
        if phase.name == "generator":
            return self.generator_step(batch, cache["out"])
        raise ValueError(f"{self.name} has no phase {phase.name!r}")

    def method_state(self) -> dict[str, Tensor]:
        """The method's own persistent buffers (not its networks'), saved with the networks."""
        return {name: buffer for name, buffer in self._buffers.items()
                if buffer is not None and name not in self._non_persistent_buffers_set}

    def load_method_state(self, tensors: dict[str, Tensor]) -> None:
        """Restore :meth:`method_state`; a buffer may have grown since it was registered (a
        history that fills up), so it is replaced, not copied into."""
        for name, tensor in tensors.items():
            if name not in self._buffers:
                raise CheckpointError(f"the checkpoint holds method state '{name}' that "
                                      f"{self.name} does not keep")
            self._buffers[name] = tensor.to(self._buffers[name].device)

    def discriminate(self, image: Tensor, cond: Tensor | None = None) -> Any:
        """The discriminator on real-looking images alone (``condsynth probe`` reads its
        convolutions); a conditional discriminator gets a neutral condition when ``cond`` is
        None. Methods whose discriminator judges images alone implement it."""
        raise NotImplementedError(f"{self.name} does not expose its discriminator on images")

    def prepare(self, dataset: torch.utils.data.Dataset) -> None:  # noqa: B027  (optional hook)
        """Called once before the first step of a new run (not on resume) with the training
        dataset: statistics a method takes from the data (a codebook of directions)."""

    def on_step(self, step: int, max_steps: int) -> None:  # noqa: B027  (optional hook)
        """Called before each training step (staged training, fade-in, ...)."""

    def progress_notes(self, dataset: Any, run_dir: Path, step: int) -> list[str]:
        """Lines for the run's page at a samples refresh (measurements of the training so far,
        e.g. ProGAN's SWD as the resolution grows); ``dataset`` is the training set. Must leave
        the model and every RNG as they were. Default: none."""
        return []

    def may_leave_parameters_unused(self) -> bool:
        """Whether some trainable parameters can get no gradient in a step (e.g. a frozen
        stage), which distributed training must be told about."""
        return False

    def initialize_from(self, run_dir: Path, networks: dict[str, str] | None = None,
                        ) -> list[str]:
        """Start from another run's weights (fine-tuning, staged training): every network of
        the same name and shape is copied, or with ``networks`` ({theirs: ours}) those named
        there, renamed (a pipeline's joint stage taking two stages' generators). Returns the
        names of what was copied."""
        from condsynth import checkpoint

        own = self.networks()
        if networks is not None:
            for theirs, ours in networks.items():
                if ours not in own:
                    raise ConfigError(f"{self.name} has no network '{ours}' to load {theirs} "
                                      f"of {run_dir} into (its networks: {', '.join(own)})")
                if not checkpoint.has_network(run_dir, theirs):
                    raise CheckpointError(f"{run_dir} holds no network '{theirs}'")
                checkpoint.load_network(run_dir, theirs, own[ours])
            return list(networks.values())
        copied = []
        for name, net in own.items():
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
        from condsynth.runtime import autocast

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
    def generate(self, cond: Tensor | None = None, *, batch_size: int | None = None,
                 z: Tensor | None = None, style: Tensor | None = None,
                 instance: Tensor | None = None) -> Tensor:
        """Synthesize images.

        Args:
            cond: the condition of ``condition.kind``: (B, H, W) int64 label map, (B, C, H, W)
                image, (B,) int64 classes, (B, A) attributes; None for noise-only models.
            batch_size: how many samples a noise-only model draws (when neither ``cond`` nor
                ``z`` fixes it).
            z: latent code for multimodal and noise-driven methods.
            style: (B, 3, H, W) image in [-1, 1] whose look the output should take.
            instance: (B, H, W) int64 instance ids (Cityscapes encoding) when the model uses them.
        Returns:
            (B, C, H, W) images in [-1, 1].
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

    def has_dropout(self) -> bool:
        """Whether the generator has dropout layers (a shallow U-Net has none), so that
        test-time noise makes another seed another picture."""
        return any(isinstance(m, nn.Dropout) for m in unwrap(self.generator).modules())

    @contextlib.contextmanager
    def detached(self) -> Iterator[Method]:
        """Within the block, the inference networks run unwrapped and rank-local, and leave
        nothing behind: sampling during training (in training mode where a method samples with
        test-time noise) changes no parameter, no batch-norm statistic and no spectral-norm
        vector of the model being trained, and runs no collective of synchronized batch norm,
        which the other ranks, not sampling, would never join."""
        originals = {name: self._modules[name] for name in self.inference_networks}
        swapped: list[tuple[nn.Module, str, nn.Module]] = []
        saved: list[tuple[Tensor, Tensor]] = []
        try:
            for name, module in originals.items():
                inner = unwrap(module)
                self._modules[name] = inner
                saved += [(t, t.detach().clone()) for t in
                          (*inner.parameters(), *inner.buffers())]
                for parent in list(inner.modules()):
                    for child_name, child in list(parent.named_children()):
                        if isinstance(child, nn.SyncBatchNorm):
                            parent._modules[child_name] = _local_batch_norm(child)
                            swapped.append((parent, child_name, child))
            yield self
        finally:
            for parent, child_name, child in swapped:
                parent._modules[child_name] = child
            self._modules.update(originals)
            with torch.no_grad():
                for tensor, value in saved:
                    tensor.copy_(value)

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
