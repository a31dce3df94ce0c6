"""Pipelines: stages trained in order (resumed, skipped when finished), networks taken from
earlier stages (renamed), the chain sampled with every intermediate on the page."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from condsynth.cli import main
from condsynth.errors import ConfigError
from condsynth.pipeline import load_pipeline, parse_pipeline, read_pipeline, with_overrides
from condsynth.registry import build_method

SIZE = 32
TRAIN = {"batch_size": 2, "max_steps": 2, "log_every": 1, "sample_every": 2,
         "checkpoint_every": 1, "num_samples": 2, "tensorboard": False}
DATA = {"load_size": SIZE, "crop_size": SIZE, "preprocess": "fixed", "flip": False}


def description() -> dict:
    """A noise → picture stage (DCGAN on the B halves as single images), a picture → picture
    stage (pix2pix on the A|B pairs), and a third stage starting from the first's networks."""
    return {
        "pipeline": "toy",
        "stages": [
            {"name": "draw", "config": {
                "method": "dcgan", "model": {"ngf": 8, "ndf": 8, "z_dim": 8},
                "data": {**DATA, "layout": "image_folder"}, "train": TRAIN}},
            {"name": "paint", "config": {
                "method": "pix2pix", "model": {"ngf": 8, "ndf": 8, "num_downs": 5},
                "condition": {"kind": "image", "use_instance": False},
                "data": {**DATA, "layout": "aligned"}, "train": TRAIN}},
            {"name": "tune", "config": {
                "method": "dcgan", "model": {"ngf": 8, "ndf": 8, "z_dim": 8},
                "data": {**DATA, "layout": "image_folder"}, "train": {**TRAIN, "max_steps": 1}},
             "init_from": [{"stage": "draw", "networks": {"generator": "generator"}}]},
        ],
        "chain": [{"stage": "draw", "weights": {"stage": "tune"}},
                  {"stage": "paint", "inputs": {"cond": "draw"}}],
    }


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    """A|B pairs (64x32): A a square, B the same square in another colour."""
    root = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("test", 2)):
        (root / split).mkdir()
        for i in range(count):
            a = rng.integers(0, 80, (SIZE, SIZE, 3)).astype(np.uint8)
            y, x = rng.integers(0, SIZE // 2, 2)
            a[y:y + 6, x:x + 6] = (220, 220, 40)
            b = a.copy()
            b[y:y + 6, x:x + 6] = (40, 40, 220)
            Image.fromarray(np.concatenate([a, b], 1)).save(root / split / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def pipeline_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("desc") / "toy.yaml"
    path.write_text(yaml.safe_dump(description()))
    return path


@pytest.fixture(scope="module")
def trained(pipeline_file, pairs, tmp_path_factory) -> Path:
    """The toy pipeline trained once (read only by the tests that take it)."""
    run = tmp_path_factory.mktemp("trained") / "run"
    assert train(pipeline_file, run, pairs) == 0
    return run


def train(pipeline_file: Path, run: Path, data: Path, *extra: str) -> int:
    return main(["train", "--config", str(pipeline_file), "--run", str(run), "--data",
                 str(data), "--quiet", *extra])


def test_description_is_checked(pipeline_file):
    pipeline = load_pipeline(pipeline_file)
    assert [s.name for s in pipeline.stages] == ["draw", "paint", "tune"]
    # Stage configs start from the method's defaults.
    assert pipeline.stage("paint").config["model"]["lambda_l1"] == 100.0
    bad = description()
    bad["stages"][2]["init_from"] = [{"stage": "later"}]
    with pytest.raises(ConfigError, match="not an earlier stage"):
        parse_pipeline(bad)
    bad = description()
    bad["chain"][1]["inputs"] = {"cond": "paint"}
    with pytest.raises(ConfigError, match="not an earlier step"):
        parse_pipeline(bad)
    bad = description()
    bad["stages"][0]["config"]["model"]["ngff"] = 8
    with pytest.raises(ConfigError, match="ngff"):
        parse_pipeline(bad)
    bad = description()
    bad["stages"][1]["name"] = "train"
    with pytest.raises(ConfigError, match="identifier other than"):
        parse_pipeline(bad)


def test_overrides_by_stage_and_for_all(pipeline_file):
    pipeline = with_overrides(load_pipeline(pipeline_file),
                              ["paint.train.max_steps=7", "train.seed=3"])
    assert pipeline.stage("paint").config["train"]["max_steps"] == 7
    assert pipeline.stage("draw").config["train"]["max_steps"] == 2
    assert all(s.config["train"]["seed"] == 3 for s in pipeline.stages)
    with pytest.raises(ConfigError, match="neither a stage"):
        with_overrides(pipeline, ["paintt.train.max_steps=7"])


def test_train_resume_skip_sample(pipeline_file, pairs, tmp_path, capsys):
    run = tmp_path / "run"
    assert train(pipeline_file, run, pairs) == 0
    saved = read_pipeline(run)
    assert saved.stage("draw").config["data"]["root"] == str(pairs)
    for stage in ("draw", "paint", "tune"):
        assert torch.load(run / stage / "train_state.pt", weights_only=True)["step"] in (1, 2)
    # The third stage started from the first's generator (then trained one step), not its
    # discriminator: that one was drawn afresh.
    draw_d = load_file(run / "draw" / "discriminator.safetensors")
    tune_d = load_file(run / "tune" / "discriminator.safetensors")
    assert not all(torch.equal(draw_d[k], tune_d[k]) for k in draw_d)

    # The same command again: every stage finished, nothing trained.
    before = (run / "paint" / "generator.safetensors").stat().st_mtime_ns
    capsys.readouterr()
    assert train(pipeline_file, run, pairs) == 0
    out = capsys.readouterr().out
    assert out.count("finished before") == 3
    assert (run / "paint" / "generator.safetensors").stat().st_mtime_ns == before

    # Another description is refused; --resume with a longer schedule continues one stage.
    assert train(pipeline_file, run, pairs, "paint.train.max_steps=4") == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--resume", "--run", str(run), "--quiet",
                 "paint.train.max_steps=4"]) == 0
    out = capsys.readouterr().out
    assert "stage paint: resumed, step 4" in out and "stage draw: finished before" in out
    losses = [json.loads(line)["step"] for line in (run / "paint" / "losses.jsonl").open()]
    assert losses == [1, 2, 3, 4]

    # The chain: DCGAN's picture is pix2pix's condition; both on the page, side by side.
    out_dir = tmp_path / "samples"
    assert main(["sample", str(run), "--out", str(out_dir), "--count", "3", "--quiet"]) == 0
    page = (out_dir / "index.html").read_text()
    assert "draw_0002.png" in page and "paint_0002.png" in page
    assert "generator (from stage tune)" not in page       # notes name the networks taken
    assert "draw: generator, discriminator from stage tune" in page
    first = np.asarray(Image.open(out_dir / "draw_0000.png"))
    assert first.shape == (SIZE, SIZE, 3)


def test_chain_matches_the_stages_run_by_hand(trained, tmp_path):
    """The chain is exactly stage 2's generate on stage 1's output; a given picture replaces a
    stage's output."""
    from condsynth.api import load
    from condsynth.pipeline import load_chain, run_chain

    run = trained
    pipeline, methods, _ = load_chain(run, device="cpu")
    torch.manual_seed(5)
    result = run_chain(pipeline, methods, 2)
    draw = load(run / "draw", device="cpu")
    draw.initialize_from(run / "tune")
    paint = load(run / "paint", device="cpu")
    torch.manual_seed(5)
    first = draw.generate(batch_size=2)
    assert torch.equal(result.outputs["draw"], first)
    assert torch.equal(result.outputs["paint"], paint.generate(first))
    # Networks taken by name, renamed ({theirs: ours}); only those named.
    fresh = build_method(draw.config)
    d_before = {k: v.clone() for k, v in fresh.discriminator.state_dict().items()}
    assert fresh.initialize_from(run / "draw", {"generator": "generator"}) == ["generator"]
    drawn = load_file(run / "draw" / "generator.safetensors")
    assert all(torch.equal(v, drawn[k]) for k, v in fresh.generator.state_dict().items())
    assert all(torch.equal(v, d_before[k]) for k, v in fresh.discriminator.state_dict().items())
    with pytest.raises(ConfigError, match="no network 'critic'"):
        fresh.initialize_from(run / "draw", {"generator": "critic"})
    given = torch.zeros(2, 3, SIZE, SIZE)
    edited = run_chain(pipeline, methods, 2, given={"draw": given})
    assert torch.equal(edited.outputs["draw"], given)
    assert torch.equal(edited.outputs["paint"], paint.generate(given))

    picture = tmp_path / "given.png"
    Image.fromarray(np.full((SIZE * 2, SIZE * 2, 3), 128, np.uint8)).save(picture)
    assert main(["synthesize", str(run), "--given", f"draw={picture}", "--out",
                 str(tmp_path / "syn"), "--count", "2", "--device", "cpu", "--quiet"]) == 0
    page = (tmp_path / "syn" / "index.html").read_text()
    assert "draw given, not generated" in page
    assert "resized (bilinear)" in page


def test_the_studio_shows_every_stage(trained):
    """A pipeline run in the studio: sample mode, the last stage's picture equal to the chain's
    for the seed, and every stage's picture in the answer."""
    import base64
    import http.client
    import io
    import threading

    from condsynth.pipeline import load_chain, run_chain
    from condsynth.studio.server import make_server

    run = trained
    server = make_server([run], host="127.0.0.1", port=0, device="cpu")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=60)
        conn.request("GET", "/api/models")
        (model,) = json.loads(conn.getresponse().read())["models"]
        assert model["mode"] == "sample" and model["stages"] == ["draw", "paint"]
        conn.request("POST", "/api/generate", json.dumps({"model": model["id"], "seed": 4}),
                     {"Content-Type": "application/json"})
        answer = json.loads(conn.getresponse().read())
    finally:
        server.shutdown()
        server.server_close()
    assert [s["stage"] for s in answer["stages"]] == ["draw", "paint"]

    def picture(url: str) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))

    pipeline, methods, _ = load_chain(run, device="cpu")
    torch.manual_seed(4)
    expected = run_chain(pipeline, methods, 1).outputs
    from condsynth.data.dataset import tensor_to_image

    for stage in answer["stages"]:
        assert np.array_equal(picture(stage["image"]),
                              tensor_to_image(expected[stage["stage"]][0]))
    assert np.array_equal(picture(answer["image"]), tensor_to_image(expected["paint"][0]))
