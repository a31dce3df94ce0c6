"""Imported official pix2pixHD and SPADE checkpoints, exported to ONNX: ONNX Runtime gives the
official code's pixels (and condsynth's PyTorch ones) within 1e-4."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="the ONNX parity tests need onnxruntime")

from condsynth.api import load  # noqa: E402
from condsynth.compat.pix2pixhd import import_pix2pixhd  # noqa: E402
from condsynth.compat.spade import import_spade  # noqa: E402
from condsynth.export import export_onnx  # noqa: E402
from tests.compat.test_spade_parity import case_inputs  # noqa: E402

CASES = ["pix2pixhd-global", "pix2pixhd-local", "pix2pixhd-feat", "spade-default", "spade-vae"]
TOLERANCE = 1e-4


@pytest.mark.parity
@pytest.mark.parametrize("case", CASES)
def test_exported_official_checkpoint_gives_the_official_output(case, official_fixtures,
                                                                 tmp_path):
    case_dir: Path = official_fixtures / case
    importer = import_pix2pixhd if case.startswith("pix2pixhd") else import_spade
    run = importer(case_dir / "checkpoint", tmp_path / "run")
    method = load(run, device="cpu")
    batch = case_inputs(case_dir)
    model = export_onnx(run, tmp_path / "model.onnx", size=tuple(batch["label"].shape[-2:]))
    extra = {}
    if case == "pix2pixhd-feat":     # the look: the encoded real image, as the official test
        with torch.no_grad():
            extra["z"] = method.encoder(batch["image"], batch["instance"])
    elif case == "spade-vae":
        extra["z"] = torch.from_numpy(np.load(case_dir / "expected" / "z.npy"))
    output = load(model).generate(batch["label"], instance=batch["instance"], **extra)
    official = np.load(case_dir / "expected" / "output.npy")
    ours = method.generate(batch["label"], instance=batch["instance"], **extra)
    assert output.shape == official.shape
    assert np.abs(output.numpy() - official).max() <= TOLERANCE
    assert float((output - ours).abs().max()) <= TOLERANCE
