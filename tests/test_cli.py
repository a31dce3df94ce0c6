"""The command line end to end on a tiny procedural dataset, and its answers to bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from condsynth.cli import main
from condsynth.registry import parse_config

TINY = ["model.ngf=8", "model.ndf=8", "model.num_downs=5", "train.tensorboard=false",
        "train.sample_every=2", "train.checkpoint_every=2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data, run = root / "data", root / "run"
    assert main(["data", "procedural", "--out", str(data), "--count", "6", "--size", "32",
                 "--seed", "1", "--quiet"]) == 0
    assert main(["train", "--method", "pix2pix", "--data", str(data), "--run", str(run),
                 "--max-steps", "3", "--size", "32", "--batch-size", "2", "--seed", "0",
                 "--quiet", *TINY]) == 0
    return data, run


def test_procedural_data_and_check(trained, capsys):
    data, _ = trained
    assert sorted(p.name for p in data.iterdir()) == [
        "classes.json", "test_img", "test_inst", "test_label", "train_img", "train_inst",
        "train_label"]
    assert main(["data", "check", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["layout"] == "pix2pixhd"


def test_train_wrote_a_run_that_uses_the_instances(trained):
    _, run = trained
    config = (run / "config.yaml").read_text()
    assert "use_instance: true" in config and "num_classes: 11" in config
    assert (run / "index.html").is_file()


def test_synthesize_one_and_a_folder(trained, tmp_path, capsys):
    data, run = trained
    label = next((data / "test_label").iterdir())
    inst = data / "test_inst" / label.name
    out = tmp_path / "one.png"
    assert main(["synthesize", str(run), "--label", str(label), "--instance", str(inst),
                 "--out", str(out)]) == 0
    picture = np.asarray(Image.open(out))
    assert picture.shape == (32, 32, 3)
    folder = tmp_path / "folder"
    assert main(["synthesize", str(run), "--labels", str(data / "test_label"), "--instances",
                 str(data / "test_inst"), "--out", str(folder), "--quiet"]) == 0
    page = (folder / "index.html").read_text()
    assert f"{label.stem}.png" in page and (folder / f"{label.stem}.png").is_file()


def test_synthesize_any_size(trained, tmp_path):
    _, run = trained
    label = np.zeros((37, 45), np.uint8)
    label[20:] = 4
    Image.fromarray(label).save(tmp_path / "odd.png")
    assert main(["synthesize", str(run), "--label", str(tmp_path / "odd.png"), "--instance",
                 str(tmp_path / "odd.png"), "--out", str(tmp_path / "o.png")]) == 0
    assert np.asarray(Image.open(tmp_path / "o.png")).shape == (37, 45, 3)


def test_synthesize_fast_path_matches_fp32(trained, tmp_path, capsys):
    data, run = trained
    label = next((data / "test_label").iterdir())
    inst = data / "test_inst" / label.name
    pictures = {}
    for name, flags in (("fp32", []), ("bf16", ["--precision", "bf16", "--channels-last"])):
        out = tmp_path / f"{name}.png"
        assert main(["synthesize", str(run), "--label", str(label), "--instance", str(inst),
                     "--out", str(out), *flags]) == 0
        pictures[name] = np.asarray(Image.open(out)).astype(np.float64)
    mse = ((pictures["fp32"] - pictures["bf16"]) ** 2).mean()
    assert mse > 0, "bf16 ran the same arithmetic as fp32"
    assert 10 * np.log10(255.0 ** 2 / mse) > 30
    assert main(["synthesize", str(run), "--label", str(label), "--out", str(tmp_path / "x.png"),
                 "--precision", "fp16", "--device", "cpu"]) == 2
    assert "fp16 inference needs CUDA" in capsys.readouterr().err


def test_resume_continues(trained, capsys):
    data, run = trained
    assert main(["train", "--run", str(run), "--resume", "--max-steps", "5", "--quiet"]) == 0
    assert "to step 5" in capsys.readouterr().out


def test_existing_run_is_not_overwritten_silently(trained, capsys):
    data, run = trained
    assert main(["train", "--method", "pix2pix", "--data", str(data), "--run", str(run)]) == 2
    assert "already holds a run" in capsys.readouterr().err


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "condsynth", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("make, args, message", [
    ("out_of_range", [], r"label value\(s\) 42 outside 0\.\.10"),
    ("rgb", [], "colour \\(RGB\\) label map"),
    ("truncated", [], "could not be read as an image"),
])
def test_bad_label_maps_get_clear_errors_without_traceback(trained, tmp_path, make, args,
                                                           message):
    _, run = trained
    path = tmp_path / "bad.png"
    if make == "out_of_range":
        Image.fromarray(np.full((32, 32), 42, np.uint8)).save(path)
    elif make == "rgb":
        Image.fromarray((np.zeros((32, 32, 3)) + [10, 200, 30]).astype(np.uint8)).save(path)
    else:
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(path)
        path.write_bytes(path.read_bytes()[:40])
    proc = run_cli("synthesize", str(run), "--label", str(path), "--instance", str(path),
                   "--out", str(tmp_path / "o.png"), *args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    import re

    assert re.search(message, proc.stderr), proc.stderr
    assert str(path) in proc.stderr


@pytest.mark.slow
def test_bad_training_data_names_the_file(tmp_path):
    from condsynth.data.procedural import write_dataset

    data = tmp_path / "data"
    write_dataset(data, 3, 32, seed=0, test_count=1, progress=False)
    bad = sorted((data / "train_label").iterdir())[1]
    arr = np.asarray(Image.open(bad)).copy()
    arr[0, 0] = 77
    Image.fromarray(arr).save(bad)
    proc = run_cli("train", "--method", "pix2pix", "--data", str(data), "--run",
                   str(tmp_path / "run"), "--max-steps", "2", "--size", "32", "--quiet",
                   "label.num_classes=11", *TINY)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert bad.name in proc.stderr and "77" in proc.stderr


def test_unknown_override_key_is_an_error(tmp_path, capsys):
    assert main(["train", "--method", "pix2pix", "--data", str(tmp_path), "--run",
                 str(tmp_path / "r"), "model.ngff=3"]) == 2
    assert "unknown key 'ngff'; did you mean 'ngf'" in capsys.readouterr().err


def test_help_everywhere():
    for args in (["--help"], ["train", "--help"], ["synthesize", "--help"],
                 ["data", "procedural", "--help"], ["data", "check", "--help"],
                 ["demo", "--help"], ["bench", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        assert exit_info.value.code == 0


def test_every_command_module_is_registered_and_help_loads_no_torch():
    import pkgutil

    import condsynth.cli

    modules = {m.name for m in pkgutil.iter_modules(condsynth.cli.__path__)}
    assert modules - {"common", "__main__"} == set(condsynth.cli.COMMANDS)
    # `condsynth --help` stays quick: building the parser imports no torch.
    code = ("import sys; from condsynth.cli import build_parser; build_parser(); "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.slow
def test_demo_end_to_end_small(tmp_path, capsys):
    out = tmp_path / "demo"
    small = ["model.ngf=8", "model.ndf=8", "model.num_downs=5"]
    assert main(["demo", "--out", str(out), "--steps", "3", "--size", "32", "--count", "4",
                 "--quiet", *small]) == 0
    page = out / "run" / "index.html"
    assert page.is_file() and "generated" in page.read_text()
    assert str(page) in capsys.readouterr().out
    # Running it again reuses the data and starts a fresh run.
    assert main(["demo", "--out", str(out), "--steps", "2", "--size", "32", "--count", "4",
                 "--quiet", *small]) == 0


@pytest.mark.slow
def test_demo_budget_is_measured(tmp_path):
    from condsynth.config import apply_overrides
    from condsynth.data.procedural import write_dataset
    from condsynth.demo import MIN_STEPS, steps_for_budget
    from condsynth.train import prepare_config

    write_dataset(tmp_path, 4, 32, seed=0, test_count=1, progress=False)
    from condsynth.presets import load_preset_raw

    raw = apply_overrides(load_preset_raw("pix2pix_cpu"),
                          [f"data.root={tmp_path}", "data.load_size=32", "data.crop_size=32",
                           "model.num_downs=5", "model.ngf=8", "model.ndf=8"])
    config = prepare_config(parse_config(raw))
    assert steps_for_budget(config, 0.0) == MIN_STEPS
    assert steps_for_budget(config, 1e9) == config.train.max_steps


def test_resume_with_more_steps_says_the_schedule_changes(trained, tmp_path, capsys):
    import shutil

    _, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    assert main(["train", "--run", str(copy), "--resume", "--max-steps", "4", "--quiet"]) == 0
    assert "the schedule is stretched" in capsys.readouterr().err
