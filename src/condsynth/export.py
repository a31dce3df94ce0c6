"""Export a run's generator to ONNX, and serve an exported model where a method is expected.

``export_onnx(run_dir, out)`` writes ``out`` (the ONNX graph) and its sidecar ``out.json``. The
graph is the whole inference of the method, input encoding included, in eval mode:

=============  ==========================================================================
condition      inputs (B = batch; H, W = size) -> ``image`` (B, C, H, W) float32 in [-1, 1]
=============  ==========================================================================
label maps     ``label`` (B, H, W) int64 class ids (+ ``instance`` (B, H, W) int64 with
               ``use_instance``): one-hot, dont-care channel and instance edges in the graph
image / sketch ``source`` (B, C, H, W) float32 in [-1, 1] (Auto-painter: ``sketch``)
class          ``class`` (B,) int64 ids, one-hot in the graph
attributes     ``attributes`` (B, A) float32
none           nothing but the noise
=============  ==========================================================================

and the method's own inputs: pix2pixHD with the feature encoder ``features`` (B, feat_num, H,
W), its looks; SPADE with the VAE ``z`` (B, z_dim), its style code; Auto-painter with colour
hints ``hints`` (B, 4, H, W) (zeros: none); noise-driven models such as DCGAN ``z`` (B, z_dim)
(attr2sketch also ``eps``, its posterior sample's normal numbers); sketch2sketch and sketch2face
``attributes`` (B, A) beside the sketch. Each noise input's ``draw`` (sidecar) says how
condsynth draws it when it is not given: ``normal``, ``uniform01`` or ``uniform11``.

Randomness is an input, never inside the graph: z and pix2pixHD's looks are inputs
(:mod:`condsynth.deploy` draws them as ``generate`` does); pix2pix and Auto-painter export the
deterministic eval-mode network (dropout off, batch-norm running statistics), which is what
``generate`` computes with ``model.test_time_noise: false``. The sidecar says which.

Spectral norm is folded into the weights (the eval-mode weight: ``weight_orig / sigma`` from
the stored vectors), so the graph holds plain convolutions.

:class:`OnnxMethod` wraps an exported model for ``condsynth synthesize``, the studio and
Python (``condsynth.load("model.onnx")``): the same ``generate`` call, run by ONNX Runtime.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from condsynth import __version__, deploy
from condsynth.config import ConditionConfig
from condsynth.data.labels import label_map_channels, one_hot
from condsynth.errors import CondsynthError, ConfigError, DataError
from condsynth.methods.base import Capability, Method
from condsynth.registry import parse_config

PRECISION_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# ONNX opset of the graphs: 18 runs on most runtimes; bfloat16 convolutions need 22.
OPSETS = {"fp32": 18, "fp16": 18, "bf16": 22}
PRECISION_NOTES = {
    "fp32": "float32 throughout",
    "fp16": "weights and arithmetic in float16 (inputs and output float32); ONNX Runtime runs "
            "it on CPUs too, but float16 pays off on GPUs",
    "bf16": "weights and arithmetic in bfloat16 (inputs and output float32), opset 22; ONNX "
            "Runtime's CPU provider has no bfloat16 kernels for it: use a runtime that has "
            "them (on a CPU, PyTorch's --precision bf16 is the bfloat16 path)",
    "int8": "static int8 quantization of the float32 graph (QDQ: int8 per-channel weights, "
            "uint8 activations with min-max ranges from calibration label maps); ONNX "
            "Runtime's CPU provider runs the convolutions in int8",
}
EXPORT_PRECISIONS = ("fp32", "fp16", "bf16", "int8")


@dataclass(frozen=True)
class GraphInput:
    """One input of an exported graph. ``shape`` uses the names ``batch``, ``height`` and
    ``width`` for the sizes the caller chooses."""

    name: str
    dtype: str                      # "int64" or "float32"
    shape: tuple[int | str, ...]
    description: str
    # How condsynth draws this input when the caller gives none, as the method's generate
    # does, in the order of the inputs: "normal" N(0, 1), "uniform01" U(0, 1) or "uniform11"
    # U(-1, 1); None for an input the caller must give.
    draw: str | None = None


@dataclass(frozen=True)
class GraphPlan:
    """How a method's inference becomes a graph: ``generator(encoded condition, *extras)``
    (without the condition for noise-only models), in eval mode, on the extra inputs' tensors
    in the order of ``extras``."""

    generator: nn.Module
    extras: tuple[GraphInput, ...] = ()
    randomness: str = "none: the output is a function of the inputs"
    notes: dict[str, Any] | None = None


class ChannelsJoined(nn.Module):
    """``generator(cat([condition, *extras], 1))``: extra inputs as more input channels
    (pix2pixHD's features, Auto-painter's hints)."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, condition: Tensor, *extras: Tensor) -> Tensor:
        return self.generator(torch.cat([condition, *extras], 1))


class CodesJoined(nn.Module):
    """``generator(cat([z, condition], 1))``: a noise-driven generator's codes, the one-hot
    class (or attributes) after the noise, as DCGAN builds them."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, condition: Tensor, z: Tensor) -> Tensor:
        return self.generator(torch.cat([z, condition], 1))


# name -> how that method's inference becomes a graph. A registered method without an entry
# cannot be exported (and fails the export tests), so every method is covered on purpose.
EXPORTERS: dict[str, Callable[[Method], GraphPlan]] = {}


def register_exporter(name: str) -> Callable:
    """Decorator: the function that plans the export of method ``name``."""

    def decorate(fn: Callable[[Method], GraphPlan]) -> Callable[[Method], GraphPlan]:
        EXPORTERS[name] = fn
        return fn

    return decorate


def condition_spec(method: Method) -> ConditionConfig:
    """The condition settings of a method (one place to follow the config's naming)."""
    return method.config.condition


class SubpixelConvTranspose(nn.Module):
    """A 3x3 stride-2 transposed convolution (padding 1, output padding 1: H, W -> 2H, 2W) as
    one 2x2 convolution giving the four output phases, then a pixel shuffle.

    The same sums (taps a phase does not use have zero weights), so the output equals the
    transposed convolution's up to float rounding. ONNX Runtime runs plain convolutions in its
    blocked layout and quantizes them to int8, which it does neither for transposed ones.

    Forward: (B, C_in, H, W) -> (B, C_out, 2H, 2W).
    """

    # (output phase, input offset) -> row (or column) of the transposed convolution's kernel:
    # output 2m takes input m through tap 1; output 2m+1 takes input m through tap 2 and
    # input m+1 through tap 0.
    TAPS = {(0, 0): 1, (1, 0): 2, (1, 1): 0}

    def __init__(self, deconv: nn.ConvTranspose2d) -> None:
        super().__init__()
        w = deconv.weight.detach()                                   # (C_in, C_out, 3, 3)
        c_in, c_out = w.shape[:2]
        weight = w.new_zeros(c_out, 2, 2, c_in, 2, 2)               # (c, a, b, ci, dy, dx)
        for (a, dy), ky in self.TAPS.items():
            for (b, dx), kx in self.TAPS.items():
                weight[:, a, b, :, dy, dx] = w[:, :, ky, kx].T
        self.conv = nn.Conv2d(c_in, 4 * c_out, 2, bias=deconv.bias is not None)
        self.conv.weight = nn.Parameter(weight.reshape(4 * c_out, c_in, 2, 2))
        if deconv.bias is not None:            # channel c * 4 + phase, as pixel_shuffle reads it
            self.conv.bias = nn.Parameter(deconv.bias.detach().repeat_interleave(4))

    @staticmethod
    def applies_to(module: nn.Module) -> bool:
        return (isinstance(module, nn.ConvTranspose2d) and module.kernel_size == (3, 3)
                and module.stride == (2, 2) and module.padding == (1, 1)
                and module.output_padding == (1, 1) and module.dilation == (1, 1)
                and module.groups == 1)

    def forward(self, x: Tensor) -> Tensor:
        return F.pixel_shuffle(self.conv(F.pad(x, (0, 1, 0, 1))), 2)


def eval_copy(network: nn.Module) -> nn.Module:
    """An eval-mode copy of ``network`` as the graph should hold it: spectral norm folded into
    plain weights, 3x3 stride-2 transposed convolutions as :class:`SubpixelConvTranspose`."""
    network = copy.deepcopy(network).eval()
    for module in network.modules():
        if hasattr(module, "weight_orig"):                      # nn.utils.spectral_norm
            nn.utils.remove_spectral_norm(module)
        elif nn.utils.parametrize.is_parametrized(module):       # nn.utils.parametrizations
            for name in list(module.parametrizations):
                nn.utils.parametrize.remove_parametrizations(module, name)
    for parent in list(network.modules()):
        for name, child in parent.named_children():
            if SubpixelConvTranspose.applies_to(child):
                setattr(parent, name, SubpixelConvTranspose(child))
    return network.eval()


def _eval_mode_unet(method: Method) -> GraphPlan:
    """pix2pix and Auto-painter: the U-Net in eval mode (no test-time dropout)."""
    noise = getattr(method.config.model, "test_time_noise", False)
    randomness = ("none: the deterministic eval-mode network (dropout off, batch-norm running "
                  "statistics), as generate computes with model.test_time_noise false"
                  + ("; this run's PyTorch generate keeps test-time dropout on, so its pictures "
                     "vary with the seed and differ from the export's" if noise else ""))
    return GraphPlan(eval_copy(method.generator), randomness=randomness)


register_exporter("pix2pix")(_eval_mode_unet)


@register_exporter("autopainter")
def _autopainter(method: Method) -> GraphPlan:
    plan = _eval_mode_unet(method)
    if not method.hint_channels:
        return plan
    hints = GraphInput("hints", "float32", ("batch", method.hint_channels, "height", "width"),
                       "colour hints: RGB in [-1, 1] where a hint is, 0 elsewhere, then a 0/1 "
                       "mask; all zeros for none")
    return GraphPlan(ChannelsJoined(plan.generator), (hints,), plan.randomness)


@register_exporter("pix2pixhd")
def _pix2pixhd(method: Method) -> GraphPlan:
    if method.encoder is None:
        return GraphPlan(eval_copy(method.generator))
    cfg = method.config.model
    per = "class" if cfg.label_feat else "instance"
    features = GraphInput("features", "float32", ("batch", cfg.feat_num, "height", "width"),
                          f"the look: one feature vector per {per}, from the clustered looks "
                          "(sidecar 'looks') or zeros")
    centres = {str(c): v.tolist() for c, v in method.cluster_centres().items()}
    return GraphPlan(ChannelsJoined(eval_copy(method.generator)), (features,),
                     randomness="the 'features' input: condsynth picks a random clustered "
                     f"look per {per} (or takes chosen ones); the image encoder of style "
                     "images is not exported",
                     notes={"looks": centres, "looks_per": per})


@register_exporter("spade")
def _spade(method: Method) -> GraphPlan:
    if not method.config.model.use_vae:
        return GraphPlan(eval_copy(method.generator))
    z = GraphInput("z", "float32", ("batch", method.config.model.z_dim),
                   "the style code; N(0, I) for a random style", "normal")
    return GraphPlan(eval_copy(method.generator), (z,),
                     randomness="the 'z' input: condsynth draws it from N(0, I); the image "
                     "encoder of style images is not exported")


@register_exporter("dcgan")
def _dcgan(method: Method) -> GraphPlan:
    z = GraphInput("z", "float32", ("batch", method.latent_size()), "the noise; N(0, I)",
                   "normal")
    generator = eval_copy(method.generator)
    if condition_spec(method).kind != "none":
        generator = CodesJoined(generator)
    return GraphPlan(generator, (z,), randomness="the 'z' input: condsynth draws it from "
                     "N(0, I)")


def _noise(name: str, size: int, draw: str, what: str) -> GraphInput:
    """A noise input of ``size`` numbers per picture, drawn as ``draw`` says."""
    law = {"normal": "N(0, I)", "uniform01": "U(0, 1)", "uniform11": "U(-1, 1)"}[draw]
    return GraphInput(name, "float32", ("batch", size), f"{what}; {law}", draw)


class ProGANInference(nn.Module):
    """ProGAN's ``generate``: the smoothed generator at the stored level of detail,
    nearest-upsampled to the image size and clipped to [-1, 1]."""

    def __init__(self, generator: nn.Module, lod: float, size: int) -> None:
        super().__init__()
        self.generator, self.lod, self.size = generator, lod, size

    def forward(self, z: Tensor) -> Tensor:
        from condsynth.layers.progan import upscale2d

        image = self.generator(z, self.lod)
        return upscale2d(image, self.size // image.shape[-1]).clamp(-1.0, 1.0)


@register_exporter("progan")
def _progan(method: Method) -> GraphPlan:
    lod = float(method.lod)
    z = _noise("z", method.latent_size(), "normal", "the latent code")
    return GraphPlan(ProGANInference(eval_copy(method.generator_smoothed), lod, method.size),
                     (z,), randomness="the 'z' input: condsynth draws it from N(0, I); the "
                     f"graph holds the smoothed generator at lod {lod:g}",
                     notes={"lod": lod})


class LAPGANInference(nn.Module):
    """LAPGAN's ``generate``: one N(0, I) code mapped to every level's uniform noise (erf),
    the whole cascade, its last level clamped to [-1, 1]."""

    def __init__(self, method: Method) -> None:
        super().__init__()
        from condsynth.methods.base import unwrap

        self.generator = eval_copy(unwrap(method.generator))
        self.z_dim = method.config.model.z_dim
        self.sizes = list(method.sizes)

    def forward(self, *inputs: Tensor) -> Tensor:
        from condsynth.methods.lapgan import uniform_noise

        classes, z = (inputs[0], inputs[1]) if len(inputs) == 2 else (None, inputs[0])
        u = uniform_noise(z)
        noises = [u[:, : self.z_dim]]
        start = self.z_dim
        for size in self.sizes[1:]:
            noises.append(u[:, start:start + size * size].reshape(-1, 1, size, size))
            start += size * size
        return self.generator(noises, classes)[-1].clamp(-1.0, 1.0)


@register_exporter("lapgan")
def _lapgan(method: Method) -> GraphPlan:
    z = _noise("z", method.latent_size(), "normal", "z_dim numbers for the coarsest level, "
               f"then the noise planes of the levels {method.sizes[1:]} (row-major)")
    return GraphPlan(LAPGANInference(method), (z,), randomness="the 'z' input: condsynth "
                     "draws it from N(0, I); the graph maps it to each level's U(-1, 1) noise "
                     "(erf(z / sqrt 2)) and runs the whole cascade")


class Clamped(nn.Module):
    """``network(*inputs)`` clipped to [-1, 1]."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, *inputs: Tensor) -> Tensor:
        return self.network(*inputs).clamp(-1.0, 1.0)


@register_exporter("improved_gan")
def _improved_gan(method: Method) -> GraphPlan:
    draw = "uniform01" if method.config.model.z_distribution == "uniform" else "normal"
    z = _noise("z", method.latent_size(), draw, "the noise")
    law = z.description.rsplit("; ", 1)[1]
    return GraphPlan(eval_copy(method.generator), (z,), randomness=f"the 'z' input: condsynth "
                     f"draws it from {law}, the training noise")


@register_exporter("simgan")
def _simgan(method: Method) -> GraphPlan:
    return GraphPlan(Clamped(eval_copy(method.generator)), randomness="none: the refined "
                     "image is a function of the synthetic one ('source')")


def _s2gan_draw(method: Method) -> str:
    return "uniform11" if method.config.model.noise == "uniform" else "normal"


@register_exporter("s2gan_structure")
def _s2gan_structure(method: Method) -> GraphPlan:
    draw = _s2gan_draw(method)
    z = _noise("z", method.config.model.z_dim, draw, "Structure-G's code")
    return GraphPlan(eval_copy(method.generator), (z,),
                     randomness=f"the 'z' input: condsynth draws it from "
                     f"{z.description.rsplit('; ', 1)[1]}",
                     notes={"output": "(B, 3, H, W) unit surface normals, not a picture"})


class StyleInference(nn.Module):
    """Style-G on unit normals: (B, 3, H, W) normals (made unit length), (B, z_dim) code."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, normals: Tensor, z: Tensor) -> Tensor:
        from condsynth.methods.s2gan import unit_normals

        return self.generator(z, unit_normals(normals))


def _s2gan_style_plan(method: Method, extra: str = "") -> GraphPlan:
    z = _noise("z", method.config.model.z_dim, _s2gan_draw(method), "Style-G's code")
    return GraphPlan(StyleInference(eval_copy(method.generator)), (z,),
                     randomness=f"the 'z' input: condsynth draws it from "
                     f"{z.description.rsplit('; ', 1)[1]}{extra}")


register_exporter("s2gan_style")(_s2gan_style_plan)


@register_exporter("s2gan_joint")
def _s2gan_joint(method: Method) -> GraphPlan:
    return _s2gan_style_plan(method, "; the graph paints given normals ('source'): drawing "
                             "normals with Structure-G (generate without a condition) is not "
                             "in it (export an s2gan_structure run for that)")


class NormalReader(nn.Module):
    """The normal estimator's ``read_normals``: images → unit normals."""

    def __init__(self, estimator: nn.Module) -> None:
        super().__init__()
        self.estimator = estimator

    def forward(self, image: Tensor) -> Tensor:
        return self.estimator.read_normals(image)


@register_exporter("s2gan_estimator")
def _s2gan_estimator(method: Method) -> GraphPlan:
    return GraphPlan(NormalReader(eval_copy(method.estimator)),
                     randomness="none: the normals are a function of the image",
                     notes={"output": "(B, 3, H, W) unit surface normals read from the "
                            "'source' images, not a picture: the estimator is not an image "
                            "generator"})


class Attr2SketchInference(nn.Module):
    """attr2sketch's ``generate``: q_beta(z | n, a), its sample mu + eps * sigma (or mu),
    decoded to the per-pixel mean sketch."""

    def __init__(self, method: Method) -> None:
        super().__init__()
        self.encoder = eval_copy(method.encoder)
        self.generator = eval_copy(method.generator)

    def forward(self, attributes: Tensor, z: Tensor, eps: Tensor | None = None) -> Tensor:
        mu, logvar = self.encoder.q_noise(z, attributes)
        latent = mu if eps is None else mu + eps * torch.exp(0.5 * logvar)
        return self.generator(latent)[0]


@register_exporter("attr2sketch")
def _attr2sketch(method: Method) -> GraphPlan:
    cfg = method.config.model
    z = _noise("z", cfg.z_dim, "normal", "the noise n that q_beta reads")
    if not cfg.sample_posterior:
        return GraphPlan(Attr2SketchInference(method), (z,), randomness="the 'z' input: "
                         "condsynth draws it from N(0, I); the latent is q_beta's mean")
    latent = method.encoder.q_noise(torch.zeros(1, cfg.z_dim),
                                    torch.zeros(1, len(method.config.condition.attributes)))
    eps = _noise("eps", latent[0].shape[1], "normal", "the posterior sample's standard "
                 "normal numbers (latent = mu + eps * sigma)")
    return GraphPlan(Attr2SketchInference(method), (z, eps), randomness="the 'z' and 'eps' "
                     "inputs: condsynth draws z from N(0, I), then eps from N(0, I) for the "
                     "latent sampled from q_beta(z | n, a)")


@register_exporter("sketch2sketch")
@register_exporter("sketch2face")
def _sketch_gan(method: Method) -> GraphPlan:
    names = method.attribute_names
    attributes = GraphInput("attributes", "float32", ("batch", len(names)),
                            "attribute values: " + ", ".join(names))
    return GraphPlan(eval_copy(method.generator), (attributes,),
                     randomness="none: the output is a function of the sketch and attributes")


class InferenceGraph(nn.Module):
    """The exported computation: the condition encoded, then the plan's generator.

    Forward: the tensors of :func:`graph_inputs`, in order -> (B, C, H, W) float32 image.
    """

    def __init__(self, plan: GraphPlan, spec: ConditionConfig, dtype: torch.dtype) -> None:
        super().__init__()
        self.generator = plan.generator.to(dtype)
        self.spec = spec
        self.dtype = dtype

    def forward(self, *inputs: Tensor) -> Tensor:
        inputs = list(inputs)
        kind = self.spec.kind
        if kind == "label_map":
            label = inputs.pop(0)
            instance = inputs.pop(0) if self.spec.use_instance else None
            inputs.insert(0, label_map_channels(label, instance, self.spec))
        elif kind == "class":    # (B,) ids -> (B, K), the label-map one-hot on a 1x1 map
            inputs.insert(0, one_hot(inputs.pop(0)[:, None, None], self.spec)[:, :, 0, 0])
        return self.generator(*(x.to(self.dtype) for x in inputs)).float()


def plan_export(method: Method) -> GraphPlan:
    """How ``method`` exports; a :class:`ConfigError` for a method without an export path."""
    name = method.config.method
    if name not in EXPORTERS:
        raise ConfigError(f"method {name!r} has no ONNX export path yet (exportable: "
                          f"{', '.join(sorted(EXPORTERS))}).")
    return EXPORTERS[name](method)


def graph_inputs(method: Method, plan: GraphPlan) -> list[GraphInput]:
    """The inputs of the exported graph, in order: the condition's, then the plan's extras."""
    spec = condition_spec(method)
    if spec.kind == "label_map":
        out = [GraphInput("label", "int64", ("batch", "height", "width"),
                          f"class ids 0..{spec.num_classes - 1}, {spec.dontcare_label} = "
                          "dont-care")]
        if spec.use_instance:
            out.append(GraphInput("instance", "int64", ("batch", "height", "width"),
                                  "instance ids, Cityscapes encoding (class * 1000 + k for "
                                  "objects, the class id for stuff); only their edges count"))
    elif spec.kind == "image":
        name = "sketch" if method.config.method == "autopainter" else "source"
        out = [GraphInput(name, "float32", ("batch", spec.image_channels, "height", "width"),
                          "the condition image in [-1, 1]" + (" (white paper 1, black lines "
                                                              "-1)" if name == "sketch" else ""))]
    elif spec.kind == "class":
        out = [GraphInput("class", "int64", ("batch",), f"class ids 0..{spec.num_classes - 1}")]
    elif spec.kind == "vector":
        out = [GraphInput("attributes", "float32", ("batch", len(spec.attributes)),
                          "attribute values: " + ", ".join(spec.attributes))]
    else:
        out = []
    return out + list(plan.extras)


def sample_inputs(inputs: list[GraphInput], batch: int, height: int, width: int,
                  spec: ConditionConfig) -> tuple[Tensor, ...]:
    """Random tensors of the inputs' shapes (the ids within the model's classes)."""
    g = torch.Generator().manual_seed(0)
    sizes = {"batch": batch, "height": height, "width": width}
    out = []
    for item in inputs:
        shape = [sizes.get(s, s) for s in item.shape]
        if item.name in ("label", "class"):
            out.append(torch.randint(0, spec.num_classes, shape, generator=g))
        elif item.name == "instance":
            out.append(torch.randint(0, 3, shape, generator=g) * 1000 + 1)
        else:
            out.append(torch.rand(shape, generator=g) * 2 - 1)
    return tuple(out)


def canvas_size(method: Method) -> tuple[int, int]:
    """The run's training crop (H, W), rounded to a size the network takes."""
    data, multiple = method.config.data, method.size_multiple()
    return (deploy.valid_size(round(data.crop_size / data.aspect_ratio), multiple),
            deploy.valid_size(data.crop_size, multiple))


def parse_size(text: str) -> tuple[int, int]:
    """``"256x512"`` -> (256, 512): height x width."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size {text!r} is not HxW (for example 256x512)") from None
    if height < 1 or width < 1:
        raise ConfigError(f"--size {text!r}: height and width must be positive")
    return height, width


def export_onnx(run_dir: str | Path, out: str | Path, size: tuple[int, int] | None = None,
                dynamic: bool = False, precision: str = "fp32",
                calibration: str | Path | None = None, calibration_count: int = 16) -> Path:
    """Write ``out`` (ONNX) and its sidecar ``out.json`` (:func:`condsynth.deploy.sidecar_path`)
    for the run's generator.

    Args:
        run_dir: a run directory (the EMA weights are used when present).
        out: the ``.onnx`` file to write.
        size: (H, W) the graph takes; None = the run's training crop. Must be a multiple of the
            network's down-sampling.
        dynamic: any batch, height and width (multiples of the down-sampling) instead.
        precision: ``fp32``; ``fp16`` or ``bf16`` store and compute the generator in that type
            (inputs and output stay float32), for runtimes with those kernels (GPUs); ``int8``
            quantizes the float32 graph (:func:`quantize_int8`), calibrated on label maps.
        calibration: for ``int8``, a dataset folder (any label layout; its train split, else
            its test split) whose first ``calibration_count`` label maps set the ranges.
    Returns:
        The path of the model file.
    """
    from condsynth.api import load

    return export_method(load(run_dir, device="cpu"), out, size, dynamic, precision,
                         calibration, calibration_count)


def export_method(method: Method, out: str | Path, size: tuple[int, int] | None = None,
                  dynamic: bool = False, precision: str = "fp32",
                  calibration: str | Path | None = None, calibration_count: int = 16) -> Path:
    """:func:`export_onnx` for a method in memory (on the CPU)."""
    if precision not in EXPORT_PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of {', '.join(EXPORT_PRECISIONS)}")
    if precision == "int8":
        if calibration is None:
            raise ConfigError("int8 needs calibration label maps. Fix: pass --calibration DIR, "
                              "a dataset folder like the one the model was trained on.")
        if condition_spec(method).kind != "label_map":
            raise ConfigError("int8 export is calibrated on label maps; this model takes "
                              f"a {condition_spec(method).kind} condition. Fix: export it in "
                              "fp32.")
        fp32 = export_method(method, Path(out).with_name(Path(out).stem + ".fp32.tmp.onnx"),
                             size, dynamic, "fp32")
        try:
            feeds = calibration_feeds(deploy.DeployedModel(fp32), calibration,
                                      calibration_count)
            return quantize_int8(fp32, out, feeds, str(calibration))
        finally:
            fp32.unlink(missing_ok=True)
            deploy.sidecar_path(fp32).unlink(missing_ok=True)
    if dynamic and size is not None:
        raise ConfigError("give --size or --dynamic, not both")
    out = Path(out)
    if out.suffix != ".onnx":
        raise ConfigError(f"{out}: the exported model's file name must end in .onnx")
    plan = plan_export(method)
    inputs = graph_inputs(method, plan)
    spec = condition_spec(method)
    spatial = spec.kind in ("label_map", "image")
    multiple = method.size_multiple()
    if not spatial and size is not None:
        raise ConfigError(f"--size: this {method.config.method} model's pictures have the size "
                          "it was trained for; leave --size out")
    height, width = size or canvas_size(method)
    if spatial and (height % multiple or width % multiple):
        raise ConfigError(f"--size {height}x{width}: height and width must be multiples of "
                          f"{multiple} for this {method.config.method} model (for example "
                          f"{deploy.valid_size(height, multiple)}x"
                          f"{deploy.valid_size(width, multiple)})")
    dtype = PRECISION_DTYPES[precision]
    graph = InferenceGraph(plan, spec, dtype).eval()
    # Traced on a batch of 2 (batch 1 would be specialized) and, for --dynamic, on two
    # multiples of the down-sampling per side (one would be specialized).
    sample_hw = (2 * multiple, 3 * multiple) if dynamic else (height, width)
    sample = sample_inputs(inputs, 2, *sample_hw, spec)
    dims = {"batch": torch.export.Dim("batch", min=1, max=4096)}
    if dynamic and spatial:
        dims["height"] = multiple * torch.export.Dim("height_blocks", min=1, max=4096)
        dims["width"] = multiple * torch.export.Dim("width_blocks", min=1, max=4096)
    dynamic_shapes = tuple({axis: dims[s] for axis, s in enumerate(item.shape) if s in dims}
                           for item in inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(out.name + ".tmp")
    with torch.no_grad():
        output_shape = tuple(graph(*sample).shape[1:])
    # The exporter reports its progress on stdout; the command prints its own summary.
    with (torch.no_grad(), contextlib.redirect_stdout(io.StringIO()),
          warnings.catch_warnings()):
        # Axes that share one dimension (every input's batch) are named once: not a problem.
        warnings.filterwarnings("ignore", message=".*axis name", category=UserWarning)
        torch.onnx.export(graph, sample, str(staging), dynamo=True, external_data=False,
                          input_names=[item.name for item in inputs], output_names=["image"],
                          dynamic_shapes=(dynamic_shapes,), opset_version=OPSETS[precision],
                          verbose=False)
    if dynamic and spatial:
        output_shape = (output_shape[0], "height", "width")
    sidecar = build_sidecar(method, plan, inputs, out.name,
                            None if dynamic or not spatial else (height, width), precision,
                            output_shape)
    deploy.sidecar_path(out).write_text(json.dumps(sidecar, indent=1))
    os.replace(staging, out)
    return out


def build_sidecar(method: Method, plan: GraphPlan, inputs: list[GraphInput], model_file: str,
                  size: tuple[int, int] | None, precision: str,
                  output_shape: tuple[int | str, ...]) -> dict[str, Any]:
    """What a deployment needs to know beside the graph (read by :mod:`condsynth.deploy`)."""
    from condsynth.studio.server import class_table

    spec = condition_spec(method)
    sizes = {} if size is None else {"height": size[0], "width": size[1]}

    def shape(item: GraphInput) -> list[int | str]:
        return [sizes.get(s, s) for s in item.shape]

    spatial = spec.kind in ("label_map", "image")
    sidecar = {
        "format": deploy.FORMAT, "format_version": deploy.FORMAT_VERSION,
        "condsynth_version": __version__, "method": method.config.method,
        "model_file": model_file, "precision": precision,
        "precision_note": PRECISION_NOTES[precision],
        "size": None if size is None else list(size),
        "size_multiple": method.size_multiple() if spatial else None,
        "canvas": list(canvas_size(method)),
        "condition": {"kind": spec.kind, "num_classes": spec.num_classes,
                      "dontcare_label": spec.dontcare_label,
                      "contain_dontcare_label": spec.contain_dontcare_label,
                      "use_instance": spec.use_instance,
                      "image_channels": spec.image_channels},
        "classes": class_table(spec) if spec.kind == "label_map" else [],
        "capabilities": sorted(str(c) for c in method.capabilities()),
        "inputs": [{**asdict(item), "shape": shape(item)} for item in inputs],
        "outputs": [{"name": "image", "dtype": "float32",
                     "shape": ["batch", *(sizes.get(s, s) for s in output_shape)],
                     "description": "the picture in [-1, 1]: (x + 1) * 127.5 gives 0..255"}],
        "randomness": plan.randomness,
        "config": method.config.to_dict(),
    }
    sidecar.update(plan.notes or {})
    return sidecar


# ----------------------------------------------------------------------------- int8


@contextlib.contextmanager
def quiet_root_logger() -> Any:
    """Warnings of libraries that log through the root logger, silenced for a while."""
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def calibration_feeds(model: deploy.DeployedModel, data: str | Path, count: int,
                      phases: tuple[str, ...] = ("train", "test")) -> list[dict[str, np.ndarray]]:
    """Inputs of ``model`` from the first ``count`` label maps of a dataset folder (the first
    of ``phases`` it has), resized to the model's size; looks and codes drawn at random."""
    from condsynth.data.io import read_instance, read_label
    from condsynth.data.layouts import discover

    use_instance = "instance" in model.inputs
    samples = []
    for phase in phases:
        with contextlib.suppress(CondsynthError):
            samples = discover(data, "auto", phase, use_instance=use_instance,
                               require_images=False)[1]
        if samples:
            break
    samples = [s for s in samples if s.label is not None][:count]
    if not samples:
        raise DataError(f"{data}: no label maps found for calibration. Fix: give a dataset "
                        "folder (for example one written by `condsynth data procedural`).")
    height, width = model.size or tuple(model.sidecar["canvas"])
    rng = np.random.default_rng(0)
    feeds = []
    for sample in samples:
        label = deploy.resize_map(read_label(sample.label), height, width)[None]
        model.check_label(label, str(sample.label))
        feed = {"label": label}
        if use_instance:
            feed["instance"] = deploy.resize_map(read_instance(sample.instance), height,
                                                 width)[None]
        if "z" in model.inputs:
            feed["z"] = rng.standard_normal((1, model.inputs["z"]["shape"][1]), np.float32)
        if "features" in model.inputs:
            ids = feed.get("instance", label)
            feed["features"] = deploy.feature_map(ids, model.centres,
                                                  model.inputs["features"]["shape"][1],
                                                  seed=int(rng.integers(2**62)))
        feeds.append(feed)
    return feeds


def quantize_int8(fp32_model: str | Path, out: str | Path,
                  feeds: list[dict[str, np.ndarray]], source: str = "") -> Path:
    """Static int8 quantization of an exported float32 model, with its sidecar.

    QDQ format: every convolution's weights int8 per output channel, its input activations
    uint8 with the min-max range seen on the calibration inputs. The first and last
    convolutions stay float32 (the one-hot input and the picture are where int8 steps show).
    Returns the path of the quantized model.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32_model, out = Path(fp32_model), Path(out)
    sidecar = deploy.read_sidecar(fp32_model)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    prepared = out.with_name(out.stem + ".prepared.tmp.onnx")
    staging = out.with_name(out.name + ".tmp")
    try:
        quant_pre_process(str(fp32_model), str(prepared), skip_symbolic_shape=True)
        import onnx

        convs = [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type == "Conv"]
        # The quantizer reports on stdout and through the root logger; the ranges it finds are
        # what matters, and the caller measures the result.
        with contextlib.redirect_stdout(io.StringIO()), quiet_root_logger():
            quantize_static(str(prepared), str(staging), Reader(),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax,
                            nodes_to_exclude=[convs[0], convs[-1]] if len(convs) > 2 else [])
    finally:
        prepared.unlink(missing_ok=True)
        Path(str(prepared) + ".data").unlink(missing_ok=True)
    sidecar = dict(sidecar, model_file=out.name, precision="int8",
                   precision_note=PRECISION_NOTES["int8"],
                   calibration={"data": source, "inputs": len(feeds)})
    deploy.sidecar_path(out).write_text(json.dumps(sidecar, indent=1))
    os.replace(staging, out)
    return out


# ----------------------------------------------------------------------------- serving


def draw_torch(law: str, shape: tuple[int, ...]) -> Tensor:
    """Noise of ``shape`` from ``law`` (:func:`condsynth.deploy.input_draw`) with torch's
    global generator, as the PyTorch methods draw it."""
    if law == "normal":
        return torch.randn(shape)
    if law == "uniform01":
        return torch.rand(shape)
    if law == "uniform11":
        return torch.rand(shape) * 2 - 1
    raise CondsynthError(f"unknown noise law {law!r} in the sidecar")


class OnnxMethod:
    """An exported model that answers like a loaded :class:`Method`: ``config``,
    ``capabilities()``, ``size_multiple()``, ``device`` and ``generate(cond, *, instance, z,
    style, hints, batch_size)`` with torch tensors, run by ONNX Runtime on the CPU. Randomness
    (z, pix2pixHD's looks) comes from torch's global generator as in the PyTorch method, so
    ``torch.manual_seed`` makes a picture reproducible.
    """

    inference_networks: tuple[str, ...] = ()
    inference_precision = "fp32"

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.model = deploy.DeployedModel(path, threads=threads)
        self.path = Path(path)
        self.config = parse_config(self.model.sidecar["config"], where=str(path))
        self.name = self.config.method
        self.device = torch.device("cpu")

    def size_multiple(self) -> int:
        return self.model.size_multiple

    def capabilities(self) -> frozenset[Capability]:
        # What the graph can do: the style encoder stays behind in PyTorch.
        return frozenset(Capability(c) for c in self.model.sidecar["capabilities"]
                         if c != Capability.STYLE_IMAGE)

    def latent_size(self) -> int | None:
        z = self.model.inputs.get("z")
        return None if z is None else int(z["shape"][1])

    def eval(self) -> OnnxMethod:
        return self

    def cluster_centres(self) -> dict[int, np.ndarray]:
        return {c: v.copy() for c, v in sorted(self.model.centres.items())}

    def feature_map(self, label: Tensor, instance: Tensor | None = None,
                    looks: dict[int, int] | None = None,
                    instance_looks: dict[int, int] | None = None, seed: int | None = None,
                    random_per: str = "instance") -> Tensor:
        """pix2pixHD looks, as ``Pix2PixHD.feature_map``: the same looks for the same seed."""
        if "features" not in self.model.inputs:
            raise CondsynthError(f"{self.path.name} takes no look (no 'features' input).")
        ids = label if self.model.sidecar.get("looks_per") == "class" else instance
        if ids is None:
            raise DataError("this model encodes instance-wise features and needs the instance "
                            "map. Fix: pass it.")
        if seed is None:
            seed = int(torch.randint(0, 2**62, ()).item())
        feat_num = self.model.inputs["features"]["shape"][1]
        return torch.from_numpy(deploy.feature_map(ids.cpu().numpy(), self.model.centres,
                                                   feat_num, looks, instance_looks, seed,
                                                   random_per))

    def generate(self, cond: Tensor | None = None, *, batch_size: int | None = None,
                 z: Tensor | None = None, style: Tensor | None = None,
                 instance: Tensor | None = None, hints: Tensor | None = None,
                 attributes: Tensor | None = None) -> Tensor:
        """As :meth:`Method.generate`: ``z`` is the noise or SPADE's style code, or
        pix2pixHD's feature map; no style image (its encoder is not exported); ``attributes``
        beside a sketch for the models that take them."""
        if style is not None:
            raise CondsynthError(f"{self.path.name}: exported models take no style image (the "
                                 "image encoder is not exported). Fix: leave it out; give z "
                                 "(SPADE's code, pix2pixHD's feature map) instead.")
        inputs = self.model.inputs
        features = None
        if z is not None and "features" in inputs:
            features, z = z.float().cpu().numpy(), None
        elif z is not None and "z" not in inputs:
            raise CondsynthError(f"{self.path.name} takes no z: its output depends on the "
                                 "condition alone.")
        batch = (cond.shape[0] if cond is not None else z.shape[0] if z is not None
                 else batch_size or 1)
        noises: dict[str, np.ndarray] = {}
        for name, spec in inputs.items():     # as the PyTorch methods draw them, in order
            law = deploy.input_draw(name, spec)
            if law is None or (name == "z" and z is not None):
                continue
            noises[name] = draw_torch(law, (batch, spec["shape"][1])).numpy()
        if "z" in noises:
            z = torch.from_numpy(noises.pop("z"))
        if "features" in inputs and features is None:
            if self.model.centres:
                features = self.feature_map(cond, instance).numpy()
            else:
                features = np.zeros((batch, inputs["features"]["shape"][1], *cond.shape[-2:]),
                                    np.float32)

        def array(t: Tensor | None) -> np.ndarray | None:
            return None if t is None else t.cpu().numpy()

        out = self.model.generate(array(cond), array(instance), features=features,
                                  z=array(None if z is None else z.float()),
                                  hints=array(None if hints is None else hints.float()),
                                  batch_size=batch, noises=noises,
                                  attributes=array(None if attributes is None
                                                   else attributes.float()))
        return torch.from_numpy(out)


def load_onnx(path: str | Path, device: str = "auto", precision: str = "fp32",
              channels_last: bool = False) -> OnnxMethod:
    """:class:`OnnxMethod` for ``condsynth.load("model.onnx")``: CPU, the file's precision."""
    if device not in ("auto", "cpu"):
        raise ConfigError(f"{path}: exported models run on the CPU with ONNX Runtime; "
                          f"--device {device} does not apply. Fix: leave --device out.")
    if precision != "fp32" or channels_last:
        raise ConfigError(f"{path}: an exported model runs at the precision it was exported "
                          "with; --precision and --channels-last do not apply. Fix: leave them "
                          "out (export with --precision for another one).")
    return OnnxMethod(path)
