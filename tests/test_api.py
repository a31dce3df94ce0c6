"""``condsynth.load``: weights, devices and the inference fast path (bf16, channels_last)."""

from __future__ import annotations

import pytest
import torch

import condsynth
from condsynth.errors import ConfigError
from condsynth.train import prepare_config, train
from tests.tiny import generate_inputs, tiny_batch, tiny_config


@pytest.fixture(scope="module")
def spade_run(scenes, tmp_path_factory):
    run = tmp_path_factory.mktemp("api") / "run"
    config = tiny_config("spade", extra=[f"data.root={scenes}", "label.num_classes=null",
                                         "train.max_steps=2"])
    train(prepare_config(config), run, progress=False)
    return run


def test_bf16_channels_last_generate_is_close_to_fp32_and_returns_float32(spade_run):
    label = torch.randint(0, 11, (1, 32, 32))
    reference = condsynth.load(spade_run, device="cpu").generate(label, instance=label)
    fast = condsynth.load(spade_run, device="cpu", precision="bf16", channels_last=True)
    assert fast.inference_precision == "bf16"
    conv = next(m for m in fast.generator.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    out = fast.generate(label, instance=label)
    assert out.dtype == torch.float32 and out.shape == reference.shape
    mse = float(((out - reference) ** 2).mean())
    assert 0 < mse and 10 * torch.log10(torch.tensor(4.0 / mse)) > 30


def test_generate_never_builds_a_graph_and_fp32_is_untouched():
    from condsynth.registry import build_method

    method = build_method(tiny_config("pix2pixhd")).eval()
    label, instance = generate_inputs("pix2pixhd", tiny_batch("pix2pixhd"))
    out = method.generate(label, instance=instance)
    assert not out.requires_grad and out.dtype == torch.float32


def test_bad_precision_is_a_clear_error(spade_run):
    with pytest.raises(ConfigError, match="not one of fp32, bf16, fp16"):
        condsynth.load(spade_run, device="cpu", precision="int8")
    with pytest.raises(ConfigError, match="fp16 inference needs CUDA"):
        condsynth.load(spade_run, device="cpu", precision="fp16")


def test_fast_path_stores_plain_layers_in_bf16_and_keeps_spectral_norm_in_fp32(spade_run):
    fast = condsynth.load(spade_run, device="cpu", precision="bf16")
    convs = [m for m in fast.generator.modules() if isinstance(m, torch.nn.Conv2d)]
    plain = [m for m in convs if not hasattr(m, "weight_orig")]
    normed = [m for m in convs if hasattr(m, "weight_orig")]
    assert plain and normed
    assert all(m.weight.dtype == torch.bfloat16 for m in plain)
    assert all(m.weight_orig.dtype == torch.float32 for m in normed)
    assert all(p.dtype == torch.float32 for p in fast.discriminator.parameters())
