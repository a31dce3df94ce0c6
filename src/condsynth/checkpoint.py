"""Run directories: ``config.yaml``, ``<network>.safetensors``, ``train_state.pt``.

A checkpoint is several files that must change together. They are written into ``.staging/``
first; a ``COMPLETE`` marker written last makes the set valid; only then are the files moved
into place, one by one, under an exclusive lock on ``.commit.lock``. A kill before the marker
leaves the previous checkpoint untouched (the staging folder is discarded); a kill after it is
rolled forward by :func:`recover`. Either way the run directory holds one consistent checkpoint.

Only the trainer that holds a run (:func:`claim_run`: an exclusive ``flock`` on
``.train.lock``, which the OS releases when the process dies, so a crash leaves nothing stuck)
changes it. Readers never write: :func:`reading` takes a shared lock on ``.commit.lock`` (so no
commit is half-way while they read) and, when a crashed trainer left a complete but uncommitted
checkpoint, shows them that newest complete set through a private folder of links.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import pickle
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

if TYPE_CHECKING:
    from condsynth.methods.base import Method

from condsynth.config import FORMAT_VERSION, Config, config_yaml
from condsynth.errors import CheckpointError
from condsynth.registry import load_config, method_spec

STAGING = ".staging"
COMPLETE = "COMPLETE"
TRAIN_STATE = "train_state.pt"
CONFIG = "config.yaml"
METHOD_STATE = "method_state.safetensors"
TRAIN_LOCK = ".train.lock"      # held (exclusive) by the one trainer of a run
COMMIT_LOCK = ".commit.lock"    # exclusive while files move into place; shared while reading
LOCK_FILES = (TRAIN_LOCK, COMMIT_LOCK)
T = TypeVar("T")


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def tensors_bytes(tensors: dict[str, torch.Tensor], step: int) -> bytes:
    """Tensors as safetensors bytes, with the step and format in the metadata."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    return save_safetensors_bytes(tensors, metadata={"format_version": str(FORMAT_VERSION),
                                                     "step": str(step)})


def state_dict_bytes(module: nn.Module, step: int) -> bytes:
    """A module's tensors as safetensors bytes, with the step and format in the metadata."""
    return tensors_bytes(module.state_dict(), step)


def write_checkpoint(run_dir: str | Path, config: Config, networks: dict[str, nn.Module],
                     step: int, train_state: dict[str, Any] | None = None,
                     extra_files: dict[str, bytes] | None = None,
                     method_state: dict[str, torch.Tensor] | None = None) -> None:
    """Write a consistent checkpoint into ``run_dir`` (see the module docstring); a method's
    own state tensors (:meth:`Method.method_state`) go to ``method_state.safetensors``."""
    run_dir = Path(run_dir)
    # Never replace a finite checkpoint with a non-finite one: check before writing anything.
    bad = non_finite({f"{name}.{key}": value for name, module in networks.items()
                      for key, value in module.state_dict().items()})
    bad += non_finite({f"method state {k}": v for k, v in (method_state or {}).items()})
    bad += non_finite(dict(_state_tensors(train_state, "train state")))
    if bad:
        raise NonFiniteError(f"the weights became non-finite ({', '.join(bad[:3])}"
                             f"{' ...' if len(bad) > 3 else ''}) by step {step}, so no "
                             f"checkpoint was written for it; {diverged_advice(run_dir)}")
    try:
        _write_checkpoint(run_dir, config, networks, step, train_state, extra_files, method_state)
    except OSError as err:
        reason = (f"could not write the checkpoint of step {step} in {run_dir} "
                  f"({err.strerror or err})")
        if _manifest(run_dir) is not None:    # complete, partly moved: recover() finishes it
            raise CheckpointError(f"{reason} while moving it into place; it is complete, and "
                                  "the next --resume finishes the move. Fix: free disk space "
                                  "(or make the folder writable), then --resume.") from None
        # Disk full, a read-only folder: the staged files go, the last checkpoint stays.
        shutil.rmtree(run_dir / STAGING, ignore_errors=True)
        raise CheckpointError(f"{reason}; the previous checkpoint is unchanged. Fix: free disk "
                              "space (or make the folder writable), then --resume.") from None


def _write_checkpoint(run_dir: Path, config: Config, networks: dict[str, nn.Module], step: int,
                      train_state: dict[str, Any] | None, extra_files: dict[str, bytes] | None,
                      method_state: dict[str, torch.Tensor] | None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    staging = run_dir / STAGING
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    files: dict[str, bytes] = {CONFIG: config_yaml(config).encode()}
    for name, module in networks.items():
        files[f"{name}.safetensors"] = state_dict_bytes(module, step)
    if method_state:
        files[METHOD_STATE] = tensors_bytes(method_state, step)
    if train_state is not None:
        buffer = io.BytesIO()
        torch.save(train_state, buffer)
        files[TRAIN_STATE] = buffer.getvalue()
    files.update(extra_files or {})
    for name, data in files.items():
        _fsync_write(staging / name, data)
    _fsync_write(staging / COMPLETE, json.dumps({"step": step, "files": sorted(files)}).encode())
    _commit(run_dir)


@contextlib.contextmanager
def _flock(path: Path, mode: int, create: bool) -> Iterator[bool]:
    """Hold ``flock(mode)`` on ``path`` for the block; yields False when there is no lock file
    to hold (a reader never creates one)."""
    try:
        fd = os.open(path, (os.O_RDWR | os.O_CREAT) if create else os.O_RDONLY, 0o644)
    except FileNotFoundError:
        if create:
            raise
        yield False
        return
    try:
        fcntl.flock(fd, mode)
        yield True
    finally:
        os.close(fd)                          # closing releases the lock


def _manifest(run_dir: Path) -> list[str] | None:
    """The files of a complete, not yet committed checkpoint in ``.staging``, else None."""
    try:
        return json.loads((run_dir / STAGING / COMPLETE).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


class NonFiniteError(CheckpointError):
    """Weights (or optimizer state) holding inf or NaN: never written, never loaded."""


def non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """The names of the floating-point tensors that hold inf or NaN, with what they hold."""
    bad = []
    for name, value in tensors.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            kind = "NaN" if bool(torch.isnan(value).any()) else "inf"
            bad.append(f"{name}: {kind}")
    return bad


def _state_tensors(value: Any, where: str) -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor inside a nested dict/list (the optimizers' states), with its path."""
    if isinstance(value, torch.Tensor):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _state_tensors(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _state_tensors(item, f"{where}[{index}]")


def diverged_advice(run_dir: str | Path) -> str:
    """Where a run stopped by non-finite numbers stands, truthfully, and the fix: the step of
    its last checkpoint (every checkpoint is written with finite weights only), or that it has
    none yet."""
    run_dir = Path(run_dir)
    fix = ("Fix: lower the learning rates (train.lr_g / train.lr_d) or use --precision fp32, "
           "then")
    try:
        with safe_open(str(run_dir / "generator.safetensors"), "pt") as f:
            step = (f.metadata() or {}).get("step", "?")
    except (OSError, SafetensorError, ValueError):
        return f"{run_dir} holds no checkpoint yet. {fix} start again (--overwrite)."
    if not (run_dir / TRAIN_STATE).is_file():
        return (f"the last checkpoint in {run_dir}, of step {step}, is unchanged (it cannot be "
                f"resumed). {fix} start again (--overwrite).")
    return f"the last checkpoint in {run_dir}, of step {step}, is unchanged. {fix} --resume."


def _commit(run_dir: Path) -> None:
    staging = run_dir / STAGING
    with _flock(run_dir / COMMIT_LOCK, fcntl.LOCK_EX, create=True):
        for name in json.loads((staging / COMPLETE).read_text())["files"]:
            src = staging / name
            if src.exists():                  # already moved by an interrupted commit
                os.replace(src, run_dir / name)
        shutil.rmtree(staging)


def recover(run_dir: str | Path) -> None:
    """Finish or discard a checkpoint write that a crash interrupted. Only the trainer that
    holds the run (:func:`claim_run`) may call this: readers use :func:`read_run`."""
    staging = Path(run_dir) / STAGING
    if not staging.exists():
        return
    if _manifest(Path(run_dir)) is not None:
        _commit(Path(run_dir))
    else:
        shutil.rmtree(staging, ignore_errors=True)


class RunClaim:
    """The right to change one run directory, held by its trainer (see :func:`claim_run`)."""

    def __init__(self, run_dir: Path, fd: int) -> None:
        self.run_dir = run_dir
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)                # closing releases the flock
            self._fd = None

    def __enter__(self) -> RunClaim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def claim_run(run_dir: str | Path, resume: bool = False, overwrite: bool = False) -> RunClaim:
    """Become the one trainer of ``run_dir``: lock it, finish or discard an interrupted
    checkpoint, and with ``overwrite`` remove everything of the run it held before.

    A second trainer of the same run is refused. The lock is an ``flock`` that the OS drops
    when its process ends, however it ends, so a crashed trainer never leaves a run locked.
    Without ``resume`` or ``overwrite`` a folder that already holds a run is refused.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise CheckpointError(f"--run {run_dir} is a file, not a folder. Fix: choose another "
                              "--run path.")
    # A folder a trainer ever held is a run, even one killed before its first checkpoint.
    was_run = (run_dir / CONFIG).is_file() or (run_dir / TRAIN_LOCK).exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / TRAIN_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise CheckpointError(f"cannot write the run directory {run_dir} ({err.strerror}). "
                              "Fix: make it writable, or choose another --run.") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise CheckpointError(f"{run_dir} is being trained by another process (pid {holder}); "
                              "a run has one trainer at a time. Fix: wait for it to finish (or "
                              "stop it), or choose another --run.") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    claim = RunClaim(run_dir, fd)
    try:
        recover(run_dir)
        if not resume and was_run and holds_run(run_dir):
            if not overwrite:
                raise CheckpointError(f"{run_dir} already holds a run. Fix: --resume to continue "
                                      "it, --overwrite to start again in it, or choose another "
                                      "--run.")
            clear_run(run_dir)
    except BaseException:
        claim.release()
        raise
    return claim


def holds_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds anything but its lock files."""
    return any(entry.name not in LOCK_FILES for entry in run_dir.iterdir())


def clear_run(run_dir: Path) -> None:
    """Remove everything of a run but its lock files (``--overwrite``): nothing of the old
    run (an EMA generator, its losses, its samples) may mix with the new one."""
    for entry in run_dir.iterdir():
        if entry.name in LOCK_FILES:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


@contextlib.contextmanager
def _view(run_dir: Path) -> Iterator[Path]:
    """The newest complete checkpoint as a folder: ``run_dir`` itself, or, when ``.staging``
    holds a complete checkpoint half moved into place (a crashed trainer), a private temporary
    folder of links that overlays the staged files on the run's own."""
    staged = _manifest(run_dir)
    if staged is None:
        yield run_dir
        return
    with tempfile.TemporaryDirectory(prefix="condsynth-view-") as tmp:
        view = Path(tmp)
        for entry in run_dir.iterdir():
            if entry.name != STAGING:
                (view / entry.name).symlink_to(entry.resolve())
        for name in staged:
            src = run_dir / STAGING / name
            if src.exists():                  # else already moved: the run's own file is new
                (view / name).unlink(missing_ok=True)
                (view / name).symlink_to(src.resolve())
        yield view


def read_run(run_dir: str | Path, read: Callable[[Path], T]) -> T:
    """``read(folder)`` on a consistent view of the run's newest complete checkpoint.

    No commit runs while ``read`` runs (a shared lock on ``.commit.lock``; the trainer waits,
    so keep ``read`` short), and the run directory is never changed: readers may run beside
    a trainer. ``read`` must take every file from the folder it is given.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        what = "is not a folder" if run_dir.exists() else "does not exist"
        raise CheckpointError(f"run directory {run_dir} {what}. Fix: point at a folder "
                              "written by `condsynth train` or `condsynth import`.")
    while True:
        with _flock(run_dir / COMMIT_LOCK, fcntl.LOCK_SH, create=False) as locked:
            with _view(run_dir) as view:
                result = read(view)
        # Without a lock file no trainer had written the run when we began; if one has since,
        # a commit may have overlapped the read: read again, under its lock this time.
        if locked or not (run_dir / COMMIT_LOCK).exists():
            return result


def read_config(run_dir: str | Path) -> Config:
    """The run's configuration (read only: the run directory is not changed)."""
    return read_run(run_dir, lambda view: config_in(view, Path(run_dir)))


def config_in(view: Path, run_dir: Path) -> Config:
    """``config.yaml`` of a view given by :func:`read_run` (errors name ``run_dir``)."""
    if not (view / CONFIG).is_file():
        raise CheckpointError(f"{run_dir} is not a condsynth run directory: {CONFIG} is missing. "
                              "Fix: point at a folder written by `condsynth train` or "
                              "`condsynth import`.")
    config = load_config(view / CONFIG)
    return method_spec(config.method).cls.saved_run_config(config)


def load_network(run_dir: str | Path, name: str, module: nn.Module) -> int:
    """Load ``<name>.safetensors`` into ``module`` (strict); returns the stored step."""
    path = Path(run_dir) / f"{name}.safetensors"
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; the run directory holds no trained {name}.")
    try:
        tensors = load_file(path)
        with open(path, "rb") as f:   # the metadata lives in the JSON header
            header_len = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(header_len))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file ({err}).") from None
    bad = non_finite(tensors)
    if bad:
        raise NonFiniteError(f"{path} holds non-finite values ({', '.join(bad[:3])}"
                             f"{' ...' if len(bad) > 3 else ''}): its training diverged, and "
                             "its pictures would be black or noise. Fix: train it again with "
                             "lower learning rates (train.lr_g / train.lr_d).")
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path} does not fit the network described by config.yaml: "
                              f"{str(err).splitlines()[0]}") from None
    return int(header.get("__metadata__", {}).get("step", 0))


def load_method(run_dir: str | Path, method: Method, networks: tuple[str, ...] | None = None,
                ) -> None:
    """Load a run's networks (``networks``, or all; a missing one is an error), its extra files
    and its method state into ``method``."""
    run_dir = Path(run_dir)
    for name, module in method.networks().items():
        if networks is None or name in networks:
            load_network(run_dir, name, module)
    method.load_extras(run_dir)
    path = run_dir / METHOD_STATE
    if path.is_file():
        try:
            tensors = load_file(path)
        except (SafetensorError, OSError, ValueError) as err:
            raise CheckpointError(f"{path} is not a readable safetensors file ({err}).") from None
        method.load_method_state(tensors)


def has_network(run_dir: str | Path, name: str) -> bool:
    return (Path(run_dir) / f"{name}.safetensors").is_file()


def read_train_state(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / TRAIN_STATE
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: this run cannot be resumed (it holds no "
                              "optimizer state). Start a new run, or train from its weights.")
    state = safe_torch_load(path, "the training state", "the run cannot be resumed from it; "
                            "start a new run, or train from its weights with --init-from")
    if not isinstance(state, dict) or "step" not in state:
        raise CheckpointError(f"the training state {path} holds no step: it was not written by "
                              "condsynth. Fix: start a new run, or train from its weights with "
                              "--init-from.")
    return state


def safe_torch_load(path: str | Path, what: str, fix: str) -> Any:
    """``torch.load(path, weights_only=True)``; a file that fails becomes a
    :class:`CheckpointError` naming ``what``, the file, the reason and ``fix``.

    Torch's own message for a refused pickle advises loading again with ``weights_only=False``,
    which runs whatever code the file holds: that advice is never passed on.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - every unreadable file gets one clear message
        raise CheckpointError(f"{what} {path} is not a readable PyTorch file "
                              f"({load_failure(err)}). Fix: {fix}.") from None


def load_failure(err: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` failed, in one line (torch's advice left out)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))           # its terminal colour codes
    refused = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if refused or isinstance(err, pickle.UnpicklingError) or "weights_only" in text:
        found = f" ({refused.group(1)})" if refused else ""
        return (f"it holds pickled Python objects{found}, and condsynth reads only tensors and "
                "plain values from files, since unpickling can run any code the file holds")
    first = text.strip().split(". ")[0].splitlines()[0] if text.strip() else ""
    return first or type(err).__name__
