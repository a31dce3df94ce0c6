"""The studio's web server: the page, and an HTTP API around ``Method.generate``.

The page (``static/``) paints a layout in the browser and asks this server for the picture, as
GauGAN's demo did (Park et al., CVPR 2019); noise-driven models (DCGAN) get new samples, a class
to draw and a walk between two latent codes instead of a canvas. Built on the standard library's
threading HTTP server: no dependency beyond condsynth's own, full control over body sizes, and
one thread per request, so a slow picture never blocks the page's other requests.

HTTP API (JSON in and out unless said otherwise; every error is ``{"error": message}`` with a
4xx status for a problem with the request and 500 when the model itself failed):

====================================  ========================================================
``GET /``, ``GET /static/NAME``       the page and its files (a fixed list read at start;
                                      no other path of the disk is ever served)
``GET /health``                       ``{"status": "ok", "models": N, "device": ...}``
``GET /api/models``                   every run: id, method, mode (``paint`` / ``sketch`` /
                                      ``sample``), canvas size, classes, which style
                                      controls apply, ``latent_size`` (sample mode)
``GET /api/looks?model=ID``           pix2pixHD: a thumbnail per clustered look of each class
``POST /api/generate``                a layout, a sketch or seeds in; ``{"image": data URL
                                      of the PNG, "ms": inference time, "seed", "notes"}``
                                      out (a pipeline run adds ``"stages": [{"stage",
                                      "image"}]``, every stage's picture in chain order)
``POST /api/upload/KIND?model=ID``    a file as the raw request body (KIND ``label``,
``&name=FILE``                        ``instance``, ``style`` or ``sketch``): decoded,
                                      checked against the model, resized to its canvas
``POST /api/png``                     ``{"model", "kind": "label" | "instance", "map"}`` ->
                                      a single-channel PNG of the exact ids (image/png)
====================================  ========================================================

Maps travel as ``{"width": W, "height": H, "dtype": "uint8" | "uint16" | "int32", "data":
base64 of the little-endian values, row by row}`` (``"channels": 4`` for the RGBA hint layer):
exact ids, no colour round trip. A generate request holds ``model``, ``seed`` and either
``label`` (+ ``instance``, ``style`` (base64 PNG), ``looks`` ``{class: cluster}``,
``instance_looks`` ``{instance id: cluster}``) or ``sketch`` (+ ``hints``) or, for a sample
model (capability UNCONDITIONAL or CLASS), ``class`` (an id; class models only) and, when the
model has a latent, ``seed_b`` and ``t`` (a number in 0..1, default 0): the point at ``t`` on
the straight walk from the code of ``seed`` (sample A) to the code of ``seed_b`` (sample B).

Reproducibility: every picture is ``torch.manual_seed(seed)`` followed by one ``generate``
call, so the same layout and seed give the same picture as a direct call in Python. Torch's
random generator is one per process, so seeding and generating are serialized by one lock
(besides each model's own lock): concurrent requests queue instead of mixing their noise.
A sample model with a latent draws its codes from generators of their own::

    z_a = torch.randn(1, method.latent_size(), generator=torch.Generator().manual_seed(seed))
    z_b = torch.randn(1, method.latent_size(), generator=torch.Generator().manual_seed(seed_b))
    torch.manual_seed(seed)
    picture = method.generate(cond, z=(1 - t) * z_a + t * z_b)  # cond: tensor([class]) or None

(``z = z_a`` without ``seed_b``); one without a latent is ``torch.manual_seed(seed)`` and
``method.generate(cond, batch_size=1)``. Greyscale models answer with a greyscale PNG.

Attributes: a model whose ``describe`` lists ``attributes`` (an attributes -> picture run such
as attr2sketch, or a pipeline whose chain takes ``input:attributes``) needs ``attributes`` in
the request: one number per name, in that order, 1 for on and -1 for off (the page's toggles).
Its picture is ``torch.manual_seed(seed)`` and ``method.generate(attributes)`` (a pipeline:
``run_chain(..., 1, {"attributes": attributes})``), which is what ``condsynth synthesize RUN
--attributes "NAME=1,..." --seed SEED`` does with the attributes that are on (the others take
the ``--absent`` default, -1): the same pixels.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import io
import json
import socket
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from scipy import ndimage

from condsynth.api import load
from condsynth.conditions import describe_condition
from condsynth.data.dataset import image_to_tensor, tensor_to_image
from condsynth.data.labels import check_label_values
from condsynth.data.procedural import CLASS_COLOURS, CLASS_NAMES, THING_CLASSES
from condsynth.data.sketches import hints_from_array, normalize_sketch, sketch_to_tensor
from condsynth.errors import CondsynthError
from condsynth.methods.base import Capability, Method
from condsynth.pages import default_colours
from condsynth.synthesize import resize_map, valid_size
from condsynth.web import SECURITY_HEADERS, host_refusal, is_loopback, origin_refusal

__all__ = ["StudioError", "StudioModel", "StudioServer", "make_server", "load_models", "model_ids",
           "class_table", "sample_classes", "latent_code", "derive_instances", "decode_array",
           "encode_array", "is_loopback"]

MAX_UPLOAD_BYTES = 16 * 2**20      # one uploaded file (a style photo, a label map)
MAX_UPLOAD_PIXELS = 4096 * 4096    # decoded size of an upload, read from its header before
                                   # decoding: a 35 KB PNG may hold 6000x6000 pixels (0.4 GB
                                   # once decoded and converted); canvases are far smaller
UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP")   # formats whose size the header tells at once
WORKERS = 2                        # decodes and pictures at once (each holds decoded images)
QUEUE = 16                         # requests waiting for a worker; beyond, 503 "busy"
MAX_CONNECTIONS = 32               # open connections (one thread each); beyond, 503
REQUEST_TIMEOUT = 30.0             # seconds a client may stay silent before it is dropped
MAX_DRAIN_BYTES = 64 * 2**20       # an over-large body up to this size is read and dropped, so
                                   # the browser gets the 413 message instead of a reset
THUMBNAIL = 48                     # side of a look thumbnail in pixels
SEED_LIMIT = 2**63                 # seeds are non-negative int64
DTYPES = {"uint8": np.dtype("<u1"), "uint16": np.dtype("<u2"), "int32": np.dtype("<i4")}
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".png": "image/png",
                 ".svg": "image/svg+xml", ".ico": "image/x-icon"}

_BUSY = b'{"error": "the studio is busy: too many connections; try again in a moment"}'
BUSY_ANSWER = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_BUSY), _BUSY))

# torch's random generator is process-wide: seeding and the generate call that draws from it
# (dropout noise, SPADE's z, pix2pixHD's random looks) must not interleave between requests.
_RNG_LOCK = threading.Lock()


class StudioError(Exception):
    """A request the studio refuses: an HTTP status and a message the page shows as it is."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# ----------------------------------------------------------------------------- arrays


def decode_array(raw: Any, what: str, height: int, width: int, dtypes: tuple[str, ...],
                 channels: int = 1) -> np.ndarray:
    """A map sent by the page (see the module docstring) as (H, W) or (H, W, channels).

    Raises :class:`StudioError` (400) when it is malformed or not of the canvas' size.
    """
    if not isinstance(raw, dict):
        raise StudioError(HTTPStatus.BAD_REQUEST, f"{what}: expected an object with width, "
                          "height, dtype and data (base64)")
    if (raw.get("width"), raw.get("height")) != (width, height):
        raise StudioError(HTTPStatus.BAD_REQUEST, f"{what}: size {raw.get('width')}x"
                          f"{raw.get('height')} but this model's canvas is {width}x{height} "
                          "(width x height)")
    if raw.get("dtype") not in dtypes:
        raise StudioError(HTTPStatus.BAD_REQUEST, f"{what}: dtype {raw.get('dtype')!r}, "
                          f"expected one of {', '.join(dtypes)}")
    if raw.get("channels", 1) != channels:
        raise StudioError(HTTPStatus.BAD_REQUEST, f"{what}: {raw.get('channels')} channels, "
                          f"expected {channels}")
    dtype = DTYPES[raw["dtype"]]
    try:
        data = base64.b64decode(raw.get("data", ""), validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise StudioError(HTTPStatus.BAD_REQUEST, f"{what}: data is not valid base64") from None
    expected = height * width * channels * dtype.itemsize
    if len(data) != expected:
        raise StudioError(HTTPStatus.BAD_REQUEST, f"{what}: {len(data)} bytes of data, "
                          f"expected {expected} ({width}x{height}x{channels} {raw['dtype']})")
    shape = (height, width) if channels == 1 else (height, width, channels)
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def encode_array(array: np.ndarray, dtype: str) -> dict[str, Any]:
    """The inverse of :func:`decode_array`: an (H, W) or (H, W, C) map as sent."""
    height, width = array.shape[:2]
    data = np.ascontiguousarray(array.astype(DTYPES[dtype])).tobytes()
    out = {"width": width, "height": height, "dtype": dtype,
           "data": base64.b64encode(data).decode("ascii")}
    if array.ndim == 3:
        out["channels"] = array.shape[2]
    return out


def png_bytes(array: np.ndarray) -> bytes:
    """(H, W, 3) uint8, (H, W) uint8 or (H, W) uint16 as PNG bytes (modes RGB, L, I;16)."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def derive_instances(label: np.ndarray, things: frozenset[int]) -> np.ndarray:
    """An instance map for a label map that came without one (Cityscapes encoding): stuff
    pixels hold their class id, each 4-connected blob of thing class ``c`` is ``c*1000 + k``."""
    instance = label.astype(np.int64)
    for c in sorted(things):
        blobs, _ = ndimage.label(label == c)               # 4-connectivity: the default cross
        instance = np.where(blobs > 0, c * 1000 + blobs, instance)
    return instance


# ----------------------------------------------------------------------------- uploads


def open_upload(data: bytes, name: str) -> Image.Image:
    """Decode an uploaded file (fully, so truncation is found here) or refuse it with 415."""
    if not data:
        raise StudioError(HTTPStatus.BAD_REQUEST, f"{name}: the file is empty")
    try:
        img = Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS)   # reads the header only
    except (UnidentifiedImageError, OSError, ValueError):
        raise StudioError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                          f"{name} is not an image the studio can read. Fix: upload a PNG "
                          "(label and instance maps) or a PNG or JPEG (style images, "
                          "sketches).") from None
    if img.width * img.height > MAX_UPLOAD_PIXELS:
        raise StudioError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                          f"{name} is {img.width}x{img.height} pixels; the studio takes at most "
                          f"{MAX_UPLOAD_PIXELS / 1e6:.1f} megapixels. Fix: scale it down (the "
                          "model's canvas is far smaller).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning,
            Image.DecompressionBombError) as err:
        raise StudioError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                          f"{name} could not be decoded as an image ({err}). Fix: re-export "
                          "it as a PNG.") from None
    return img


def _ids(img: Image.Image) -> np.ndarray:
    """Pixel values of a single-channel image as int64 (16-bit values never wrap negative)."""
    array = np.asarray(img)
    if array.dtype == np.int16:
        array = array.view(np.uint16)
    return array.astype(np.int64)


def rgb_on_white(img: Image.Image) -> np.ndarray:
    """Any image as (H, W, 3) uint8 RGB; transparent parts become white paper."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(paper, rgba).convert("RGB")).copy()
    if img.mode.startswith("I;16"):
        return np.repeat((_ids(img) >> 8).astype(np.uint8)[..., None], 3, axis=2)
    return np.asarray(img.convert("RGB")).copy()


# ----------------------------------------------------------------------------- models


def class_table(label_config: Any) -> list[dict[str, Any]]:
    """The palette of a label-map model: ``[{"id", "name", "colour", "thing"}]``.

    Names and colours come from the run's config (``label.class_names`` / ``class_colours``,
    which training copies from the dataset's ``classes.json``). A run that stores none and has
    the procedural scenes' 11 classes gets their names and colours; any other gets "class i"
    and distinct colours. Thing classes (a new instance id per stroke) are the procedural
    scenes' ``THING_CLASSES`` when the names are theirs; every class of other runs is stuff.
    """
    n = int(label_config.num_classes)
    names = [str(name) for name in label_config.class_names[:n]]
    colours = [[int(v) for v in c] for c in label_config.class_colours[:n]]
    if not names and n == len(CLASS_NAMES):
        names, colours = list(CLASS_NAMES), [list(c) for c in CLASS_COLOURS]
    things = THING_CLASSES if names == CLASS_NAMES else frozenset()
    names += [f"class {i}" for i in range(len(names), n)]
    colours += default_colours(n)[len(colours):]
    return [{"id": i, "name": names[i], "colour": colours[i], "thing": i in things}
            for i in range(n)]


def sample_classes(spec: Any) -> list[dict[str, Any]]:
    """The classes a class-conditional model draws: ``[{"id", "name"}]`` ("class i" where the
    run's config names none)."""
    names = [str(name) for name in spec.class_names]
    return [{"id": i, "name": names[i] if i < len(names) else f"class {i}"}
            for i in range(int(spec.num_classes or 0))]


def latent_code(seed: int, size: int) -> torch.Tensor:
    """The (1, size) code of a seed in sample mode: N(0, I) from a generator of its own."""
    return torch.randn(1, size, generator=torch.Generator().manual_seed(seed))


class StudioModel:
    """One run served by the studio: the loaded method, its canvas and controls, and a lock.

    Args:
        model_id: the name the page shows and sends (the run folder's name, made unique).
        run_dir: the run directory (shown in the page).
        method: the method from :func:`condsynth.api.load`.

    The mode follows the method's capabilities: ``paint`` (a label map), ``sketch`` (a line
    drawing) or ``sample`` (noise alone, or a class). The canvas is the run's training crop
    (``data.crop_size`` wide, ``crop_size / aspect_ratio`` high), rounded to a size the network
    takes (:meth:`Method.size_multiple`); in sample mode it is the size of the pictures.
    """

    def __init__(self, model_id: str, run_dir: str | Path, method: Method) -> None:
        self.id = model_id
        self.run_dir = Path(run_dir)
        self.method = method
        config = method.config
        spec = config.condition
        capabilities = method.capabilities()
        if Capability.PAINT in capabilities:
            self.mode = "paint"
        elif Capability.SKETCH in capabilities:
            self.mode = "sketch"
        elif capabilities & {Capability.UNCONDITIONAL, Capability.CLASS}:
            self.mode = "sample"
        elif Capability.ATTRIBUTES in capabilities and spec.kind == "vector":
            self.mode = "sample"                 # attributes -> picture: toggles and a seed
        else:
            raise CondsynthError(
                f"{run_dir}: this {config.method} run is conditioned on a "
                f"{describe_condition(spec)}, which the studio cannot take (it paints label "
                "maps, colours line sketches and samples from noise or a class). Fix: use "
                "`condsynth synthesize` for it.")
        multiple = method.size_multiple()
        self.width = valid_size(config.data.crop_size, multiple)
        self.height = valid_size(round(config.data.crop_size / config.data.aspect_ratio),
                                 multiple)
        self.classes: list[dict[str, Any]] = []
        self.things: frozenset[int] = frozenset()
        if self.mode == "paint":
            self.classes = class_table(spec)
            self.things = frozenset(c["id"] for c in self.classes if c["thing"])
        elif Capability.CLASS in capabilities:
            self.classes = sample_classes(spec)
        # Attribute names of an attributes -> picture model (toggles in the page).
        self.attributes: list[str] = (list(spec.attributes) if self.mode == "sample"
                                      and Capability.ATTRIBUTES in capabilities else [])
        # Sample mode: the length of z when the model samples from a latent the studio can
        # draw and walk in, else None (another seed is then the only control).
        self.latent_size = (method.latent_size() if self.mode == "sample"
                            and Capability.LATENT in capabilities and not self.attributes
                            else None)
        # Which controls apply: what the method declares it can do.
        self.hints = Capability.HINTS in capabilities
        self.style_image = self.mode == "paint" and Capability.STYLE_IMAGE in capabilities
        centres = (method.cluster_centres() if Capability.CLUSTER_LOOKS in capabilities
                   else {})
        self.clusters = {int(c): len(v) for c, v in centres.items() if len(v)}
        # Whether another seed gives another picture ("another look").
        self.random = Capability.RANDOM_LOOKS in capabilities
        self.lock = threading.Lock()
        self._thumbnails: list[dict[str, Any]] | None = None

    @property
    def label_dtype(self) -> str:
        spec = self.method.config.condition
        return "uint8" if max(spec.num_classes or 0, spec.dontcare_label) < 256 else "uint16"

    def describe(self) -> dict[str, Any]:
        """What the page needs to know about this model."""
        spec = self.method.config.condition
        eraser = spec.dontcare_label if spec.contain_dontcare_label else 0
        return {
            "id": self.id, "run": str(self.run_dir), "method": self.method.config.method,
            "mode": self.mode, "width": self.width, "height": self.height,
            "size_multiple": self.method.size_multiple(), "device": str(self.method.device),
            "classes": self.classes, "dontcare": spec.dontcare_label, "eraser": eraser,
            "use_instance": bool(spec.use_instance), "label_dtype": self.label_dtype,
            "style_image": self.style_image, "random": self.random,
            "looks": {str(c): k for c, k in sorted(self.clusters.items())},
            "hints": self.hints, "latent": self.latent_size is not None,
            "latent_size": self.latent_size, "attributes": self.attributes,
        }

    # ----------------------------------------------------------------------------- checks
    def check_label(self, label: np.ndarray, source: str) -> None:
        """Refuse class ids the model does not know (422 with the model's classes)."""
        spec = self.method.config.condition
        names = ", ".join(f"{c['id']} {c['name']}" for c in self.classes)
        try:
            check_label_values(torch.from_numpy(label)[None], spec, source,
                               fix=f"this model knows the classes {names} and "
                               f"{spec.dontcare_label} (dont-care); relabel the map with those "
                               "ids, or choose the model it was made for")
        except CondsynthError as err:
            raise StudioError(HTTPStatus.UNPROCESSABLE_ENTITY, str(err)) from None

    # ----------------------------------------------------------------------------- synthesis
    def _run(self, seed: int, generate: Any) -> tuple[np.ndarray, float, list[str]]:
        """``torch.manual_seed(seed)``, then ``generate()`` -> (picture, milliseconds, notes),
        under the model's lock and the process-wide RNG lock; warnings become notes. The
        picture is (H, W, 3) uint8, or (H, W) for a greyscale model (a greyscale PNG)."""
        with self.lock, _RNG_LOCK, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            start = time.perf_counter()
            torch.manual_seed(seed)
            fake = generate()                                            # (1, C, H, W)
            picture = tensor_to_image(fake[0])   # on the CPU: the time includes any GPU sync
            ms = (time.perf_counter() - start) * 1000.0
        if fake.shape[1] == 1:
            picture = picture[..., 0]            # tensor_to_image repeats the one channel
        notes = list(dict.fromkeys(str(w.message) for w in caught))
        return picture, ms, notes

    def paint(self, label: np.ndarray, instance: np.ndarray | None = None,
              style: np.ndarray | None = None, looks: dict[int, int] | None = None,
              instance_looks: dict[int, int] | None = None,
              seed: int = 0) -> tuple[np.ndarray, float, list[str]]:
        """The picture for a label map (H, W), as ``torch.manual_seed(seed)`` then
        ``generate(label, instance, style)``; with chosen pix2pixHD looks (and no style image),
        ``generate(label, instance, z=feature_map(label, instance, looks, instance_looks,
        seed=seed))``. Returns (H, W, 3) uint8, the inference time in ms and notes."""
        method = self.method
        device = method.device
        label_t = torch.from_numpy(label.astype(np.int64))[None].to(device)     # (1, H, W)
        instance_t = (None if instance is None
                      else torch.from_numpy(instance.astype(np.int64))[None].to(device))
        style_t = None if style is None else image_to_tensor(style)[None].to(device)
        if (looks or instance_looks) and style is None:
            if not self.clusters:
                raise StudioError(HTTPStatus.UNPROCESSABLE_ENTITY,
                                  "this model has no clustered looks to choose from")

            def generate() -> torch.Tensor:
                features = method.feature_map(label_t, instance_t, looks, instance_looks,
                                              seed=seed)                # (1, feat_num, H, W)
                return method.generate(label_t, instance=instance_t, z=features)
        else:
            def generate() -> torch.Tensor:
                return method.generate(label_t, instance=instance_t, style=style_t)
        return self._run(seed, generate)

    def colour_sketch(self, sketch: np.ndarray, hints: np.ndarray | None = None,
                      seed: int = 0) -> tuple[np.ndarray, float, list[str]]:
        """Auto-painter: (H, W) uint8 sketch (paper 255) and an optional (H, W, 4) RGBA hint
        layer (transparent = no hint) -> picture, ms, notes."""
        sketch_t = sketch_to_tensor(sketch)[None].to(self.method.device)      # (1, 1, H, W)
        kwargs: dict[str, torch.Tensor] = {}
        if hints is not None and bool((hints[..., 3] > 0).any()):
            if not self.hints:
                raise StudioError(HTTPStatus.UNPROCESSABLE_ENTITY,
                                  "this model was trained without colour hints; clear the hint "
                                  "strokes")
            kwargs["hints"] = hints_from_array(hints)[None].to(self.method.device)
        return self._run(seed, lambda: self.method.generate(sketch_t, **kwargs))

    def sample(self, seed: int, cls: int | None = None, seed_b: int | None = None,
               t: float = 0.0) -> tuple[np.ndarray, float, list[str]]:
        """A noise-driven model's picture (the recipe of the module docstring): z on the walk
        from the code of ``seed`` (t=0) to the code of ``seed_b`` (t=1) when the model has a
        latent, else ``generate(cond, batch_size=1)`` after ``torch.manual_seed(seed)``;
        ``cls`` is the class of a class model."""
        method = self.method
        cond = (None if cls is None
                else torch.tensor([cls], dtype=torch.int64, device=method.device))     # (1,)
        if self.latent_size is None:
            return self._run(seed, lambda: method.generate(cond, batch_size=1))
        # Codes from generators of their own: the same seed is the same z, whatever else
        # drew from torch's global generator.
        z = latent_code(seed, self.latent_size)                                # (1, latent)
        if seed_b is not None:
            z = (1 - t) * z + t * latent_code(seed_b, self.latent_size)
        return self._run(seed, lambda: method.generate(cond, z=z.to(method.device)))

    def attribute_sample(self, seed: int,
                         attributes: torch.Tensor) -> tuple[np.ndarray, float, list[str]]:
        """An attributes -> picture model's picture: ``torch.manual_seed(seed)`` then
        ``generate(attributes)`` ((1, A)), as ``condsynth synthesize RUN --attributes ...
        --seed S`` makes it."""
        method = self.method
        return self._run(seed, lambda: method.generate(attributes.to(method.device)))

    def look_thumbnails(self) -> list[dict[str, Any]]:
        """pix2pixHD: ``[{"id": class, "looks": [data URL, ...]}]``, one small picture per
        cluster: the class filling the canvas in that look. Made once, then cached."""
        if not self.clusters:
            raise StudioError(HTTPStatus.NOT_FOUND, f"model {self.id} has no clustered looks "
                              "(a pix2pixHD run after `condsynth features` has them)")
        with self.lock:
            if self._thumbnails is not None:
                return self._thumbnails
            method, device = self.method, self.method.device
            rows = []
            with _RNG_LOCK, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for c, count in sorted(self.clusters.items()):
                    label = torch.full((1, self.height, self.width), c, dtype=torch.int64,
                                       device=device)
                    # One vector per look, then one batched pass: (K, feat_num, H, W).
                    features = torch.cat([method.feature_map(label, label, {c: k}, seed=0)
                                          for k in range(count)])
                    labels = label.expand(count, -1, -1)
                    fake = method.generate(labels, instance=labels, z=features)
                    looks = []
                    for picture in fake:
                        thumb = Image.fromarray(tensor_to_image(picture)).resize(
                            (THUMBNAIL, THUMBNAIL), Image.Resampling.BOX)
                        looks.append(data_url(png_bytes(np.asarray(thumb))))
                    rows.append({"id": c, "looks": looks})
            self._thumbnails = rows
            return rows

    # ----------------------------------------------------------------------------- uploads
    def upload_label(self, data: bytes, name: str) -> dict[str, Any]:
        """An uploaded label map -> the label (and a derived instance map) at the canvas size.

        Single-channel PNGs hold class ids (modes L, P, I;16, I). A colour PNG is accepted
        when every colour is one of this model's class colours."""
        img = open_upload(data, name)
        notes = []
        mode = img.mode
        if mode in ("LA", "PA"):              # the alpha channel carries no class
            img, mode = img.getchannel(0), mode[0]
        if mode in ("1", "L", "P", "I", "I;16", "I;16L", "I;16B", "I;16N"):
            label = _ids(img)
        elif mode in ("RGB", "RGBA", "RGBX"):
            label = self._colours_to_ids(np.asarray(img.convert("RGB")), name)
            notes.append(f"{name}: a colour label map, read with this model's class colours.")
        else:
            raise StudioError(HTTPStatus.UNPROCESSABLE_ENTITY,
                              f"{name}: label maps are single-channel PNGs of class ids; found "
                              f"mode {mode}. Fix: save it as an 8- or 16-bit greyscale PNG.")
        self.check_label(label, name)
        label = self._fit(label, name, notes)
        instance = derive_instances(label, self.things)
        return {"label": encode_array(label, self.label_dtype),
                "instance": encode_array(instance, "int32"), "notes": notes}

    def _colours_to_ids(self, rgb: np.ndarray, name: str) -> np.ndarray:
        wide = rgb.astype(np.int64)
        packed = (wide[..., 0] << 16) | (wide[..., 1] << 8) | wide[..., 2]
        lookup = {(r << 16) | (g << 8) | b: c["id"]
                  for c in self.classes for r, g, b in [c["colour"]]}
        colours, inverse = np.unique(packed.ravel(), return_inverse=True)
        unknown = [int(v) for v in colours if int(v) not in lookup]
        if unknown:
            shown = ", ".join(f"#{v:06x}" for v in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise StudioError(HTTPStatus.UNPROCESSABLE_ENTITY,
                              f"{name}: a colour image whose colours {shown}{more} are not "
                              "this model's class colours. Fix: upload a single-channel PNG "
                              "of class ids (the layout download is one).")
        ids = np.array([lookup[int(v)] for v in colours], dtype=np.int64)
        return ids[inverse].reshape(rgb.shape[:2])

    def upload_instance(self, data: bytes, name: str) -> dict[str, Any]:
        """An uploaded instance map (Cityscapes encoding) at the canvas size."""
        img = open_upload(data, name)
        if img.mode not in ("1", "L", "P", "I", "I;16", "I;16L", "I;16B", "I;16N"):
            raise StudioError(HTTPStatus.UNPROCESSABLE_ENTITY,
                              f"{name}: instance maps are single-channel PNGs of instance ids "
                              f"(8 or 16 bit); found mode {img.mode}. Fix: save it as a 16-bit "
                              "greyscale PNG.")
        instance = _ids(img)
        if instance.min(initial=0) < 0 or instance.max(initial=0) >= 2**31:
            raise StudioError(HTTPStatus.UNPROCESSABLE_ENTITY,
                              f"{name}: instance ids must lie in 0..2**31-1")
        notes: list[str] = []
        instance = self._fit(instance, name, notes)
        return {"instance": encode_array(instance, "int32"), "notes": notes}

    def upload_style(self, data: bytes, name: str) -> dict[str, Any]:
        """An uploaded style image -> a PNG of the canvas size (what generate requests send)."""
        if not self.style_image:
            raise StudioError(HTTPStatus.UNPROCESSABLE_ENTITY,
                              f"model {self.id} has no style encoder, so a style image cannot "
                              "steer it (SPADE with use_vae and pix2pixHD with instance "
                              "features can)")
        image = rgb_on_white(open_upload(data, name))
        notes = []
        if image.shape[:2] != (self.height, self.width):
            notes.append(f"{name}: resized from {image.shape[1]}x{image.shape[0]} to the "
                         f"canvas' {self.width}x{self.height}.")
            image = np.asarray(Image.fromarray(image).resize((self.width, self.height),
                                                             Image.Resampling.BICUBIC))
        return {"image": data_url(png_bytes(image)), "notes": notes}

    def upload_sketch(self, data: bytes, name: str) -> dict[str, Any]:
        """An uploaded drawing -> a clean sketch (paper 255, ink 0) at the canvas size."""
        if self.mode != "sketch":
            raise StudioError(HTTPStatus.UNPROCESSABLE_ENTITY,
                              f"model {self.id} paints label maps, not sketches")
        rgb = rgb_on_white(open_upload(data, name)).astype(np.float32) / 255.0
        try:
            sketch, notes = normalize_sketch(rgb, name, strict=True)
        except CondsynthError as err:
            raise StudioError(HTTPStatus.UNPROCESSABLE_ENTITY, str(err)) from None
        if sketch.shape != (self.height, self.width):
            notes.append(f"{name}: resized from {sketch.shape[1]}x{sketch.shape[0]} to the "
                         f"canvas' {self.width}x{self.height}.")
            shrink = sketch.size > self.width * self.height
            # Box averaging keeps thin lines when shrinking.
            sketch = np.asarray(Image.fromarray(sketch).resize(
                (self.width, self.height),
                Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR))
        return {"sketch": encode_array(sketch, "uint8"), "notes": notes}

    def _fit(self, ids: np.ndarray, name: str, notes: list[str]) -> np.ndarray:
        """Nearest-neighbour resize of an id map to the canvas (ids must never blend)."""
        if ids.shape != (self.height, self.width):
            notes.append(f"{name}: resized (nearest) from {ids.shape[1]}x{ids.shape[0]} to the "
                         f"canvas' {self.width}x{self.height}.")
            ids = resize_map(ids, self.height, self.width)
        return ids


# ----------------------------------------------------------------------------- HTTP


def _static_files() -> dict[str, tuple[bytes, str]]:
    """The page's files by name, read once: requests are answered from this table only."""
    folder = resources.files("condsynth") / "studio" / "static"
    files = {}
    for entry in folder.iterdir():
        suffix = Path(entry.name).suffix
        if entry.is_file() and suffix in CONTENT_TYPES:
            files[entry.name] = (entry.read_bytes(), CONTENT_TYPES[suffix])
    if "index.html" not in files:
        raise CondsynthError(f"the studio's page is missing from {folder}: reinstall condsynth")
    return files


class WorkQueue:
    """At most ``workers`` decodes or pictures at once and ``queue`` requests waiting: each
    holds its decoded images, so an unbounded crowd of requests would hold unbounded memory.
    A request beyond the queue is refused at once with 503, which the page shows."""

    def __init__(self, workers: int, queue: int) -> None:
        self._slots = threading.Semaphore(workers)
        self._admitted = threading.BoundedSemaphore(workers + queue)

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        if not self._admitted.acquire(blocking=False):
            raise StudioError(HTTPStatus.SERVICE_UNAVAILABLE, "the studio is busy with other "
                              "requests; try again in a moment")
        try:
            with self._slots:
                yield
        finally:
            self._admitted.release()


class StudioServer(ThreadingHTTPServer):
    """The studio's HTTP server (see the module docstring for its API).

    Args:
        models: the runs to serve; the first is shown first.
        host: address to bind; loopback (127.0.0.1) unless the user asks otherwise.
        port: TCP port; 0 picks a free one (see :attr:`url`).
        quiet: no request log on stderr.
        workers, queue: decodes and pictures at once, and requests waiting (:class:`WorkQueue`).
        max_connections: open connections (a thread each); more are answered 503 and closed.
        timeout: seconds a connection may stay silent (slow clients do not hold threads).
    """

    daemon_threads = True            # a hanging request never keeps the process alive
    allow_reuse_address = True

    def __init__(self, models: list[StudioModel], host: str = "127.0.0.1", port: int = 8000,
                 quiet: bool = True, workers: int = WORKERS, queue: int = QUEUE,
                 max_connections: int = MAX_CONNECTIONS,
                 timeout: float = REQUEST_TIMEOUT) -> None:
        if not models:
            raise CondsynthError("the studio needs at least one run directory")
        self.models = {m.id: m for m in models}
        self.work = WorkQueue(workers, queue)
        self.request_timeout = timeout
        self._connections = threading.BoundedSemaphore(max_connections)
        # The listen backlog: connections the kernel holds until they are accepted. The
        # standard library's 5 reset connections when more arrived at once.
        self.request_queue_size = max_connections
        self.static = _static_files()
        self.quiet = quiet
        # Bound to loopback, requests must also name a loopback host: a web page elsewhere
        # cannot reach the studio through DNS rebinding.
        self.loopback_only = is_loopback(host)
        pixels = max(m.width * m.height for m in models)
        # A generate request: label (<= 2 bytes), instance (4), hints (4) and a style PNG
        # (<= ~4) per pixel, base64-encoded (x 4/3), and room for the rest.
        self.max_json_bytes = 2**20 + pixels * 14 * 4 // 3
        if ":" in host:
            self.address_family = socket.AF_INET6
        try:
            super().__init__((host, port), StudioHandler)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise CondsynthError(f"port {port} on {host} is in use. Fix: pass --port with "
                                     "another number (0 picks a free one).") from None
            raise CondsynthError(f"cannot listen on {host}:{port}: {err.strerror}") from None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else host
        return f"http://{shown}:{port}/"

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread per connection, up to ``max_connections``; beyond, a 503 and close."""
        if not self._connections.acquire(blocking=False):
            try:
                request.settimeout(0.2)
                request.sendall(BUSY_ANSWER)
                # Read what the client sent before closing: closing on unread data resets
                # the connection, and the client would see a reset instead of the answer.
                request.shutdown(socket.SHUT_WR)
                while request.recv(65536):
                    pass
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connections.release()

    def model(self, model_id: Any) -> StudioModel:
        if not isinstance(model_id, str):
            raise StudioError(HTTPStatus.BAD_REQUEST, f"model {model_id!r}: expected the id of "
                              f"a model as a string ({', '.join(self.models)})")
        if model_id not in self.models:
            raise StudioError(HTTPStatus.NOT_FOUND, f"unknown model {model_id!r}; this studio "
                              f"serves {', '.join(self.models)}")
        return self.models[model_id]

    def start(self) -> threading.Thread:
        """Serve in a background thread (tests, notebooks); ``shutdown()`` stops it."""
        thread = threading.Thread(target=self.serve_forever, name="condsynth-studio",
                                  daemon=True)
        thread.start()
        return thread


class StudioHandler(BaseHTTPRequestHandler):
    """One request: route it, answer JSON, PNG or a static file, and turn every refusal into
    ``{"error": ...}`` the page shows."""

    server: StudioServer
    protocol_version = "HTTP/1.1"
    server_version = "condsynth-studio"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the stdlib's name)
        if not self.server.quiet:
            super().log_message(format, *args)

    def setup(self) -> None:
        self.timeout = self.server.request_timeout   # the socket's timeout: silent clients go
        super().setup()

    # ----------------------------------------------------------------------------- dispatch
    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        self._body_read = True
        self._dispatch(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._body_read = False
        self._dispatch(self._post)

    def _dispatch(self, route: Any) -> None:
        try:
            self._check_host()
            route(urlparse(self.path))
        except StudioError as err:
            self._fail(err.status, err.message)
        except CondsynthError as err:       # a user-facing error of the library: bad input
            self._fail(HTTPStatus.UNPROCESSABLE_ENTITY, str(err))
        except Exception as err:  # noqa: BLE001  the model failed: show it, and log it in full
            traceback.print_exc(file=sys.stderr)
            self._fail(HTTPStatus.INTERNAL_SERVER_ERROR,
                       f"the model failed: {type(err).__name__}: {err}")

    def _fail(self, status: int, message: str) -> None:
        if not self._body_read:
            # The unread body would be taken for the next request on this connection.
            self.close_connection = True
        self._json(status, {"error": message})

    def _check_host(self) -> None:
        refusal = host_refusal(self.headers, self.server.loopback_only)
        if refusal is None and self.command == "POST":
            refusal = origin_refusal(self.headers)     # no writes from other sites' pages
        if refusal is not None:
            raise StudioError(HTTPStatus.FORBIDDEN, refusal)

    def _get(self, url: Any) -> None:
        path = url.path
        if path in ("/", "/index.html"):
            return self._static("index.html")
        if path.startswith("/static/"):
            # Names are matched against the table of packaged files, after decoding: "..",
            # "%2e%2e%2f" or an absolute path simply match nothing.
            return self._static(unquote(path[len("/static/"):]))
        if path == "/health":
            devices = sorted({str(m.method.device) for m in self.server.models.values()})
            return self._json(HTTPStatus.OK, {"status": "ok", "models": len(self.server.models),
                                              "device": ", ".join(devices)})
        if path == "/api/models":
            return self._json(HTTPStatus.OK, {"models": [
                m.describe() for m in self.server.models.values()]})
        if path == "/api/looks":
            model = self.server.model(self._query(url, "model"))
            return self._json(HTTPStatus.OK, {"classes": model.look_thumbnails()})
        raise StudioError(HTTPStatus.NOT_FOUND, f"nothing at {path}")

    def _post(self, url: Any) -> None:
        path = url.path
        if path.startswith("/api/upload/"):
            data = self._body(MAX_UPLOAD_BYTES, "the file")
            kind = path[len("/api/upload/"):]
            handlers = {"label": StudioModel.upload_label, "instance": StudioModel.upload_instance,
                        "style": StudioModel.upload_style, "sketch": StudioModel.upload_sketch}
            if kind not in handlers:
                raise StudioError(HTTPStatus.NOT_FOUND, f"no upload of kind {kind!r}; kinds: "
                                  f"{', '.join(handlers)}")
            model = self.server.model(self._query(url, "model"))
            name = self._query(url, "name", "upload")[:200]
            if model.mode == "sketch" and kind != "sketch":
                raise StudioError(HTTPStatus.UNPROCESSABLE_ENTITY,
                                  f"model {model.id} colours sketches; upload a sketch")
            if model.mode == "sample":
                raise StudioError(HTTPStatus.UNPROCESSABLE_ENTITY,
                                  f"model {model.id} samples from noise; it takes no files")
            with self.server.work.slot():
                answer = handlers[kind](model, data, name)
            return self._json(HTTPStatus.OK, answer)
        if path not in ("/api/generate", "/api/png"):
            raise StudioError(HTTPStatus.NOT_FOUND, f"nothing to post at {path}")
        request = self._request()
        with self.server.work.slot():
            if path == "/api/generate":
                answer = self._generate(request)
            else:
                return self._png(request)
        return self._json(HTTPStatus.OK, answer)

    # ----------------------------------------------------------------------------- requests
    def _query(self, url: Any, key: str, default: str | None = None) -> str:
        values = parse_qs(url.query).get(key)
        if not values:
            if default is None:
                raise StudioError(HTTPStatus.BAD_REQUEST, f"the query parameter {key} is missing")
            return default
        return values[0]

    def _body(self, limit: int, what: str) -> bytes:
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            raise StudioError(HTTPStatus.LENGTH_REQUIRED, "the request has no Content-Length")
        try:
            length = int(length_text)
        except ValueError:
            raise StudioError(HTTPStatus.BAD_REQUEST, "bad Content-Length") from None
        if length < 0:
            raise StudioError(HTTPStatus.BAD_REQUEST, "bad Content-Length")
        if length > limit:
            if length <= MAX_DRAIN_BYTES:
                self._drain(length)
                self._body_read = True
            raise StudioError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                              f"{what} is {length / 2**20:.1f} MB; the studio takes at most "
                              f"{limit / 2**20:.1f} MB. Fix: use a smaller file.")
        data = self.rfile.read(length)
        self._body_read = True
        return data

    def _drain(self, length: int) -> None:
        while length > 0:
            chunk = self.rfile.read(min(length, 2**20))
            if not chunk:
                break
            length -= len(chunk)

    def _request(self) -> dict[str, Any]:
        body = self._body(self.server.max_json_bytes, "the request")
        try:
            request = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise StudioError(HTTPStatus.BAD_REQUEST, f"the request is not JSON ({err})") from None
        if not isinstance(request, dict):
            raise StudioError(HTTPStatus.BAD_REQUEST, "the request must be a JSON object")
        return request

    def _generate(self, request: dict[str, Any]) -> dict[str, Any]:
        model = self.server.model(request.get("model"))
        seed = _seed(request.get("seed", 0), "seed")
        h, w = model.height, model.width
        stages = None
        attributes = _attributes(request.get("attributes"), model)
        if isinstance(model, PipelineModel):               # every stage's picture as well
            picture, ms, notes, stages = model.chain(seed, attributes)
        elif attributes is not None:
            picture, ms, notes = model.attribute_sample(seed, attributes)
        elif model.mode == "sample":
            picture, ms, notes = model.sample(seed, *_sample_request(request, model))
        elif model.mode == "sketch":
            sketch = decode_array(request.get("sketch"), "sketch", h, w, ("uint8",))
            hints = request.get("hints")
            if hints is not None:
                hints = decode_array(hints, "hints", h, w, ("uint8",), channels=4)
            picture, ms, notes = model.colour_sketch(sketch, hints, seed)
        else:
            label = decode_array(request.get("label"), "label", h, w, ("uint8", "uint16"))
            model.check_label(label, "the layout")
            instance = None
            if model.method.config.condition.use_instance:
                raw = request.get("instance")
                instance = (derive_instances(label, model.things) if raw is None
                            else decode_array(raw, "instance", h, w, ("int32",)))
            style = None
            if request.get("style"):
                if not model.style_image:
                    raise StudioError(HTTPStatus.UNPROCESSABLE_ENTITY,
                                      f"model {model.id} has no style encoder; remove the "
                                      "style image")
                style = self._style(request["style"], model)
            picture, ms, notes = model.paint(
                label, instance, style, _looks(request.get("looks"), "looks"),
                _looks(request.get("instance_looks"), "instance_looks"), seed)
        answer = {"image": data_url(png_bytes(picture)), "ms": round(ms, 2), "seed": seed,
                  "width": picture.shape[1], "height": picture.shape[0], "notes": notes}
        if stages is not None:
            answer["stages"] = stages
        return answer

    @staticmethod
    def _style(text: Any, model: StudioModel) -> np.ndarray:
        if not isinstance(text, str):
            raise StudioError(HTTPStatus.BAD_REQUEST, "style: expected a base64 PNG")
        try:
            data = base64.b64decode(text.split(",", 1)[-1], validate=True)
        except (binascii.Error, ValueError):
            raise StudioError(HTTPStatus.BAD_REQUEST, "style: not valid base64") from None
        image = rgb_on_white(open_upload(data, "the style image"))
        if image.shape[:2] != (model.height, model.width):
            image = np.asarray(Image.fromarray(image).resize((model.width, model.height),
                                                             Image.Resampling.BICUBIC))
        return image

    def _png(self, request: dict[str, Any]) -> None:
        model = self.server.model(request.get("model"))
        kind = request.get("kind")
        if kind == "label" and model.mode == "paint":
            ids = decode_array(request.get("map"), "label", model.height, model.width,
                               ("uint8", "uint16"))
            model.check_label(ids, "the layout")
        elif kind == "instance" and model.mode == "paint":
            ids = decode_array(request.get("map"), "instance", model.height, model.width,
                               ("int32",))
        elif kind == "sketch" and model.mode == "sketch":
            ids = decode_array(request.get("map"), "sketch", model.height, model.width,
                               ("uint8",))
        else:
            raise StudioError(HTTPStatus.BAD_REQUEST, f"kind {kind!r}: expected label or "
                              "instance (paint models), sketch (sketch models); sample "
                              "models have no map")
        if ids.min(initial=0) < 0 or ids.max(initial=0) > 65535:
            raise StudioError(HTTPStatus.UNPROCESSABLE_ENTITY, f"{kind} ids outside 0..65535 "
                              "do not fit a 16-bit PNG")
        # 8-bit PNG when every id fits, else 16-bit; the values are the ids themselves.
        array = ids.astype(np.uint8 if ids.max(initial=0) < 256 else np.uint16)
        self._send(HTTPStatus.OK, png_bytes(array), "image/png")

    # ----------------------------------------------------------------------------- responses
    def _static(self, name: str) -> None:
        if name not in self.server.static:
            raise StudioError(HTTPStatus.NOT_FOUND, "no such file")
        body, content_type = self.server.static[name]
        self._send(HTTPStatus.OK, body, content_type)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value).encode("utf-8"), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in SECURITY_HEADERS.items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


def _seed(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < SEED_LIMIT:
        raise StudioError(HTTPStatus.BAD_REQUEST, f"{what} {value!r}: expected an integer in "
                          "0..2**63-1")
    return value


def _sample_request(request: dict[str, Any],
                    model: StudioModel) -> tuple[int | None, int | None, float]:
    """``class``, ``seed_b`` and ``t`` of a sample-mode generate request, checked against the
    model: (class or None, seed_b or None, t)."""
    cls = request.get("class")
    if model.classes:
        names = ", ".join(f"{c['id']} {c['name']}" for c in model.classes)
        if cls is None:
            raise StudioError(HTTPStatus.BAD_REQUEST, f"class is missing: model {model.id} "
                              f"draws one of the classes {names}; send its id")
        if (isinstance(cls, bool) or not isinstance(cls, int)
                or not 0 <= cls < len(model.classes)):
            raise StudioError(HTTPStatus.BAD_REQUEST, f"class {cls!r}: expected the id of "
                              f"one of model {model.id}'s classes {names}")
    elif cls is not None:
        raise StudioError(HTTPStatus.BAD_REQUEST, f"class {cls!r}: model {model.id} has no "
                          "classes; leave it out")
    seed_b, t = request.get("seed_b"), request.get("t")
    if (seed_b is not None or t is not None) and model.latent_size is None:
        raise StudioError(HTTPStatus.BAD_REQUEST, f"model {model.id} has no latent to walk "
                          "in; leave out seed_b and t")
    if seed_b is not None:
        seed_b = _seed(seed_b, "seed_b")
    if t is None:
        t = 0.0
    elif isinstance(t, bool) or not isinstance(t, int | float) or not 0 <= t <= 1:  # NaN too
        raise StudioError(HTTPStatus.BAD_REQUEST, f"t {t!r}: expected a number from 0 (the "
                          "sample of seed) to 1 (the sample of seed_b)")
    elif t and seed_b is None:
        raise StudioError(HTTPStatus.BAD_REQUEST, f"t {t}: a point between two samples needs "
                          "seed_b, the seed of the second")
    return cls, seed_b, float(t)


def _attributes(raw: Any, model: StudioModel) -> torch.Tensor | None:
    """The ``attributes`` of a generate request as a (1, A) vector, checked against the
    model's attribute names: one number per attribute, each from -1 (off, the ``--absent``
    default of ``synthesize``) to 1 (on). None for a model without attributes."""
    names = model.attributes
    if not names:
        if raw is not None:
            raise StudioError(HTTPStatus.BAD_REQUEST, f"attributes: model {model.id} takes no "
                              "attributes; leave them out")
        return None
    listed = ", ".join(names)
    if raw is None:
        raise StudioError(HTTPStatus.BAD_REQUEST, f"attributes are missing: model {model.id} "
                          f"takes one value per attribute ({listed}), 1 on and -1 off")
    if not isinstance(raw, list) or len(raw) != len(names):
        got = f"{len(raw)} values" if isinstance(raw, list) else repr(raw)
        raise StudioError(HTTPStatus.BAD_REQUEST, f"attributes: {got}, expected a list of "
                          f"{len(names)} numbers, one per attribute of model {model.id} "
                          f"({listed})")
    for name, value in zip(names, raw, strict=True):
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not -1 <= value <= 1):                                  # NaN too
            raise StudioError(HTTPStatus.BAD_REQUEST, f"attributes: {name} is {value!r}; "
                              "expected a number from -1 (off) to 1 (on)")
    return torch.tensor([raw], dtype=torch.float32)


def _looks(raw: Any, what: str) -> dict[int, int]:
    """``{"8": 2}`` (JSON keys are strings) -> ``{8: 2}``."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise StudioError(HTTPStatus.BAD_REQUEST, f"{what}: expected an object")
    try:
        out = {int(k): v for k, v in raw.items()}
    except ValueError:
        raise StudioError(HTTPStatus.BAD_REQUEST, f"{what}: keys must be integer ids") from None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in out.values()):
        raise StudioError(HTTPStatus.BAD_REQUEST, f"{what}: values must be cluster indices >= 0")
    return out


class PipelineModel(StudioModel):
    """A pipeline run (:mod:`condsynth.pipeline`) served in sample mode: another seed runs the
    chain again (``torch.manual_seed(seed)``, then ``run_chain`` for one sample); the answer
    is the last stage's picture and every stage's picture, in chain order."""

    def __init__(self, model_id: str, run_dir: str | Path, device: str = "auto") -> None:
        from condsynth.pipeline import attribute_names, load_chain

        self.pipeline, self.methods, self.load_notes = load_chain(run_dir, device)
        others = [name for name in self.pipeline.inputs if name != "attributes"]
        if others:
            raise CondsynthError(f"{run_dir}: this pipeline takes the inputs "
                                 f"{', '.join(others)}, which the studio cannot give yet "
                                 "(it gives attributes). Fix: use `condsynth synthesize "
                                 "--input ...`.")
        self.attributes = (attribute_names(self.pipeline, run_dir) or []
                           if "attributes" in self.pipeline.inputs else [])
        self.id = model_id
        self.run_dir = Path(run_dir)
        self.method = self.methods[self.pipeline.chain[-1].stage]
        config = self.method.config
        self.mode = "sample"
        self.width = valid_size(config.data.crop_size, self.method.size_multiple())
        self.height = valid_size(round(config.data.crop_size / config.data.aspect_ratio),
                                 self.method.size_multiple())
        self.classes, self.things, self.latent_size = [], frozenset(), None
        self.hints = self.style_image = False
        self.clusters = {}
        self.random = True
        self.lock = threading.Lock()
        self._thumbnails = None

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "method": f"pipeline {self.pipeline.name}",
                "stages": [step.stage for step in self.pipeline.chain]}

    def chain(self, seed: int, attributes: torch.Tensor | None = None
              ) -> tuple[np.ndarray, float, list[str], list[dict[str, str]]]:
        """The chain for one sample (with the (1, A) ``attributes`` when the chain takes
        them): the last picture, ms, notes and every stage's picture (``[{"stage", "image":
        data URL}]``)."""
        from condsynth.pipeline import run_chain

        outputs: dict[str, torch.Tensor] = {}
        inputs = {} if attributes is None else {"attributes": attributes}

        def generate() -> torch.Tensor:
            outputs.update(run_chain(self.pipeline, self.methods, 1, inputs).outputs)
            return outputs[self.pipeline.chain[-1].stage]

        picture, ms, notes = self._run(seed, generate)
        stages = []
        for stage, images in outputs.items():
            array = tensor_to_image(images[0])
            stages.append({"stage": stage, "image": data_url(png_bytes(
                array[..., 0] if images.shape[1] == 1 else array))})
        return picture, ms, [*self.load_notes, *notes], stages


# ----------------------------------------------------------------------------- building


def model_ids(run_dirs: list[str | Path]) -> list[str]:
    """Short unique names for runs: the folder name, or "parent/name" where names collide
    (``demo_p2p/run``, ``demo_hd/run``), numbered if even those do."""
    paths = [Path(r).resolve() for r in run_dirs]
    names = [p.name or "run" for p in paths]
    ids, taken = [], set()
    for path, name in zip(paths, names, strict=True):
        base = f"{path.parent.name}/{name}" if names.count(name) > 1 else name
        model_id, n = base, 2
        while model_id in taken:
            model_id, n = f"{base}-{n}", n + 1
        taken.add(model_id)
        ids.append(model_id)
    return ids


def load_models(run_dirs: list[str | Path], device: str = "auto",
                precision: str = "fp32") -> list[StudioModel]:
    """Load every run with :func:`condsynth.api.load`, named by :func:`model_ids`."""
    from condsynth.pipeline import is_pipeline_run

    return [PipelineModel(model_id, run, device) if is_pipeline_run(run)
            else StudioModel(model_id, run, load(run, device=device, precision=precision))
            for model_id, run in zip(model_ids(run_dirs), run_dirs, strict=True)]


def make_server(run_dirs: list[str | Path], host: str = "127.0.0.1", port: int = 8000,
                device: str = "auto", quiet: bool = True,
                precision: str = "fp32") -> StudioServer:
    """Load the runs and bind the server (not yet serving: ``serve_forever()`` or
    :meth:`StudioServer.start`)."""
    return StudioServer(load_models(run_dirs, device, precision), host, port, quiet)
