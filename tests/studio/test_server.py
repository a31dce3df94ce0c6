"""The studio's HTTP server without a browser: API, exactness, limits, safety, concurrency."""

from __future__ import annotations

import base64
import http.client
import io
import json
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from condsynth.api import load
from condsynth.cli import build_parser, main
from condsynth.data.dataset import image_to_tensor, tensor_to_image
from condsynth.data.sketches import hints_from_array, sketch_to_tensor
from condsynth.studio import server as studio_server
from condsynth.studio.server import (
    MAX_UPLOAD_BYTES,
    StudioServer,
    derive_instances,
    encode_array,
    make_server,
    model_ids,
)
from tests.studio.conftest import (
    LATENT,
    SAMPLE_CLASSES,
    SIZE,
    assert_close,
    call,
    png_file,
    sample_recipe,
)

SKY, GRASS, ROAD, TREE, CAR = 0, 4, 5, 7, 8


def scene() -> tuple[np.ndarray, np.ndarray]:
    """Sky over grass, a road, two trees, two cars: (label, instance) at the runs' 32x32."""
    label = np.full((SIZE, SIZE), SKY, np.int64)
    label[16:] = GRASS
    label[22:, 12:20] = ROAD
    label[6:16, 20:24] = TREE
    label[8:16, 26:30] = TREE
    instance = label.copy()
    instance[6:16, 20:24] = TREE * 1000 + 1
    instance[8:16, 26:30] = TREE * 1000 + 2
    label[18:22, 2:8] = CAR
    instance[18:22, 2:8] = CAR * 1000 + 1
    label[24:28, 22:30] = CAR
    instance[24:28, 22:30] = CAR * 1000 + 2
    return label, instance


def picture(answer: bytes) -> np.ndarray:
    """The (H, W, 3) picture of a generate answer (a PNG data URL)."""
    url = json.loads(answer)["image"]
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def paint_request(model: str, label: np.ndarray, instance: np.ndarray | None = None,
                  **extra) -> dict:
    request = {"model": model, "seed": 7, "label": encode_array(label, "uint8"), **extra}
    if instance is not None:
        request["instance"] = encode_array(instance, "int32")
    return request


@pytest.fixture(scope="module")
def direct(studio_runs):
    """The runs loaded a second time, apart from the server: the reference for exactness."""
    return {name: load(run, device="cpu") for name, run in studio_runs.items()}


# ----------------------------------------------------------------------------- API


def test_health_and_model_descriptions(studio):
    status, _, body = call(studio, "/health")
    assert status == 200 and json.loads(body) == {"status": "ok", "models": 6, "device": "cpu"}
    status, _, body = call(studio, "/api/models")
    models = {m["id"]: m for m in json.loads(body)["models"]}
    assert set(models) == {"p2p", "spade", "hd", "painter", "dcgan", "cdcgan"}
    p2p, spade, hd, painter = (models[k] for k in ("p2p", "spade", "hd", "painter"))
    assert (p2p["mode"], p2p["width"], p2p["height"]) == ("paint", SIZE, SIZE)
    # The procedural scenes' classes with their names, colours and thing classes.
    assert [c["name"] for c in p2p["classes"]][:6] == ["sky", "cloud", "mountain", "water",
                                                       "grass", "road"]
    assert [c["id"] for c in p2p["classes"] if c["thing"]] == [6, 7, 8, 9]
    assert p2p["classes"][CAR]["colour"] == [15, 15, 145]
    assert p2p["eraser"] == 0 and p2p["use_instance"]
    # Controls follow each run's config: dropout noise, VAE, clustered looks, colour hints.
    # pix2pix keeps dropout on at test time, but a 5-level U-Net has no dropout layer.
    assert not p2p["random"] and not p2p["style_image"] and p2p["looks"] == {}
    assert spade["random"] and spade["style_image"]
    assert hd["style_image"] and hd["looks"]["4"] == 3
    assert (painter["mode"], painter["hints"], painter["classes"]) == ("sketch", True, [])
    assert not p2p["latent"] and p2p["latent_size"] is None
    assert not spade["latent"]                 # a latent of its own, but no sample mode


def test_binds_loopback_by_default(studio):
    args = build_parser().parse_args(["studio", "some/run"])
    assert (args.host, args.port) == ("127.0.0.1", 8000)
    assert studio.server_address[0] == "127.0.0.1" and studio.loopback_only


@pytest.mark.parametrize("model", ["p2p", "spade", "hd"])
def test_generate_equals_a_direct_generate_call(studio, direct, model):
    label, instance = scene()
    status, _, body = call(studio, "/api/generate", paint_request(model, label, instance))
    assert status == 200, body
    answer = json.loads(body)
    assert answer["seed"] == 7 and answer["ms"] > 0 and (answer["width"], answer["height"]) == (
        SIZE, SIZE)
    method = direct[model]
    torch.manual_seed(7)
    expected = method.generate(torch.from_numpy(label)[None],
                               instance=torch.from_numpy(instance)[None])
    assert_close(picture(body), tensor_to_image(expected[0]))


@pytest.mark.parametrize("model", ["spade", "hd"])
def test_the_seed_draws_another_look(studio, model):
    label, instance = scene()
    first = picture(call(studio, "/api/generate", paint_request(model, label, instance))[2])
    again = picture(call(studio, "/api/generate", paint_request(model, label, instance))[2])
    other = paint_request(model, label, instance)
    other["seed"] = 8
    assert np.array_equal(first, again)
    assert not np.array_equal(first, picture(call(studio, "/api/generate", other)[2]))


def test_style_image_and_chosen_looks_equal_direct_calls(studio, direct):
    label, instance = scene()
    style = np.random.default_rng(1).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    request = paint_request("spade", label, instance,
                            style=base64.b64encode(png_file(style)).decode())
    status, _, body = call(studio, "/api/generate", request)
    assert status == 200, body
    expected = direct["spade"].generate(torch.from_numpy(label)[None],
                                        instance=torch.from_numpy(instance)[None],
                                        style=image_to_tensor(style)[None])
    assert_close(picture(body), tensor_to_image(expected[0]))

    # Every tree in look 0, but the second tree in look 2 (the tiny run has 3 per class).
    looks, instance_looks = {GRASS: 2, SKY: 0, TREE: 0}, {TREE * 1000 + 2: 2}
    request = paint_request("hd", label, instance, looks={str(k): v for k, v in looks.items()},
                            instance_looks={str(k): v for k, v in instance_looks.items()})
    status, _, body = call(studio, "/api/generate", request)
    assert status == 200, body
    hd = direct["hd"]
    label_t, instance_t = torch.from_numpy(label)[None], torch.from_numpy(instance)[None]
    features = hd.feature_map(label_t, instance_t, looks, instance_looks, seed=7)
    expected = hd.generate(label_t, instance=instance_t, z=features)
    assert_close(picture(body), tensor_to_image(expected[0]))
    # A look index the class does not have is the library's own clear error, not a crash.
    request["looks"] = {str(GRASS): 99}
    status, _, body = call(studio, "/api/generate", request)
    assert status == 422 and "look 99 for class 4" in json.loads(body)["error"]


def test_sketch_with_hints_equals_a_direct_call(studio, direct):
    sketch = np.full((SIZE, SIZE), 255, np.uint8)
    sketch[8, 4:28] = 0
    sketch[8:24, 16] = 0
    hints = np.zeros((SIZE, SIZE, 4), np.uint8)
    hints[20:24, 4:10] = [200, 40, 40, 255]
    request = {"model": "painter", "seed": 3, "sketch": encode_array(sketch, "uint8"),
               "hints": encode_array(hints, "uint8")}
    status, _, body = call(studio, "/api/generate", request)
    assert status == 200, body
    torch.manual_seed(3)
    expected = direct["painter"].generate(sketch_to_tensor(sketch)[None],
                                          hints=hints_from_array(hints)[None])
    assert_close(picture(body), tensor_to_image(expected[0]))


def test_layout_png_holds_the_exact_ids(studio):
    label, instance = scene()
    status, headers, body = call(studio, "/api/png", {"model": "p2p", "kind": "label",
                                                      "map": encode_array(label, "uint8")})
    assert status == 200 and headers["Content-Type"] == "image/png"
    img = Image.open(io.BytesIO(body))
    assert img.mode == "L" and np.array_equal(np.asarray(img), label)
    status, _, body = call(studio, "/api/png", {"model": "p2p", "kind": "instance",
                                                "map": encode_array(instance, "int32")})
    img = Image.open(io.BytesIO(body))
    assert img.mode.startswith("I;16") and np.array_equal(np.asarray(img).astype(np.int64),
                                                          instance)


def test_look_thumbnails(studio):
    status, _, body = call(studio, "/api/looks?model=hd")
    rows = json.loads(body)["classes"]
    assert status == 200 and {r["id"] for r in rows} >= {SKY, GRASS}
    grass = next(r for r in rows if r["id"] == GRASS)
    assert len(grass["looks"]) == 3
    thumbs = [Image.open(io.BytesIO(base64.b64decode(u.split(",", 1)[1]))) for u in grass["looks"]]
    assert {t.size for t in thumbs} == {(48, 48)}
    # Three looks, three different pictures.
    assert len({np.asarray(t).tobytes() for t in thumbs}) == 3
    status, _, body = call(studio, "/api/looks?model=p2p")
    assert status == 404 and "no clustered looks" in json.loads(body)["error"]


# ----------------------------------------------------------------------------- sample mode


def sample_request(model: str, seed: int = 5, **extra) -> dict:
    request = {"model": model, "seed": seed, **extra}
    if model == "cdcgan" and "class" not in request:
        request["class"] = 1
    return request


def sample(server: StudioServer, request: dict) -> np.ndarray:
    status, _, body = call(server, "/api/generate", request)
    assert status == 200, body
    return picture(body)


def test_sample_models_are_described(studio):
    models = {m["id"]: m for m in json.loads(call(studio, "/api/models")[2])["models"]}
    dcgan, cdcgan = models["dcgan"], models["cdcgan"]
    for model in (dcgan, cdcgan):
        assert (model["mode"], model["method"], model["width"], model["height"]) == (
            "sample", "dcgan", SIZE, SIZE)
        assert model["latent"] and model["latent_size"] == LATENT
    assert dcgan["classes"] == []
    assert cdcgan["classes"] == [{"id": i, "name": name} for i, name in enumerate(SAMPLE_CLASSES)]


@pytest.mark.parametrize("model", ["dcgan", "cdcgan"])
def test_a_sample_equals_the_documented_recipe(studio, direct, model):
    cls = 2 if model == "cdcgan" else None
    request = sample_request(model, seed=11) | ({"class": cls} if cls is not None else {})
    status, _, body = call(studio, "/api/generate", request)
    assert status == 200, body
    answer = json.loads(body)
    assert answer["seed"] == 11 and answer["ms"] > 0
    got = picture(body)
    expected = sample_recipe(direct[model], 11, cls)
    if model == "dcgan":
        # One channel: a greyscale PNG, not three copies of it.
        assert got.shape == (SIZE, SIZE) and got.dtype == np.uint8
        expected = expected[..., 0]
    else:
        assert got.shape == (SIZE, SIZE, 3)
    assert_close(got, expected)
    assert np.array_equal(sample(studio, request), got)            # deterministic
    assert not np.array_equal(sample(studio, request | {"seed": 12}), got)


@pytest.mark.parametrize("model", ["dcgan", "cdcgan"])
def test_the_walk_runs_from_sample_a_to_sample_b(studio, direct, model):
    a, b = sample(studio, sample_request(model, 3)), sample(studio, sample_request(model, 4))
    assert not np.array_equal(a, b)
    walk = sample_request(model, 3, seed_b=4)
    assert np.array_equal(sample(studio, walk), a)                      # t left out: 0
    assert np.array_equal(sample(studio, walk | {"t": 0}), a)
    assert np.array_equal(sample(studio, walk | {"t": 1}), b)
    middle = sample(studio, walk | {"t": 0.25})
    assert not np.array_equal(middle, a) and not np.array_equal(middle, b)
    cls = 1 if model == "cdcgan" else None
    expected = sample_recipe(direct[model], 3, cls, seed_b=4, t=0.25)
    assert_close(middle, expected[..., 0] if model == "dcgan" else expected)


def test_the_class_picks_what_is_drawn(studio, direct):
    pictures = [sample(studio, sample_request("cdcgan", 7, **{"class": c}))
                for c in range(len(SAMPLE_CLASSES))]
    assert len({p.tobytes() for p in pictures}) == len(SAMPLE_CLASSES)
    assert_close(pictures[2], sample_recipe(direct["cdcgan"], 7, 2))


def test_a_model_without_a_latent_samples_from_the_seed(studio, direct, monkeypatch):
    monkeypatch.setattr(studio.models["cdcgan"], "latent_size", None)
    described = studio.models["cdcgan"].describe()
    assert not described["latent"] and described["latent_size"] is None
    got = sample(studio, sample_request("cdcgan", 9))
    torch.manual_seed(9)
    expected = direct["cdcgan"].generate(torch.tensor([1]), batch_size=1)
    assert_close(got, tensor_to_image(expected[0]))
    status, _, body = call(studio, "/api/generate", sample_request("cdcgan", 9, seed_b=2))
    assert status == 400 and "no latent to walk in" in json.loads(body)["error"]


@pytest.mark.parametrize(("model", "extra", "message"), [
    ("cdcgan", {"class": None}, "class is missing"),
    ("cdcgan", {"class": 3}, "class 3: expected the id of one of model cdcgan's classes 0 "
                             "circle, 1 square, 2 stripes"),
    ("cdcgan", {"class": -1}, "class -1"),
    ("cdcgan", {"class": "1"}, "class '1'"),
    ("cdcgan", {"class": True}, "class True"),
    ("cdcgan", {"class": 1.0}, "class 1.0"),
    ("dcgan", {"class": 0}, "model dcgan has no classes"),
    ("dcgan", {"seed_b": 4, "t": 1.5}, "t 1.5: expected a number from 0"),
    ("dcgan", {"seed_b": 4, "t": -0.1}, "t -0.1"),
    ("dcgan", {"seed_b": 4, "t": "0.5"}, "t '0.5'"),
    ("dcgan", {"seed_b": 4, "t": True}, "t True"),
    ("dcgan", {"t": 0.5}, "needs seed_b"),
    ("dcgan", {"seed_b": -1}, "seed_b -1: expected an integer"),
    ("dcgan", {"seed_b": 2**63}, "seed_b"),
    ("dcgan", {"seed_b": 1.5}, "seed_b 1.5"),
    ("dcgan", {"seed": "5"}, "seed '5'"),
])
def test_bad_sample_requests_are_refused(studio, model, extra, message):
    # None: the key is left out of the request.
    request = {k: v for k, v in (sample_request(model) | extra).items() if v is not None}
    status, _, body = call(studio, "/api/generate", request)
    assert status == 400 and message in json.loads(body)["error"]


def test_a_nan_t_is_refused(studio):
    body = b'{"model": "dcgan", "seed": 1, "seed_b": 2, "t": NaN}'
    status, _, answer = call(studio, "/api/generate", body, {"Content-Type": "application/json"})
    assert status == 400 and "t nan" in json.loads(answer)["error"]


def test_sample_models_take_no_files(studio):
    status, _, body = call(studio, "/api/upload/label?model=dcgan&name=x.png",
                           png_file(np.zeros((SIZE, SIZE), np.uint8)))
    assert status == 422 and "samples from noise" in json.loads(body)["error"]
    status, _, body = call(studio, "/api/png", {"model": "dcgan", "kind": "label",
                                                "map": encode_array(np.zeros((SIZE, SIZE)),
                                                                    "uint8")})
    assert status == 400 and "sample models have no map" in json.loads(body)["error"]


# ----------------------------------------------------------------------------- uploads


def test_label_upload_is_resized_and_gets_object_ids(studio):
    label = np.zeros((64, 64), np.uint8)
    label[32:] = GRASS
    label[40:48, 4:12] = CAR          # two separate cars: two objects
    label[40:48, 40:52] = CAR
    status, _, body = call(studio, "/api/upload/label?model=p2p&name=scene.png", png_file(label))
    assert status == 200, body
    answer = json.loads(body)
    assert "resized" in answer["notes"][0] and "scene.png" in answer["notes"][0]
    ids = np.frombuffer(base64.b64decode(answer["label"]["data"]), np.uint8).reshape(SIZE, SIZE)
    assert np.array_equal(ids, label[::2, ::2])
    instance = np.frombuffer(base64.b64decode(answer["instance"]["data"]), "<i4")
    assert sorted(set(instance.tolist())) == [SKY, GRASS, 8001, 8002]


def test_colour_label_maps_are_read_with_the_class_colours(studio):
    label, _ = scene()
    colours = np.array(json.loads(call(studio, "/api/models")[2])["models"][0]["classes"][0][
        "colour"], np.uint8)
    rgb = np.zeros((SIZE, SIZE, 3), np.uint8)
    rgb[:] = colours
    rgb[16:] = [120, 200, 60]          # grass
    status, _, body = call(studio, "/api/upload/label?model=p2p&name=c.png", png_file(rgb))
    ids = np.frombuffer(base64.b64decode(json.loads(body)["label"]["data"]), np.uint8)
    assert status == 200 and np.array_equal(ids.reshape(SIZE, SIZE)[15:17, 0], [SKY, GRASS])
    rgb[0, 0] = [1, 2, 3]
    status, _, body = call(studio, "/api/upload/label?model=p2p&name=c.png", png_file(rgb))
    assert status == 422 and "#010203" in json.loads(body)["error"]


def test_non_images_and_unknown_classes_are_refused_clearly(studio):
    status, _, body = call(studio, "/api/upload/label?model=p2p&name=notes.txt",
                           b"these are my notes, not a picture")
    assert status == 415 and "notes.txt is not an image" in json.loads(body)["error"]
    noise = np.random.default_rng(0).integers(0, 11, (SIZE, SIZE), dtype=np.uint8)
    truncated = png_file(noise)[:200]                        # cut inside the pixel data
    status, _, body = call(studio, "/api/upload/label?model=p2p&name=cut.png", truncated)
    assert status == 415
    label = np.zeros((SIZE, SIZE), np.uint8)
    label[:4, :4] = 42
    status, _, body = call(studio, "/api/upload/label?model=p2p&name=other.png", png_file(label))
    message = json.loads(body)["error"]
    assert status == 422 and "other.png" in message and "42" in message and "8 car" in message
    status, _, body = call(studio, "/api/generate", paint_request("p2p", label))
    assert status == 422 and "42" in json.loads(body)["error"]
    status, _, body = call(studio, "/api/upload/style?model=spade&name=x.png", b"GIF89a-no")
    assert status == 415
    status, _, body = call(studio, "/api/upload/style?model=p2p&name=x.png", png_file(label))
    assert status == 422 and "no style encoder" in json.loads(body)["error"]
    photo = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    status, _, body = call(studio, "/api/upload/sketch?model=painter&name=p.png", png_file(photo))
    assert status == 422 and "colour picture" in json.loads(body)["error"]


def test_request_size_limits(studio):
    big = b"\x89PNG" + bytes(MAX_UPLOAD_BYTES)
    status, _, body = call(studio, "/api/upload/label?model=p2p&name=big.png", big)
    assert status == 413 and "at most 16.0 MB" in json.loads(body)["error"]
    status, _, body = call(studio, "/api/generate", b"{" + b" " * studio.max_json_bytes + b"}",
                           {"Content-Type": "application/json"})
    assert status == 413
    # The server is still fine afterwards.
    assert call(studio, "/health")[0] == 200
    # A map of the wrong size and broken JSON are refused with what was expected.
    status, _, body = call(studio, "/api/generate",
                           paint_request("p2p", np.zeros((16, 16), np.int64)))
    assert status == 400 and "canvas is 32x32" in json.loads(body)["error"]
    status, _, body = call(studio, "/api/generate", b"{not json",
                           {"Content-Type": "application/json"})
    assert status == 400 and "not JSON" in json.loads(body)["error"]


# ----------------------------------------------------------------------------- safety


def raw_get(server: StudioServer, path: str, host: str | None = None) -> tuple[int, bytes]:
    """A GET with the path sent exactly as written (no client-side normalization)."""
    address, port = server.server_address[:2]
    connection = http.client.HTTPConnection(address, port, timeout=10)
    connection.putrequest("GET", path, skip_host=True)
    connection.putheader("Host", host or f"{address}:{port}")
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body


@pytest.mark.parametrize("path", [
    "/static/../server.py", "/static/..%2fserver.py", "/static/..%2F..%2Fapi.py",
    "/static/%2e%2e/%2e%2e/api.py", "/static/%2e%2e%2fserver.py", "/../../etc/passwd",
    "/static//etc/passwd", "/static/%2Fetc%2Fpasswd", "/static/", "/static/.",
    "/static/..\\server.py", "/static/..%5cserver.py", "/static/studio.js%00.png",
    "/static/../../../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
])
def test_nothing_outside_the_static_folder_is_served(studio, path):
    status, body = raw_get(studio, path)
    assert status == 404
    assert b"import" not in body and b"root:" not in body


def test_the_page_and_its_files_are_served_with_a_strict_policy(studio):
    status, headers, body = call(studio, "/")
    assert status == 200 and b"<canvas id=\"layout\"" in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, headers, body = call(studio, "/static/studio.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    # No file of the page pulls anything from elsewhere (no CDN).
    for name in ("index.html", "studio.js", "studio.css"):
        text = call(studio, f"/static/{name}")[2].decode()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text


def test_other_host_names_are_refused(studio):
    status, body = raw_get(studio, "/health", host="attacker.example:80")
    assert status == 403 and b"refused" in body
    assert raw_get(studio, "/health", host=f"localhost:{studio.server_address[1]}")[0] == 200


# ----------------------------------------------------------------------------- concurrency


def test_concurrent_requests_queue_and_do_not_mix_their_noise(studio):
    label, instance = scene()
    requests = [paint_request(m, label, instance) for m in ("p2p", "spade", "hd")] * 6
    answers: list = [None] * len(requests)

    def run(i: int) -> None:
        answers[i] = call(studio, "/api/generate", requests[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(a is not None and a[0] == 200 for a in answers)
    for model in range(3):
        # Same model, layout and seed: the same picture, however the requests interleaved.
        pictures = {picture(a[2]).tobytes() for a in answers[model::3]}
        assert len(pictures) == 1


def test_inference_errors_are_reported_not_swallowed(studio, monkeypatch, capsys):
    method = studio.models["p2p"].method

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory while painting")

    monkeypatch.setattr(method, "generate", broken)
    label, instance = scene()
    status, _, body = call(studio, "/api/generate", paint_request("p2p", label, instance))
    assert status == 500
    assert json.loads(body)["error"] == ("the model failed: RuntimeError: out of memory while "
                                         "painting")
    assert "Traceback" in capsys.readouterr().err     # and logged in full for the operator


# ----------------------------------------------------------------------------- helpers, CLI


def test_model_ids_are_short_and_unique(tmp_path):
    runs = [tmp_path / "a" / "run", tmp_path / "b" / "run", tmp_path / "p2p",
            tmp_path / "c" / "run"]
    assert model_ids(runs) == ["a/run", "b/run", "p2p", "c/run"]
    assert model_ids([tmp_path / "a" / "run", tmp_path / "a" / "run"]) == ["a/run", "a/run-2"]


def test_derived_instances_follow_cityscapes():
    label = np.zeros((6, 6), np.int64)
    label[0:2, 0:2] = CAR
    label[4:6, 4:6] = CAR
    label[0:2, 4:6] = GRASS
    instance = derive_instances(label, frozenset({CAR}))
    assert instance[0, 0] == 8001 and instance[5, 5] == 8002 and instance[0, 5] == GRASS
    assert instance[3, 3] == SKY


def test_cli_help_and_user_errors(studio_runs, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["studio", "--help"])
    assert exit_info.value.code == 0 and "RUN_DIR" in capsys.readouterr().out
    assert main(["studio", str(studio_runs["p2p"].parent / "missing")]) == 2
    assert "condsynth: error:" in capsys.readouterr().err
    with make_server([studio_runs["p2p"]], port=0, device="cpu") as taken:
        port = taken.server_address[1]
        assert main(["studio", str(studio_runs["p2p"]), "--port", str(port),
                     "--device", "cpu"]) == 2
        assert f"port {port} on 127.0.0.1 is in use" in capsys.readouterr().err


def test_cli_serves_until_interrupted(studio_runs, capsys, monkeypatch):
    served = []

    def serve(self, poll_interval: float = 0.5) -> None:
        served.append(self.url)
        raise KeyboardInterrupt                      # Ctrl-C

    monkeypatch.setattr(studio_server.StudioServer, "serve_forever", serve)
    assert main(["studio", str(studio_runs["p2p"]), "--port", "0", "--device", "cpu"]) == 130
    out = capsys.readouterr().out
    assert served and served[0].startswith("http://127.0.0.1:") and served[0] in out
