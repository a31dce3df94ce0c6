"""``condsynth evaluate`` and ``condsynth segmenter train`` end to end on tiny folders, and the
resumable feature cache."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from condsynth.cli import main
from condsynth.metrics import evaluate as evaluate_module
from condsynth.metrics.evaluate import inception_outputs, list_images
from condsynth.metrics.fid import fid_from_features
from condsynth.metrics.inception import (
    NONSTANDARD_NOTE,
    InceptionWeights,
    load_inception,
    resolve_inception_weights,
)


@pytest.fixture(scope="module")
def evaluated(tiny_run, scenes, inception_file, tiny_segmenter, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    out = tmp_path_factory.mktemp("eval") / "out"
    code = main(["evaluate", str(tiny_run), "--data", str(scenes), "--out", str(out),
                 "--metrics", "fid,kid,is,swd,miou,msssim", "--inception-weights",
                 str(inception_file), "--allow-nonstandard-weights", "--segmenter",
                 str(tiny_segmenter), "--cache-dir", str(cache), "--msssim-samples", "2",
                 "--msssim-labels", "1", "--quiet"])
    assert code == 0
    # Later tests evaluate into the same folder again: keep this evaluation's report.
    return out, cache, json.loads((out / "eval.json").read_text()), (out / "eval.html").read_text()


def test_evaluate_run_writes_every_metric_and_a_page(evaluated):
    out, _, results, page = evaluated
    m = results["metrics"]
    assert results["images"] == {"real": 2, "fake": 2} and results["phase"] == "test"
    assert math.isfinite(m["fid"]) and m["fid"] >= 0
    assert set(m["kid"]) >= {"mean", "std"} and m["is"]["fake"]["mean"] >= 1.0
    assert list(m["swd"]["levels"]) == ["32x32", "16x16"]
    assert len(m["miou"]["generated"]["per_class_iou"]) == 11 and "real" in m["miou"]
    assert m["miou"]["class_names"][0] == "sky"
    # pix2pix at test time is deterministic: every output for a label is the same.
    assert m["msssim"]["mean"] == pytest.approx(1.0) and m["msssim"]["scales"] == 2
    assert results["inception"]["standard"] is False
    assert results["inception"]["comparable_with_papers"] is False
    assert NONSTANDARD_NOTE in results["warnings"]
    assert NONSTANDARD_NOTE in page and "<svg" in page and "Per-class IoU" in page
    assert f"{m['fid']:.3f}" in page and "http" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")           # self-contained: no CDN, no links
    for sample in results["samples"]:
        for key in ("label", "real", "fake"):
            assert (out / sample[key]).is_file()


def test_fid_equals_the_distance_of_the_network_features(evaluated, inception_file):
    out, _, results, _ = evaluated
    weights = resolve_inception_weights(inception_file, allow_nonstandard=True)
    net = load_inception(weights)
    feats = []
    for kind in ("real", "fake"):
        images = torch.stack([evaluate_module.read_uint8(p) for p in list_images(out / kind)])
        feats.append(net(images)[0].numpy())
    assert results["metrics"]["fid"] == pytest.approx(fid_from_features(*feats), rel=1e-5)


def test_a_second_evaluation_reuses_the_pictures_and_the_feature_cache(
        evaluated, tiny_run, scenes, inception_file, monkeypatch):
    out, cache, _, _ = evaluated
    before = {p: p.stat().st_mtime_ns for p in (out / "fake").iterdir()}

    def no_network(*args, **kwargs):
        raise AssertionError("features should have come from the cache")

    monkeypatch.setattr(evaluate_module, "load_inception", no_network)
    assert main(["evaluate", str(tiny_run), "--data", str(scenes), "--out", str(out),
                 "--metrics", "fid", "--inception-weights", str(inception_file),
                 "--allow-nonstandard-weights", "--cache-dir", str(cache), "--quiet"]) == 0
    assert before == {p: p.stat().st_mtime_ns for p in (out / "fake").iterdir()}
    assert list(json.loads((out / "eval.json").read_text())["metrics"]) == ["fid"]


def test_evaluate_two_folders_with_labels(evaluated, scenes, inception_file, tiny_segmenter,
                                          tmp_path, capsys):
    out, cache, run, _ = evaluated
    code = main(["evaluate", "--real", str(out / "real"), "--fake", str(out / "fake"),
                 "--labels", str(scenes / "test_label"), "--out", str(tmp_path / "folders"),
                 "--metrics", "fid,swd,miou", "--inception-weights", str(inception_file),
                 "--allow-nonstandard-weights", "--segmenter", str(tiny_segmenter),
                 "--cache-dir", str(cache), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "FID" in printed and "SWD" in printed and "not comparable" in printed.lower()
    folder = json.loads((tmp_path / "folders" / "eval.json").read_text())
    assert folder["mode"] == "folders"
    assert folder["metrics"]["fid"] == pytest.approx(run["metrics"]["fid"], rel=1e-9)
    assert folder["metrics"]["swd"] == run["metrics"]["swd"]
    assert folder["metrics"]["miou"]["generated"] == run["metrics"]["miou"]["generated"]
    assert (tmp_path / "folders" / folder["samples"][0]["fake"]).is_file()


@pytest.mark.parametrize("argv, message", [
    (["--metrics", "fid"], "--allow-nonstandard-weights"),
    (["--metrics", "fid,bogus", "--allow-nonstandard-weights"], "unknown metric"),
    (["--metrics", "miou"], "miou needs a segmenter"),
])
def test_evaluate_answers_user_mistakes_without_a_traceback(tiny_run, scenes, inception_file,
                                                            tmp_path, capsys, argv, message):
    code = main(["evaluate", str(tiny_run), "--data", str(scenes), "--out", str(tmp_path),
                 "--inception-weights", str(inception_file), "--quiet", *argv])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_evaluate_without_weights_or_inputs(tiny_run, scenes, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    monkeypatch.delenv("CONDSYNTH_INCEPTION_WEIGHTS", raising=False)
    assert main(["evaluate", str(tiny_run), "--data", str(scenes), "--out", str(tmp_path),
                 "--metrics", "fid", "--quiet"]) == 2
    assert "never downloads" in capsys.readouterr().err
    assert main(["evaluate", "--real", str(tmp_path)]) == 2
    assert "--fake" in capsys.readouterr().err
    assert main(["evaluate"]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err


def test_feature_cache_resumes_chunk_by_chunk(tmp_path, monkeypatch):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(5):
        Image.fromarray(np.full((8, 8, 3), i * 40, np.uint8)).save(folder / f"{i}.png")
    paths = list_images(folder)
    calls = []

    class Stub(torch.nn.Module):
        def forward(self, images):
            calls.append(images.shape[0])
            if len(calls) == 3 and not hasattr(self, "survived"):
                raise KeyboardInterrupt          # an interruption in the third chunk
            mean = images.float().mean(dim=(1, 2, 3))
            return mean[:, None].repeat(1, 2048), mean[:, None].repeat(1, 1008)

    stub = Stub()
    monkeypatch.setattr(evaluate_module, "CHUNK_IMAGES", 2)
    monkeypatch.setattr(evaluate_module, "load_inception", lambda weights, device: stub)
    weights = InceptionWeights(tmp_path / "w.pth", "ab" * 32, standard=False)
    with pytest.raises(KeyboardInterrupt):
        inception_outputs(paths, weights, torch.device("cpu"), 2, tmp_path / "cache",
                          progress=False)
    store = next((tmp_path / "cache" / "features").iterdir())
    assert sorted(p.name for p in store.glob("chunk-*.npz")) == ["chunk-00000.npz",
                                                                "chunk-00001.npz"]
    stub.survived = True
    calls.clear()
    out = inception_outputs(paths, weights, torch.device("cpu"), 2, tmp_path / "cache",
                            progress=False)
    assert calls == [1]                          # only the missing chunk was computed
    np.testing.assert_allclose(out.pool[:, 0], [0, 40, 80, 120, 160])
    Image.fromarray(np.full((8, 8, 3), 7, np.uint8)).save(folder / "0.png")   # a changed image
    calls.clear()
    out = inception_outputs(paths, weights, torch.device("cpu"), 2, tmp_path / "cache",
                            progress=False)
    assert calls == [2] and out.pool[0, 0] == 7  # its chunk alone was recomputed


def test_segmenter_train_command(scenes, tmp_path, capsys):
    assert main(["segmenter", "train", "--data", str(scenes), "--out", str(tmp_path / "seg"),
                 "--steps", "1", "--size", "32", "--batch-size", "2", "--channels", "4",
                 "--depth", "2", "--quiet"]) == 0
    assert "11-class segmenter" in capsys.readouterr().out
    assert (tmp_path / "seg" / "segmenter.safetensors").is_file()
    assert main(["segmenter", "train", "--data", str(tmp_path), "--out", str(tmp_path / "x"),
                 "--quiet"]) == 2


def test_help_of_every_evaluation_command(capsys):
    for argv in (["evaluate"], ["segmenter"], ["segmenter", "train"], ["study"],
                 ["study", "build"], ["study", "serve"], ["study", "report"]):
        with pytest.raises(SystemExit) as done:
            main([*argv, "--help"])
        assert done.value.code == 0
        assert "usage: condsynth" in capsys.readouterr().out


def test_study_build_synthesizes_systems_given_as_runs(tiny_run, scenes, tmp_path, capsys):
    study = tmp_path / "study"
    argv = ["study", "build", "--out", str(study), "--system", f"first={tiny_run}",
            "--system", f"second={tiny_run}", "--quiet"]
    assert main(argv) == 2
    assert "pass --data" in capsys.readouterr().err
    assert main([*argv, "--data", str(scenes)]) == 0
    manifest = json.loads((study / "manifest.json").read_text())
    assert len(manifest["items"]) == 2                       # the two test scenes
    assert all((study / item["input"]).is_file() for item in manifest["items"])
    assert (tmp_path / ".study-sources" / "first" / "fake").is_dir()


def test_each_metric_succeeds_or_fails_on_its_own(inception_file, tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    for kind in ("real", "fake"):
        (tmp_path / kind).mkdir()
        for i, side in enumerate((32, 32, 40, 40)):      # two sizes: SWD cannot compare them
            Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(
                tmp_path / kind / f"{i}.png")
    out = tmp_path / "out"
    code = main(["evaluate", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"),
                 "--out", str(out), "--metrics", "fid,swd", "--inception-weights",
                 str(inception_file), "--allow-nonstandard-weights", "--no-cache", "--quiet"])
    assert code == 2
    captured = capsys.readouterr()
    assert "FID" in captured.out and "Traceback" not in captured.err
    assert "swd: SWD needs every image at one size" in captured.err
    results = json.loads((out / "eval.json").read_text())
    assert math.isfinite(results["metrics"]["fid"]) and "swd" not in results["metrics"]
    assert "40x40 and 32x32" in results["errors"]["swd"]
    assert "leave swd out of --metrics" in results["errors"]["swd"]
    page = (out / "eval.html").read_text()
    assert "failed" in page and "SWD needs every image at one size" in page
