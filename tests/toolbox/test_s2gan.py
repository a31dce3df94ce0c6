"""S2-GAN: unit normals, the codebook cross-entropy, the joint training's gradient scaling,
the normals data (encoding, flips, depth conversion, rendered rooms) and the pipeline end to
end on tiny data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from condsynth.cli import main
from condsynth.data.normals import (
    angular_error,
    decode_normals,
    depth_to_normals,
    encode_normals,
    flip_normals,
    kmeans_directions,
    normal_classes,
    unit_normals,
)
from condsynth.errors import ConfigError
from condsynth.methods.s2gan import (
    StructureGenerator,
    codebook_cross_entropy,
    estimator_output_size,
    scale_gradient,
)
from condsynth.registry import build_method
from tests.tiny import tiny_batch, tiny_config

# ----------------------------------------------------------------------------- losses


def test_unit_normals_by_hand():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]]).reshape(1, 3, 1, 2)
    out = unit_normals(x)                            # pixels (3, 0, 0) and (4, 0, -2)
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(out[0, :, 0, 1], torch.tensor([4.0, 0.0, -2.0]) / math.sqrt(20))


def test_structure_generator_draws_unit_normals():
    g = StructureGenerator(z_dim=8, size=24, ngf=4)
    normals = g(torch.rand(3, 8) * 2 - 1)
    assert normals.shape == (3, 3, 24, 24)
    assert torch.allclose(normals.norm(dim=1), torch.ones(3, 24, 24), atol=1e-5)


def test_normal_classes_take_the_largest_dot_product():
    codebook = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    normals = torch.tensor([[0.1, 0.2, 0.9], [0.8, 0.1, 0.3], [0.2, 0.9, 0.1],
                            [0.0, 0.6, 0.5]]).T.reshape(1, 3, 2, 2)
    classes = normal_classes(normals, codebook, (2, 2))
    assert classes.tolist() == [[[0, 1], [2, 2]]]


def test_codebook_cross_entropy_by_hand():
    codebook = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    # 4x4 normals in 2x2 blocks: bilinear resizing to 2x2 keeps each block's direction.
    block = torch.tensor([[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]],
                          [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])       # (2, 2, 3): classes 0 1 / 1 0
    normals = block.permute(2, 0, 1).repeat_interleave(2, 1).repeat_interleave(2, 2)[None]
    logits = torch.tensor([[[2.0, 0.0], [1.0, 0.5]],
                           [[0.0, 3.0], [-1.0, 0.5]]])[None]          # (1, K=2, 2, 2)
    expected = []
    for (y, x), target in zip([(0, 0), (0, 1), (1, 0), (1, 1)], [0, 1, 1, 0], strict=True):
        pixel = logits[0, :, y, x]
        expected.append(-(pixel[target] - torch.logsumexp(pixel, 0)))
    assert torch.allclose(codebook_cross_entropy(logits, normals, codebook),
                          torch.stack(expected).mean())


def test_scale_gradient_scales_only_the_gradient():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    w = torch.tensor([0.5, 4.0, -1.0])
    y = scale_gradient(x, 0.1)
    assert torch.equal(y, x)
    (y * w).sum().backward()
    assert torch.allclose(x.grad, 0.1 * w)


def joint(extra: list[str]):
    torch.manual_seed(0)
    config = tiny_config("s2gan_joint", extra=["data.load_size=16", "data.crop_size=16",
                                               *extra])
    return config, build_method(config)


def structure_gradients(extra: list[str]) -> dict[str, torch.Tensor]:
    """Structure-G's gradient from the joint's structure_generator phase (dropout off)."""
    config, method = joint(extra)
    method.eval()                         # the same forward in every call: no dropout draws
    torch.manual_seed(3)
    batch = {k: v[..., ::2, ::2] if k in ("image", "source") else v
             for k, v in tiny_batch(config).items()}
    phase = next(p for p in method.phases() if p.name == "structure_generator")
    terms = method.phase_losses(phase, batch, {})
    method.zero_grad(set_to_none=True)
    sum(terms.values()).backward()
    return {n: p.grad.clone() for n, p in method.structure_generator.named_parameters()
            if p.grad is not None}


def test_joint_gradient_reaches_structure_g_scaled_by_lamda0():
    full = structure_gradients(["model.lambda_structure=0", "model.structure_grad_scale=1"])
    scaled = structure_gradients(["model.lambda_structure=0", "model.structure_grad_scale=0.1"])
    assert full and any(g.abs().sum() > 0 for g in full.values())
    for name, grad in full.items():
        assert torch.allclose(scaled[name], 0.1 * grad, rtol=1e-4, atol=1e-10), name
    # Without the Style-GAN path only Structure-D's term is left, with weight lamda; Style-D's
    # normals condition passes no gradient on.
    structure_only = structure_gradients(["model.lambda_structure=1",
                                          "model.structure_grad_scale=0"])
    both = structure_gradients(["model.lambda_structure=1", "model.structure_grad_scale=0.1"])
    for name in full:
        assert torch.allclose(both[name], structure_only[name] + scaled[name],
                              rtol=1e-4, atol=1e-9), name
    nothing = structure_gradients(["model.lambda_structure=0", "model.structure_grad_scale=0"])
    assert all(torch.count_nonzero(g) == 0 for g in nothing.values())


def test_style_constraint_is_weighted_cross_entropy_of_the_frozen_estimator():
    config = tiny_config("s2gan_style", extra=["model.lambda_fcn=0.1"])
    torch.manual_seed(0)
    method = build_method(config)
    batch = tiny_batch(config)
    out = method.forward_generator(batch)
    with pytest.raises(ConfigError, match="trained normal estimator"):
        method.generator_step(batch, out)
    method.estimator.fitted.fill_(True)
    method.train()
    assert not method.estimator.training                  # frozen: evaluation mode
    terms = method.generator_step(batch, out)
    with torch.no_grad():
        logits = method.estimator(out["fake"])
        expected = 0.1 * codebook_cross_entropy(logits, batch["source"], method.estimator.codebook)
    assert torch.allclose(terms["g_fcn"], expected)
    sum(terms.values()).backward()
    assert all(p.grad is None for p in method.estimator.parameters())
    assert any(p.grad is not None for p in method.generator.parameters())


def test_estimator_output_is_a_quarter_of_the_image():
    for size in (16, 32, 64, 128):
        assert estimator_output_size(size) == size // 4
    config = tiny_config("s2gan_estimator")
    method = build_method(config)
    logits = method.estimator(torch.zeros(1, 3, 32, 32))
    assert logits.shape == (1, 6, 8, 8)


def test_kmeans_finds_the_directions():
    g = torch.Generator().manual_seed(0)
    centres = unit_normals(torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.2],
                                         [0.9, 0.0, 0.4]])[:, :, None, None])[:, :, 0, 0]
    points = centres.repeat_interleave(50, 0) + 0.02 * torch.randn(150, 3, generator=g)
    found = kmeans_directions(unit_normals(points[:, :, None, None])[:, :, 0, 0], 3,
                              generator=torch.Generator().manual_seed(1))
    assert torch.allclose(found.norm(dim=1), torch.ones(3), atol=1e-5)
    nearest = (found @ centres.T).max(0).values
    assert (nearest > 0.999).all()


def test_angular_error_by_hand():
    a = torch.tensor([1.0, 0.0, 0.0]).reshape(1, 3, 1, 1).expand(1, 3, 1, 2).clone()
    b = torch.tensor([[0.0, 1.0], [1.0, 1.0], [0.0, 0.0]]).reshape(1, 3, 1, 2)
    assert torch.allclose(angular_error(a, b), torch.tensor([[[90.0, 45.0]]]))


# ----------------------------------------------------------------------------- data


def test_normals_encoding_round_trip_and_flip():
    n = unit_normals(torch.randn(1, 3, 4, 5))[0].permute(1, 2, 0).numpy()
    back = decode_normals(encode_normals(n))
    assert np.abs(back - n).max() < 0.01
    t = torch.from_numpy(n).permute(2, 0, 1)
    flipped = flip_normals(t)
    assert torch.equal(flipped[0], -t[0].flip(-1))
    assert torch.equal(flipped[1:], t[1:].flip(-1))


def test_depth_to_normals_of_planes():
    fx = fy = 50.0
    cx, cy = 15.5, 11.5
    wall = depth_to_normals(np.full((24, 32), 3.0), (fx, fy, cx, cy))
    assert np.allclose(wall, [0.0, 0.0, 1.0], atol=1e-6)
    # A floor 1.5 below the camera: depth = 1.5 fy / (v - cy) for rows below the horizon.
    v = np.arange(24, dtype=np.float64)[:, None] + np.zeros((1, 32))
    floor = np.where(v > cy + 2, 1.5 * fy / np.maximum(v - cy, 1e-9), 0.0)
    normals = depth_to_normals(floor, (fx, fy, cx, cy))
    inside = normals[16:23, 1:31]
    assert np.allclose(inside, [0.0, 1.0, 0.0], atol=1e-6)
    assert np.allclose(normals[0], [0.0, 0.0, 1.0])          # no depth: camera-facing


def test_render_scenes_and_the_normals_layout(tmp_path):
    from condsynth.config import ConditionConfig, DataConfig
    from condsynth.data.dataset import PairedDataset

    assert main(["data", "render-scenes", "--out", str(tmp_path), "--count", "3",
                 "--test-count", "1", "--size", "24", "--quiet"]) == 0
    for kind in ("img", "normals", "depth"):
        assert len(list((tmp_path / f"train_{kind}").glob("*.png"))) == 3
    normals = decode_normals(np.asarray(Image.open(tmp_path / "train_normals" / "000000.png")))
    assert normals[..., 2].min() > -0.05                  # seen surfaces face the camera
    depth = np.asarray(Image.open(tmp_path / "train_depth" / "000000.png"))
    assert depth.dtype == np.uint16 and depth.min() > 500          # millimetres
    data = DataConfig(root=str(tmp_path), load_size=24, crop_size=24, preprocess="fixed")
    spec = ConditionConfig(kind="image")
    plain = PairedDataset(data, spec, train=False)
    assert plain.layout == "normals"
    item = plain[0]
    assert item["source"].shape == item["image"].shape == (3, 24, 24)
    assert torch.allclose(item["source"], torch.from_numpy(
        np.asarray(Image.open(tmp_path / "train_normals" / "000000.png"))
        .astype(np.float32) / 127.5 - 1).permute(2, 0, 1))
    data.flip = True
    flips = PairedDataset(data, spec, train=True)
    flipped = next(flips[i] for i in range(3) for e in range(8)
                   if flips.set_epoch(e) is None and _is_flipped(flips[i], plain[i]))
    assert flipped is not None
    data.direction = "BtoA"
    swapped = PairedDataset(data, spec, train=False)[0]
    assert torch.equal(swapped["image"], item["source"])


def _is_flipped(item: dict, plain: dict) -> bool:
    if not torch.equal(item["image"], plain["image"].flip(-1)):
        return False
    assert torch.allclose(item["source"], flip_normals(plain["source"]))
    return True


def test_normals_from_depth_command(tmp_path):
    depths = tmp_path / "depth"
    depths.mkdir()
    Image.fromarray(np.full((12, 16), 2500, np.uint16)).save(depths / "a.png")
    np.save(depths / "b.npy", np.full((12, 16), 2.5))
    assert main(["data", "normals-from-depth", str(depths), "--out", str(tmp_path / "n"),
                 "--quiet"]) == 0
    for name in ("a", "b"):
        rgb = np.asarray(Image.open(tmp_path / "n" / f"{name}.png"))
        assert (rgb == [128, 128, 255]).all()
    assert main(["data", "normals-from-depth", str(depths), "--out", str(tmp_path / "n"),
                 "--intrinsics", "1,2,3"]) == 2


# ----------------------------------------------------------------------------- pipeline


def tiny_pipeline(path: Path) -> Path:
    """The s2gan_cpu pipeline made tiny: 16x16 rooms, 4-wide networks, two steps a stage."""
    from condsynth.pipeline import load_pipeline

    description = load_pipeline("s2gan_cpu").to_dict()
    widths = {"structure": {"ngf": 4, "ndf": 4, "z_dim": 8},
              "estimator": {"width": 0.0625, "num_classes": 6, "codebook_items": 4},
              "style": {"ngf": 4, "ndf": 4, "z_dim": 8, "estimator_width": 0.0625,
                        "estimator_classes": 6},
              "joint": {"ngf": 4, "ndf": 4, "z_dim": 8, "structure_ngf": 4,
                        "structure_ndf": 4, "structure_z_dim": 8, "structure_size": 16}}
    for stage in description["stages"]:
        stage["config"]["model"].update(widths[stage["name"]])
        stage["config"]["data"].update(load_size=16, crop_size=16)
        stage["config"]["train"].update(max_steps=2, batch_size=2, sample_every=2,
                                        checkpoint_every=2, num_samples=2, tensorboard=False)
    for stage in description["stages"][1:]:        # the structure alone at 16x16
        stage["config"]["data"].update(load_size=32, crop_size=32)
    path.write_text(yaml.safe_dump(description))
    return path


@pytest.mark.slow
def test_s2gan_pipeline_end_to_end(tmp_path):
    """Four stages train on tiny rooms; sampling chains Structure-G's 16x16 normals (resized)
    into the 32x32 Style-G, with the jointly tuned weights; the estimator came into the
    Style-GAN; every intermediate is on the page."""
    from safetensors.torch import load_file

    rooms = tmp_path / "rooms"
    assert main(["data", "render-scenes", "--out", str(rooms), "--count", "4", "--test-count",
                 "1", "--size", "32", "--quiet"]) == 0
    description = tiny_pipeline(tmp_path / "tiny.yaml")
    run = tmp_path / "run"
    assert main(["train", "--config", str(description), "--data", str(rooms), "--run",
                 str(run), "--quiet"]) == 0
    estimator = load_file(run / "estimator" / "estimator.safetensors")
    assert bool(estimator["fitted"])
    style_estimator = load_file(run / "style" / "estimator.safetensors")
    assert all(torch.equal(estimator[k], style_estimator[k]) for k in estimator)
    assert main(["sample", str(run), "--out", str(tmp_path / "out"), "--count", "2",
                 "--quiet"]) == 0
    page = (tmp_path / "out" / "index.html").read_text()
    assert "structure_0001.png" in page and "style_0001.png" in page
    assert "generator from stage joint" in page
    normals = decode_normals(np.asarray(Image.open(tmp_path / "out" / "structure_0000.png")))
    assert normals.shape == (16, 16, 3)
    image = np.asarray(Image.open(tmp_path / "out" / "style_0000.png"))
    assert image.shape == (32, 32, 3)


def test_the_shipped_pipelines_parse():
    from condsynth.pipeline import load_pipeline

    paper = load_pipeline("s2gan")
    assert paper.stage("structure").config["data"]["crop_size"] == 72
    assert paper.stage("style").config["data"]["crop_size"] == 128
    assert paper.stage("style").config["model"]["lambda_fcn"] == 0.1
    assert paper.stage("estimator").config["model"]["num_classes"] == 40
    assert paper.stage("joint").config["model"]["structure_grad_scale"] == 0.1
    cpu = load_pipeline("s2gan_cpu")
    assert {s.config["data"]["crop_size"] for s in cpu.stages} == {64}


def test_style_gan_refuses_one_channel_normals():
    with pytest.raises(ConfigError, match="image_channels must be 3"):
        build_method(tiny_config("s2gan_style", extra=["condition.image_channels=1"]))
    with pytest.raises(ConfigError, match="multiple of 16"):
        build_method(tiny_config("s2gan_style", extra=["data.crop_size=24"]))


def test_estimator_reads_unit_normals_and_fits_its_codebook(tmp_path):
    from condsynth.data.scenes3d import write_dataset
    from condsynth.train import prepare_config, train

    write_dataset(tmp_path / "rooms", 3, 16, seed=0, test_count=1, progress=False)
    config = prepare_config(tiny_config("s2gan_estimator", extra=[
        f"data.root={tmp_path / 'rooms'}", "train.max_steps=1", "data.load_size=16",
        "data.crop_size=16"]))
    result = train(config, tmp_path / "run", progress=False)
    codebook = result.method.estimator.codebook
    assert bool(result.method.estimator.fitted)
    assert torch.allclose(codebook.norm(dim=1), torch.ones(6), atol=1e-5)
    # The floor (0, 1, 0) and the back wall (0, 0, 1) of the rooms are near codewords.
    for direction in ([0.0, 1.0, 0.0], [0.0, 0.0, 1.0]):
        assert float((codebook @ torch.tensor(direction)).max()) > 0.95
    read = result.method.generate(torch.rand(2, 3, 16, 16) * 2 - 1)
    assert torch.allclose(read.norm(dim=1), torch.ones(2, 16, 16), atol=1e-4)


def test_the_normals_direction_is_checked():
    with pytest.raises(ConfigError, match="data.direction=BtoA"):
        build_method(tiny_config("s2gan_estimator", extra=["data.direction=AtoB"]))
    with pytest.raises(ConfigError, match="data.direction=AtoB"):
        build_method(tiny_config("s2gan_style", extra=["data.direction=BtoA"]))
