"""ONNX export: every registered method's exported graph gives PyTorch's pixels under ONNX
Runtime, the sidecar describes it, and the CLI, synthesize and the studio serve it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="the export tests need onnxruntime (pip install "
                    "condsynth[onnx])")

from condsynth import checkpoint  # noqa: E402
from condsynth.api import load  # noqa: E402
from condsynth.cli import main  # noqa: E402
from condsynth.deploy import DeployedModel, read_sidecar, sidecar_path  # noqa: E402
from condsynth.export import EXPORTERS, export_onnx  # noqa: E402
from condsynth.registry import available_methods, build_method  # noqa: E402
from tests.tiny import SIZE, generate_inputs, tiny_batch, tiny_config  # noqa: E402

METHODS = available_methods()
TOLERANCE = 1e-4        # max abs difference of fp32 outputs in [-1, 1]
# Settings that give a method its extra inputs (pix2pixHD's looks, SPADE's z, dont-care).
VARIANTS: dict[str, list[str]] = {
    "pix2pixhd_features": ["model.instance_feat=true", "model.nef=4", "model.n_downsample_e=2"],
    "pix2pixhd_dontcare": ["condition.contain_dontcare_label=true"],
    "spade_vae": ["model.use_vae=true", "model.z_dim=16"],
    "pix2pix_no_instance": [],
    "dcgan_class": ["condition.kind=class", "condition.num_classes=5"],
}


def lively(method) -> None:
    """Weights of unit gain (N(0, 1/fan_in)), norm scales near 1: a freshly initialised tiny
    network outputs nearly a constant, which would make any two implementations agree."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for net in method.networks().values():
            for name, p in net.named_parameters():
                if p.dim() > 1:
                    p.copy_(torch.randn(p.shape, generator=g) * p[0].numel() ** -0.5)
                elif name.endswith("weight"):
                    p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(0.1 * torch.randn(p.shape, generator=g))


def make_run(path: Path, name: str, extra: list[str] = (), use_instance: bool = True) -> Path:
    """A tiny run of ``name`` with lively weights (and looks, for pix2pixHD with features)."""
    config = tiny_config(name, use_instance=use_instance, extra=list(extra))
    if hasattr(config.model, "test_time_noise"):
        config.model.test_time_noise = False    # the export is the eval-mode network
    torch.manual_seed(1)
    method = build_method(config)
    lively(method)
    if getattr(method, "encoder", None) is not None and hasattr(method, "set_cluster_centres"):
        rng = np.random.default_rng(0)
        method.set_cluster_centres({c: rng.normal(size=(3, config.model.feat_num))
                                    for c in range(3)})
    checkpoint.write_checkpoint(path, config, method.networks(), step=1,
                                extra_files=method.extra_files())
    return path


def with_dontcare(batch: dict) -> dict:
    """Some dont-care pixels in each label map."""
    if "label" in batch:
        batch["label"][:, :4, :4] = 255
    return batch


def assert_same_pictures(run: Path, model: Path, name: str, **kwargs) -> float:
    """PyTorch's generate and the exported model's, same inputs and seed: max abs difference."""
    ours, exported = load(run, device="cpu"), load(model)
    batch = with_dontcare(tiny_batch(ours.config))
    condition, instance = generate_inputs(ours.config, batch)
    kwargs.setdefault("batch_size", 2)          # for noise-only models
    kwargs.update(ours.batch_inputs(batch))     # e.g. the attributes beside a sketch
    torch.manual_seed(7)
    reference = ours.generate(condition, instance=instance, **kwargs)
    torch.manual_seed(7)
    output = exported.generate(condition, instance=instance, **kwargs)
    assert output.shape == reference.shape and reference.shape[0] == 2
    assert reference.std() > 0.02, "the test network's output is nearly constant"
    worst = float((output - reference).abs().max())
    assert worst <= TOLERANCE, f"{name}: ONNX Runtime differs from PyTorch by {worst}"
    return worst


def test_every_method_has_an_export_path():
    assert set(METHODS) <= set(EXPORTERS), f"add exporters for {set(METHODS) - set(EXPORTERS)}"


@pytest.mark.parametrize("name", METHODS)
def test_onnx_runtime_gives_pytorchs_pixels(name, tmp_path):
    run = make_run(tmp_path / "run", name)
    model = export_onnx(run, tmp_path / "model.onnx")
    assert_same_pictures(run, model, name)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variants_with_extra_inputs(variant, tmp_path):
    name = variant.split("_")[0]
    run = make_run(tmp_path / "run", name, VARIANTS[variant],
                   use_instance=variant != "pix2pix_no_instance")
    model = export_onnx(run, tmp_path / "model.onnx")
    names = [i["name"] for i in read_sidecar(model)["inputs"]]
    # Random looks / codes drawn inside generate: the same for the same torch seed.
    assert_same_pictures(run, model, name)
    if variant == "spade_vae":
        assert names == ["label", "instance", "z"]
        assert_same_pictures(run, model, name, z=torch.randn(2, 16))
    elif variant == "pix2pixhd_features":
        assert names == ["label", "instance", "features"]
        assert_same_pictures(run, model, name, z=torch.randn(2, 3, SIZE, SIZE))
    elif variant == "pix2pix_no_instance":
        assert names == ["label"]
    elif variant == "dcgan_class":
        assert names == ["class", "z"]
        assert_same_pictures(run, model, name, z=torch.randn(2, 16))


# method -> (its graph's inputs, the draw law of each noise input, the explicit noise shapes)
NOISE_INPUTS = {
    "attr2sketch": (["attributes", "z", "eps"], {"z": "normal", "eps": "normal"}),
    "improved_gan": (["z"], {"z": "uniform01"}),
    "s2gan_style": (["source", "z"], {"z": "uniform11"}),
    "lapgan": (["z"], {"z": "normal"}),
}


@pytest.mark.parametrize("name", sorted(NOISE_INPUTS))
def test_noise_is_an_input_drawn_as_generate_draws_it(name, tmp_path):
    run = make_run(tmp_path / "run", name)
    model = export_onnx(run, tmp_path / "model.onnx")
    sidecar = read_sidecar(model)
    names, laws = NOISE_INPUTS[name]
    assert [i["name"] for i in sidecar["inputs"]] == names
    assert {i["name"]: i["draw"] for i in sidecar["inputs"] if i["draw"]} == laws
    assert all(n in sidecar["randomness"] for n in laws)
    size = sidecar["inputs"][names.index("z")]["shape"][1]
    z = torch.rand(2, size) * 2 - 1 if name != "lapgan" else torch.randn(2, size)
    assert_same_pictures(run, model, name, z=z)           # the explicit noise, in both


def test_attr2sketch_eps_is_the_posterior_sample(tmp_path):
    """Fixed z and eps: the sketch is the decoded mu + eps * sigma of q_beta, computed here."""
    run = make_run(tmp_path / "run", "attr2sketch")
    exported, ours = DeployedModel(export_onnx(run, tmp_path / "m.onnx")), load(run, device="cpu")
    attributes = torch.tensor([[1.0, -1, 1], [-1, 1, -1]])
    z = torch.randn(2, 16)
    with torch.no_grad():
        mu, logvar = ours.encoder.eval().q_noise(z, attributes)
        eps = torch.randn_like(mu)
        expected = ours.generator.eval()(mu + eps * torch.exp(0.5 * logvar))[0]
    output = exported.generate(attributes.numpy(), z=z.numpy(), noises={"eps": eps.numpy()})
    assert np.abs(output - expected.numpy()).max() <= TOLERANCE
    assert np.abs(exported.generate(attributes.numpy(), z=z.numpy(),
                                    noises={"eps": 0 * eps.numpy()})
                  - output).max() > 1e-3, "eps does not reach the output"


def test_sketch_models_need_their_attributes(tmp_path):
    from condsynth.errors import DataError

    run = make_run(tmp_path / "run", "sketch2face")
    model = DeployedModel(export_onnx(run, tmp_path / "m.onnx"))
    assert list(model.inputs) == ["source", "attributes"]
    sketch = np.zeros((1, 1, SIZE, SIZE), np.float32)
    with pytest.raises(DataError, match="attributes"):
        model.generate(sketch)
    assert model.generate(sketch, attributes=np.ones((1, 3), np.float32)).shape[:2] == (1, 3)


def test_autopainter_hints_are_an_input(tmp_path):
    run = make_run(tmp_path / "run", "autopainter")
    model = export_onnx(run, tmp_path / "model.onnx")
    assert [i["name"] for i in read_sidecar(model)["inputs"]] == ["sketch", "hints"]
    hints = torch.zeros(2, 4, SIZE, SIZE)
    hints[:, :3, 8:16, 8:16] = 0.5
    hints[:, 3, 8:16, 8:16] = 1
    assert_same_pictures(run, model, "autopainter", hints=hints)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pix2pixhd", "spade"])
def test_dynamic_export_takes_any_batch_and_valid_size(name, tmp_path):
    run = make_run(tmp_path / "run", name)
    model = export_onnx(run, tmp_path / "model.onnx", dynamic=True)
    sidecar = read_sidecar(model)
    assert sidecar["size"] is None and sidecar["inputs"][0]["shape"] == ["batch", "height",
                                                                         "width"]
    ours, exported = load(run, device="cpu"), DeployedModel(model)
    multiple = sidecar["size_multiple"]
    for batch, height, width in [(1, 2 * multiple, 3 * multiple), (3, 3 * multiple, 2 * multiple)]:
        g = torch.Generator().manual_seed(batch)
        label = torch.randint(0, 5, (batch, height, width), generator=g)
        instance = label * 1000 + (torch.arange(width) > width // 3)
        reference = ours.generate(label, instance=instance)
        output = exported.generate(label.numpy(), instance.numpy())
        assert output.shape == (batch, 3, height, width)
        assert np.abs(output - reference.numpy()).max() <= TOLERANCE


def test_sidecar_describes_the_model(tmp_path):
    run = make_run(tmp_path / "run", "pix2pixhd", VARIANTS["pix2pixhd_features"])
    model = export_onnx(run, tmp_path / "hd.onnx", size=(16, 24))
    sidecar = json.loads(sidecar_path(model).read_text())
    from condsynth import __version__

    assert sidecar_path(model).name == "hd.json"
    assert sidecar["condsynth_version"] == __version__ and sidecar["method"] == "pix2pixhd"
    assert sidecar["size"] == [16, 24] and sidecar["precision"] == "fp32"
    assert [c["id"] for c in sidecar["classes"]] == list(range(5))
    assert all(len(c["colour"]) == 3 and c["name"] for c in sidecar["classes"])
    assert sidecar["condition"] == {"kind": "label_map", "num_classes": 5, "dontcare_label": 255,
                                    "contain_dontcare_label": False, "use_instance": True,
                                    "image_channels": 3}
    assert "cluster_looks" in sidecar["capabilities"] and "paint" in sidecar["capabilities"]
    shapes = {i["name"]: (i["dtype"], i["shape"]) for i in sidecar["inputs"]}
    assert shapes == {"label": ("int64", ["batch", 16, 24]),
                      "instance": ("int64", ["batch", 16, 24]),
                      "features": ("float32", ["batch", 3, 16, 24])}
    assert sidecar["outputs"][0]["shape"] == ["batch", 3, 16, 24]
    assert set(sidecar["looks"]) == {"0", "1", "2"} and "features" in sidecar["randomness"]


def test_pix2pix_says_its_export_is_the_eval_mode_network(tmp_path):
    config = tiny_config("pix2pix")
    assert config.model.test_time_noise
    checkpoint.write_checkpoint(tmp_path / "run", config, build_method(config).networks(), 1)
    sidecar = read_sidecar(export_onnx(tmp_path / "run", tmp_path / "p2p.onnx"))
    assert "eval-mode" in sidecar["randomness"] and "test-time dropout" in sidecar["randomness"]


def test_fp16_export_stays_close(tmp_path):
    run = make_run(tmp_path / "run", "pix2pixhd")
    model = export_onnx(run, tmp_path / "half.onnx", precision="fp16")
    condition, instance = generate_inputs("pix2pixhd", tiny_batch("pix2pixhd"))
    reference = load(run, device="cpu").generate(condition, instance=instance)
    output = load(model).generate(condition, instance=instance)
    assert read_sidecar(model)["precision"] == "fp16"
    assert float((output - reference).abs().max()) < 0.05


# ----------------------------------------------------------------------------- command line


def test_cli_export_then_synthesize_with_the_onnx_file(tmp_path, capsys):
    from PIL import Image

    run = make_run(tmp_path / "run", "pix2pixhd")
    model = tmp_path / "out" / "model.onnx"
    assert main(["export", str(run), "--format", "onnx", "--out", str(model),
                 "--size", "32x32"]) == 0
    assert "wrote" in capsys.readouterr().out and sidecar_path(model).is_file()
    batch = tiny_batch("pix2pixhd")
    Image.fromarray(batch["label"][0].numpy().astype(np.uint8)).save(tmp_path / "label.png")
    Image.fromarray(batch["instance"][0].numpy().astype(np.uint16)).save(tmp_path / "inst.png")
    pictures = {}
    for name, source in (("torch", run), ("onnx", model)):
        out = tmp_path / f"{name}.png"
        assert main(["synthesize", str(source), "--label", str(tmp_path / "label.png"),
                     "--instance", str(tmp_path / "inst.png"), "--out", str(out)]) == 0
        pictures[name] = np.asarray(Image.open(out)).astype(int)
    assert np.abs(pictures["torch"] - pictures["onnx"]).max() <= 1


@pytest.mark.parametrize("args, message", [
    (["--size", "30x32"], "multiples of 8"),
    (["--size", "big"], "is not HxW"),
    (["--out", "model.bin"], "must end in .onnx"),
])
def test_cli_export_errors_are_one_line(tmp_path, capsys, args, message):
    run = make_run(tmp_path / "run", "pix2pixhd")
    argv = ["export", str(run), "--out", str(tmp_path / "m.onnx"), *args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_exported_model_refuses_what_it_cannot_do(tmp_path):
    from condsynth.errors import CondsynthError, ConfigError

    run = make_run(tmp_path / "run", "pix2pixhd")
    model = export_onnx(run, tmp_path / "m.onnx")
    with pytest.raises(ConfigError, match="precision"):
        load(model, precision="bf16")
    exported = load(model)
    label, instance = generate_inputs("pix2pixhd", tiny_batch("pix2pixhd"))
    with pytest.raises(CondsynthError, match="style image"):
        exported.generate(label, instance=instance, style=torch.zeros(2, 3, SIZE, SIZE))
    with pytest.raises(CondsynthError, match="outside 0..4"):
        exported.generate(label + 7, instance=instance)
    with pytest.raises(CondsynthError, match="exported for 32x32"):
        exported.generate(label[:, :16], instance=instance[:, :16])


def test_studio_serves_an_exported_model(tmp_path):
    from condsynth.studio.server import make_server
    from tests.studio.conftest import call

    run = make_run(tmp_path / "run", "pix2pixhd", VARIANTS["pix2pixhd_features"])
    model = export_onnx(run, tmp_path / "hd.onnx")
    server = make_server([model], port=0, device="cpu")
    server.start()
    try:
        status, _, body = call(server, "/api/models")
        described = json.loads(body)["models"][0]
        assert status == 200 and described["method"] == "pix2pixhd" and described["random"]
        label = np.zeros((SIZE, SIZE), np.uint8)
        label[16:, :] = 2
        request = {"model": described["id"], "seed": 3, "looks": {"2": 1},
                   "label": {"width": SIZE, "height": SIZE, "dtype": "uint8",
                             "data": __import__("base64").b64encode(label.tobytes()).decode()}}
        status, _, body = call(server, "/api/generate", request)
        assert status == 200, body
        assert json.loads(body)["image"].startswith("data:image/png;base64,")
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_int8_export_is_calibrated_on_label_maps(tmp_path, scenes, capsys):
    from condsynth.bench import psnr

    run = make_run(tmp_path / "run", "pix2pixhd", ["condition.num_classes=11"])
    assert main(["export", str(run), "--out", str(tmp_path / "q.onnx"), "--precision",
                 "int8"]) == 2
    assert "--calibration" in capsys.readouterr().err
    fp32 = export_onnx(run, tmp_path / "f.onnx")
    int8 = export_onnx(run, tmp_path / "q.onnx", precision="int8", calibration=scenes,
                       calibration_count=4)
    sidecar = read_sidecar(int8)
    assert sidecar["precision"] == "int8" and sidecar["calibration"]["inputs"] == 4
    assert not list(tmp_path.glob("*.tmp*")), "temporary files left behind"
    ops = {node.op_type for node in __import__("onnx").load(str(int8)).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    label = torch.randint(0, 11, (1, SIZE, SIZE))
    instance = label * 1000
    reference = load(fp32).generate(label, instance=instance)
    output = load(int8).generate(label, instance=instance)
    assert psnr(output, reference) > 25
