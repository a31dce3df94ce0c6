"""Import of checkpoints trained with NVlabs' SPADE code (Park et al., CVPR 2019).

An official experiment folder holds ``opt.txt`` / ``opt.pkl`` and ``<epoch>_net_G.pth`` (+
``_net_D``, + ``_net_E`` with ``--use_vae``). :func:`import_spade` turns it into a native run
directory: the options become a typed :class:`~condsynth.config.Config` (``norm_G`` strings such
as ``spectralspadesyncbatch3x3`` become ``spectral_g``, ``norm_g`` and ``spade_kernel_size``),
and the tensors are placed by walking the official network and ours in the same architectural
order, one module at a time (never from a table of key names). Spectral-norm state
(``weight_orig``, ``weight_u``, ``weight_v``) and batch-norm running statistics are carried
over as they are, so the imported run synthesizes exactly what the official code does, and
trains on from there.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from condsynth.checkpoint import CONFIG, write_checkpoint
from condsynth.compat.official import (
    OptValue,
    load_official_state_dict,
    read_spade_opt,
    require_option,
)
from condsynth.config import ConditionConfig, Config, DataConfig, TrainConfig
from condsynth.errors import CheckpointError
from condsynth.methods.spade import GauGAN, SPADEConfig
from condsynth.registry import build_method

__all__ = ["import_spade", "spade_config_from_options", "parse_norm_g", "parse_norm_layer",
           "align_state_dict"]

_GAN_MODES = {"hinge": "hinge", "ls": "lsgan", "original": "vanilla", "w": "wgan"}
# The custom mode reads folders named on its command line (--label_dir, --image_dir), so any
# folder names: detection finds the pix2pixHD and the spade_custom layouts alike.
_LAYOUTS = {"custom": "auto", "cityscapes": "cityscapes", "ade20k": "ade20k",
            "coco": "coco_stuff"}
_PREPROCESS = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "fixed", "none")
_NORMS = {"instance": "instance", "batch": "batch", "syncbatch": "sync_batch"}


def parse_norm_g(text: str, source: str | Path = "opt") -> tuple[bool, str, int]:
    """``[spectral]spade<norm><k>x<k>`` (SPADE's ``norm_G``) -> (spectral, norm, kernel size)."""
    match = re.fullmatch(r"(spectral)?spade(instance|syncbatch|batch)(\d)x\d", str(text))
    if not match:
        raise CheckpointError(f"{source}: norm_G {text!r} is not a SPADE generator norm (expected "
                              "[spectral]spade{instance,batch,syncbatch}KxK, e.g. "
                              "spectralspadesyncbatch3x3).")
    return bool(match.group(1)), _NORMS[match.group(2)], int(match.group(3))


def parse_norm_layer(text: str, option: str, source: str | Path = "opt") -> tuple[bool, str]:
    """``[spectral]{instance,batch,syncbatch,none}`` (``norm_D``/``norm_E``) -> (spectral, norm)."""
    match = re.fullmatch(r"(spectral)?(instance|syncbatch|batch|none|)", str(text))
    if not match:
        raise CheckpointError(f"{source}: {option} {text!r} is not a norm SPADE knows (expected "
                              "[spectral]{instance,batch,syncbatch,none}).")
    return bool(match.group(1)), _NORMS.get(match.group(2), "none")


def spade_config_from_options(options: Mapping[str, OptValue], source: str | Path = "opt"
                              ) -> Config:
    """Our typed configuration for the options of an official SPADE training run."""

    def opt(key: str, kind: type | tuple[type, ...], default: OptValue = ...) -> OptValue:
        if default is not ... and key not in options:
            return default
        return require_option(options, key, kind, source)

    def unsupported(what: str) -> CheckpointError:
        return CheckpointError(f"{source}: {what}; condsynth imports SPADE checkpoints of the "
                               "paper's model only (--model pix2pix --netG spade --netD "
                               "multiscale).")

    if opt("model", str, "pix2pix") != "pix2pix":
        raise unsupported(f"model {options['model']!r}")
    if opt("netG", str, "spade") != "spade":
        raise unsupported(f"netG {options['netG']!r}")
    if opt("netD", str, "multiscale") != "multiscale" or \
            opt("netD_subarch", str, "n_layer") != "n_layer":
        raise unsupported(f"netD {options.get('netD')!r} / {options.get('netD_subarch')!r}")
    if opt("output_nc", int, 3) != 3:
        raise unsupported(f"output_nc {options['output_nc']}")
    label_nc = opt("label_nc", int)
    if label_nc < 1:
        raise CheckpointError(f"{source}: label_nc is {label_nc}; the official code cannot train "
                              "without labels. Fix: give the options of a label-map model.")
    spectral_g, norm_g, kernel = parse_norm_g(opt("norm_G", str), source)
    spectral_d, norm_d = parse_norm_layer(opt("norm_D", str, "spectralinstance"), "norm_D",
                                          source)
    spectral_e, norm_e = parse_norm_layer(opt("norm_E", str, "spectralinstance"), "norm_E",
                                          source)
    gan_mode = opt("gan_mode", str, "hinge")
    if gan_mode not in _GAN_MODES:
        raise CheckpointError(f"{source}: gan_mode {gan_mode!r} is not one of "
                              f"{sorted(_GAN_MODES)}.")
    upsampling = opt("num_upsampling_layers", str, "normal")
    if upsampling not in ("normal", "more", "most"):
        raise CheckpointError(f"{source}: num_upsampling_layers {upsampling!r} is not one of "
                              "normal, more, most.")
    use_vae = bool(opt("use_vae", bool, False))
    model = SPADEConfig(
        ngf=opt("ngf", int), ndf=opt("ndf", int, 64), num_upsampling_layers=upsampling,
        fit_size=False,
        norm_g=norm_g, spectral_g=spectral_g, spade_kernel_size=kernel,
        num_d=opt("num_D", int, 2), n_layers_d=opt("n_layers_D", int, 4), norm_d=norm_d,
        spectral_d=spectral_d, use_vae=use_vae, z_dim=opt("z_dim", int, 256), norm_e=norm_e,
        spectral_e=spectral_e, gan_mode=_GAN_MODES[gan_mode],
        lambda_feat=0.0 if opt("no_ganFeat_loss", bool, False)
        else float(opt("lambda_feat", (int, float), 10.0)),
        lambda_vgg=0.0 if opt("no_vgg_loss", bool, False)
        else float(opt("lambda_vgg", (int, float), 10.0)),
        lambda_kld=float(opt("lambda_kld", (int, float), 0.05)),
        init_type="normal" if opt("init_type", str, "xavier") == "normal" else "xavier",
        init_gain=float(opt("init_variance", (int, float), 0.02)))
    if use_vae and model.z_dim != 256:
        raise CheckpointError(f"{source}: use_vae with z_dim {model.z_dim}: the official encoder "
                              "always outputs 256 numbers, so such a model cannot have been "
                              "trained. Fix: give the options of the run (z_dim 256).")
    label = ConditionConfig(num_classes=label_nc,
                            contain_dontcare_label=bool(opt("contain_dontcare_label", bool, False)),
                            use_instance=not opt("no_instance", bool, False))
    preprocess = opt("preprocess_mode", str, "resize_and_crop")
    if preprocess not in _PREPROCESS:
        warnings.warn(f"{source}: preprocess_mode {preprocess!r} has no condsynth equivalent; "
                      "the imported run uses resize_and_crop (set data.preprocess to change it)",
                      stacklevel=2)
        preprocess = "resize_and_crop"
    data = DataConfig(layout=_LAYOUTS.get(opt("dataset_mode", str, "custom"), "auto"),
                      load_size=opt("load_size", int, 256), crop_size=opt("crop_size", int),
                      aspect_ratio=float(opt("aspect_ratio", (int, float), 1.0)),
                      preprocess=preprocess, flip=not opt("no_flip", bool, False),
                      shuffle=not opt("serial_batches", bool, False))
    lr = float(opt("lr", (int, float), 2e-4))
    ttur = not opt("no_TTUR", bool, False)
    niter, niter_decay = opt("niter", int, 50), opt("niter_decay", int, 0)
    train = TrainConfig(batch_size=opt("batchSize", int, 1),
                        lr_g=lr / 2 if ttur else lr, lr_d=lr * 2 if ttur else lr,
                        beta1=float(opt("beta1", (int, float), 0.0 if ttur else 0.5)),
                        beta2=float(opt("beta2", (int, float), 0.9 if ttur else 0.999)),
                        decay_start=niter / (niter + niter_decay) if niter + niter_decay else 1.0,
                        lr_schedule="epochs", constant_epochs=niter, decay_epochs=niter_decay,
                        # computed as the official code does: torch's default Adam, contiguous
                        # activations (both differ from condsynth's faster defaults in rounding)
                        fused_adam=False, channels_last=False)
    return Config(method="spade", model=model, condition=label, data=data, train=train)


def _modules_with_tensors(state: Mapping[str, Tensor]) -> list[tuple[str, dict[str, Tensor]]]:
    """A state dict grouped by owning module, in order: [(module path, {local name: tensor})]."""
    groups: dict[str, dict[str, Tensor]] = {}
    for key, tensor in state.items():
        prefix, _, local = key.rpartition(".")
        groups.setdefault(prefix, {})[local] = tensor
    return list(groups.items())


def align_state_dict(network: nn.Module, official: Mapping[str, Tensor], what: str,
                     source: str | Path) -> dict[str, Tensor]:
    """Our state dict for ``network``, filled from an official one of the same architecture.

    Both are walked module by module in registration order (convolutions, linears and
    batch norms; their nesting and names may differ, as the discriminators' do); each pair of
    modules must hold the same tensor names (``weight_orig``/``weight_u``/``weight_v``,
    ``running_mean``, ...) with the same shapes. ``num_batches_tracked``, absent from files of
    old PyTorch versions, is taken as 0.
    """
    ours = _modules_with_tensors(network.state_dict())
    theirs = _modules_with_tensors(official)
    if len(ours) != len(theirs):
        raise CheckpointError(
            f"{what}: {source} has {len(theirs)} layers with weights where the network described "
            f"by the options has {len(ours)}. Fix: make sure opt.txt/opt.pkl belong to this "
            "checkpoint (ngf, num_upsampling_layers, use_vae, num_D, n_layers_D, norm_G, ...).")
    result: dict[str, Tensor] = {}
    for (our_prefix, our_tensors), (their_prefix, their_tensors) in zip(ours, theirs,
                                                                         strict=True):
        expected = set(our_tensors)
        found = set(their_tensors)
        if found != expected and not (found | {"num_batches_tracked"} == expected):
            raise CheckpointError(
                f"{what}: {source}: layer '{their_prefix}' holds {sorted(found)} where "
                f"'{our_prefix}' needs {sorted(expected)}. Fix: make sure the options file "
                "belongs to this checkpoint (norm_G/norm_D/norm_E: spectral or not, batch or "
                "instance norm).")
        for local, ours_t in our_tensors.items():
            theirs_t = their_tensors.get(local)
            if theirs_t is None:          # num_batches_tracked of an old file
                theirs_t = torch.zeros_like(ours_t)
            if tuple(theirs_t.shape) != tuple(ours_t.shape):
                raise CheckpointError(
                    f"{what}: {source}: '{their_prefix}.{local}' has shape "
                    f"{tuple(theirs_t.shape)} where the options give {tuple(ours_t.shape)}. Fix: "
                    "make sure the options file belongs to this checkpoint (label_nc, "
                    "contain_dontcare_label, no_instance, ngf, ndf, crop_size, aspect_ratio, "
                    "z_dim must be those it was trained with).")
            result[f"{our_prefix}.{local}" if our_prefix else local] = \
                theirs_t.to(ours_t.dtype)
    return result


def _network_file(folder: Path, epoch: str, letter: str) -> Path:
    return folder / f"{epoch}_net_{letter}.pth"


def import_spade(official_dir: str | Path, out_dir: str | Path, epoch: str = "latest",
                 overwrite: bool = False, vgg_weights: str | None = None) -> Path:
    """Turn an official SPADE experiment folder into a native run directory.

    Args:
        official_dir: the folder ``checkpoints_dir/name`` with ``opt.txt`` or ``opt.pkl`` and
            ``<epoch>_net_G.pth`` (required), ``<epoch>_net_D.pth`` (imported when present;
            otherwise the run gets a freshly initialized discriminator, with a warning) and
            ``<epoch>_net_E.pth`` (required for ``--use_vae`` models).
        out_dir: the run directory to write (``config.yaml``, ``generator.safetensors``,
            ``discriminator.safetensors`` [, ``encoder.safetensors``]).
        epoch: which checkpoint to read (``latest``, or an epoch number as text).
        overwrite: replace the networks of an existing run directory at ``out_dir``.
        vgg_weights: torchvision-format VGG19 file for the VGG loss when training further
            (stored in the config; None = the torchvision cache).
    Returns:
        ``out_dir`` as a Path. The run holds a step-0 training state with fresh optimizers, so
        ``condsynth train --resume`` trains on; ``data.root`` is left empty (give ``--data``).
    """
    folder = Path(official_dir).expanduser()
    out = Path(out_dir).expanduser()
    if (out / CONFIG).exists() and not overwrite:
        raise CheckpointError(f"{out} already holds a run ({CONFIG} exists). Fix: choose another "
                              "output folder, or pass overwrite=True (--overwrite).")
    options = read_spade_opt(folder)
    config = spade_config_from_options(options, folder)
    if vgg_weights:   # absolute, so that the run works from any directory
        config.model.vgg_weights = str(Path(vgg_weights).expanduser().resolve())
    with torch.random.fork_rng(devices=[]):   # leave the caller's random state alone
        torch.manual_seed(0)   # a network the files do not cover gets a reproducible init
        method = build_method(config)
        train_state = _fresh_train_state(method)
    networks = method.networks()
    letters = {"generator": "G", "discriminator": "D", "encoder": "E"}
    for name, network in networks.items():
        path = _network_file(folder, epoch, letters[name])
        if name == "discriminator" and not path.is_file():
            warnings.warn(f"{path} is missing: the imported run gets a freshly initialized "
                          "discriminator (fine for synthesis; training restarts D from scratch)",
                          stacklevel=2)
            continue
        what = f"SPADE {name}"
        state = align_state_dict(network, load_official_state_dict(path, what), what, path)
        network.load_state_dict(state, strict=True)
    write_checkpoint(out, config, networks, step=0, train_state=train_state)
    return out


def _fresh_train_state(method: GauGAN) -> dict[str, Any]:
    """What the trainer saves, at step 0 with fresh optimizers (the official code saves no
    optimizer state), so that ``condsynth train --resume`` continues the official training."""
    from condsynth.train import rng_state  # the trainer's format, said once there

    t = method.config.train
    groups = method.parameter_groups()
    betas = (t.beta1, t.beta2)
    return {"step": 0, "rng": [rng_state()], "optimizers": {
        "generator": torch.optim.Adam(groups["generator"], lr=t.lr_g, betas=betas).state_dict(),
        "discriminator": torch.optim.Adam(groups["discriminator"], lr=t.lr_d,
                                          betas=betas).state_dict()}}
