"""Import of checkpoints trained with NVIDIA's official pix2pixHD code (Wang et al., 2018).

An official experiment folder holds ``opt.txt`` and ``<epoch>_net_G.pth`` (and ``_net_D``,
``_net_E``, ``features_clustered_<K>.npy``). :func:`import_pix2pixhd` derives a condsynth
:class:`~condsynth.config.Config` from the options, maps every official tensor onto the
condsynth networks and writes a native run directory that synthesizes, trains and resumes like
any other.

The key mapping is derived from the options, never from a list of key names: the official
networks are ``nn.Sequential`` stacks whose layer order follows from the options (how many
down-samplings, residual blocks, enhancers, discriminator layers), so the position of every
parameterised layer is computed from that recipe and paired, in architectural order, with the
condsynth layer that plays the same part. Official naming worth knowing:

- generator: ``model.<i>`` (G1, also inside the local enhancer, whose G1 lacks the final three
  layers), ``model<n>_1.<i>`` / ``model<n>_2.<i>`` for enhancer ``n`` (down-sampling front end /
  residual blocks, up-sampling and, for the outermost, the output layer);
- discriminator: ``scale<s>_layer<j>.<i>`` with feature matching, ``layer<s>.<i>`` without;
  ``s = num_D - 1`` is the FULL-resolution scale (condsynth's index 0);
- encoder: ``model.<i>``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from condsynth.checkpoint import CONFIG, write_checkpoint
from condsynth.compat.official import (
    OptValue,
    load_numpy_object,
    load_official_state_dict,
    match_in_order,
    read_pix2pixhd_opt,
)
from condsynth.config import ConditionConfig, Config, DataConfig, TrainConfig
from condsynth.errors import CheckpointError
from condsynth.methods.pix2pixhd import Pix2PixHD, Pix2PixHDConfig
from condsynth.registry import build_method

__all__ = ["import_pix2pixhd", "config_from_options", "load_official_networks",
           "official_generator_layout", "official_discriminator_layout",
           "official_encoder_layout", "read_official_features"]

_REQUIRED = object()
# Official defaults (options/base_options.py, train_options.py) for options an older opt.txt
# may lack; architecture options without a safe default are required.
_DEFAULTS: dict[str, OptValue] = {
    "model": "pix2pixHD", "input_nc": 3, "output_nc": 3, "norm": "instance",
    "n_local_enhancers": 1, "n_blocks_local": 3, "no_instance": False, "instance_feat": False,
    "label_feat": False, "feat_num": 3, "nef": 16, "n_downsample_E": 4, "n_clusters": 10,
    "ndf": 64, "n_layers_D": 3, "num_D": 2, "no_lsgan": False, "no_ganFeat_loss": False,
    "no_vgg_loss": False, "lambda_feat": 10.0, "lr": 2e-4, "beta1": 0.5, "niter": 100,
    "niter_decay": 100, "batchSize": 1, "loadSize": 1024, "fineSize": 512,
    "resize_or_crop": "scale_width", "no_flip": False, "serial_batches": False, "dataroot": "",
}


def _option(options: dict[str, OptValue], key: str, kind: type, source: Path) -> OptValue:
    if key not in options:
        if key not in _DEFAULTS:
            raise CheckpointError(f"{source}: the option '{key}' is missing. Fix: give the "
                                  "complete opt.txt that pix2pixHD wrote when training started.")
        return _DEFAULTS[key]
    value = options[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is str and value is None:
        value = ""
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CheckpointError(f"{source}: option '{key}' is {value!r}, expected "
                              f"{kind.__name__}. Fix: give the opt.txt pix2pixHD wrote.")
    return value


def config_from_options(options: dict[str, OptValue], source: str | Path,
                        vgg_weights: str | None = None) -> Config:
    """The condsynth config equivalent to pix2pixHD options (as :func:`read_pix2pixhd_opt`
    returns them).

    ``niter`` and ``niter_decay`` become the epochs learning-rate schedule (and
    ``train.decay_start``, the same fraction for the steps schedule); ``niter_fix_global``
    becomes 0 (an imported run has finished that stage).
    """
    source = Path(source)

    def opt(key: str, kind: type = int) -> OptValue:
        return _option(options, key, kind, source)

    if opt("model", str) != "pix2pixHD":
        raise CheckpointError(f"{source}: model '{opt('model', str)}' is not supported; only "
                              "the pix2pixHD model (--model pix2pixHD) can be imported.")
    net_g = opt("netG", str)
    if net_g not in ("global", "local"):
        raise CheckpointError(f"{source}: netG '{net_g}' is not a pix2pixHD generator "
                              "(expected global or local).")
    if opt("output_nc") != 3:
        raise CheckpointError(f"{source}: output_nc {opt('output_nc')} is not supported "
                              "(condsynth generates RGB images, output_nc 3).")
    norm = opt("norm", str)
    if norm not in ("instance", "batch"):
        raise CheckpointError(f"{source}: norm '{norm}' is not one of instance, batch.")
    label_nc, no_instance = opt("label_nc"), opt("no_instance", bool)
    if label_nc < 0:
        raise CheckpointError(f"{source}: label_nc {label_nc} must be >= 0.")
    if label_nc == 0 and not no_instance:
        raise CheckpointError(f"{source}: label_nc 0 (an image as input) with instance edges is "
                              "not supported by condsynth's condition encoding.")
    label = (ConditionConfig(kind="image", image_channels=opt("input_nc"), use_instance=False)
             if label_nc == 0 else ConditionConfig(num_classes=label_nc,
                                                   use_instance=not no_instance))
    model = Pix2PixHDConfig(
        ngf=opt("ngf"), n_downsample_global=opt("n_downsample_global"),
        n_blocks_global=opt("n_blocks_global"),
        n_local_enhancers=opt("n_local_enhancers") if net_g == "local" else 0,
        n_blocks_local=opt("n_blocks_local"), norm=norm, ndf=opt("ndf"),
        n_layers_d=opt("n_layers_D"), num_d=opt("num_D"),
        gan_mode="vanilla" if opt("no_lsgan", bool) else "lsgan",
        feature_matching=not opt("no_ganFeat_loss", bool), vgg_loss=not opt("no_vgg_loss", bool),
        vgg_weights=vgg_weights, lambda_feat=opt("lambda_feat", float),
        instance_feat=opt("instance_feat", bool), label_feat=opt("label_feat", bool),
        feat_num=opt("feat_num"), nef=opt("nef"), n_downsample_e=opt("n_downsample_E"),
        n_clusters=opt("n_clusters"), niter_fix_global=0)
    preprocess = opt("resize_or_crop", str)
    if preprocess not in ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop",
                          "none"):
        raise CheckpointError(f"{source}: resize_or_crop '{preprocess}' is not supported.")
    data = DataConfig(root=opt("dataroot", str), layout="pix2pixhd", load_size=opt("loadSize"),
                      crop_size=opt("fineSize"), preprocess=preprocess,
                      flip=not opt("no_flip", bool), shuffle=not opt("serial_batches", bool))
    niter, niter_decay = opt("niter"), opt("niter_decay")
    # Precision stays fp32: the official --fp16 (apex, CUDA only) is a training-speed choice,
    # not part of the model, and the weights it saves are float32.
    train = TrainConfig(batch_size=opt("batchSize"), lr_g=opt("lr", float),
                        lr_d=opt("lr", float), beta1=opt("beta1", float), beta2=0.999,
                        decay_start=niter / (niter + niter_decay) if niter + niter_decay else 0.5,
                        lr_schedule="epochs", constant_epochs=niter, decay_epochs=niter_decay,
                        # computed as the official code does: torch's default Adam, contiguous
                        # activations (both differ from condsynth's faster defaults in rounding)
                        fused_adam=False, channels_last=False)
    return Config(method="pix2pixhd", model=model, condition=label, data=data, train=train)


# ----------------------------------------------------------------------------- official layout
# Token lists mirror the official nn.Sequential stacks layer by layer; only "conv" (Conv2d or
# ConvTranspose2d), "norm" (parameters only with batch norm) and "res" (a ResnetBlock) hold
# tensors. A layer's official key prefix is its position in the stack.

_RESNET_BLOCK = ["pad", "conv", "norm", "relu", "pad", "conv", "norm"]   # ResnetBlock.conv_block
_OUTPUT = ["pad", "conv", "tanh"]
_STEM = ["pad", "conv", "norm", "relu"]
_CONV_NORM_RELU = ["conv", "norm", "relu"]


def _prefixes(tokens: list[str], base: str, norm: str) -> list[str]:
    out: list[str] = []
    for index, token in enumerate(tokens):
        if token == "conv" or (token == "norm" and norm == "batch"):
            out.append(f"{base}.{index}")
        elif token == "res":
            out += _prefixes(_RESNET_BLOCK, f"{base}.{index}.conv_block", norm)
    return out


def _global_tokens(n_downsampling: int, n_blocks: int, output_layer: bool) -> list[str]:
    tokens = (_STEM + _CONV_NORM_RELU * n_downsampling + ["res"] * n_blocks
              + _CONV_NORM_RELU * n_downsampling)
    return tokens + (_OUTPUT if output_layer else [])


def official_generator_layout(cfg: Pix2PixHDConfig) -> list[str]:
    """Official key prefixes of the generator's parameterised layers, in architectural order."""
    if cfg.n_local_enhancers == 0:
        return _prefixes(_global_tokens(cfg.n_downsample_global, cfg.n_blocks_global, True),
                         "model", cfg.norm)
    layout = _prefixes(_global_tokens(cfg.n_downsample_global, cfg.n_blocks_global, False),
                       "model", cfg.norm)
    for n in range(1, cfg.n_local_enhancers + 1):
        layout += _prefixes(_STEM + _CONV_NORM_RELU, f"model{n}_1", cfg.norm)
        tail = _OUTPUT if n == cfg.n_local_enhancers else []
        layout += _prefixes(["res"] * cfg.n_blocks_local + _CONV_NORM_RELU + tail,
                            f"model{n}_2", cfg.norm)
    return layout


def official_discriminator_layout(cfg: Pix2PixHDConfig) -> list[str]:
    """Official key prefixes of the multi-scale discriminator, condsynth scale 0 (full
    resolution, official ``num_D - 1``) first."""
    groups = [["conv", "lrelu"]] + [["conv", "norm", "lrelu"]] * cfg.n_layers_d + [["conv"]]
    layout: list[str] = []
    for ours in range(cfg.num_d):
        scale = cfg.num_d - 1 - ours
        if cfg.feature_matching:   # getIntermFeat: one Sequential per layer
            for j, group in enumerate(groups):
                layout += _prefixes(group, f"scale{scale}_layer{j}", cfg.norm)
        else:                      # one flat Sequential per scale
            layout += _prefixes([t for group in groups for t in group], f"layer{scale}",
                                cfg.norm)
    return layout


def official_encoder_layout(cfg: Pix2PixHDConfig) -> list[str]:
    tokens = _STEM + _CONV_NORM_RELU * (2 * cfg.n_downsample_e) + _OUTPUT
    return _prefixes(tokens, "model", cfg.norm)


def _state_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """Leaf modules holding tensors, in registration (= architectural) order."""
    return [(name, m) for name, m in module.named_modules()
            if not any(True for _ in m.children()) and m.state_dict()]


def _map_network(module: nn.Module, official: dict[str, Tensor], layout: list[str], what: str,
                 path: Path) -> None:
    """Load ``official`` into ``module``, pairing its layers with ``layout`` in order."""
    layers = _state_layers(module)
    if len(layers) != len(layout):   # a condsynth bug, not a user error
        raise RuntimeError(f"{what}: {len(layers)} layers but an official layout of "
                           f"{len(layout)}")
    ours: list[tuple[str, Tensor]] = []
    theirs: list[tuple[str, Tensor]] = []
    missing: list[str] = []
    for (name, layer), prefix in zip(layers, layout, strict=True):
        for key, tensor in layer.state_dict().items():
            official_key = f"{prefix}.{key}"
            if official_key in official:
                ours.append((f"{name}.{key}", tensor))
                theirs.append((official_key, official[official_key]))
            elif key != "num_batches_tracked":   # older torch did not save this counter
                missing.append(official_key)
    unexpected = sorted(set(official) - {k for k, _ in theirs})
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:4])}"
                         f"{' ...' if len(unexpected) > 4 else ''}")
        raise CheckpointError(
            f"{what}: {path} does not match the network its opt.txt describes "
            f"({'; '.join(parts)}). Fix: make sure opt.txt belongs to this checkpoint (netG, "
            "n_local_enhancers, n_downsample_*, n_blocks_*, num_D, n_layers_D, no_ganFeat_loss, "
            "norm must be those it was trained with).")
    mapped = match_in_order(ours, theirs, what, path)
    state = module.state_dict()
    state.update({k: v.to(state[k].dtype) for k, v in mapped.items()})
    module.load_state_dict(state, strict=True)


def load_official_networks(method: Pix2PixHD, official_dir: str | Path,
                           which_epoch: str = "latest") -> list[str]:
    """Load ``<which_epoch>_net_{G,D,E}.pth`` from ``official_dir`` into ``method``'s networks.

    G is required; D and E are loaded when present (a missing one keeps its initialization
    and gives a warning). Returns the files loaded.
    """
    folder = Path(official_dir)
    cfg: Pix2PixHDConfig = method.config.model
    networks = method.networks()
    parts = [("G", "generator", official_generator_layout(cfg), True),
             ("D", "discriminator", official_discriminator_layout(cfg), False)]
    if method.encoder is not None:
        parts.append(("E", "encoder", official_encoder_layout(cfg), False))
    loaded = []
    for letter, name, layout, required in parts:
        path = folder / f"{which_epoch}_net_{letter}.pth"
        if not path.is_file() and not required:
            warnings.warn(f"{path} not found: the imported {name} keeps a fresh initialization"
                          + (" (training restarts the discriminator)" if letter == "D" else
                             " (style images will not work; clustered features still do)"),
                          UserWarning, stacklevel=2)
            continue
        state = load_official_state_dict(path, f"pix2pixHD {name}")
        _map_network(networks[name], state, layout, f"pix2pixHD {name}", path)
        loaded.append(path.name)
    return loaded


def read_official_features(path: str | Path, feat_num: int) -> dict[int, np.ndarray]:
    """The official ``features_clustered_<K>.npy``: ``np.save`` of ``{class: (K, feat_num)}``
    (K-means centres of ``encode_features.py``; a trailing column of instance sizes, when a
    file has one, is dropped). Read without unpickling anything but numpy arrays."""
    path = Path(path)
    obj = load_numpy_object(path, "pix2pixHD clustered features")
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected the dict of cluster centres per class that "
                              f"encode_features.py saves, found {type(obj).__name__}.")
    centres = {}
    for label, value in obj.items():
        value = np.asarray(value)
        if value.ndim != 2 or value.shape[1] not in (feat_num, feat_num + 1) or not isinstance(
                label, (int, np.integer)):
            raise CheckpointError(f"{path}: class {label!r} holds an array of shape "
                                  f"{value.shape}; expected (K, {feat_num}) (feat_num "
                                  f"{feat_num} from opt.txt).")
        if len(value):
            centres[int(label)] = value[:, :feat_num].astype(np.float32)
    return centres


def _features_file(folder: Path, n_clusters: int, given: str | Path | None) -> Path | None:
    if given is not None:
        path = Path(given)
        if not path.is_file():
            raise CheckpointError(f"features file {path} does not exist.")
        return path
    default = folder / f"features_clustered_{n_clusters:03d}.npy"
    if default.is_file():
        return default
    found = sorted(folder.glob("features_clustered_*.npy"))
    if len(found) > 1:
        raise CheckpointError(f"{folder} holds several clustered feature files "
                              f"({', '.join(p.name for p in found)}) and none matches "
                              f"n_clusters {n_clusters}. Fix: choose one with features_file.")
    return found[0] if found else None


def import_pix2pixhd(official_dir: str | Path, out_dir: str | Path,
                     vgg_weights: str | None = None, which_epoch: str = "latest",
                     features_file: str | Path | None = None, overwrite: bool = False) -> Path:
    """Turn an official pix2pixHD checkpoint folder into a condsynth run directory.

    Args:
        official_dir: the experiment folder (``checkpoints_dir/name``) holding ``opt.txt`` and
            ``<which_epoch>_net_G.pth`` (+ ``_net_D``, ``_net_E``, ``features_clustered_*.npy``).
        out_dir: the run directory to write.
        vgg_weights: torchvision-format VGG19 file for the VGG loss when training further
            (stored in the config; None = the torchvision cache).
        which_epoch: the official epoch label of the files (``latest``, ``10``, ...).
        features_file: a clustered features file other than the one matching ``n_clusters``.
        overwrite: replace an existing run in ``out_dir``.
    Returns:
        ``out_dir``, holding ``config.yaml``, the networks, a fresh optimizer state (step 0,
        so ``condsynth train --resume`` continues training from the imported weights),
        ``features.npz`` when clustered features were imported, and ``imported_from.json``.
    """
    from condsynth.train import rng_state

    folder = Path(official_dir).expanduser()
    out = Path(out_dir)
    if (out / CONFIG).exists() and not overwrite:
        raise CheckpointError(f"{out} already holds a run. Fix: choose another output folder, "
                              "or pass overwrite (--force).")
    options = read_pix2pixhd_opt(folder)
    opt_path = folder / "opt.txt" if folder.is_dir() else folder
    folder = opt_path.parent
    if vgg_weights:   # absolute, so that the run works from any directory
        vgg_weights = str(Path(vgg_weights).expanduser().resolve())
    config = config_from_options(options, opt_path, vgg_weights)
    method = build_method(config)
    assert isinstance(method, Pix2PixHD)
    loaded = load_official_networks(method, folder, which_epoch)
    features = _features_file(folder, config.model.n_clusters, features_file)
    if features is not None and method.encoder is not None:
        method.set_cluster_centres(read_official_features(features, config.model.feat_num))
        loaded.append(features.name)

    groups = method.parameter_groups()
    fresh = {name: torch.optim.Adam(params, lr=config.train.lr_g or 2e-4,
                                    betas=(config.train.beta1 or 0.5, 0.999)).state_dict()
             for name, params in groups.items()}
    train_state = {"step": 0, "rng": [rng_state()], "optimizers": fresh}
    provenance = {"official_dir": str(folder.resolve()), "files": ["opt.txt", *loaded],
                  "which_epoch": which_epoch,
                  # str() for values JSON cannot hold (max_dataset_size: inf)
                  "options": {k: v if not isinstance(v, float) or np.isfinite(v) else str(v)
                              for k, v in options.items()}}
    extra = {**method.extra_files(),
             "imported_from.json": json.dumps(provenance, indent=1).encode()}
    write_checkpoint(out, config, method.networks(), step=0, train_state=train_state,
                     extra_files=extra)
    return out
