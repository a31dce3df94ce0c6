"""The S+U workflow around SimGAN: the garment simulator, `condsynth refine` (names and labels
kept), the real-or-refined study and the task-model protocol."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.simgan_protocol import TaskNet, error_rate, read_labelled_folder
from condsynth import checkpoint
from condsynth.cli import main
from condsynth.config import DataConfig
from condsynth.data.garments import GARMENT_CLASSES, render_garment, write_garments
from condsynth.data.sources import load_source
from condsynth.refine import refine_folder
from condsynth.registry import build_method
from condsynth.study import build_turing_study
from tests.data.builders import write_idx
from tests.tiny import tiny_config


def test_every_garment_class_renders_flat_and_differently():
    images = [render_garment(c, np.random.default_rng([0, c])) for c in range(10)]
    for c, image in enumerate(images):
        assert image.shape == (28, 28) and image.dtype == np.uint8
        assert image[0, 0] == 0 and image.max() > 60, GARMENT_CLASSES[c]     # on black
        # Flat shading: one grey level fills most of the silhouette (edges are anti-aliased;
        # a sandal's thin straps are nearly all edge).
        values, counts = np.unique(image[image > 0], return_counts=True)
        assert c == 5 or counts.max() / counts.sum() > 0.4, GARMENT_CLASSES[c]
    masks = [(i > 0) for i in images]
    trouser, bag = masks[1], masks[8]
    assert (trouser & ~bag).sum() > 50 and (bag & ~trouser).sum() > 50
    again = render_garment(3, np.random.default_rng([0, 3]))
    assert np.array_equal(again, images[3])                              # seeded
    with pytest.raises(Exception, match="0..9"):
        render_garment(10, np.random.default_rng(0))


def test_simulate_writes_a_labelled_unpaired_dataset(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 255, (7, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "fm" / "train-images-idx3-ubyte", pixels)
    write_idx(tmp_path / "fm" / "train-labels-idx1-ubyte", np.arange(7, dtype=np.uint8) % 3)
    assert main(["data", "simulate", "garments", "--out", str(tmp_path / "su"), "--count", "12",
                 "--real", str(tmp_path / "fm"), "--real-count", "5", "--quiet"]) == 0
    source = load_source(DataConfig(root=str(tmp_path / "su"), channels=1))
    assert source.layout == "unpaired" and len(source) == 12 and len(source.real) == 5
    assert source.classes.tolist() == [i % 10 for i in range(12)]
    assert source.class_names == GARMENT_CLASSES
    assert main(["data", "simulate", "garments", "--out", str(tmp_path / "x"), "--count", "3",
                 "--real", str(tmp_path / "fm"), "--real-count", "99", "--quiet"]) == 2


@pytest.fixture
def refiner_run(tmp_path):
    config = tiny_config("simgan", extra=["data.channels=1", "model.psi=identity"])
    torch.manual_seed(0)
    method = build_method(config)
    run = tmp_path / "run"
    checkpoint.write_checkpoint(run, config, method.networks(), 1,
                                method_state=method.method_state())
    return run, method


def test_refine_keeps_names_and_labels(tmp_path, refiner_run):
    run, method = refiner_run
    write_garments(tmp_path / "syn", 5, progress=False)
    (tmp_path / "classes" / "boot").mkdir(parents=True)          # class folders, a JPEG
    Image.fromarray(render_garment(9, np.random.default_rng(1))).save(
        tmp_path / "classes" / "boot" / "b.jpg")
    assert main(["refine", str(run), "--images", str(tmp_path / "syn"), "--out",
                 str(tmp_path / "out"), "--quiet"]) == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "syn").iterdir())
    assert json.loads((tmp_path / "out" / "dataset.json").read_text()) == json.loads(
        (tmp_path / "syn" / "dataset.json").read_text())
    refined = np.asarray(Image.open(tmp_path / "out" / "00002.png"))
    source = np.asarray(Image.open(tmp_path / "syn" / "00002.png"))
    expected = method.generate(torch.from_numpy(source / 127.5 - 1).float()[None, None])
    assert refined.shape == (28, 28)                                     # grey, any size
    assert np.abs(refined.astype(int) - ((expected[0, 0] + 1) * 127.5).round().numpy()
                  ).max() <= 1
    summary = refine_folder(method, tmp_path / "classes", tmp_path / "out2", progress=False)
    assert summary["images"] == 1 and (tmp_path / "out2" / "boot" / "b.png").is_file()
    assert main(["refine", str(run), "--images", str(tmp_path / "syn"), "--out",
                 str(tmp_path / "syn"), "--quiet"]) == 2                    # never in place


def test_refine_rewrites_label_files_for_converted_names(tmp_path, refiner_run):
    _, method = refiner_run
    (tmp_path / "in").mkdir()
    Image.fromarray(np.zeros((12, 12), np.uint8)).save(tmp_path / "in" / "a.jpg")
    (tmp_path / "in" / "dataset.json").write_text(json.dumps({"labels": [["a.jpg", 1]]}))
    refine_folder(method, tmp_path / "in", tmp_path / "out", progress=False)
    assert json.loads((tmp_path / "out" / "dataset.json").read_text()) == {
        "labels": [["a.png", 1]]}
    source = load_source(DataConfig(root=str(tmp_path / "out"), layout="class_folders"))
    assert source.classes.tolist() == [1]


def test_turing_study_pairs_one_real_and_one_refined(tmp_path):
    for name in ("refined", "real"):
        (tmp_path / name / "sub").mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((8, 8), i * 10 + (100 if name == "real" else 0),
                                    np.uint8)).save(tmp_path / name / "sub" / f"{i}.png")
    manifest = build_turing_study(tmp_path / "study", tmp_path / "refined", tmp_path / "real",
                                  count=3)
    assert len(manifest["items"]) == 3
    key = json.loads((tmp_path / "study" / "key.json").read_text())
    assert key["systems"] == ["real", "refined"]
    for item in manifest["items"]:
        owners = key["items"][item["id"]]["owners"]
        assert sorted(owners.values()) == ["real", "refined"]
        for option in item["options"]:
            value = np.asarray(Image.open(tmp_path / "study" / option["src"]))[0, 0]
            assert (value >= 100) == (owners[option["id"]] == "real")
    assert "REAL" in manifest["question"]


def test_protocol_reads_labels_and_counts_errors(tmp_path):
    write_garments(tmp_path / "syn", 10, progress=False)
    images, labels = read_labelled_folder(tmp_path / "syn")
    assert images.shape == (10, 1, 28, 28) and labels.tolist() == list(range(10))
    assert images.min() >= -1 and images.max() <= 1

    class Fixed(TaskNet):
        def forward(self, x):                        # always class 3
            return torch.nn.functional.one_hot(torch.full((len(x),), 3), 10).float()

    assert error_rate(Fixed(), images, labels) == pytest.approx(0.9)
