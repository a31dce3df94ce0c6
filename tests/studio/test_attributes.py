"""Attribute-conditioned runs in the studio (a pipeline whose chain takes ``attributes``, and
an attributes -> picture run alone), the picture equal to ``condsynth synthesize --attributes
--seed``; ``condsynth sample`` of such a pipeline; settings a resumed pipeline ignores."""

from __future__ import annotations

import base64
import io
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from condsynth.cli import main
from condsynth.pipeline import random_attributes
from condsynth.studio.server import make_server
from tests.studio.conftest import call

NAMES = ["Smiling", "Eyeglasses", "Male"]
STAGES = ["sketch", "refine", "image"]


@pytest.fixture(scope="module")
def attr_studio(attribute_pipeline):
    """The studio serving the pipeline run and its first stage alone."""
    server = make_server([attribute_pipeline, attribute_pipeline / "sketch"], host="127.0.0.1",
                         port=0, device="cpu")
    server.start()
    yield server
    server.shutdown()
    server.server_close()


def picture(url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def same(url: str, path) -> bool:
    """The studio's picture and the PNG the command line wrote hold the same pixels (the
    command line saves a one-channel stage as RGB, its one channel repeated)."""
    ours, theirs = picture(url), np.asarray(Image.open(path))
    if ours.ndim == 2 and theirs.ndim == 3:
        assert (theirs == theirs[..., :1]).all()
        theirs = theirs[..., 0]
    return ours.shape == theirs.shape and np.array_equal(ours, theirs)


def generate(server, body: dict) -> tuple[int, dict]:
    status, _, raw = call(server, "/api/generate", body)
    return status, json.loads(raw)


def test_attribute_models_are_listed_with_their_attributes(attr_studio):
    status, _, raw = call(attr_studio, "/api/models")
    assert status == 200
    models = {m["id"]: m for m in json.loads(raw)["models"]}
    assert set(models) == {"faces", "sketch"}
    for model in models.values():
        assert model["mode"] == "sample" and model["attributes"] == NAMES
        assert model["latent"] is False and model["classes"] == []
    assert models["faces"]["stages"] == STAGES


def test_every_stage_is_the_picture_synthesize_makes(attr_studio, attribute_pipeline,
                                                     tmp_path):
    status, answer = generate(attr_studio, {"model": "faces", "seed": 7,
                                            "attributes": [1, -1, 1]})
    assert status == 200, answer
    assert [s["stage"] for s in answer["stages"]] == STAGES
    out = tmp_path / "cli"
    assert main(["synthesize", str(attribute_pipeline), "--attributes", "Smiling=1,Male=1",
                 "--seed", "7", "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    for stage in answer["stages"]:
        assert same(stage["image"], out / f"{stage['stage']}_0000.png"), stage["stage"]
    assert same(answer["image"], out / "image_0000.png")


def test_the_toggles_reach_every_stage_that_takes_attributes(attr_studio, monkeypatch):
    """The vector of the request, in the order of the names, is what each stage's generate
    gets (a one-step run draws nearly the same picture for every vector, so the pixels alone
    would not show it)."""
    model = attr_studio.model("faces")
    seen = {}
    for stage, method in model.methods.items():
        def spy(*args, _stage=stage, _generate=method.generate, **kwargs):
            seen[_stage] = kwargs["cond" if _stage == "sketch" else "attributes"]
            return _generate(*args, **kwargs)
        monkeypatch.setattr(method, "generate", spy)
    status, answer = generate(attr_studio, {"model": "faces", "seed": 1,
                                            "attributes": [-1, 1, 0.5]})
    assert status == 200, answer
    for stage in STAGES:
        assert seen[stage].tolist() == [[-1.0, 1.0, 0.5]], stage


def test_a_single_attribute_run_is_synthesize_too(attr_studio, attribute_pipeline, tmp_path):
    status, answer = generate(attr_studio, {"model": "sketch", "seed": 3,
                                            "attributes": [-1, 1, -1]})
    assert status == 200, answer
    assert "stages" not in answer
    out = tmp_path / "sketch.png"
    assert main(["synthesize", str(attribute_pipeline / "sketch"), "--attributes",
                 "Eyeglasses=1", "--seed", "3", "--out", str(out), "--device", "cpu",
                 "--quiet"]) == 0
    assert same(answer["image"], out)
    _, again = generate(attr_studio, {"model": "sketch", "seed": 4, "attributes": [-1, 1, -1]})
    assert again["image"] != answer["image"]                             # new noise


@pytest.mark.parametrize(("attributes", "message"), [
    (None, "attributes are missing: model faces takes one value per attribute (Smiling, "
           "Eyeglasses, Male), 1 on and -1 off"),
    ([1, -1], "attributes: 2 values, expected a list of 3 numbers"),
    ("Smiling", "attributes: 'Smiling', expected a list of 3 numbers"),
    ([1, 2, -1], "attributes: Eyeglasses is 2; expected a number from -1 (off) to 1 (on)"),
    ([1, True, -1], "attributes: Eyeglasses is True"),
    ([1, "on", -1], "attributes: Eyeglasses is 'on'"),
])
def test_bad_attribute_vectors_are_refused_clearly(attr_studio, attributes, message):
    body = {"model": "faces", "seed": 0}
    if attributes is not None:
        body["attributes"] = attributes
    status, answer = generate(attr_studio, body)
    assert status == 400
    assert answer["error"].startswith(message), answer["error"]


def drawn_on(page: str, count: int) -> list[list[float]]:
    """The attribute vectors ``sample`` lists on its page (names at +1, the others -1)."""
    rows = []
    for i in range(count):
        line = page.split(f"sample {i}: ", 1)[1].split("<", 1)[0]
        on = {item.split("=")[0] for item in line.split(",")} if "=" in line else set()
        rows.append([1.0 if name in on else -1.0 for name in NAMES])
    return rows


def test_attributes_for_a_model_without_them_are_refused():
    from types import SimpleNamespace

    from condsynth.studio.server import StudioError, _attributes

    plain = SimpleNamespace(id="dcgan", attributes=[])
    assert _attributes(None, plain) is None
    with pytest.raises(StudioError, match="model dcgan takes no attributes; leave them out"):
        _attributes([1, -1], plain)
    vector = _attributes([1, -1, 0.5], SimpleNamespace(id="faces", attributes=NAMES))
    assert vector.tolist() == [[1.0, -1.0, 0.5]] and vector.dtype == torch.float32


def test_sample_draws_rows_of_the_training_table(attribute_pipeline, tmp_path):
    out = tmp_path / "samples"
    assert main(["sample", str(attribute_pipeline), "--count", "4", "--seed", "5", "--out",
                 str(out), "--device", "cpu", "--quiet"]) == 0
    page = (out / "index.html").read_text()
    data = attribute_pipeline.parent / "data"
    assert (f"attributes: rows of the training table of stage sketch ({data}), drawn at random "
            "(seed 5)") in page
    table = [[float(v) for v in line.split(",")[1:]]
             for line in (data / "attributes.csv").read_text().splitlines()[1:]]
    rows = torch.randint(0, len(table), (4,), generator=torch.Generator().manual_seed(5))
    assert drawn_on(page, 4) == [table[i] for i in rows.tolist()]
    for stage in STAGES:
        assert (out / f"{stage}_0003.png").is_file()


def test_sample_draws_random_attributes_without_the_table(attribute_pipeline, tmp_path):
    run = tmp_path / "moved"
    shutil.copytree(attribute_pipeline, run)
    config = run / "sketch" / "config.yaml"
    config.write_text(config.read_text().replace(str(attribute_pipeline.parent / "data"),
                                                 str(tmp_path / "gone")))
    out = tmp_path / "samples"
    assert main(["sample", str(run), "--count", "3", "--seed", "5", "--out", str(out),
                 "--device", "cpu", "--quiet"]) == 0
    page = (out / "index.html").read_text()
    assert ("attributes: each +1 or -1 with equal odds (seed 5), since the training table of "
            "stage sketch could not be used (") in page
    assert drawn_on(page, 3) == random_attributes(NAMES, 3, 5).tolist()
    assert not torch.equal(random_attributes(NAMES, 3, 5), random_attributes(NAMES, 3, 6))


def test_synthesize_without_attributes_says_how_to_give_them(attribute_pipeline, tmp_path,
                                                             capsys):
    assert main(["synthesize", str(attribute_pipeline), "--seed", "1", "--out",
                 str(tmp_path / "out"), "--device", "cpu", "--quiet"]) != 0
    assert ("takes the inputs attributes; attributes not given. Fix: --attributes "
            "\"NAME=1,...\" (attributes not named are -1), or `condsynth sample RUN`, which "
            "draws them.") in capsys.readouterr().err


def test_resume_names_the_settings_a_started_stage_ignores(attribute_pipeline, tmp_path,
                                                           capsys):
    run = tmp_path / "run"
    shutil.copytree(attribute_pipeline, run)
    capsys.readouterr()
    assert main(["train", "--resume", "--run", str(run), "--quiet", "sketch.train.lr_g=0.5",
                 "model.ngf=4"]) == 0
    err = capsys.readouterr().err
    assert ("warning: stage 1/3 'sketch' has started (step 30): only train.max_steps applies "
            "to it on resume; these settings are ignored: model.ngf=4, train.lr_g=0.5") in err
    assert "stage 3/3 'image' has started (step 1)" in err and "model.ngf=4\n" in err
    # The schedule alone is no warning.
    assert main(["train", "--resume", "--run", str(run), "--quiet", "train.max_steps=1"]) == 0
    assert "warning" not in capsys.readouterr().err
