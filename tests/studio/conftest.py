"""Fixtures of the studio tests: tiny trained runs of every mode and a running studio."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from condsynth.config import Config, apply_overrides
from condsynth.data.dataset import tensor_to_image
from condsynth.registry import default_config, parse_config

SIZE = 32
# Small networks per method (the shape of tests/tiny.py's entries; spelled out here so that the
# studio's runs keep their VAE, encoder and hints whatever the shared tiny configs become).
SMALL: dict[str, list[str]] = {
    "pix2pix": ["model.ngf=8", "model.ndf=8", "model.num_downs=5"],
    "spade": ["model.ngf=8", "model.ndf=8", "model.spade_hidden=16", "model.lambda_vgg=0",
              "model.use_vae=true", "model.z_dim=16",
              # SPADE's --init_variance 1.0: the default 0.02 makes an untrained generator
              # nearly constant, and the tests must see layouts and styles change the picture.
              "model.init_gain=1.0"],
    "pix2pixhd": ["model.ngf=8", "model.ndf=8", "model.n_downsample_global=3",
                  "model.n_blocks_global=1", "model.vgg_loss=false", "model.nef=4",
                  "model.n_downsample_e=2", "model.instance_feat=true", "model.n_clusters=3"],
    "autopainter": ["model.ngf=8", "model.ndf=8", "model.num_downs=5", "model.lambda_feat=0",
                    "data.layout=sketch", "data.line_extraction=xdog"],
}
# The runs the studio serves in the tests: their ids are the folder names.
RUNS = {"p2p": "pix2pix", "spade": "spade", "hd": "pix2pixhd", "painter": "autopainter"}
# Noise-driven runs (sample mode): DCGAN on a flat folder of greyscale pictures, and
# class-conditional on class folders in colour.
SAMPLE_RUNS: dict[str, list[str]] = {
    "dcgan": ["condition.kind=none", "data.layout=image_folder", "data.channels=1"],
    "cdcgan": ["condition.kind=class", "data.layout=class_folders", "data.channels=3"],
}
SAMPLE_CLASSES = ["circle", "square", "stripes"]       # class folders, sorted by name
LATENT = 16


def small_config(method: str, scenes: Path) -> Config:
    raw = default_config(method).to_dict()
    raw["data"].update(root=str(scenes), load_size=SIZE, crop_size=SIZE)
    raw["train"].update(batch_size=2, max_steps=3, log_every=1, sample_every=100,
                        checkpoint_every=100, num_samples=2, tensorboard=False)
    if method != "autopainter":
        raw["condition"].update(num_classes=11, use_instance=True)
    return parse_config(apply_overrides(raw, SMALL[method]))


def sample_config(overrides: list[str], root: Path) -> Config:
    raw = default_config("dcgan").to_dict()
    raw["data"].update(root=str(root), load_size=SIZE, crop_size=SIZE)
    # 100 steps (3 s): batch norm's running statistics have left their start (mean 0, var 1)
    # and the pictures span most of 0..255 (after 30 steps they are all grey within +-6 levels),
    # so another z, class or point of the walk is visibly another picture.
    raw["train"].update(batch_size=8, max_steps=100, log_every=50, sample_every=1000,
                        checkpoint_every=1000, num_samples=2, tensorboard=False)
    return parse_config(apply_overrides(raw, [f"model.z_dim={LATENT}", "model.ngf=8",
                                              "model.ndf=8", *overrides]))


def write_shapes(root: Path, per_class: int = 4) -> tuple[Path, Path]:
    """A flat folder of pictures and the same pictures in class folders: a disc, a square or
    stripes in a random colour on a random background (32x32 PNGs)."""
    rng = np.random.default_rng(0)
    flat, classes = root / "flat", root / "classes"
    yy, xx = np.mgrid[:SIZE, :SIZE]
    masks = {"circle": (yy - 16) ** 2 + (xx - 16) ** 2 < 100,
             "square": (abs(yy - 16) < 9) & (abs(xx - 16) < 9),
             "stripes": (xx // 4) % 2 == 0}
    for name in SAMPLE_CLASSES:
        (classes / name).mkdir(parents=True)
        for i in range(per_class):
            picture = np.empty((SIZE, SIZE, 3), np.uint8)
            picture[:] = rng.integers(0, 256, 3)
            picture[masks[name]] = rng.integers(0, 256, 3)
            for folder in (flat, classes / name):
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(picture).save(folder / f"{name}_{i}.png")
    return flat, classes


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Tiny 32x32 models run faster on one thread, and on a busy machine two threads can be
    a hundred times slower (each waits for the other); runs after the suite's own fixture."""
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def studio_runs(tmp_path_factory) -> dict[str, Path]:
    """Tiny runs trained for 3 steps on 32x32 procedural scenes: pix2pix (dropout noise at
    test time), SPADE with the VAE, pix2pixHD with instance features clustered into looks,
    Auto-painter with colour hints; DCGAN unconditional on greyscale pictures and
    class-conditional in colour, for sample mode. Untrained weights still make layout-dependent
    pictures, which is all the studio's tests need."""
    from condsynth.data.procedural import write_dataset
    from condsynth.methods.pix2pixhd_looks import compute_features
    from condsynth.train import prepare_config, train

    root = tmp_path_factory.mktemp("studio")
    scenes = root / "scenes"
    write_dataset(scenes, 6, SIZE, seed=0, test_count=1, progress=False)
    runs = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)          # (session fixtures run before the per-test one below)
    try:
        for name, method in RUNS.items():
            with warnings.catch_warnings():
                # pix2pixHD's samples during training come before its looks are clustered.
                warnings.filterwarnings("ignore", "this pix2pixHD run has no clustered")
                train(prepare_config(small_config(method, scenes)), root / name, progress=False)
            runs[name] = root / name
        compute_features(runs["hd"], scenes, device="cpu")
        flat, classes = write_shapes(root / "shapes")
        for name, overrides in SAMPLE_RUNS.items():
            data = classes if "condition.kind=class" in overrides else flat
            train(prepare_config(sample_config(overrides, data)), root / name, progress=False)
            runs[name] = root / name
    finally:
        torch.set_num_threads(threads)
    return runs


@pytest.fixture(scope="session")
def studio(studio_runs):
    """The studio serving every tiny run on a free local port, in a background thread."""
    from condsynth.studio.server import make_server

    server = make_server(list(studio_runs.values()), host="127.0.0.1", port=0, device="cpu")
    server.start()
    yield server
    server.shutdown()
    server.server_close()


def call(server: Any, path: str, body: bytes | dict | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request to the studio: (status, headers, body); errors are answers, not raises."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(server.url.rstrip("/") + path, data=data,
                                     headers=headers or {})
    if isinstance(body, dict):
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def png_file(array: np.ndarray) -> bytes:
    """An array as PNG bytes (mode from the dtype and shape, as PIL chooses)."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def assert_close(a: np.ndarray, b: np.ndarray) -> None:
    """Two 8-bit pictures equal up to one level of rounding."""
    assert a.shape == b.shape
    worst = int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())
    assert worst <= 1, f"pictures differ by {worst}/255"


def sample_recipe(method: Any, seed: int, cls: int | None = None, seed_b: int | None = None,
                  t: float = 0.0) -> np.ndarray:
    """The picture of a sample-mode request, made as the server's module docstring says:
    (H, W, 3) uint8 (a greyscale model's one channel repeated)."""
    z = torch.randn(1, method.latent_size(), generator=torch.Generator().manual_seed(seed))
    if seed_b is not None:
        z_b = torch.randn(1, method.latent_size(),
                          generator=torch.Generator().manual_seed(seed_b))
        z = (1 - t) * z + t * z_b
    cond = None if cls is None else torch.tensor([cls])
    torch.manual_seed(seed)
    return tensor_to_image(method.generate(cond, z=z)[0])


# The attributes → sketch → image pipeline, as small as it trains.
ATTRIBUTE_PIPELINE_SMALL = [
    "train.max_steps=1", "train.batch_size=2", "train.sample_every=100",
    "train.checkpoint_every=1", "train.num_samples=2", "train.tensorboard=false",
    "data.channels=3", "sketch.model.ngf=8", "sketch.model.z_dim=8", "sketch.model.embed_dim=8",
    "refine.model.ngf=8", "refine.model.growth=4", "refine.model.embed_dim=8",
    "refine.model.ndf=8", "image.model.ngf=8", "image.model.ndf=8",
    # After one step the first stage draws flat grey (its batch norms' running statistics
    # have barely moved); after 30 on the whole table its sketches vary with z.
    "sketch.train.max_steps=30", "sketch.train.batch_size=6"]


@pytest.fixture(scope="session")
def attribute_pipeline(tmp_path_factory) -> Path:
    """attr2sketch2face_fmnist_cpu trained (30, 1 and 1 steps) on a 6-row attribute table
    (Smiling, Eyeglasses, Male); its stage ``sketch`` is an attributes -> picture run."""
    from condsynth.cli import main
    from tests.toolbox.conftest import write_attribute_table

    root = tmp_path_factory.mktemp("attribute_pipeline")
    data = write_attribute_table(root / "data", 6)
    run = root / "faces"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", "--config", "attr2sketch2face_fmnist_cpu", "--run", str(run),
                     "--data", str(data), "--quiet", *ATTRIBUTE_PIPELINE_SMALL]) == 0
    finally:
        torch.set_num_threads(threads)
    return run
