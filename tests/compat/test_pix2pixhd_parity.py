"""Official pix2pixHD checkpoints in condsynth: the same pixels and loss terms as NVIDIA's code.

The shared fixtures (``../shared/fixtures/official``, see their README) hold official checkpoint
folders, inputs, and what the official code produced from them. The second half builds
official-structured checkpoints for other options with a small reference of the official module
layout (written here from the documented layer order and key names) to show that the import is
derived from the options, not from the fixtures' key lists.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from condsynth.api import load
from condsynth.compat.official import (
    load_numpy_object,
    load_official_state_dict,
    read_pix2pixhd_opt,
    read_spade_opt,
)
from condsynth.compat.pix2pixhd import import_pix2pixhd
from condsynth.data.dataset import image_to_tensor
from condsynth.data.io import read_image, read_instance, read_label
from condsynth.errors import CheckpointError

pytestmark = pytest.mark.parity

CASES = ["pix2pixhd-global", "pix2pixhd-local", "pix2pixhd-feat"]
LOSS_NAMES = {"G_GAN": "g_gan", "G_GAN_Feat": "g_feat", "G_VGG": "g_vgg", "D_real": "d_real",
              "D_fake": "d_fake"}


def case_inputs(case: Path) -> dict[str, torch.Tensor]:
    """The case's PNGs as the official loader delivers them (label ids, instance ids, image in
    [-1, 1]), batched."""
    return {"label": torch.from_numpy(read_label(case / "inputs" / "label.png"))[None],
            "instance": torch.from_numpy(read_instance(case / "inputs" / "inst.png"))[None],
            "image": image_to_tensor(read_image(case / "inputs" / "image.png"))[None]}


def import_case(official_fixtures: Path, name: str, out: Path, **kwargs) -> Path:
    return import_pix2pixhd(official_fixtures / name / "checkpoint", out,
                            vgg_weights=str(official_fixtures / "vgg19-features.pth"), **kwargs)


def official_losses(case: Path) -> dict[str, float]:
    return json.loads((case / "expected" / "losses.json").read_text())["losses"]


def our_losses(method, batch: dict) -> tuple[dict[str, float], dict]:
    """One training-mode forward, then both steps on the same D (the official computes every
    term before any optimizer step). Our D terms are halved as the official train loop does."""
    method.train()
    out = method.forward_generator(batch)
    d = method.discriminator_step(batch, out)
    g = method.generator_step(batch, out)
    terms = {**{k: float(v.detach()) for k, v in g.items()},
             **{k: 2.0 * float(v.detach()) for k, v in d.items()}}
    return terms, out


def assert_losses_match(ours: dict[str, float], official: dict[str, float]) -> None:
    assert {LOSS_NAMES[k] for k in official} == set(ours)
    for name, value in official.items():
        mine = ours[LOSS_NAMES[name]]
        assert abs(mine - value) <= 1e-4 * abs(value), f"{name}: {mine} vs official {value}"


# ----------------------------------------------------------------------------- shared cases


@pytest.mark.parametrize("name", CASES)
def test_imported_run_synthesizes_the_official_output(official_fixtures, tmp_path, name):
    case = official_fixtures / name
    run = import_case(official_fixtures, name, tmp_path / "run")
    method = load(run, device="cpu")
    batch = case_inputs(case)
    style = batch["image"] if method.encoder is not None else None
    output = method.generate(batch["label"], instance=batch["instance"], style=style)
    expected = np.load(case / "expected" / "output.npy")
    assert output.shape == expected.shape
    assert np.abs(output.numpy() - expected).max() <= 1e-4

    # Diagnostics: the generator's input (one-hot, edges, features) as the official built it.
    g_input = method.condition(batch)
    if method.encoder is not None:
        with torch.no_grad():
            features = method.encoder(batch["image"], batch["instance"])
        np.testing.assert_allclose(features.numpy(), np.load(case / "expected" / "feat_map.npy"),
                                   rtol=0, atol=1e-6)
        g_input = torch.cat([g_input, features], 1)
    np.testing.assert_allclose(g_input.numpy(), np.load(case / "expected" / "input_network.npy"),
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", CASES)
def test_loss_terms_equal_the_official_ones(official_fixtures, tmp_path, name):
    case = official_fixtures / name
    method = load(import_case(official_fixtures, name, tmp_path / "run"), device="cpu")
    ours, out = our_losses(method, case_inputs(case))
    assert_losses_match(ours, official_losses(case))
    fake = np.load(case / "expected" / "train_fake.npy")
    assert np.abs(out["fake"].detach().numpy() - fake).max() <= 1e-4


@pytest.mark.slow
def test_a_full_torchvision_vgg19_file_loads_too(official_fixtures, tmp_path):
    """A real torchvision file also holds the classifier; the loss must read it the same."""
    import torchvision

    full = torchvision.models.vgg19(weights=None).state_dict()
    features = torch.load(official_fixtures / "vgg19-features.pth", weights_only=True)
    assert set(features) < set(full) and any(k.startswith("classifier.") for k in full)
    full.update(features)
    torch.save(full, tmp_path / "vgg19-full.pth")
    del full
    name = "pix2pixhd-global"
    run = import_pix2pixhd(official_fixtures / name / "checkpoint", tmp_path / "run",
                           vgg_weights=str(tmp_path / "vgg19-full.pth"))
    ours, _ = our_losses(load(run, device="cpu"), case_inputs(official_fixtures / name))
    assert_losses_match(ours, official_losses(official_fixtures / name))


def test_imported_run_resumes_training(official_fixtures, tmp_path):
    """The import writes a step-0 optimizer state: `train --resume` continues from the weights."""
    from dataclasses import replace

    from condsynth import checkpoint
    from condsynth.train import train

    name = "pix2pixhd-global"
    case = official_fixtures / name
    data = tmp_path / "data"
    for part, png in (("label", "label.png"), ("inst", "inst.png"), ("img", "image.png")):
        (data / f"train_{part}").mkdir(parents=True)
        shutil.copy(case / "inputs" / png, data / f"train_{part}" / "sample.png")
    run = import_case(official_fixtures, name, tmp_path / "run")
    config = checkpoint.read_config(run)
    assert config.data.preprocess == "none" and config.train.lr_g == 2e-4
    # VGG off to keep the test quick (the loss terms' tests cover it).
    config = replace(config, data=replace(config.data, root=str(data)),
                     model=replace(config.model, vgg_loss=False),
                     train=replace(config.train, max_steps=1, sample_every=10, tensorboard=False))
    before = load(run, device="cpu").generator.state_dict()
    result = train(config, run, resume=True, progress=False)
    assert result.step == 1 and set(result.losses) == {"d_fake", "d_real", "g_gan", "g_feat"}
    after = load(run, device="cpu").generator.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_official_clustered_features_are_imported(official_fixtures, tmp_path):
    official = tmp_path / "official"
    shutil.copytree(official_fixtures / "pix2pixhd-feat" / "checkpoint", official)
    rng = np.random.default_rng(0)
    # encode_features.py: np.save of {label: KMeans(...).cluster_centers_ (K, feat_num)}
    centres = {0: rng.uniform(-1, 1, (10, 3)), 1: rng.uniform(-1, 1, (4, 3)),
               5: rng.uniform(-1, 1, (1, 3))}
    np.save(official / "features_clustered_010.npy", centres)
    run = import_pix2pixhd(official, tmp_path / "run")
    method = load(run, device="cpu")
    got = method.cluster_centres()
    assert set(got) == {0, 1, 5}
    for label, value in centres.items():
        np.testing.assert_allclose(got[label], value.astype(np.float32))
    assert "features_clustered_010.npy" in json.loads(
        (run / "imported_from.json").read_text())["files"]
    batch = case_inputs(official_fixtures / "pix2pixhd-feat")
    look = method.feature_map(batch["label"], batch["instance"], looks={0: 3}, seed=0)
    mask = batch["instance"][0] == 0
    np.testing.assert_allclose(look[0][:, mask].T.numpy(),
                               np.broadcast_to(centres[0][3], (int(mask.sum()), 3)), atol=1e-6)
    a = method.generate(batch["label"], instance=batch["instance"], z=look)
    b = method.generate(batch["label"], instance=batch["instance"],
                        z=method.feature_map(batch["label"], batch["instance"], looks={0: 7}))
    assert (a - b).abs().max() > 1e-3


def test_feature_files_never_unpickle_code(tmp_path):
    class Payload:
        def __reduce__(self):
            return (shutil.rmtree, (str(tmp_path / "victim"),))

    (tmp_path / "victim").mkdir()
    np.save(tmp_path / "evil.npy", np.array(Payload(), dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError, match="refusing to load shutil.rmtree"):
        load_numpy_object(tmp_path / "evil.npy", "features")
    assert (tmp_path / "victim").is_dir()


# ----------------------------------------------------------------------------- errors


def _copy_case(official_fixtures: Path, name: str, dest: Path) -> Path:
    shutil.copytree(official_fixtures / name / "checkpoint", dest)
    return dest


def test_missing_and_corrupt_files_are_clear_errors(official_fixtures, tmp_path):
    official = _copy_case(official_fixtures, "pix2pixhd-global", tmp_path / "official")
    with pytest.raises(CheckpointError, match="does not exist"):
        import_pix2pixhd(tmp_path / "nowhere", tmp_path / "a")
    (official / "latest_net_G.pth").rename(official / "saved_G.pth")
    with pytest.raises(CheckpointError, match="latest_net_G.pth does not exist"):
        import_pix2pixhd(official, tmp_path / "b")
    data = (official / "saved_G.pth").read_bytes()
    (official / "latest_net_G.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="latest_net_G.pth is not a readable"):
        import_pix2pixhd(official, tmp_path / "c")
    (official / "latest_net_G.pth").write_bytes(data)
    (official / "opt.txt").unlink()
    with pytest.raises(CheckpointError, match="holds no opt.txt"):
        import_pix2pixhd(official, tmp_path / "d")


def test_options_that_do_not_fit_the_weights_are_named(official_fixtures, tmp_path):
    official = _copy_case(official_fixtures, "pix2pixhd-global", tmp_path / "official")
    text = (official / "opt.txt").read_text()
    (official / "opt.txt").write_text(text.replace("n_blocks_global: 2", "n_blocks_global: 3"))
    with pytest.raises(CheckpointError, match=r"latest_net_G.pth does not match .*missing "
                                              r"model\.\d+\.conv_block"):
        import_pix2pixhd(official, tmp_path / "a")
    (official / "opt.txt").write_text(text.replace("label_nc: 8", "label_nc: 10"))
    with pytest.raises(CheckpointError, match=r"'model.1.weight' has shape \(8, 9, 7, 7\)"):
        import_pix2pixhd(official, tmp_path / "b")
    (official / "opt.txt").write_text(text.replace("num_D: 2", "num_D: 3"))
    with pytest.raises(CheckpointError, match="latest_net_D.pth does not match"):
        import_pix2pixhd(official, tmp_path / "c")
    (official / "opt.txt").write_text(text.replace("netG: global", "netG: local"))
    with pytest.raises(CheckpointError, match="latest_net_G.pth"):
        import_pix2pixhd(official, tmp_path / "d")


def test_without_d_and_e_files_the_import_warns_and_still_synthesizes(official_fixtures,
                                                                      tmp_path):
    official = _copy_case(official_fixtures, "pix2pixhd-feat", tmp_path / "official")
    (official / "latest_net_D.pth").unlink()
    with pytest.warns(UserWarning, match="latest_net_D.pth not found"):
        run = import_pix2pixhd(official, tmp_path / "run")
    batch = case_inputs(official_fixtures / "pix2pixhd-feat")
    output = load(run, device="cpu").generate(batch["label"], instance=batch["instance"],
                                              style=batch["image"])
    expected = np.load(official_fixtures / "pix2pixhd-feat" / "expected" / "output.npy")
    assert np.abs(output.numpy() - expected).max() <= 1e-4
    (official / "latest_net_E.pth").unlink()
    with pytest.warns(UserWarning) as warned:
        import_pix2pixhd(official, tmp_path / "run2")
    assert any("latest_net_E.pth not found" in str(w.message) for w in warned)


def test_an_existing_run_is_not_overwritten_by_accident(official_fixtures, tmp_path):
    import_case(official_fixtures, "pix2pixhd-global", tmp_path / "run")
    with pytest.raises(CheckpointError, match="already holds a run"):
        import_case(official_fixtures, "pix2pixhd-global", tmp_path / "run")
    import_case(official_fixtures, "pix2pixhd-global", tmp_path / "run", overwrite=True)


# ----------------------------------------------------------------------------- option files


def test_pix2pixhd_opt_txt_is_read_with_types(official_fixtures):
    for name in CASES:
        case = json.loads((official_fixtures / name / "case.json").read_text())
        parsed = read_pix2pixhd_opt(official_fixtures / name / "checkpoint")
        expected = dict(case["options_train_parsed"], max_dataset_size=float("inf"))
        assert parsed == expected


def test_spade_options_from_pickle_and_text_agree(official_fixtures):
    folder = official_fixtures / "spade-default" / "checkpoint"
    from_pickle = read_spade_opt(folder)
    from_text = read_spade_opt(folder / "opt.txt")
    assert from_pickle.keys() == from_text.keys()
    differing = {k for k in from_pickle if from_pickle[k] != from_text[k]}
    assert differing <= {"gpu_ids"}        # kept as the string '-1' in the pickle
    assert from_text["init_variance"] == 1.0 and from_text["crop_size"] == 128
    assert from_text["norm_G"] == "spectralspadesyncbatch3x3" and from_text["use_vae"] is False


def test_spade_option_pickles_build_nothing_but_a_namespace(tmp_path):
    class Payload:
        def __reduce__(self):
            return (shutil.rmtree, (str(tmp_path / "victim"),))

    (tmp_path / "victim").mkdir()
    (tmp_path / "opt.pkl").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(CheckpointError, match="refusing to load shutil.rmtree"):
        read_spade_opt(tmp_path)
    assert (tmp_path / "victim").is_dir()


def test_official_state_dicts_load_safely(official_fixtures, tmp_path):
    state = load_official_state_dict(
        official_fixtures / "pix2pixhd-global" / "checkpoint" / "latest_net_D.pth", "D")
    assert "scale1_layer0.0.weight" in state
    torch.save({"module." + k: v for k, v in state.items()}, tmp_path / "wrapped.pth")
    assert load_official_state_dict(tmp_path / "wrapped.pth", "D").keys() == state.keys()
    torch.save(nn.Conv2d(1, 1, 1), tmp_path / "module.pth")
    with pytest.raises(CheckpointError, match="module.pth is not a readable"):
        load_official_state_dict(tmp_path / "module.pth", "D")


# ----------------------------------------------------------------------------- other options
# A reference of the official module layout: nn.Sequential stacks named as the official code
# names them (model.<i>, model<n>_1/_2, scale<s>_layer<j> or layer<s>), with its forward order.


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.InstanceNorm2d(channels)


class _RefResnetBlock(nn.Module):
    def __init__(self, dim: int, norm: str) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3),
                                        _norm(norm, dim), nn.ReLU(True), nn.ReflectionPad2d(1),
                                        nn.Conv2d(dim, dim, 3), _norm(norm, dim))

    def forward(self, x):
        return x + self.conv_block(x)


def _ref_global_layers(in_nc: int, ngf: int, n_down: int, n_blocks: int, norm: str) -> list:
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(in_nc, ngf, 7), _norm(norm, ngf), nn.ReLU(True)]
    for i in range(n_down):
        c = ngf * 2 ** i
        layers += [nn.Conv2d(c, 2 * c, 3, 2, 1), _norm(norm, 2 * c), nn.ReLU(True)]
    layers += [_RefResnetBlock(ngf * 2 ** n_down, norm) for _ in range(n_blocks)]
    for i in range(n_down):
        c = ngf * 2 ** (n_down - i)
        layers += [nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1), _norm(norm, c // 2),
                   nn.ReLU(True)]
    return layers + [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]


class _RefGenerator(nn.Module):
    def __init__(self, in_nc: int, ngf: int, n_down: int, n_blocks: int, n_local: int,
                 n_blocks_local: int, norm: str) -> None:
        super().__init__()
        self.n_local = n_local
        layers = _ref_global_layers(in_nc, ngf * 2 ** n_local, n_down, n_blocks, norm)
        self.model = nn.Sequential(*(layers[:-3] if n_local else layers))
        for n in range(1, n_local + 1):
            c = ngf * 2 ** (n_local - n)
            setattr(self, f"model{n}_1", nn.Sequential(
                nn.ReflectionPad2d(3), nn.Conv2d(in_nc, c, 7), _norm(norm, c), nn.ReLU(True),
                nn.Conv2d(c, 2 * c, 3, 2, 1), _norm(norm, 2 * c), nn.ReLU(True)))
            up = [_RefResnetBlock(2 * c, norm) for _ in range(n_blocks_local)]
            up += [nn.ConvTranspose2d(2 * c, c, 3, 2, 1, output_padding=1), _norm(norm, c),
                   nn.ReLU(True)]
            if n == n_local:
                up += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
            setattr(self, f"model{n}_2", nn.Sequential(*up))

    def forward(self, x):
        pyramid = [x]
        for _ in range(self.n_local):
            pyramid.append(F.avg_pool2d(pyramid[-1], 3, 2, 1, count_include_pad=False))
        out = self.model(pyramid[-1])
        for n in range(1, self.n_local + 1):
            level = pyramid[self.n_local - n]
            out = getattr(self, f"model{n}_2")(getattr(self, f"model{n}_1")(level) + out)
        return out


class _RefDiscriminator(nn.Module):
    def __init__(self, in_nc: int, ndf: int, n_layers: int, num_d: int, norm: str,
                 interm: bool) -> None:
        super().__init__()
        self.num_d, self.n_layers, self.interm = num_d, n_layers, interm
        for s in range(num_d):
            groups = [[nn.Conv2d(in_nc, ndf, 4, 2, 2), nn.LeakyReLU(0.2, True)]]
            nf = ndf
            for n in range(1, n_layers + 1):
                prev, nf = nf, min(nf * 2, 512)
                groups.append([nn.Conv2d(prev, nf, 4, 2 if n < n_layers else 1, 2),
                               _norm(norm, nf), nn.LeakyReLU(0.2, True)])
            groups.append([nn.Conv2d(nf, 1, 4, 1, 2)])
            if interm:
                for j, group in enumerate(groups):
                    setattr(self, f"scale{s}_layer{j}", nn.Sequential(*group))
            else:
                setattr(self, f"layer{s}", nn.Sequential(*[m for g in groups for m in g]))

    def forward(self, x):
        results = []
        for i in range(self.num_d):
            s = self.num_d - 1 - i
            if self.interm:
                feats = [x]
                for j in range(self.n_layers + 2):
                    feats.append(getattr(self, f"scale{s}_layer{j}")(feats[-1]))
                results.append(feats[1:])
            else:
                results.append([getattr(self, f"layer{s}")(x)])
            x = F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
        return results


class _RefEncoder(nn.Module):
    def __init__(self, feat_num: int, nef: int, n_down: int, norm: str) -> None:
        super().__init__()
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, nef, 7), _norm(norm, nef), nn.ReLU(True)]
        for i in range(n_down):
            c = nef * 2 ** i
            layers += [nn.Conv2d(c, 2 * c, 3, 2, 1), _norm(norm, 2 * c), nn.ReLU(True)]
        for i in range(n_down):
            c = nef * 2 ** (n_down - i)
            layers += [nn.ConvTranspose2d(c, c // 2, 3, 2, 1, output_padding=1),
                       _norm(norm, c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(nef, feat_num, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, image, inst):
        out = self.model(image)
        pooled = out.clone()
        for b in range(out.shape[0]):
            for i in inst[b].unique():
                mask = inst[b] == i
                pooled[b][:, mask] = out[b][:, mask].mean(1, keepdim=True)
        return pooled


def _reference_networks(opt: dict) -> dict[str, nn.Module]:
    label_channels = opt["label_nc"] + (0 if opt["no_instance"] else 1)
    feat = opt["feat_num"] if opt["instance_feat"] else 0
    n_local = opt["n_local_enhancers"] if opt["netG"] == "local" else 0
    nets = {"G": _RefGenerator(label_channels + feat, opt["ngf"], opt["n_downsample_global"],
                               opt["n_blocks_global"], n_local, opt["n_blocks_local"],
                               opt["norm"]),
            "D": _RefDiscriminator(label_channels + 3, opt["ndf"], opt["n_layers_D"],
                                   opt["num_D"], opt["norm"], not opt["no_ganFeat_loss"])}
    if opt["instance_feat"]:
        nets["E"] = _RefEncoder(opt["feat_num"], opt["nef"], opt["n_downsample_E"], opt["norm"])
    return nets


def _fixture_options(official_fixtures: Path, name: str) -> dict:
    return json.loads((official_fixtures / name / "case.json").read_text())["options_train_parsed"]


@pytest.mark.parametrize("name", CASES)
def test_the_reference_layout_is_the_official_one(official_fixtures, name):
    """The reference networks below load the official fixture files strictly."""
    nets = _reference_networks(_fixture_options(official_fixtures, name))
    for letter, net in nets.items():
        state = torch.load(official_fixtures / name / "checkpoint" / f"latest_net_{letter}.pth",
                           weights_only=True)
        net.load_state_dict(state, strict=True)


OTHER_OPTIONS = {
    "global-5-classes-no-instance": dict(label_nc=5, no_instance=True, ngf=4,
                                         n_downsample_global=2, n_blocks_global=1, num_D=1,
                                         n_layers_D=2, ndf=4, size=(16, 24)),
    "two-local-enhancers": dict(label_nc=3, netG="local", n_local_enhancers=2, n_blocks_local=1,
                                ngf=2, n_downsample_global=2, n_blocks_global=1, num_D=3,
                                n_layers_D=4, ndf=4, size=(32, 48)),
    "batch-norm-no-feature-matching-encoder": dict(
        label_nc=4, norm="batch", no_ganFeat_loss=True, instance_feat=True, feat_num=2, nef=4,
        n_downsample_E=2, ngf=4, n_downsample_global=1, n_blocks_global=2, num_D=2,
        n_layers_D=1, ndf=4, size=(8, 12)),
}


def _write_opt_txt(path: Path, options: dict) -> None:
    lines = ["------------ Options -------------"]
    lines += [f"{k}: {v}" for k, v in sorted(options.items())]
    lines.append("-------------- End ----------------")
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("variant", sorted(OTHER_OPTIONS))
def test_import_is_derived_from_the_options(official_fixtures, tmp_path, variant):
    spec = dict(OTHER_OPTIONS[variant])
    height, width = spec.pop("size")
    opt = {**_fixture_options(official_fixtures, "pix2pixhd-global"), **spec}
    torch.manual_seed(0)
    nets = _reference_networks(opt)
    official = tmp_path / "official"
    official.mkdir()
    for letter, net in nets.items():
        with torch.no_grad():   # weights far from zero, so that any mix-up shows
            for p in net.parameters():
                p.normal_(0.0, 0.3)
            for m in net.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 1.5)
        torch.save(net.state_dict(), official / f"latest_net_{letter}.pth")
    _write_opt_txt(official / "opt.txt", opt)
    method = load(import_pix2pixhd(official, tmp_path / "run"), device="cpu")
    for net in nets.values():
        net.eval()

    g = torch.Generator().manual_seed(1)
    label = torch.randint(0, opt["label_nc"], (2, height, width), generator=g)
    instance = label * 1000 + (torch.arange(width) >= width // 2)
    image = torch.rand(2, 3, height, width, generator=g) * 2 - 1
    condition = method.condition({"label": label, "instance": instance})
    assert condition.shape[1] == opt["label_nc"] + (0 if opt["no_instance"] else 1)
    with torch.no_grad():
        if opt["instance_feat"]:
            features = nets["E"](image, instance)
            torch.testing.assert_close(method.encoder(image, instance), features)
            expected = nets["G"](torch.cat([condition, features], 1))
            ours = method.generate(label, instance=instance, style=image)
        else:
            expected = nets["G"](condition)
            ours = method.generate(label, instance=instance)
        torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)
        pair = torch.cat([condition, image], 1)
        theirs_d, ours_d = nets["D"](pair), method.discriminator(pair)
        assert len(ours_d) == opt["num_D"]
        for t, o in zip(theirs_d, ours_d, strict=True):   # index 0 = full resolution in both
            torch.testing.assert_close(o[-1], t[-1], rtol=0, atol=1e-5)
