"""Reading what the official pix2pixHD (Wang et al., 2018) and SPADE (Park et al., 2019) code
leaves in a checkpoint folder: its options (``opt.txt``, SPADE's ``opt.pkl``) and its networks
(``<epoch>_net_<G|D|E>.pth``, written with ``torch.save(net.cpu().state_dict())``).

Everything here reads untrusted files safely: weights with ``torch.load(weights_only=True)``,
SPADE's pickled options with an unpickler that only builds ``argparse.Namespace``. Every failure
is a :class:`~condsynth.errors.CheckpointError` naming the file and the fix.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import io
import pickle
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from torch import Tensor

from condsynth.checkpoint import safe_torch_load
from condsynth.errors import CheckpointError

__all__ = ["OptValue", "parse_opt_value", "read_pix2pixhd_opt", "read_spade_opt",
           "load_official_state_dict", "load_numpy_object", "require_option", "match_in_order"]

OptValue = str | int | float | bool | list | None

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?|[+-]?(inf|nan)")
# SPADE appends the default of every option the user changed: "\t[default: 0.02]".
_SPADE_DEFAULT = re.compile(r"\t\[default: .*\]$")


def parse_opt_value(text: str) -> OptValue:
    """Type an option value the way ``str(value)`` wrote it: ``True``/``False`` become bools,
    ``None`` None, numbers (``inf`` too) ints or floats, ``[...]`` lists; the rest stays text.

    The text files do not record types, so a string option that looks like a number (a run
    named ``123``) comes back as a number; SPADE's ``opt.pkl`` keeps the exact types.
    """
    value = text.strip()
    if value in ("True", "False"):
        return value == "True"
    if value == "None":
        return None
    if _INT.fullmatch(value):
        return int(value)
    if _FLOAT.fullmatch(value):
        return float(value)
    if value.startswith("[") and value.endswith("]"):
        try:
            parsed = ast.literal_eval(value)   # literals only: never evaluates code
        except (ValueError, SyntaxError):
            return value
        return parsed if isinstance(parsed, list) else value
    return value


def _options_file(path: str | Path, names: Sequence[str], what: str) -> Path:
    """``path`` itself when it is a file, else the first of ``names`` inside the folder."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        raise CheckpointError(f"{what}: {path} does not exist. Fix: give the official "
                              "checkpoint folder (checkpoints_dir/name) that holds opt.txt.")
    for name in names:
        if (path / name).is_file():
            return path / name
    raise CheckpointError(f"{what}: {path} holds no {' or '.join(names)}. The official code "
                          "writes it when training starts. Fix: point at the folder of the "
                          "experiment (checkpoints_dir/name), or copy the file there.")


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{what}: {path} could not be read as text ({err}). Fix: copy "
                              "opt.txt again from the training machine.") from None


def read_pix2pixhd_opt(path: str | Path) -> dict[str, OptValue]:
    """Parse pix2pixHD's ``opt.txt`` (``key: value`` lines between the ``Options`` header and
    the ``End`` footer). ``path`` is the file or the checkpoint folder holding it."""
    file = _options_file(path, ["opt.txt"], "pix2pixHD options")
    options: dict[str, OptValue] = {}
    for number, line in enumerate(_read_text(file, "pix2pixHD options").splitlines(), 1):
        if not line.strip() or line.startswith("---"):
            continue   # blank line, header or footer
        key, sep, value = line.partition(":")
        if not sep or not key.strip() or " " in key.strip():
            raise CheckpointError(f"{file}, line {number}: expected 'key: value', found "
                                  f"{line[:80]!r}. Fix: give the opt.txt that pix2pixHD wrote.")
        options[key.strip()] = parse_opt_value(value[1:] if value.startswith(" ") else value)
    if not options:
        raise CheckpointError(f"{file} holds no options. Fix: give the opt.txt that pix2pixHD "
                              "wrote when training started.")
    return options


class _NamespaceUnpickler(pickle.Unpickler):
    """Builds only ``argparse.Namespace``: an options pickle can run no other code."""

    def find_class(self, module: str, name: str) -> type:
        if (module, name) == ("argparse", "Namespace"):
            return argparse.Namespace
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (an options file holds "
                                     "only an argparse.Namespace)")


def read_spade_opt(path: str | Path) -> dict[str, OptValue]:
    """SPADE's options from ``opt.pkl`` (exact types; preferred) or ``opt.txt``.

    ``path`` is the checkpoint folder or one of the two files. ``opt.pkl`` is unpickled with a
    loader that accepts nothing but an ``argparse.Namespace``. ``opt.txt`` lines are the
    right-aligned ``key: value`` that SPADE writes, with ``[default: ...]`` after changed
    options; values are typed by :func:`parse_opt_value`.
    """
    file = _options_file(path, ["opt.pkl", "opt.txt"], "SPADE options")
    if file.suffix == ".pkl":
        try:
            data = file.read_bytes()
            namespace = _NamespaceUnpickler(io.BytesIO(data)).load()
        except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ValueError,
                TypeError, IndexError, KeyError) as err:
            raise CheckpointError(f"SPADE options: {file} could not be read ({err}). Fix: copy "
                                  "it again, or delete it so that opt.txt is read.") from None
        if not isinstance(namespace, argparse.Namespace):
            raise CheckpointError(f"SPADE options: {file} holds a {type(namespace).__name__}, "
                                  "not the argparse.Namespace SPADE writes. Fix: delete it so "
                                  "that opt.txt is read.")
        return dict(vars(namespace))
    options: dict[str, OptValue] = {}
    for number, line in enumerate(_read_text(file, "SPADE options").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("---"):
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip() or " " in key.strip():
            raise CheckpointError(f"{file}, line {number}: expected 'key: value', found "
                                  f"{line[:80]!r}. Fix: give the opt.txt that SPADE wrote.")
        value = _SPADE_DEFAULT.sub("", value[1:] if value.startswith(" ") else value)
        options[key.strip()] = parse_opt_value(value)
    if not options:
        raise CheckpointError(f"{file} holds no options. Fix: give the opt.txt that SPADE wrote.")
    return options


def require_option(options: Mapping[str, OptValue], key: str, kind: type | tuple[type, ...],
                   source: str | Path) -> OptValue:
    """``options[key]``, checked to be of ``kind``; a clear error when missing or mistyped."""
    if key not in options:
        raise CheckpointError(f"{source}: the option '{key}' is missing. Fix: give the complete "
                              "options file the official code wrote.")
    value = options[key]
    # bool is an int subclass: an int option must not accept True/False.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
        raise CheckpointError(f"{source}: option '{key}' is {value!r}, expected "
                              f"{getattr(kind, '__name__', kind)}.")
    return value


def load_official_state_dict(path: str | Path, what: str) -> dict[str, Tensor]:
    """The tensors of an official ``.pth`` network file (``torch.save(net.state_dict())``).

    Loaded with ``weights_only=True`` (no code runs). A ``{"state_dict": ...}`` wrapper and a
    ``module.`` prefix on every key (a network saved inside DataParallel) are removed.
    ``what`` names the network in errors (``"pix2pixHD generator"``).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{what}: {path} does not exist. Fix: copy it from the official "
                              "checkpoint folder (it is written as <epoch>_net_<G|D|E>.pth).")
    state = safe_torch_load(path, f"{what}:", "copy it again from "
                            "the training machine; it must be the file the official code saved "
                            "with torch.save(net.state_dict())")
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if (not isinstance(state, Mapping) or not state
            or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items())):
        raise CheckpointError(f"{what}: {path} does not hold a state dict of named tensors "
                              f"(found {type(state).__name__}). Fix: give the network file the "
                              "official code saved, not a whole model or a training state.")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def match_in_order(ours: Sequence[tuple[str, Tensor]], theirs: Sequence[tuple[str, Tensor]],
                   what: str, source: str | Path) -> dict[str, Tensor]:
    """Pair two equally ordered tensor lists one to one, checking every shape.

    Importers walk the official module tree and ours in the same architectural order, so a
    mapping never depends on a list of key names. Returns ``{our key: their tensor}``.
    """
    if len(ours) != len(theirs):
        raise CheckpointError(
            f"{what}: {source} holds {len(theirs)} tensors where the network described by the "
            f"options has {len(ours)}. Fix: make sure the options file belongs to this "
            "checkpoint (same netG, ngf, n_downsample, n_blocks, num_D, n_layers_D, ...).")
    mapped: dict[str, Tensor] = {}
    for (our_key, our_tensor), (their_key, their_tensor) in zip(ours, theirs, strict=True):
        if tuple(our_tensor.shape) != tuple(their_tensor.shape):
            raise CheckpointError(
                f"{what}: {source}: '{their_key}' has shape {tuple(their_tensor.shape)}, but the "
                f"network described by the options expects {tuple(our_tensor.shape)} there "
                f"({our_key}). Fix: make sure the options file belongs to this checkpoint "
                "(label_nc, no_instance, ngf, feat_num, ... must be those it was trained with).")
        mapped[our_key] = their_tensor
    return mapped


class _NumpyUnpickler(pickle.Unpickler):
    """Builds only numpy arrays, dtypes and scalars: what ``np.save`` of a dict of arrays holds."""

    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                ("numpy.core.multiarray", "scalar"), ("numpy.core.numeric", "_frombuffer")}

    def find_class(self, module: str, name: str) -> type:
        # numpy 2 renamed numpy.core to numpy._core; pickles carry either name.
        canonical = module.replace("numpy._core", "numpy.core", 1)
        if (canonical, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (a feature file "
                                         "holds only numpy arrays)")
        if canonical.startswith("numpy.core") and int(np.__version__.split(".")[0]) >= 2:
            module = canonical.replace("numpy.core", "numpy._core", 1)
        return getattr(importlib.import_module(module), name)


def load_numpy_object(path: str | Path, what: str) -> object:
    """The object inside an ``.npy`` file that ``np.save`` wrote from a Python object (pix2pixHD
    saves its clustered features as a dict of arrays), without ``allow_pickle=True``: the
    pickle may build numpy arrays and nothing else. Plain arrays load as they are."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{what}: {path} does not exist.")
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            shape, _, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                               else np.lib.format.read_array_header_2_0(f))
            if not dtype.hasobject:
                f.seek(0)
                return np.load(f, allow_pickle=False)
            # latin1 lets numpy read the byte strings of Python 2 pickles, as np.load does.
            obj = _NumpyUnpickler(f, encoding="latin1").load()
    except (OSError, ValueError, EOFError, pickle.UnpicklingError, AttributeError, TypeError,
            IndexError, KeyError, ImportError) as err:
        raise CheckpointError(f"{what}: {path} could not be read ({err}). Fix: give the file "
                              "the official code wrote with np.save, or leave it out.") from None
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject and obj.shape == ():
        return obj.item()
    return obj
