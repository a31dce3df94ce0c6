"""The one training loop: build, D step, G step, EMA, log, sample, checkpoint.

A method owns its networks and losses; this file owns time: steps, learning-rate schedules,
devices, precision, distribution, logging, samples and checkpoints. Read it top to bottom:
:func:`train` is the whole story.

Resuming is exact: the data order and every augmentation are functions of (seed, epoch, index),
and the checkpoint holds the optimizers, the step and every RNG state, so N steps then a resume
to 2N give the same weights as 2N steps in one go.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from condsynth import checkpoint
from condsynth.conditions import SPATIAL_KINDS, condition_of
from condsynth.config import Config, OptimizerConfig
from condsynth.data.dataset import tensor_to_image
from condsynth.data.factory import open_dataset
from condsynth.data.scan import scan_headers, stopped_by_bad_file
from condsynth.errors import CondsynthError, DataError
from condsynth.methods.base import Capability, Method, OptimizerSpec
from condsynth.pages import condition_picture, condition_text, save_png, write_table_page
from condsynth.registry import build_method
from condsynth.runtime import autocast, resolve_device

# ----------------------------------------------------------------------------- distribution


@dataclass
class Distributed:
    """Where this process stands: rank 0 of 1 unless launched by ``torchrun``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> Distributed:
    """Join the process group that ``torchrun`` describes in the environment (gloo on CPU,
    NCCL on CUDA); a single process when it describes none."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    info = Distributed(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", 0)))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return info


def resolve_train_device(config: Config) -> torch.device:
    device = resolve_device(config.train.device)
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    return device


# ----------------------------------------------------------------------------- data order


class ResumableBatches:
    """Batches of indices for one rank, as a function of (seed, step): a fresh permutation per
    epoch from (seed, epoch), each step taking the next ``batch_size(step)`` items of every
    rank's share (a new epoch starts when the rest of the permutation is too short), so a run
    resumed at any step draws exactly the batches the straight run drew. With one batch size
    this is the usual drop-last epoch; progressive growing changes the size by step. Without
    ``shuffle`` every epoch takes the items in file order (the official ``--serial_batches``)."""

    def __init__(self, num_items: int, batch_size: int | Callable[[int], int], seed: int,
                 dist_info: Distributed, shuffle: bool = True) -> None:
        if num_items == 0:
            raise CondsynthError("the dataset is empty: nothing to train on")
        self.num_items = num_items
        self.batch_size = batch_size if callable(batch_size) else (lambda step: batch_size)
        self.seed = seed
        self.dist = dist_info
        self.shuffle = shuffle

    def _global(self, step: int) -> int:
        return self.batch_size(step) * self.dist.world_size

    def position(self, step: int) -> tuple[int, int]:
        """(epoch, offset into the epoch's permutation) where iteration ``step`` starts."""
        epoch, offset = 0, 0
        for s in range(step):
            if offset and offset + self._global(s) > self.num_items:
                epoch, offset = epoch + 1, 0
            offset += self._global(s)
            if offset >= self.num_items:
                epoch, offset = epoch + 1, 0
        if offset and offset + self._global(step) > self.num_items:
            epoch, offset = epoch + 1, 0
        return epoch, offset

    def epoch_batches(self, epoch: int, offset: int, step: int) -> list[list[int]]:
        """This rank's batches of ``epoch`` from ``offset`` on, the first for iteration
        ``step``: as many as fit in the epoch."""
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.num_items, generator=g)
        else:
            order = torch.arange(self.num_items)
        batches = []
        while True:
            size = self._global(step)
            if offset and offset + size > self.num_items:
                break
            if size > self.num_items:                 # tiny datasets: repeat the permutation
                items = order.repeat(math.ceil(size / self.num_items))[:size]
            else:
                items = order[offset:offset + size]
            batches.append(items[self.dist.rank::self.dist.world_size].tolist())
            offset += size
            step += 1
            if offset >= self.num_items:
                break
        return batches


# ----------------------------------------------------------------------------- helpers


def lr_factor(step: int, max_steps: int, decay_start: float) -> float:
    """Constant, then linear decay to 0 from ``decay_start * max_steps`` (pix2pixHD, SPADE)."""
    start = decay_start * max_steps
    if step < start or max_steps <= start:
        return 1.0
    return max(0.0, (max_steps - step) / (max_steps - start))


def epoch_lr_factor(epoch: int, constant_epochs: int, decay_epochs: int) -> float:
    """The official pix2pixHD/SPADE schedule: after each epoch past ``constant_epochs`` the rate
    drops by 1/``decay_epochs`` of the initial one, so epoch ``epoch`` (counted from 0) trains
    at ``1 - max(0, epoch - constant_epochs) / decay_epochs``; with no decay epochs it stays."""
    if decay_epochs <= 0:
        return 1.0
    return max(0.0, 1.0 - max(0, epoch - constant_epochs) / decay_epochs)


def resolve_optimizers(config: Config, method: Method) -> dict[str, OptimizerSpec]:
    """Each named optimizer's settings: the method's defaults, then ``train.lr_g``/``lr_d``/
    ``beta1``/``beta2`` (the generator's and discriminator's), then ``train.optimizers.<name>``.
    The resolved values are written back into the config, so config.yaml is explicit."""
    t = config.train
    specs = method.optimizers()
    unknown = set(t.optimizers) - set(specs)
    if unknown:
        raise CondsynthError(f"train.optimizers names {', '.join(sorted(unknown))}, but "
                             f"{config.method} has the optimizers {', '.join(sorted(specs))}")
    resolved = {}
    for name, spec in specs.items():
        shorthand = {"generator": t.lr_g, "discriminator": t.lr_d}.get(name)
        lr = spec.lr if shorthand is None else shorthand
        beta1 = spec.betas[0] if t.beta1 is None else t.beta1
        beta2 = spec.betas[1] if t.beta2 is None else t.beta2
        own = t.optimizers.get(name) or OptimizerConfig()
        spec = dataclasses.replace(
            spec, lr=lr if own.lr is None else own.lr,
            betas=(beta1 if own.beta1 is None else own.beta1,
                   beta2 if own.beta2 is None else own.beta2),
            eps=spec.eps if own.eps is None else own.eps,
            weight_decay=spec.weight_decay if own.weight_decay is None else own.weight_decay)
        resolved[name] = spec
        if name not in ("generator", "discriminator") or name in t.optimizers:
            t.optimizers[name] = OptimizerConfig(spec.lr, spec.betas[0], spec.betas[1],
                                                 spec.eps, spec.weight_decay)
    two_player = {"generator", "discriminator"} <= set(resolved)
    if two_player:
        g, d = resolved["generator"], resolved["discriminator"]
        t.lr_g, t.lr_d = g.lr, d.lr
        if g.betas == d.betas:
            t.beta1, t.beta2 = g.betas
    return resolved


def rng_state() -> dict[str, Any]:
    # Only tensors and plain Python values, so train_state.pt loads with weights_only=True.
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def make_optimizers(method: Method, specs: dict[str, OptimizerSpec], device: torch.device,
                    fused: bool = True) -> dict[str, torch.optim.Optimizer]:
    """One optimizer per named parameter group. With ``fused``, Adam is the fused kernel on CPUs
    and CUDA: the same update in one pass over the parameters instead of several (an Adam step
    over pix2pixHD's 182M generator parameters takes 0.06 s instead of 0.6 s on two CPU cores).
    Its float rounding differs, and where a gradient is of the order of eps the step does too:
    without ``fused`` Adam is torch's default for the device, as the official code builds it."""
    groups = method.parameter_groups()
    missing = set(specs) ^ set(groups)
    if missing:
        raise CondsynthError(f"{method.name}: parameter groups {sorted(groups)} and optimizers "
                             f"{sorted(specs)} differ")
    fused = fused and device.type in ("cpu", "cuda")
    optimizers: dict[str, torch.optim.Optimizer] = {}
    for name, spec in specs.items():
        params = [p for p in groups[name] if p.requires_grad] or groups[name]
        if spec.kind == "sgd":
            optimizers[name] = torch.optim.SGD(params, lr=spec.lr, momentum=spec.betas[0],
                                               weight_decay=spec.weight_decay)
        else:
            optimizers[name] = torch.optim.Adam(params, lr=spec.lr, betas=spec.betas,
                                                eps=spec.eps, weight_decay=spec.weight_decay,
                                                fused=fused or None)
    return optimizers


def mark_updated(optimizer: torch.optim.Optimizer) -> None:
    """Bump the version of the parameters a fused optimizer step changed: the fused kernels
    update them in place without doing so (torch 2.14), and caches keyed on the version (the
    concatenated SPADE modulation weights of inference) would serve the old values."""
    if any(group.get("fused") for group in optimizer.param_groups):
        for group in optimizer.param_groups:
            for p in group["params"]:
                torch.autograd.graph.increment_version(p)


def train_step(method: Method, batch: dict[str, Any], optimizers: dict[str, torch.optim.Optimizer],
               step: int, precision: str, device: torch.device,
               scaler: torch.amp.GradScaler | None = None) -> dict[str, Tensor]:
    """One training iteration: every phase of ``method`` active at ``step``, in order, each
    its ``repeats`` times (loss terms summed, backpropagated, its optimizer stepped). Returns
    the loss terms (the last repeat's). ``train``, ``bench``, ``demo`` and the tests run this."""
    scaler = scaler if scaler is not None else torch.amp.GradScaler(device.type, enabled=False)
    cache: dict[str, Any] = {}
    losses: dict[str, Tensor] = {}
    for phase in method.phases():
        if not phase.active(step):
            continue
        optimizer = optimizers[phase.optimizer]
        for _ in range(phase.repeats):
            with autocast(device, precision):
                terms = method.phase_losses(phase, batch, cache)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(sum(terms.values())).backward()
            scaler.step(optimizer)
            mark_updated(optimizer)
            losses.update(terms)
    scaler.update()
    return losses


def at_resolution(batch: dict[str, Any], resolution: int | None) -> dict[str, Any]:
    """The batch with its images (``image``, image conditions) area-averaged down to
    ``resolution`` on their longer side (None, or already that small: unchanged)."""
    if resolution is None:
        return batch
    out = dict(batch)
    for key in ("image", "source"):
        value = batch.get(key)
        if isinstance(value, Tensor) and value.dim() == 4 and max(value.shape[-2:]) > resolution:
            scale = resolution / max(value.shape[-2:])
            size = (round(value.shape[-2] * scale), round(value.shape[-1] * scale))
            out[key] = F.interpolate(value, size=size, mode="area")
    return out


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v
            for k, v in batch.items()}


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p.detach(), 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers(), strict=True):
        e.copy_(b)


def wrap_distributed(method: Method, device: torch.device, info: Distributed) -> None:
    """Wrap every network in DistributedDataParallel; batch norm becomes synchronized on CUDA
    (PyTorch's SyncBatchNorm has no CPU kernel, so CPU runs keep per-process statistics)."""
    for name, module in method.networks().items():
        if device.type == "cuda":
            module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        if not any(p.requires_grad for p in module.parameters()):
            continue
        # No buffer broadcast: only rank 0 draws samples, and a collective in that forward
        # would wait forever for the other ranks.
        wrapped = nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None,
            broadcast_buffers=False,
            find_unused_parameters=method.may_leave_parameters_unused())
        setattr(method, name, wrapped)


# ----------------------------------------------------------------------------- samples


@dataclass
class SampleSet:
    """A fixed batch shown on the samples page at every refresh."""

    batch: dict[str, Any]
    rows: int
    names: list[str] = field(default_factory=list)


def make_sample_set(config: Config, method: Method) -> SampleSet:
    """The first ``train.num_samples`` items of the test split (the train split when there is
    none): their conditions (and real images beside) at every refresh."""
    phase = "test"
    try:
        dataset = open_dataset(config, phase="test", train=False,
                               size_multiple=method.size_multiple())
    except CondsynthError:
        phase = "train"
        dataset = open_dataset(config, phase="train", train=False,
                               size_multiple=method.size_multiple())
    rows = min(config.train.num_samples, len(dataset))
    items = [dataset[i] for i in range(rows)]
    batch = torch.utils.data.default_collate(items)
    # Files by stem; items of one file (an IDX array: "file#index") by name and index.
    names = [Path(i["path"]).name if "#" in i["path"] else Path(i["path"]).stem for i in items]
    return SampleSet(batch=batch, rows=rows, names=[f"{phase}: {n}" for n in names])


def write_samples(run_dir: Path, method: Method, samples: SampleSet, step: int,
                  config: Config, final: bool = False,
                  notes: list[str] = ()) -> dict[str, np.ndarray]:
    """Generate the sample rows and refresh ``index.html``: condition | generated | real
    (noise-driven models draw the same z at every refresh: the seed is fixed); ``notes`` are
    more lines for the page (:meth:`Method.progress_notes`)."""
    out_dir = run_dir / "samples"
    batch = samples.batch
    spec = config.condition
    was_training = method.training
    method.eval()
    # A private RNG stream: sampling must not change the training's random numbers.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.train.seed)
        # Where a method takes a style image (pix2pixHD's instance features, SPADE's VAE),
        # the real image is the style source, as the official training pages show.
        style = batch["image"] if Capability.STYLE_IMAGE in method.capabilities() else None
        with method.detached():                # samples change nothing of the model
            fake = method.generate(condition_of(batch, spec), batch_size=samples.rows,
                                   instance=batch.get("instance"), style=style,
                                   **method.batch_inputs(batch))
    method.train(was_training)
    pictures: dict[str, np.ndarray] = {}
    rows = []
    for i in range(samples.rows):
        item = {k: v[i] for k, v in batch.items() if isinstance(v, Tensor)}
        real = tensor_to_image(batch["image"][i])
        generated = tensor_to_image(fake[i])
        save_png(real, out_dir / f"real_{i}.png")
        save_png(generated, out_dir / f"generated_{i}.png")
        save_png(generated, out_dir / f"step{step:07d}_{i}.png")
        if spec.kind in SPATIAL_KINDS:
            condition = condition_picture(item, spec)
            save_png(condition, out_dir / f"condition_{i}.png")
            cell = f"samples/condition_{i}.png"
            pictures[f"sample_{i}"] = np.concatenate([condition, generated, real], axis=1)
        else:
            cell = condition_text(item, spec)
            pictures[f"sample_{i}"] = np.concatenate([generated, real], axis=1)
        rows.append([samples.names[i], cell, f"samples/generated_{i}.png",
                     f"samples/real_{i}.png"])
    notes = [f"{config.method} at step {step} of {config.train.max_steps}"
             + (" (training finished)" if final else " (page refreshes while training)"),
             *notes]
    write_table_page(run_dir / "index.html", f"condsynth run: {run_dir.name}",
                     ["item", "condition", "generated", "real"], rows, notes,
                     refresh_seconds=None if final else 30)
    return pictures


# ----------------------------------------------------------------------------- the loop


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    losses: dict[str, float]
    seconds: float
    method: Method            # the trained method (this rank's copy)


def prepare_config(config: Config) -> Config:
    """Resolve what the data decides before building: the number of classes and their names,
    the attribute names, and whether the condition is a label map or an image."""
    from condsynth.data.factory import is_source_data

    if config.data.root and is_source_data(config):
        return _prepare_from_source(config)
    from condsynth.data.io import load_palette
    from condsynth.data.layouts import detect_num_classes, read_classes

    spec = config.condition
    if spec.kind == "label_map" and spec.num_classes is None:
        if not config.data.root:
            raise CondsynthError("no dataset given: pass --data DIR")
        palette = load_palette(config.data.palette) if config.data.palette else None
        num_classes = detect_num_classes(config.data.root, config.data.layout,
                                         dontcare=spec.dontcare_label, palette=palette)
        if num_classes == 0:          # A|B images or sketches: the condition is an image
            spec.kind = "image"
        else:
            spec.num_classes = num_classes
    classes = read_classes(config.data.root) if config.data.root else None
    if classes and not spec.class_names and spec.kind == "label_map":
        spec.class_names, spec.class_colours = classes
    return config


def _prepare_from_source(config: Config) -> Config:
    """A single-image source (class folders, attribute tables, IDX, ...) gives the classes
    and attribute names of class and vector conditions, and the channels of image ones."""
    from condsynth.data.sources import describe_source

    spec = config.condition
    info = describe_source(config.data, "train")
    if spec.kind == "class":
        if info.num_classes is None:
            raise CondsynthError(f"{config.data.root}: condition.kind is class but this "
                                 f"{info.layout} data has no class labels. Fix: use class "
                                 "folders, IDX files or a dataset.json, or condition.kind=none.")
        if spec.num_classes is None:
            spec.num_classes = info.num_classes
        if not spec.class_names:
            spec.class_names = list(info.class_names)
    elif spec.kind == "vector":
        if not info.attribute_names:
            raise CondsynthError(f"{config.data.root}: condition.kind is vector but this "
                                 f"{info.layout} data has no attributes. Fix: use an "
                                 "attributes.csv or the CelebA files.")
        if not spec.attributes:
            spec.attributes = list(info.attribute_names)
    elif spec.kind == "image" and info.kind == "unpaired":
        spec.image_channels = info.channels
    if spec.kind == "image" and info.attribute_names and not spec.attributes:
        spec.attributes = list(info.attribute_names)      # attributes beside a sketch
    elif spec.kind == "label_map":
        raise CondsynthError(f"{config.data.root}: {config.method} is conditioned on label maps "
                             f"but this is {info.layout} data (single images). Fix: give a "
                             "dataset of label maps and images, or choose a method made for "
                             "single images (for example --method dcgan).")
    return config


def train(config: Config, run_dir: str | Path, resume: bool = False, progress: bool = True,
          stop_at: int | None = None,
          init_from: str | Path | Callable[[Method], list[str]] | None = None,
          overwrite: bool = False) -> TrainResult:
    """Train ``config`` into ``run_dir``; with ``resume``, continue the run saved there.

    ``stop_at`` ends the session early at that step (checkpointed), as an interruption would.
    ``init_from`` starts a new run from another run's weights (``Method.initialize_from``), or
    calls it with the method (a pipeline stage loading several stages' networks).
    ``overwrite`` starts anew in a folder holding a run (nothing of the old run is kept).
    The run is locked for the session: a second trainer of it is refused.
    """
    # Only rank 0 writes the run directory, so only rank 0 holds it.
    claim = (checkpoint.claim_run(run_dir, resume=resume, overwrite=overwrite)
             if int(os.environ.get("RANK", "0")) == 0 else contextlib.nullcontext())
    with claim:
        return _train(config, run_dir, resume, progress, stop_at, init_from)


def _train(config: Config, run_dir: str | Path, resume: bool, progress: bool,
           stop_at: int | None,
           init_from: str | Path | Callable[[Method], list[str]] | None) -> TrainResult:
    run_dir = Path(run_dir)
    device = resolve_train_device(config)
    info = init_distributed(device)
    t = config.train

    # --- build: the same seed on every rank, so every rank starts from the same weights
    torch.manual_seed(t.seed)
    method = build_method(config)
    method.check_training_size()
    specs = resolve_optimizers(config, method)
    method.to(device)
    start_step = 0
    state: dict[str, Any] | None = None
    if resume:
        state = checkpoint.read_train_state(run_dir)
        checkpoint.load_method(run_dir, method)
        start_step = int(state["step"])
    elif init_from is not None:        # a run's folder, or a loader (a pipeline's stages)
        copied = (init_from(method) if callable(init_from)
                  else method.initialize_from(Path(init_from)))
        if info.main:
            source = "earlier stages" if callable(init_from) else init_from
            print(f"initialized from {source}: {', '.join(copied) or 'nothing matched'}")
    ema = None
    if t.ema > 0:
        ema = copy.deepcopy(method.networks()["generator"]).requires_grad_(False)
        if resume and checkpoint.has_network(run_dir, "generator_ema"):
            checkpoint.load_network(run_dir, "generator_ema", ema)
    if info.enabled:
        wrap_distributed(method, device, info)

    optimizers = make_optimizers(method, specs, device, fused=t.fused_adam)
    use_scaler = t.precision == "fp16" and device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    if state is not None:
        for name, opt in optimizers.items():
            saved = state["optimizers"].get(name)
            if saved is None:
                raise CondsynthError(f"{run_dir}: the checkpoint holds no state of the "
                                     f"'{name}' optimizer; it was written by another method.")
            # The implementation is this session's choice (train.fused_adam), not the saved one.
            kernel = {k: opt.param_groups[0][k] for k in ("fused", "foreach")
                      if k in opt.param_groups[0]}
            opt.load_state_dict(saved)
            for group in opt.param_groups:
                group.update(kernel)
        if "scaler" in state and use_scaler:
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"][min(info.rank, len(state["rng"]) - 1)])
    else:
        torch.manual_seed(t.seed + info.rank)    # dropout and noise differ across ranks
        np.random.seed(t.seed + info.rank)
        random.seed(t.seed + info.rank)

    dataset = open_dataset(config, phase="train", train=True, size_multiple=method.size_multiple())
    scan_headers(dataset)
    if state is None:
        method.prepare(dataset)               # statistics of the data (after init_from)
    batches = ResumableBatches(len(dataset),
                               lambda s: method.schedule(s).batch_size or t.batch_size,
                               t.seed, info, shuffle=config.data.shuffle)
    samples = make_sample_set(config, method) if info.main else None
    writer = make_writer(run_dir, t.tensorboard) if info.main else None

    def save(step: int, final: bool = False) -> None:
        rngs = [rng_state()]
        if info.enabled:
            rngs = [None] * info.world_size
            dist.all_gather_object(rngs, rng_state())
        if not info.main:
            return
        networks = dict(method.networks())
        if ema is not None:
            networks["generator_ema"] = ema
        train_state = {"step": step, "rng": rngs,
                       "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()}}
        if use_scaler:
            train_state["scaler"] = scaler.state_dict()
        checkpoint.write_checkpoint(run_dir, config, networks, step, train_state,
                                    method.extra_files(), method.method_state())

    end_step = t.max_steps if stop_at is None else min(stop_at, t.max_steps)
    bar = tqdm(total=t.max_steps, initial=start_step, disable=not (progress and info.main),
               desc=f"{config.method}", unit="step", dynamic_ncols=True)
    log_path = run_dir / "losses.jsonl"
    run_dir.mkdir(parents=True, exist_ok=True)
    step = start_step
    last: dict[str, float] = {}
    began = time.perf_counter()
    method.train()
    try:
        for epoch, batch in iterate(dataset, batches, start_step, config):
            if step >= end_step:
                break
            plan = method.schedule(step)
            factor = (epoch_lr_factor(epoch, t.constant_epochs, t.decay_epochs)
                      if t.lr_schedule == "epochs" else lr_factor(step, t.max_steps, t.decay_start))
            factor *= plan.lr_scale
            for name, opt in optimizers.items():
                if plan.reset_optimizers:
                    opt.state.clear()
                for group in opt.param_groups:
                    group["lr"] = specs[name].lr * factor
                    group.update(method.epoch_settings(name, specs[name], epoch, group["lr"]))
            method.on_step(step, t.max_steps)
            batch = at_resolution(to_device(batch, device), plan.resolution)
            losses = train_step(method, batch, optimizers, step, t.precision, device, scaler)
            if ema is not None:
                update_ema(ema, method.networks()["generator"], t.ema)
            step += 1

            last = {k: float(v.detach()) for k, v in losses.items()}
            bad = [k for k, v in last.items() if not math.isfinite(v)]
            if bad:
                raise CondsynthError(
                    f"loss {', '.join(bad)} became {last[bad[0]]} at step {step}; "
                    f"{checkpoint.diverged_advice(run_dir)}")
            if info.main:
                bar.update(1)
                bar.set_postfix({k: f"{v:.3f}" for k, v in last.items()}, refresh=False)
                if step % t.log_every == 0 or step == end_step:
                    first_lr = next(iter(specs.values())).lr
                    log_scalars(log_path, writer, step, last, first_lr * factor)
                if step % t.sample_every == 0 and samples is not None:
                    pictures = write_samples(run_dir, method, samples, step, config,
                                             notes=method.progress_notes(dataset, run_dir, step))
                    log_images(writer, step, pictures)
            if step % t.checkpoint_every == 0 and step != end_step:
                save(step)
    except DataError as err:                  # a bad file met mid-run: keep the progress
        if step > start_step:
            save(step)
        raise stopped_by_bad_file(err, run_dir, step, saved=step > start_step) from None
    except KeyboardInterrupt:
        if info.main:
            bar.write(f"interrupted at step {step}: saving a checkpoint (resume with --resume)")
        save(step)
        raise
    finally:
        bar.close()
    save(step, final=True)
    if info.main and samples is not None:
        pictures = write_samples(run_dir, method, samples, step, config,
                                 final=step >= t.max_steps,
                                 notes=method.progress_notes(dataset, run_dir, step))
        log_images(writer, step, pictures)
    if writer is not None:
        writer.close()
    return TrainResult(run_dir, step, last, time.perf_counter() - began, method)


def iterate(dataset: torch.utils.data.Dataset, batches: ResumableBatches, start_step: int,
            config: Config) -> Iterator[tuple[int, dict[str, Any]]]:
    """(epoch, batch) from ``start_step`` on, forever (the loop decides when to stop)."""
    epoch, offset = batches.position(start_step)
    step = start_step
    while True:
        dataset.set_epoch(epoch)
        plan = batches.epoch_batches(epoch, offset, step)
        # The loader gets a generator of its own: starting an iterator draws a seed, and
        # drawing it from the global RNG (that dropout and noise use) would shift that RNG
        # when a resume starts mid-epoch, so the resumed run would not repeat the straight one.
        loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=plan,
            num_workers=config.data.num_workers, pin_memory=torch.cuda.is_available(),
            generator=torch.Generator().manual_seed(config.train.seed * 1_000_003 + epoch))
        for batch in loader:
            yield epoch, batch
        step += len(plan)
        epoch, offset = epoch + 1, 0


def make_writer(run_dir: Path, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None                 # tensorboard is optional: losses.jsonl has the scalars
    return SummaryWriter(str(run_dir / "tensorboard"))


def log_scalars(path: Path, writer: Any, step: int, losses: dict[str, float], lr: float) -> None:
    with open(path, "a") as f:
        f.write(json.dumps({"step": step, "lr_g": lr, **losses}) + "\n")
    if writer is not None:
        for k, v in losses.items():
            writer.add_scalar(f"loss/{k}", v, step)
        writer.add_scalar("lr/generator", lr, step)


def log_images(writer: Any, step: int, pictures: dict[str, np.ndarray]) -> None:
    if writer is None:
        return
    for name, array in pictures.items():
        writer.add_image(f"samples/{name}", array, step, dataformats="HWC")
