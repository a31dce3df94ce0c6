"""Sizes and counts are never changed silently: the network fits the size asked for (or the
command says which setting to change), a style image needs a style encoder, a stray label id
does not become thousands of classes, and --resume does not ignore --method or --config."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from condsynth.cli import main
from condsynth.data.check import check_dataset
from condsynth.layers.unet import depth_for_size

FAST = ["--max-steps", "1", "--batch-size", "2", "--quiet", "model.ngf=4", "model.ndf=4",
        "train.tensorboard=false", "train.sample_every=100", "train.num_samples=1"]


@pytest.mark.parametrize("size, depth", [(32, 5), (128, 7), (256, 8), (96, 5), (48, 4)])
def test_unet_depth_follows_the_size_as_the_official_unets(size, depth):
    assert depth_for_size(size, size) == depth


def test_pix2pix_trains_at_the_size_asked_for(scenes, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--method", "pix2pix", "--data", str(scenes), "--run", str(run),
                 "--size", "32", *FAST]) == 0
    assert "num_downs: 5" in (run / "config.yaml").read_text()
    assert Image.open(run / "samples" / "generated_0.png").size == (32, 32)


def test_a_size_the_network_cannot_take_names_the_setting(scenes, tmp_path, capsys):
    # The official networks (5 doublings) take multiples of 32 only.
    code = main(["train", "--method", "spade", "--data", str(scenes), "--run",
                 str(tmp_path / "run"), "--size", "48", *FAST, "model.lambda_vgg=0",
                 "model.fit_size=false"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "48x48" in err and "multiple of 32" in err and "--size 64" in err
    assert "model.num_upsampling_layers" in err


def test_spade_fits_its_up_samplings_to_a_small_size(scenes, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", "--method", "spade", "--data", str(scenes), "--run", str(run),
                 "--size", "48", *FAST, "model.lambda_vgg=0"])
    assert code == 0, capsys.readouterr().err
    assert "model.num_upsampling 3 instead of 5" in capsys.readouterr().out
    assert "num_upsampling: 3" in (run / "config.yaml").read_text()


def test_style_image_without_a_style_encoder_is_an_error(scenes, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--method", "pix2pix", "--data", str(scenes), "--run", str(run),
                 "--size", "32", *FAST]) == 0
    label = next((scenes / "test_label").iterdir())
    code = main(["synthesize", str(run), "--label", str(label), "--instance",
                 str(scenes / "test_inst" / label.name), "--style-image",
                 str(next((scenes / "test_img").iterdir())), "--out", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert code == 2 and "has no style encoder" in err and "drop --style-image" in err
    assert not (tmp_path / "o.png").exists()


def test_a_stray_label_id_is_flagged_by_check_and_refused_by_train(scenes, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(scenes, data)
    (data / "classes.json").unlink()                    # the class count is inferred
    path = sorted((data / "train_label").iterdir())[3]
    label = np.asarray(Image.open(path)).astype(np.uint16)
    label[5, 5] = 3000
    Image.fromarray(label).save(path)
    report = check_dataset(data)
    assert not report.ok
    problem = next(p for p in report.problems if "3000" in p)
    assert "3001 classes" in problem and path.name in problem and "dont-care" in problem
    code = main(["train", "--method", "pix2pix", "--data", str(data), "--run",
                 str(tmp_path / "run"), "--size", "32", *FAST])
    err = capsys.readouterr().err
    assert code == 2 and "3000 (1 px" in err and "label.num_classes" in err
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_resume_refuses_another_method_or_config(scenes, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--method", "pix2pix", "--data", str(scenes), "--run", str(run),
                 "--size", "32", *FAST]) == 0
    capsys.readouterr()
    assert main(["train", "--run", str(run), "--resume", "--method", "spade", "--max-steps",
                 "2", "--quiet"]) == 2
    assert "--method spade was given" in capsys.readouterr().err
    assert main(["train", "--run", str(run), "--resume", "--config", "spade_cpu",
                 "--max-steps", "2", "--quiet"]) == 2
    assert "--config spade_cpu would be ignored" in capsys.readouterr().err
    assert main(["train", "--run", str(run), "--resume", "--method", "pix2pix",
                 "--max-steps", "2", "--quiet"]) == 0
