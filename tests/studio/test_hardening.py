"""The studio and the study server under abuse: wide label ids, cross-site writes, image
bombs, slow clients, many clients, wrong JSON types."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

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
