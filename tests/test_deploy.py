"""condsynth.deploy runs an exported model without PyTorch: checked in a subprocess where
``import torch`` fails."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="the deploy tests need onnxruntime")

from condsynth.api import load  # noqa: E402
from condsynth.export import export_onnx  # noqa: E402
from tests.test_export import make_run  # noqa: E402
from tests.tiny import tiny_batch  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src"
# Any later `import torch` (or of a module that needs it) raises ImportError.
NO_TORCH = "import sys\nsys.modules['torch'] = None\nsys.path.insert(0, {src!r})\n"


def run_without_torch(code: str, cwd: Path) -> subprocess.CompletedProcess:
    script = NO_TORCH.format(src=str(SRC)) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("deploy")
    run = make_run(root / "run", "spade", ["model.use_vae=true", "model.z_dim=16"])
    return run, export_onnx(run, root / "spade.onnx")


def test_deployed_model_runs_without_torch(exported, tmp_path):
    run, model = exported
    batch = tiny_batch("spade")
    np.save(tmp_path / "label.npy", batch["label"].numpy())
    np.save(tmp_path / "instance.npy", batch["instance"].numpy())
    z = np.random.default_rng(0).normal(size=(2, 16)).astype(np.float32)
    np.save(tmp_path / "z.npy", z)
    result = run_without_torch(f"""
        import numpy as np
        from condsynth.deploy import DeployedModel
        model = DeployedModel({str(model)!r}, threads=1)
        out = model.generate(np.load("label.npy"), np.load("instance.npy"), z=np.load("z.npy"))
        np.save("out.npy", out)
        label, instance = np.load("label.npy")[0], np.load("instance.npy")[0]
        picture = model.synthesize(label[:, :20], instance[:, :20], seed=1)
        assert picture.shape == (32, 20, 3) and picture.dtype == np.uint8
        assert sys.modules["torch"] is None
    """, tmp_path)
    assert result.returncode == 0, result.stderr
    reference = load(run, device="cpu").generate(batch["label"], instance=batch["instance"],
                                                 z=torch.from_numpy(z))
    assert np.abs(np.load(tmp_path / "out.npy") - reference.numpy()).max() <= 1e-4


def test_deploy_command_line_without_torch(exported, tmp_path):
    from PIL import Image

    _, model = exported
    batch = tiny_batch("spade")
    Image.fromarray(batch["label"][0].numpy().astype(np.uint8)).save(tmp_path / "label.png")
    Image.fromarray(batch["instance"][0].numpy().astype(np.uint16)).save(tmp_path / "inst.png")
    run = f"""
        import runpy
        sys.argv = ["deploy", {str(model)!r}, "--label", "label.png", "--instance", "inst.png",
                    "--out", "picture.png", "--seed", "3"] + sys.argv[1:]
        runpy.run_module("condsynth.deploy", run_name="__main__")
    """
    result = run_without_torch(run, tmp_path)
    assert "wrote picture.png" in result.stdout, result.stderr
    assert np.asarray(Image.open(tmp_path / "picture.png")).shape == (32, 32, 3)
    Image.fromarray(np.full((32, 32), 9, np.uint8)).save(tmp_path / "label.png")
    result = run_without_torch(run, tmp_path)
    assert result.stderr.count("\n") == 1 and "label value(s) 9 outside 0..4" in result.stderr
