"""The autopainter method: its config, inputs, colour hints, one network forward per step, the
four ablation configs training, exact resume and the samples page."""

from __future__ import annotations

import json

import pytest
import torch

from condsynth.api import load
from condsynth.errors import ConfigError, DataError
from condsynth.presets import load_preset
from condsynth.registry import build_method, default_config, load_config
from condsynth.train import train
from tests.tiny import tiny_config

from .conftest import TINY


def tiny(extra: list[str] = ()):
    return build_method(tiny_config("autopainter", extra=list(extra)))


def batch(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"source": torch.rand(2, 1, 32, 32, generator=g) * 2 - 1,
            "image": torch.rand(2, 3, 32, 32, generator=g) * 2 - 1}


def test_defaults_describe_a_sketch_model():
    config = default_config("autopainter")
    assert (config.condition.kind, config.condition.image_channels) == ("image", 1)
    assert (config.data.layout, config.data.line_extraction) == ("sketch", "xdog_random")
    assert default_config("pix2pix").data.line_extraction == "none"   # others unchanged
    method = build_method(config)
    assert method.size_multiple() == 256
    assert method.generator.down[0][0].in_channels == 5               # sketch + RGB + mask
    assert method.discriminator.layers[0][0].in_channels == 8         # + the picture


def test_label_map_configs_are_refused():
    # The former spelling of a label-map condition still means one, and is refused.
    with pytest.raises(ConfigError, match=r"autopainter takes conditions of kind image"):
        tiny(["label.num_classes=5"])
    with pytest.raises(ConfigError, match=r"condition.image_channels 3"):
        tiny(["condition.image_channels=3"])
    with pytest.raises(ConfigError, match="model.lambda_tv is -1.0; it must be >= 0"):
        tiny(["model.lambda_tv=-1"])
    with pytest.raises(ConfigError, match="hint_none_prob is 2.0"):
        tiny(["model.hint_none_prob=2"])


def test_generate_with_and_without_hints():
    method = tiny().eval()
    sketch = batch()["source"]
    plain = method.generate(sketch)
    assert plain.shape == (2, 3, 32, 32) and plain.abs().max() <= 1
    assert torch.equal(plain, method.generate(sketch, hints=torch.zeros(2, 4, 32, 32)))
    hints = torch.zeros(2, 4, 32, 32)
    hints[:, :3, 8:16, 8:16] = torch.tensor([1.0, -1.0, -1.0])[:, None, None]
    hints[:, 3, 8:16, 8:16] = 1
    assert not torch.equal(plain, method.generate(sketch, hints=hints))
    with pytest.raises(DataError, match=r"hints of shape \(2, 3, 32, 32\) do not fit"):
        method.generate(sketch, hints=torch.zeros(2, 3, 32, 32))
    with pytest.raises(DataError, match=r"expected sketches of shape \(B, 1, H, W\)"):
        method.generate(torch.zeros(2, 32, 32, dtype=torch.long))
    no_hints = tiny(["model.hints=false"]).eval()
    assert no_hints.generator.down[0][0].in_channels == 1
    assert no_hints.generate(sketch).shape == (2, 3, 32, 32)
    with pytest.raises(DataError, match="trained without colour hints"):
        no_hints.generate(sketch, hints=hints)


def test_training_samples_hints_unless_the_batch_has_them():
    method = tiny()
    torch.manual_seed(0)
    out = method.forward_generator(batch())
    condition = out["condition"]
    assert condition.shape == (2, 5, 32, 32)
    assert torch.equal(condition[:, :1], batch()["source"])
    given = torch.zeros(2, 4, 32, 32)
    out = method.forward_generator({**batch(), "hints": given})
    assert torch.equal(out["condition"][:, 1:], given)


def test_each_network_runs_forward_once_per_step():
    method = tiny()
    calls = {"generator": 0, "discriminator": 0}
    for name in calls:
        getattr(method, name).register_forward_hook(
            lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
    b = batch()
    out = method.forward_generator(b)
    assert calls == {"generator": 1, "discriminator": 0}
    method.discriminator_step(b, out)
    assert calls == {"generator": 1, "discriminator": 1}
    method.generator_step(b, out)
    assert calls == {"generator": 1, "discriminator": 2}


def test_test_time_noise_keeps_dropout():
    sketch = torch.rand(1, 1, 64, 64) * 2 - 1
    quiet = tiny(["model.num_downs=6"]).eval()              # 6 levels: one dropout layer
    torch.manual_seed(0)
    a = quiet.generate(sketch)
    torch.manual_seed(1)
    assert torch.equal(a, quiet.generate(sketch))
    noisy = tiny(["model.num_downs=6", "model.test_time_noise=true"]).eval()
    torch.manual_seed(0)
    a = noisy.generate(sketch)
    torch.manual_seed(1)
    assert not torch.equal(a, noisy.generate(sketch))


ABLATION = {"pix2pix": {"g_gan", "g_l1"}, "tv": {"g_gan", "g_l1", "g_tv"},
            "feature": {"g_gan", "g_l1", "g_feat"}, "full": {"g_gan", "g_l1", "g_feat", "g_tv"}}


@pytest.mark.parametrize("name", sorted(ABLATION))
def test_the_four_ablation_configs_train(name, photos, vgg16_file, tmp_path):
    config = load_preset(f"autopainter_{name}",
                         [f"data.root={photos}", f"model.vgg_weights={vgg16_file}",
                          "train.max_steps=2", "train.batch_size=2", "train.log_every=1", *TINY])
    assert config.model.num_downs == 5 and config.data.line_extraction == "xdog_random"
    result = train(config, tmp_path / "run", progress=False)
    assert result.step == 2
    logged = [json.loads(line) for line in (tmp_path / "run" / "losses.jsonl").open()]
    assert [set(entry) - {"step", "lr_g"} for entry in logged] == [ABLATION[name] | {
        "d_real", "d_fake"}] * 2
    assert all(torch.isfinite(torch.tensor(list(entry.values()))).all() for entry in logged)


def test_cpu_preset_builds_without_vgg_weights():
    config = load_preset("autopainter_cpu")
    assert config.model.lambda_feat == 0 and config.data.crop_size == 128
    assert build_method(config).size_multiple() == 128


def test_resume_is_exact_and_the_samples_page_shows_sketches(photos, tmp_path):
    # 6 photos in batches of 2: the resume at step 1 starts in the middle of an epoch.
    overrides = [f"data.root={photos}", "train.batch_size=2", "train.max_steps=2", *TINY]
    config = load_preset("autopainter_tv", overrides)
    straight = train(config, tmp_path / "straight", progress=False)
    config = load_preset("autopainter_tv", overrides)
    train(config, tmp_path / "resumed", progress=False, stop_at=1)
    resumed = train(load_config(tmp_path / "resumed" / "config.yaml"), tmp_path / "resumed",
                    resume=True, progress=False)
    assert resumed.step == straight.step == 2
    for name, net in straight.method.networks().items():
        theirs = resumed.method.networks()[name].state_dict()
        for key, value in net.state_dict().items():
            assert torch.equal(value, theirs[key]), f"{name}.{key}"
    page = (tmp_path / "straight" / "index.html").read_text()
    assert "samples/condition_0.png" in page and "samples/generated_0.png" in page
    loaded = load(tmp_path / "straight", device="cpu")
    assert loaded.generate(batch()["source"]).shape == (2, 3, 32, 32)
