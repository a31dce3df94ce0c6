"""Every known error path of every subcommand: one clear line naming the problem and the fix,
exit code 2, and never a traceback."""

from __future__ import annotations

import errno
import os

import pytest

from condsynth import checkpoint
from condsynth.cli import main

TINY = ["--size", "32", "--batch-size", "2", "--quiet", "model.ngf=4", "model.ndf=4",
        "train.tensorboard=false", "train.sample_every=100", "train.num_samples=1"]


@pytest.fixture(scope="module")
def run(scenes, tmp_path_factory):
    """A tiny trained pix2pix run (2 steps)."""
    path = tmp_path_factory.mktemp("errors") / "run"
    assert main(["train", "--method", "pix2pix", "--data", str(scenes), "--run", str(path),
                 "--max-steps", "2", *TINY]) == 0
    return path


def answer(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


# Each case: (name, argv with {data} {run} {tmp} {label} {inst} to fill, expected text).
CASES = [
    ("train without data", ["train", "--run", "{tmp}/r"], "no dataset"),
    ("train unknown key", ["train", "--data", "{data}", "--run", "{tmp}/r", *TINY,
                           "train.bogus=1"], "unknown key 'bogus'"),
    ("train unknown method", ["train", "--method", "nope", "--data", "{data}", "--run",
                              "{tmp}/r"], "nope"),
    ("train run is a file", ["train", "--data", "{data}", "--run", "{tmp}/file", *TINY],
     "is a file"),
    ("train batch size 0", ["train", "--data", "{data}", "--run", "{tmp}/r", *TINY,
                            "--batch-size", "0"], "train.batch_size: 0 is out of range"),
    ("train existing run", ["train", "--data", "{data}", "--run", "{run}", *TINY],
     "already holds a run"),
    ("train resume nothing", ["train", "--run", "{tmp}/none", "--resume"], "does not exist"),
    ("train resume a file", ["train", "--run", "{tmp}/file", "--resume"], "is not a folder"),
    ("train autopainter without sketches", ["train", "--method", "autopainter", "--data",
                                            "{data}", "--run", "{tmp}/r", *TINY,
                                            "data.line_extraction=none"],
     "data.line_extraction=none draws no sketches"),
    ("synthesize no run", ["synthesize", "{tmp}/none", "--label", "{label}", "--out",
                           "{tmp}/o.png"], "does not exist"),
    ("synthesize run is a file", ["synthesize", "{tmp}/file", "--label", "{label}", "--out",
                                  "{tmp}/o.png"], "is not a folder"),
    ("synthesize nothing", ["synthesize", "{run}", "--out", "{tmp}/o.png"],
     "nothing to synthesize"),
    ("synthesize out is a folder", ["synthesize", "{run}", "--label", "{label}", "--instance",
                                    "{inst}", "--out", "{tmp}"], "it is a folder"),
    ("synthesize missing label", ["synthesize", "{run}", "--label", "{tmp}/no.png", "--out",
                                  "{tmp}/o.png"], "no.png"),
    ("procedural count", ["data", "procedural", "--out", "{tmp}/p", "--count", "-1"],
     "--count"),
    ("procedural size", ["data", "procedural", "--out", "{tmp}/p", "--size", "0"],
     "at least 8x8"),
    ("procedural seed", ["data", "procedural", "--out", "{tmp}/p", "--seed", "-1"], "--seed"),
    ("procedural out is a file", ["data", "procedural", "--out", "{tmp}/file", "--count", "1",
                                  "--quiet"], "file"),
    ("import missing", ["import", "spade", "{tmp}/none", "--out", "{tmp}/i"], "none"),
    ("features on pix2pix", ["features", "{run}", "--data", "{data}"], "pix2pixhd"),
    ("bench bad size", ["bench", "--size", "big"], "is not HxW"),
    ("bench no run", ["bench", "--run", "{tmp}/none"], "does not exist"),
    ("evaluate nothing", ["evaluate"], "nothing to evaluate"),
    ("studio no run", ["studio", "{tmp}/none"], "does not exist"),
    ("studio bad port", ["studio", "{run}", "--port", "70000"], "--port 70000"),
    ("study serve no study", ["study", "serve", "{tmp}/none"], "not a study folder"),
]


@pytest.mark.parametrize("name, argv, expected", CASES, ids=[c[0] for c in CASES])
def test_every_error_is_one_clear_line(run, scenes, tmp_path, capsys, monkeypatch, name, argv,
                                       expected):
    (tmp_path / "file").write_text("not a folder")
    label = next((scenes / "test_label").iterdir())
    values = {"data": scenes, "run": run, "tmp": tmp_path, "label": label,
              "inst": scenes / "test_inst" / label.name}
    monkeypatch.chdir(tmp_path)
    code, err = answer(capsys, [a.format(**values) for a in argv])
    assert code == 2, err
    assert "Traceback" not in err and err.startswith("condsynth: error: ")
    assert len(err.strip().splitlines()) == 1, err
    assert expected in err
    assert not list(tmp_path.glob(".*.tmp")), "a stray temporary file was left"


def test_disk_full_during_a_checkpoint(scenes, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert main(["train", "--method", "pix2pix", "--data", str(scenes), "--run", str(run),
                 "--max-steps", "2", *TINY]) == 0
    before = (run / "generator.safetensors").read_bytes()
    real = checkpoint._fsync_write

    def full_disk(path, data):
        if path.name == "train_state.pt":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, data)

    monkeypatch.setattr(checkpoint, "_fsync_write", full_disk)
    code, err = answer(capsys, ["train", "--run", str(run), "--resume", "--max-steps", "4",
                                "--quiet"])
    assert code == 2 and "Traceback" not in err
    assert "No space left on device" in err and "previous checkpoint is unchanged" in err
    assert (run / "generator.safetensors").read_bytes() == before
    assert not (run / checkpoint.STAGING).exists()
    monkeypatch.undo()
    assert main(["train", "--run", str(run), "--resume", "--max-steps", "4", "--quiet"]) == 0


def test_a_read_only_run_folder(run, tmp_path, capsys, monkeypatch):
    # Tests may run as root, who writes anywhere: the refusal is simulated where it happens.
    real_open = os.open

    def read_only(path, flags, *args):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and str(run) in str(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(checkpoint.os, "open", read_only)
    code, err = answer(capsys, ["train", "--run", str(run), "--resume", "--max-steps", "3",
                                "--quiet"])
    assert code == 2 and "Traceback" not in err
    assert "cannot write the run directory" in err and "Permission denied" in err


def test_a_truncated_train_state(run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    state = copy / checkpoint.TRAIN_STATE
    state.write_bytes(state.read_bytes()[:100])
    code, err = answer(capsys, ["train", "--run", str(copy), "--resume", "--max-steps", "3",
                                "--quiet"])
    assert code == 2 and "Traceback" not in err and "not a readable PyTorch file" in err
