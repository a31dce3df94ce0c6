"""The studio and the study server under abuse: wide label ids, cross-site writes, image
bombs, slow clients, many clients, wrong JSON types."""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from condsynth.registry import build_method
from condsynth.studio.server import StudioModel, StudioServer, encode_array
from tests.studio.conftest import SIZE, call
from tests.tiny import tiny_config


@pytest.fixture(scope="module")
def wide():
    """A studio serving an untrained pix2pix with 300 classes (ids need 16 bits)."""
    torch.manual_seed(0)
    config = tiny_config("pix2pix", use_instance=False, extra=["label.num_classes=300"])
    method = build_method(config).eval()
    server = StudioServer([StudioModel("wide", "wide-run", method)], port=0)
    server.start()
    yield server
    server.shutdown()
    server.server_close()


def test_models_with_16_bit_class_ids_paint(wide):
    label = np.full((SIZE, SIZE), 299, np.uint16)
    label[:8] = 3
    request = {"model": "wide", "seed": 1, "label": encode_array(label, "uint16")}
    status, _, body = call(wide, "/api/generate", request)
    assert status == 200, body
    status, _, body = call(wide, "/api/png", {"model": "wide", "kind": "label",
                                             "map": encode_array(label, "uint16")})
    assert status == 200, body
    label[0, 0] = 300                                   # one id too many: refused, not a 500
    request["label"] = encode_array(label, "uint16")
    status, _, body = call(wide, "/api/generate", request)
    assert status == 422 and "300" in json.loads(body)["error"]


def test_posts_from_other_sites_are_refused(wide):
    label = np.zeros((SIZE, SIZE), np.uint16)
    request = {"model": "wide", "seed": 1, "label": encode_array(label, "uint16")}
    port = wide.server_address[1]
    for headers in ({"Origin": "http://attacker.example"}, {"Origin": "null"},
                    {"Sec-Fetch-Site": "cross-site"}):
        status, _, body = call(wide, "/api/generate", request, headers)
        assert status == 403 and "refused" in json.loads(body)["error"]
    status, _, _ = call(wide, "/api/generate", request, {"Origin": f"http://127.0.0.1:{port}"})
    assert status == 200


def png_bomb(side: int) -> bytes:
    """A tiny PNG file that decodes to side x side pixels."""
    buffer = io.BytesIO()
    Image.new("L", (side, side)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def test_images_are_refused_by_their_decoded_size_before_decoding(wide, monkeypatch):
    bomb = png_bomb(6000)
    assert len(bomb) < 100_000
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda img: decoded.append(img.size))
    status, _, body = call(wide, "/api/upload/label?model=wide&name=bomb.png", bomb)
    assert status == 413 and "6000x6000" in json.loads(body)["error"]
    label = encode_array(np.zeros((SIZE, SIZE), np.uint16), "uint16")
    status, _, body = call(wide, "/api/generate", {
        "model": "wide", "label": label, "style": base64.b64encode(bomb).decode()})
    assert status in (413, 422)
    assert decoded == []                                  # nothing was decoded


@pytest.mark.parametrize("request_body", [
    {"model": ["wide"]}, {"model": {"a": 1}}, {"model": 3}, {"model": None},
    {"model": "wide", "seed": "7"}, {"model": "wide", "seed": 1.5},
    {"model": "wide", "label": "zeros"}, {"model": "wide", "label": []},
    {"model": "wide", "label": {"width": 32, "height": 32, "dtype": ["uint16"], "data": ""}},
    {"model": "wide", "label": {"width": 32, "height": 32, "dtype": "uint16", "data": 5}},
    {"model": "wide", "label": {"width": [32], "height": 32, "dtype": "uint16", "data": ""}},
    {"model": "wide", "label": {"width": 32, "height": 32, "dtype": "uint16", "data": "",
                                "channels": [1]}},
    {"model": "wide", "looks": [1], "label": None}, {"model": "wide", "style": 12},
    {"model": "wide", "kind": ["label"]}, {"model": "wide", "kind": "label", "map": 3},
])
def test_wrong_json_types_are_400_not_500(wide, request_body):
    for path in ("/api/generate", "/api/png"):
        status, _, body = call(wide, path, request_body)
        assert 400 <= status < 500, (path, status, body)
        assert json.loads(body)["error"]


def test_decodes_and_pictures_queue_within_bounds(tmp_path, monkeypatch):
    torch.manual_seed(0)
    method = build_method(tiny_config("pix2pix", use_instance=False)).eval()
    server = StudioServer([StudioModel("m", "m-run", method)], port=0, workers=1, queue=2)
    server.start()
    running, most = [0], [0]
    lock = threading.Lock()
    real = method.generate

    def slow_generate(*args, **kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.3)
        with lock:
            running[0] -= 1
        return real(*args, **kwargs)

    monkeypatch.setattr(method, "generate", slow_generate)
    request = {"model": "m", "label": encode_array(np.zeros((SIZE, SIZE), np.uint8), "uint8")}
    answers = []

    def one() -> None:
        answers.append(call(server, "/api/generate", request)[0])

    try:
        threads = [threading.Thread(target=one) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert most[0] == 1
        assert sorted(set(answers)) == [200, 503] and answers.count(200) >= 3
        assert call(server, "/api/generate", request)[0] == 200      # and it serves again
    finally:
        server.shutdown()
        server.server_close()


def test_slow_clients_hold_neither_threads_nor_the_server(tmp_path):
    method = build_method(tiny_config("pix2pix", use_instance=False)).eval()
    server = StudioServer([StudioModel("m", "m-run", method)], port=0, max_connections=4,
                          timeout=1.0)
    server.start()
    before = threading.active_count()
    idle = []
    try:
        for _ in range(20):                            # connect, then say nothing
            idle.append(socket.create_connection(server.server_address[:2], timeout=5))
        time.sleep(0.3)
        assert threading.active_count() - before <= 4
        # The silent ones are dropped after the 1 s timeout (a busy machine may take a
        # little longer to run the dropping threads).
        deadline = time.monotonic() + 6
        while threading.active_count() - before > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert threading.active_count() - before <= 1
        assert call(server, "/health")[0] == 200
    finally:
        for sock in idle:
            sock.close()
        server.shutdown()
        server.server_close()
