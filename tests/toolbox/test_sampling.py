"""condsynth sample and explore: files, determinism, classes, arithmetic."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from condsynth.api import load
from condsynth.cli import main
from condsynth.errors import ConfigError
from condsynth.sampling import Arithmetic, interpolate


def test_sample_writes_files_grid_and_page(dcgan_run, tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sample", str(dcgan_run), "--count", "7", "--out", str(out), "--seed", "3",
                 "--quiet"]) == 0
    files = sorted(p.name for p in out.glob("sample_*.png"))
    assert files == [f"sample_{i:04d}.png" for i in range(7)]
    assert Image.open(out / "sample_0000.png").size == (16, 16)
    assert (out / "grid.png").is_file()
    page = (out / "index.html").read_text()
    assert "class_0" in page and "class_2" in page         # cycling through the classes
    again = tmp_path / "again"
    main(["sample", str(dcgan_run), "--count", "7", "--out", str(again), "--seed", "3",
          "--quiet"])
    assert np.array_equal(np.asarray(Image.open(out / "grid.png")),
                          np.asarray(Image.open(again / "grid.png")))


def test_sample_one_class_and_clear_errors(dcgan_run, tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["sample", str(dcgan_run), "--count", "3", "--class", "1", "--out", str(out),
                 "--quiet"]) == 0
    assert (out / "index.html").read_text().count("class_1") >= 3
    assert main(["sample", str(dcgan_run), "--count", "3", "--class", "9", "--out",
                 str(out)]) == 2
    assert "--class 9 is not one of this model's classes 0..2" in capsys.readouterr().err


def test_sample_refuses_a_label_map_model(tmp_path, capsys, scenes):
    run = tmp_path / "p2p"
    assert main(["train", "--method", "pix2pix", "--data", str(scenes), "--run", str(run),
                 "--max-steps", "1", "--size", "32", "--quiet", "model.ngf=8", "model.ndf=8",
                 "train.tensorboard=false"]) == 0
    assert main(["sample", str(run), "--out", str(tmp_path / "o")]) == 2
    assert "not from noise" in capsys.readouterr().err


def test_explore_writes_walks_and_arithmetic(dcgan_run, tmp_path):
    out = tmp_path / "e"
    assert main(["explore", str(dcgan_run), "--out", str(out), "--walks", "2", "--steps", "5",
                 "--samples", "8", "--arithmetic", "0,1-2+3", "--class", "2"]) == 0
    for name in ("samples.png", "walk_0.png", "walk_1.png", "arithmetic_groups.png",
                 "arithmetic_result.png", "index.html"):
        assert (out / name).is_file(), name
    walk = np.asarray(Image.open(out / "walk_0.png"))
    assert walk.shape[1] > 5 * 16                          # five pictures side by side


def test_explore_arithmetic_out_of_range(dcgan_run, tmp_path, capsys):
    assert main(["explore", str(dcgan_run), "--out", str(tmp_path), "--samples", "4",
                 "--arithmetic", "1-7"]) == 2
    assert "refers to sample 7" in capsys.readouterr().err


def test_arithmetic_parses_groups_with_signs():
    recipe = Arithmetic.parse("3,7-1,5+2")
    assert recipe.groups == ((1, (3, 7)), (-1, (1, 5)), (1, (2,)))
    z = torch.arange(8, dtype=torch.float32).unsqueeze(1).repeat(1, 2)
    means, total = recipe.apply(z)
    assert torch.equal(means[0], torch.tensor([5.0, 5.0]))
    assert torch.equal(total, torch.tensor([5.0 - 3.0 + 2.0] * 2))
    for bad in ("", "1,,2", "a-b", "1+-2"):
        with pytest.raises(ConfigError):
            Arithmetic.parse(bad)


def test_interpolation_runs_from_a_to_b():
    a, b = torch.zeros(3), torch.ones(3)
    codes = interpolate(a, b, 5)
    assert torch.equal(codes[0], a) and torch.equal(codes[-1], b)
    assert torch.allclose(codes[2], torch.full((3,), 0.5))


def test_generated_codes_reproduce_a_walk(dcgan_run):
    method = load(dcgan_run, device="cpu")
    z = torch.randn(2, method.latent_size())
    cls = torch.tensor([0, 0])
    a = method.generate(cls, z=z)
    assert torch.equal(a, method.generate(cls, z=z))       # eval mode: a code is a picture


def test_evaluate_scores_a_noise_driven_model(dcgan_run, class_data, tmp_path):
    out = tmp_path / "eval"
    assert main(["evaluate", str(dcgan_run), "--data", str(class_data), "--metrics", "swd",
                 "--out", str(out), "--quiet"]) == 0
    results = json.loads((out / "eval.json").read_text())
    assert results["images"] == {"real": 18, "fake": 18}
    assert results["metrics"]["swd"]["mean"] > 0
    assert not (out / "labels").exists()            # no input pictures: the input is noise
    assert "labels/" not in (out / "eval.html").read_text()
