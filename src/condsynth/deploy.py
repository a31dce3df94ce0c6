"""Run an exported generator (``condsynth export``) with ONNX Runtime: no PyTorch needed.

A deployment needs ``onnxruntime``, ``numpy`` and ``pillow``, the ``MODEL.onnx`` file and its
sidecar ``MODEL.json`` (classes, colours, inputs and outputs; see :mod:`condsynth.export`).
This module imports nothing of condsynth but the error types and the file readers (which need
numpy and pillow only), so condsynth installed without its dependencies (``pip install
--no-deps condsynth``) or its ``src`` folder on ``PYTHONPATH`` is enough::

    from condsynth.deploy import DeployedModel

    model = DeployedModel("model.onnx")                  # reads model.json beside it
    picture = model.synthesize(label, instance, seed=0)  # (H, W) ids -> (H, W, 3) uint8

or from the shell: ``python -m condsynth.deploy model.onnx --label L.png --instance I.png
--out picture.png``.

The graph holds the input encoding (one-hot classes, dont-care channel, instance edges), so it
takes the label map's class ids and the instance map's ids as they are. Extra inputs, by
method: pix2pixHD with the feature encoder takes ``features`` (B, feat_num, H, W), the look of
each instance (:meth:`DeployedModel.feature_map` builds it from the clustered looks in the
sidecar); SPADE with the VAE takes ``z`` (B, z_dim); Auto-painter takes ``sketch`` and, with
colour hints, ``hints``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from condsynth.errors import CheckpointError, CondsynthError, DataError

FORMAT = "condsynth-onnx"
FORMAT_VERSION = 1
NUMPY_DTYPES = {"int64": np.int64, "float32": np.float32}


def input_draw(name: str, spec: Mapping[str, Any]) -> str | None:
    """How an input is drawn when not given ("normal", "uniform01", "uniform11"), None for one
    the caller gives (a ``z`` without a ``draw``, as older sidecars have it: N(0, I))."""
    return spec.get("draw") or ("normal" if name == "z" else None)


def draw_numpy(rng: np.random.Generator, law: str, shape: tuple[int, ...]) -> np.ndarray:
    """Noise of ``shape`` from ``law`` (see :func:`input_draw`), float32."""
    if law == "normal":
        out = rng.standard_normal(shape)
    elif law == "uniform01":
        out = rng.random(shape)
    elif law == "uniform11":
        out = rng.random(shape) * 2 - 1
    else:
        raise DataError(f"unknown noise law {law!r} in the sidecar")
    return out.astype(np.float32)


def sidecar_path(model_path: str | Path) -> Path:
    """``model.onnx`` -> ``model.json``: the description written beside an exported model."""
    return Path(model_path).with_suffix(".json")


def read_sidecar(model_path: str | Path) -> dict[str, Any]:
    """The sidecar of an exported model, checked for its format."""
    path = sidecar_path(model_path)
    if not Path(model_path).is_file():
        raise CheckpointError(f"{model_path}: file not found. Fix: give the .onnx file written "
                              "by `condsynth export`.")
    if not path.is_file():
        raise CheckpointError(f"{path}: the sidecar of {model_path} is missing. Fix: keep the "
                              "JSON file `condsynth export` wrote beside the model.")
    try:
        sidecar = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path} could not be read ({err}). Fix: export the model "
                              "again.") from None
    if not isinstance(sidecar, dict) or sidecar.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a condsynth export description (no "
                              f"'format: {FORMAT}').")
    if sidecar.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {sidecar.get('format_version')} is not "
                              f"supported (this condsynth reads {FORMAT_VERSION}). Fix: export "
                              "the model again with this condsynth.")
    return sidecar


def valid_size(size: int, multiple: int) -> int:
    """The nearest multiple of ``multiple`` (at least one multiple)."""
    return max(multiple, int(round(size / multiple)) * multiple)


def resize_map(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of an id map (labels and instances must not blend)."""
    if array.shape == (height, width):
        return array
    ys = (np.arange(height) * array.shape[0] / height).astype(np.int64)
    xs = (np.arange(width) * array.shape[1] / width).astype(np.int64)
    return array[ys][:, xs]


def to_picture(image: np.ndarray) -> np.ndarray:
    """(3, H, W) float in [-1, 1] -> (H, W, 3) uint8, rounded as condsynth saves pictures."""
    scaled = np.round((np.clip(image, -1.0, 1.0) + 1.0) * 127.5)
    return scaled.astype(np.uint8).transpose(1, 2, 0)


def class_of_ids(ids: np.ndarray | int) -> np.ndarray | int:
    """The class of Cityscapes-encoded ids: ``id // 1000`` for ids >= 1000, else the id."""
    if isinstance(ids, np.ndarray):
        return np.where(ids >= 1000, ids // 1000, ids)
    return ids // 1000 if ids >= 1000 else ids


def feature_map(ids: np.ndarray, centres: Mapping[int, np.ndarray], feat_num: int,
                looks: Mapping[int, int] | None = None,
                instance_looks: Mapping[int, int] | None = None, seed: int = 0,
                random_per: str = "instance") -> np.ndarray:
    """pix2pixHD's "pick a look": the feature map built from each class's clustered looks.

    Args:
        ids: (B, H, W) instance ids (class ids for models that pool per class).
        centres: ``{class id: (K, feat_num)}`` cluster centres.
        looks: ``{class id: cluster}``; instance_looks: ``{instance id: cluster}`` (wins).
        seed: seed of the random choice for the rest (numpy's default generator), drawn per
            ``instance`` or per ``class``, in the order of the sorted ids: the same looks as
            ``Pix2PixHD.feature_map`` with that seed.
    Returns:
        (B, feat_num, H, W) float32; classes without centres get zeros.
    """
    looks, instance_looks = dict(looks or {}), dict(instance_looks or {})
    rng = np.random.default_rng(seed)
    out = np.zeros((ids.shape[0], feat_num, *ids.shape[1:]), np.float32)
    for b in range(ids.shape[0]):
        unique, inverse = np.unique(ids[b], return_inverse=True)
        table = np.zeros((len(unique), feat_num), np.float32)
        class_pick: dict[int, int] = {}
        for row, i in enumerate(unique.tolist()):
            c = class_of_ids(i)
            options = centres.get(c)
            if options is None or len(options) == 0:
                continue
            if i in instance_looks:
                pick = instance_looks[i]
            elif c in looks:
                pick = looks[c]
            elif random_per == "class":
                pick = class_pick.setdefault(c, int(rng.integers(len(options))))
            else:
                pick = int(rng.integers(len(options)))
            if not 0 <= pick < len(options):
                raise CondsynthError(f"look {pick} for class {c} (id {i}) does not exist: the "
                                     f"class has {len(options)} clusters (0..{len(options) - 1}).")
            table[row] = options[pick]
        out[b] = table[inverse.reshape(ids.shape[1:])].transpose(2, 0, 1)
    return out


class DeployedModel:
    """An exported generator in an ONNX Runtime session.

    Args:
        path: the ``.onnx`` file; its sidecar ``.json`` must lie beside it.
        threads: intra-op threads (None: ONNX Runtime's default, one per core).
        providers: ONNX Runtime execution providers, in order of preference.
    """

    def __init__(self, path: str | Path, threads: int | None = None,
                 providers: Sequence[str] = ("CPUExecutionProvider",)) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise CondsynthError("running an exported model needs onnxruntime. Fix: pip install "
                                 "onnxruntime (or condsynth[onnx]).") from None
        self.path = Path(path)
        self.sidecar = read_sidecar(path)
        self.inputs = {spec["name"]: spec for spec in self.sidecar["inputs"]}
        self.condition = self.sidecar["condition"]
        self.centres = {int(c): np.asarray(v, np.float32)
                        for c, v in (self.sidecar.get("looks") or {}).items()}
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=list(providers))
        except Exception as err:  # ONNX Runtime raises its own exception types
            raise CheckpointError(f"{path}: ONNX Runtime could not load it ({err}).") from None

    # ----------------------------------------------------------------------------- facts
    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this (1 for pictures of a fixed size)."""
        return int(self.sidecar["size_multiple"] or 1)

    @property
    def size(self) -> tuple[int, int] | None:
        """The (H, W) the model was exported for, or None when it takes any valid size."""
        size = self.sidecar.get("size")
        return None if size is None else (int(size[0]), int(size[1]))

    # ----------------------------------------------------------------------------- running
    def run(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The graph on named arrays (see the sidecar's ``inputs``) -> (B, 3, H, W) float32
        images in [-1, 1]. Names, dtypes, ranks, sizes and class ids are checked first."""
        missing = sorted(set(self.inputs) - set(inputs))
        unknown = sorted(set(inputs) - set(self.inputs))
        if missing or unknown:
            raise DataError(f"{self.path.name}: inputs {', '.join(missing) or '-'} missing, "
                            f"{', '.join(unknown) or '-'} unknown; the model takes "
                            f"{', '.join(self.inputs)}")
        if self.condition["kind"] in ("label_map", "image"):   # (B, [C,] H, W)
            self._check_size(*np.shape(inputs[next(iter(self.inputs))])[-2:])
        feed = {}
        for name, spec in self.inputs.items():
            array = np.asarray(inputs[name])
            wanted = NUMPY_DTYPES[spec["dtype"]]
            if spec["dtype"] == "int64" and not np.issubdtype(array.dtype, np.integer):
                raise DataError(f"{name}: expected integer ids, found dtype {array.dtype}")
            array = np.ascontiguousarray(array, dtype=wanted)
            shape = spec["shape"]
            fixed = [(axis, size) for axis, size in enumerate(shape) if isinstance(size, int)]
            if array.ndim != len(shape) or any(array.shape[a] != s for a, s in fixed):
                raise DataError(f"{name}: shape {array.shape} does not fit the model's "
                                f"{tuple(shape)}")
            feed[name] = array
        if "label" in feed:
            self.check_label(feed["label"])
        return self.session.run(["image"], feed)[0]

    def _check_size(self, height: int, width: int) -> None:
        m = self.size_multiple
        if self.size is not None and (height, width) != self.size:
            raise DataError(f"{self.path.name} was exported for {self.size[1]}x{self.size[0]} "
                            f"(width x height); the input is {width}x{height}. Fix: "
                            "synthesize() resizes for you, or export with --dynamic.")
        if height % m or width % m:
            raise DataError(f"input size {width}x{height} is not a multiple of {m}. Fix: "
                            "synthesize() resizes for you.")

    def check_label(self, label: np.ndarray, source: str = "label map") -> None:
        """A :class:`DataError` naming the bad ids when a label map holds unknown classes."""
        n, dontcare = self.condition["num_classes"], self.condition["dontcare_label"]
        bad = (label < 0) | ((label >= n) & (label != dontcare))
        if bad.any():
            values = np.unique(label[bad]).tolist()
            shown = ", ".join(str(v) for v in values[:8]) + (" ..." if len(values) > 8 else "")
            raise DataError(f"{source}: label value(s) {shown} outside 0..{n - 1} (dont-care "
                            f"{dontcare}). Fix: this model knows classes 0..{n - 1}; relabel "
                            "the map with those ids.")

    def generate(self, cond: np.ndarray | None = None, instance: np.ndarray | None = None, *,
                 features: np.ndarray | None = None, z: np.ndarray | None = None,
                 hints: np.ndarray | None = None, batch_size: int | None = None,
                 seed: int | None = None, attributes: np.ndarray | None = None,
                 noises: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Batched synthesis at a size the model takes.

        Args:
            cond: the condition: (B, H, W) class ids of a label map, a (B, C, H, W) image or
                sketch in [-1, 1], (B,) class ids, (B, A) attributes; None for noise-only
                models.
            instance: (B, H, W) instance ids (Cityscapes encoding) when the model uses them.
            features: pix2pixHD looks, (B, feat_num, H, W); None: a random look per instance
                from the clustered looks (zeros when the model has none).
            z: SPADE's style code or a noise-driven model's noise, (B, z_dim); None: drawn
                from N(0, I).
            hints: Auto-painter colour hints, (B, 4, H, W); None: no hints.
            batch_size: how many pictures a noise-only model makes (default: z's, else 1).
            attributes: (B, A) attribute values for models that take them beside a sketch.
            noises: the model's other noise inputs by name (see the sidecar's ``inputs``, e.g.
                attr2sketch's ``eps``); those not given are drawn as their ``draw`` says.
            seed: seed of the random looks or codes (numpy's default generator).
        Returns:
            (B, C, H, W) float32 images in [-1, 1].
        """
        rng = np.random.default_rng(seed)
        kind = self.condition["kind"]
        feed: dict[str, np.ndarray] = {}
        if kind != "none":
            if cond is None:
                raise DataError(f"this model is conditioned on a {kind}; none was given")
            cond = np.asarray(cond)
            feed[next(iter(self.inputs))] = cond
            batch = cond.shape[0]
        else:
            batch = len(z) if z is not None else batch_size or 1
        if "instance" in self.inputs:
            if instance is None:
                raise DataError("this model uses instance maps but none was given. Fix: pass "
                                "one; for a map without instances, pass the label map itself.")
            if np.shape(instance) != cond.shape:
                raise DataError(f"instance map shape {np.shape(instance)} differs from the "
                                f"label map's {cond.shape}")
            feed["instance"] = np.asarray(instance)
        if "features" in self.inputs:
            if features is None:
                ids = cond if self.sidecar.get("looks_per") == "class" else feed["instance"]
                features = feature_map(ids, self.centres, self.inputs["features"]["shape"][1],
                                       seed=int(rng.integers(2**62)))
            feed["features"] = features
        noises = dict(noises or {})
        if z is not None:
            noises["z"] = z
        for name, spec in self.inputs.items():        # noise inputs, drawn in their order
            law = input_draw(name, spec)
            if law is None:
                continue
            size = spec["shape"][1]
            value = noises.get(name)
            value = (draw_numpy(rng, law, (batch, size)) if value is None
                     else np.asarray(value, np.float32))
            feed[name] = np.broadcast_to(value.reshape(-1, size), (batch, size))
        if "attributes" in self.inputs and kind != "vector":
            if attributes is None:
                raise DataError(f"this model takes attributes beside the {kind} condition "
                                f"({self.inputs['attributes']['description']}). Fix: pass "
                                "them, (B, A) values.")
            feed["attributes"] = np.asarray(attributes, np.float32)
        elif attributes is not None:
            raise DataError("this model takes no attributes beside its condition. Fix: leave "
                            "them out.")
        if "hints" in self.inputs:
            feed["hints"] = (np.zeros((batch, 4, *cond.shape[-2:]), np.float32)
                             if hints is None else hints)
        elif hints is not None:
            raise DataError("this model was trained without colour hints. Fix: leave them out.")
        return self.run(feed)

    def synthesize(self, label: np.ndarray, instance: np.ndarray | None = None, *,
                   features: np.ndarray | None = None, z: np.ndarray | None = None,
                   seed: int | None = None) -> np.ndarray:
        """(H, W) class ids (+ instance ids) -> (H, W, 3) uint8 picture, at any size: the maps
        are resized (nearest) to the size the model takes and the picture back (bicubic)."""
        height, width = label.shape
        if self.size is not None:
            h, w = self.size
        else:
            h, w = valid_size(height, self.size_multiple), valid_size(width, self.size_multiple)
        label_r = resize_map(label, h, w)[None]
        instance_r = None if instance is None else resize_map(instance, h, w)[None]
        image = self.generate(label_r, instance_r, features=features, z=z, seed=seed)[0]
        picture = to_picture(image)
        if (h, w) != (height, width):
            picture = np.asarray(Image.fromarray(picture).resize((width, height),
                                                                 Image.Resampling.BICUBIC))
        return picture


# ----------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    """``python -m condsynth.deploy MODEL.onnx --label L.png [--instance I.png] --out O.png``"""
    from condsynth.data.io import read_instance, read_label

    parser = argparse.ArgumentParser(
        prog="python -m condsynth.deploy",
        description="Synthesize a picture with an exported model, with ONNX Runtime only.")
    parser.add_argument("model", help="the .onnx file written by `condsynth export`")
    parser.add_argument("--label", required=True, help="label map: single-channel PNG of ids")
    parser.add_argument("--instance", help="instance map (Cityscapes encoding)")
    parser.add_argument("--out", required=True, help="output PNG")
    parser.add_argument("--seed", type=int, default=None, help="seed of random looks or codes")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads")
    args = parser.parse_args(argv)
    try:
        model = DeployedModel(args.model, threads=args.threads)
        if model.condition["kind"] != "label_map":
            raise DataError(f"{args.model} takes a {model.condition['kind']} condition; this "
                            "command reads label maps. Fix: use condsynth synthesize.")
        label = read_label(args.label)
        instance = read_instance(args.instance) if args.instance else None
        if "instance" in model.inputs and instance is None:
            raise DataError(f"{args.label}: this model uses instance maps. Fix: pass "
                            "--instance I.png (or the label map itself).")
        if instance is not None and instance.shape != label.shape:
            raise DataError(f"{args.instance}: size differs from the label map {args.label}")
        model.check_label(label, args.label)
        picture = model.synthesize(label, instance, seed=args.seed)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(picture).save(args.out)
    except CondsynthError as err:
        print(f"condsynth: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
