"""The command line end to end for Auto-painter: sketches from photos, training on a folder of
images (sketches on the fly) or of pairs, synthesis with and without hints, folder mode, and
clear answers (exit 2, no traceback) to bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from condsynth.cli import build_parser, main
from condsynth.cli.data import XDOG_FLAGS
from condsynth.data.sketches import XDoGParams

from .conftest import TINY, photo, write_png


def cli(*args: str) -> int:
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def trained(photos, tmp_path_factory):
    """A 2-step autopainter run trained straight from the folder of photos."""
    run = tmp_path_factory.mktemp("ap_cli") / "run"
    assert cli("train", "--method", "autopainter", "--data", photos, "--run", run,
               "--max-steps", "2", "--batch-size", "2", "--seed", "0", "--quiet",
               "model.lambda_feat=0.0", *TINY) == 0
    return run


@pytest.fixture
def sketch_file(tmp_path):
    sketch = np.full((40, 48), 255, np.uint8)
    sketch[10, 5:40] = sketch[30, 5:40] = 0
    sketch[10:31, 5] = sketch[10:31, 39] = 0
    return write_png(sketch, tmp_path / "box.png")


def test_xdog_flag_defaults_are_the_library_defaults():
    defaults = XDoGParams()
    assert {name: getattr(defaults, name) for name in XDOG_FLAGS} == {
        name: default for name, (default, _) in XDOG_FLAGS.items()}
    help_text = build_parser()._subparsers._group_actions[0].choices["data"].format_help()
    assert "sketches" in help_text


def test_data_sketches_writes_pairs(photos, tmp_path, capsys):
    out = tmp_path / "pairs"
    assert cli("data", "sketches", photos, "--out", out, "--test-count", "1", "--sigma", "1.0",
               "--binarize", "--quiet") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == {"out": str(out), "layout": "sketch_pairs", "train": 5, "test": 1}
    sketch = np.asarray(Image.open(out / "train_sketch" / "photo0.png"))
    assert sketch.shape == (40, 48) and set(np.unique(sketch)) <= {0, 255}
    assert (out / "train_img" / "photo0.png").is_file()
    assert cli("data", "sketches", tmp_path / "none", "--out", out) == 2
    assert "folder not found" in capsys.readouterr().err


def test_train_wrote_a_sketch_run(trained):
    config = (trained / "config.yaml").read_text()
    assert "method: autopainter" in config and "line_extraction: xdog_random" in config
    assert "kind: image" in config and "image_channels: 1" in config
    page = (trained / "index.html").read_text()
    assert "samples/condition_0.png" in page
    condition = np.asarray(Image.open(trained / "samples" / "condition_0.png"))
    assert condition.shape == (32, 32, 3) and condition.max() == 255       # a sketch: paper


def test_train_on_a_folder_of_pairs(photos, tmp_path, capsys):
    pairs = tmp_path / "pairs"
    assert cli("data", "sketches", photos, "--out", pairs, "--quiet") == 0
    run = tmp_path / "run"
    assert cli("train", "--method", "autopainter", "--data", pairs, "--run", run,
               "--max-steps", "1", "--batch-size", "2", "--quiet", "model.lambda_feat=0.0",
               *TINY) == 0
    assert "to step 1" in capsys.readouterr().out


def test_synthesize_with_and_without_hints(trained, sketch_file, tmp_path, capsys):
    plain = tmp_path / "plain.png"
    assert cli("synthesize", trained, "--sketch", sketch_file, "--out", plain) == 0
    assert np.asarray(Image.open(plain)).shape == (40, 48, 3)             # any size back
    hints = np.full((40, 48, 3), 255, np.uint8)
    hints[15:25, 15:30] = (220, 30, 30)
    hinted = tmp_path / "hinted.png"
    assert cli("synthesize", trained, "--sketch", sketch_file, "--hints",
               write_png(hints, tmp_path / "h.png"), "--out", hinted) == 0
    assert not np.array_equal(np.asarray(Image.open(plain)), np.asarray(Image.open(hinted)))
    # Half-size hints of the same shape are resized, with a note.
    small = write_png(hints[::2, ::2], tmp_path / "small.png")
    assert cli("synthesize", trained, "--sketch", sketch_file, "--hints", small,
               "--out", tmp_path / "s.png") == 0
    assert "note:" in capsys.readouterr().err


def test_synthesize_a_folder(trained, sketch_file, tmp_path, capsys):
    sketches = tmp_path / "sketches"
    write_png(np.asarray(Image.open(sketch_file)), sketches / "a.png")
    write_png(255 - np.asarray(Image.open(sketch_file)), sketches / "b.png")   # inverted
    hints = np.full((40, 48, 4), 0, np.uint8)
    hints[5:9, 5:9] = (255, 255, 255, 255)                                      # alpha hint
    write_png(hints, tmp_path / "hints" / "a.png")
    out = tmp_path / "out"
    assert cli("synthesize", trained, "--sketches", sketches, "--hints-dir", tmp_path / "hints",
               "--out", out, "--quiet") == 0
    page = (out / "index.html").read_text()
    assert "<th>sketch</th><th>hints</th><th>result</th>" in page
    assert "hints/a.png" in page and "sketches/b.png" in page and "<td>none</td>" in page
    assert (out / "a.png").is_file() and (out / "b.png").is_file()
    assert np.array_equal(np.asarray(Image.open(out / "sketches" / "b.png"))[..., 0],
                          np.asarray(Image.open(sketch_file)))
    assert "inverted" in capsys.readouterr().err


@pytest.mark.parametrize(("make", "message"), [
    (lambda: np.zeros((40, 48), np.uint8), "the sketch is all black: nothing is drawn"),
    (lambda: np.full((40, 48), 255, np.uint8), "the sketch is all white"),
    (lambda: photo(3), "looks like a colour picture, not a line sketch"),
])
def test_bad_sketches_get_a_clear_message(trained, tmp_path, capsys, make, message):
    bad = write_png(make(), tmp_path / "bad.png")
    assert cli("synthesize", trained, "--sketch", bad, "--out", tmp_path / "o.png") == 2
    err = capsys.readouterr().err
    assert message in err and "bad.png" in err and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()


def test_bad_hints_and_flag_mixes_get_a_clear_message(trained, sketch_file, tmp_path, capsys):
    other = write_png(np.full((40, 80, 3), 255, np.uint8), tmp_path / "wide.png")
    assert cli("synthesize", trained, "--sketch", sketch_file, "--hints", other,
               "--out", tmp_path / "o.png") == 2
    assert "the hint image is 80x40 but the sketch is 48x40" in capsys.readouterr().err
    assert cli("synthesize", trained, "--sketch", sketch_file, "--hints-dir", tmp_path,
               "--out", tmp_path / "o.png") == 2
    assert "--hints-dir goes with --sketches" in capsys.readouterr().err
    assert cli("synthesize", trained, "--label", sketch_file, "--out", tmp_path / "o.png") == 2
    assert "not on a label map. Fix: pass it with --sketch" in capsys.readouterr().err


def test_a_label_map_run_refuses_sketches(tmp_path, capsys, scenes, sketch_file):
    run = tmp_path / "p2p"
    assert cli("train", "--method", "pix2pix", "--data", scenes, "--run", run, "--max-steps",
               "1", "--size", "32", "--quiet", "model.ngf=8", "model.ndf=8",
               "model.num_downs=5", "train.tensorboard=false") == 0
    assert cli("synthesize", run, "--sketch", sketch_file, "--out", tmp_path / "o.png") == 2
    assert "takes label maps, not sketches" in capsys.readouterr().err
