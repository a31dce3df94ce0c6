"""Official SPADE checkpoints: import, and parity with what NVlabs' code produced.

The shared fixtures (../shared/fixtures/official/spade-*) hold checkpoints and outputs of the
official code; see their case.json. Beyond them, official-structured checkpoints of other
configurations are built here from the official layer order and key names.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from condsynth.api import load
from condsynth.checkpoint import read_train_state
from condsynth.compat.spade import import_spade, parse_norm_g, parse_norm_layer
from condsynth.data.dataset import image_to_tensor
from condsynth.data.io import read_image, read_instance, read_label
from condsynth.errors import CheckpointError
from condsynth.registry import merged

pytestmark = pytest.mark.parity

CASES = ["spade-default", "spade-vae"]
TOLERANCE = 1e-4
LOSS_NAMES = {"g_gan": ("generator", "GAN"), "g_feat": ("generator", "GAN_Feat"),
              "g_vgg": ("generator", "VGG"), "g_kl": ("generator", "KLD"),
              "d_fake": ("discriminator", "D_Fake"), "d_real": ("discriminator", "D_real")}


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> dict[str, Path]:
    """Each shared case imported once: case name -> run directory (None without fixtures)."""
    from tests.conftest import shared_dir

    root = shared_dir() / "fixtures" / "official"
    runs = {}
    for case in CASES:
        if (root / case).is_dir():
            runs[case] = import_spade(root / case / "checkpoint",
                                      tmp_path_factory.mktemp(case) / "run")
    return runs


def case_inputs(case_dir: Path) -> dict[str, torch.Tensor]:
    inputs = case_dir / "inputs"
    return {"label": torch.from_numpy(read_label(inputs / "label.png"))[None],
            "instance": torch.from_numpy(read_instance(inputs / "inst.png"))[None],
            "image": image_to_tensor(read_image(inputs / "image.png"))[None]}


def expected(case_dir: Path, name: str) -> torch.Tensor:
    return torch.from_numpy(np.load(case_dir / "expected" / f"{name}.npy"))


# ------------------------------------------------------------------------------- parity


@pytest.mark.parametrize("case", CASES)
def test_output_parity(case, official_fixtures, imported):
    case_dir = official_fixtures / case
    method = load(imported[case], device="cpu")
    batch = case_inputs(case_dir)
    condition = method.condition(batch)
    assert torch.equal(condition, expected(case_dir, "input_network"))
    z = expected(case_dir, "z") if method.config.model.use_vae else None
    out = method.generate(batch["label"], instance=batch["instance"], z=z)
    reference = expected(case_dir, "output")
    assert out.shape == reference.shape
    assert (out - reference).abs().max() < TOLERANCE


def test_style_image_gives_the_official_mu(official_fixtures, imported):
    case_dir = official_fixtures / "spade-vae"
    method = load(imported["spade-vae"], device="cpu")
    batch = case_inputs(case_dir)
    mu, logvar = method.encode_style(batch["image"])
    assert (mu - expected(case_dir, "mu")).abs().max() < TOLERANCE
    assert (logvar - expected(case_dir, "logvar")).abs().max() < TOLERANCE
    # style = the image and z = its mu are the same synthesis.
    by_style = method.generate(batch["label"], instance=batch["instance"], style=batch["image"])
    by_mu = method.generate(batch["label"], instance=batch["instance"],
                            z=expected(case_dir, "mu"))
    assert (by_style - by_mu).abs().max() < TOLERANCE
    # The official test output is z = mu + eps * sigma: sampling around mu reproduces it.
    method.config.model.style_temperature = 1.0
    torch.manual_seed(4)                      # as the official inference call
    sampled = method.generate(batch["label"], instance=batch["instance"], style=batch["image"])
    assert (sampled - expected(case_dir, "output")).abs().max() < TOLERANCE


def training_losses(run: Path, batch: dict, vgg: Path, step: str) -> tuple[dict, dict]:
    """One training-mode loss forward of a freshly loaded run, as losses.json was made."""
    method = load(run, device="cpu").train()
    method.config.model.vgg_weights = str(vgg)
    out = method.forward_generator(batch)
    step_fn = method.generator_step if step == "generator" else method.discriminator_step
    return out, {k: float(v.detach()) for k, v in step_fn(batch, out).items()}


@pytest.mark.parametrize("case", CASES)
def test_training_loss_parity(case, official_fixtures, imported):
    case_dir = official_fixtures / case
    reference = json.loads((case_dir / "expected" / "losses.json").read_text())["losses"]
    vgg = official_fixtures / "vgg19-features.pth"
    batch = case_inputs(case_dir)
    vae = (case_dir / "expected" / "train_eps.npy").is_file()
    if vae:
        batch["eps"] = expected(case_dir, "train_eps")   # the noise the official call drew
    # losses.json: the G terms and the D terms each from a fresh load of the checkpoint.
    out, g_losses = training_losses(imported[case], batch, vgg, "generator")
    _, d_losses = training_losses(imported[case], batch, vgg, "discriminator")
    train_fake = expected(case_dir, "train_fake")
    assert (out["fake"].detach() - train_fake).abs().max() < TOLERANCE
    if vae:
        assert (out["mu"].detach() - expected(case_dir, "train_mu")).abs().max() < TOLERANCE
        assert (out["z"].detach() - expected(case_dir, "train_z")).abs().max() < TOLERANCE
    losses = {**g_losses, **d_losses}
    expected_names = {"g_gan", "g_feat", "g_vgg", "d_fake", "d_real"} | ({"g_kl"} if vae else set())
    assert set(losses) == expected_names
    for ours, (side, theirs) in LOSS_NAMES.items():
        if ours in losses:
            value = reference[side][theirs]
            assert abs(losses[ours] - value) <= TOLERANCE * abs(value), (ours, losses[ours], value)


def test_reparameterization_noise_is_drawn_as_the_official(official_fixtures, imported):
    """Without injected noise, the seed the official call used gives the recorded z."""
    case_dir = official_fixtures / "spade-vae"
    method = load(imported["spade-vae"], device="cpu").train()
    torch.manual_seed(4)
    out = method.forward_generator(case_inputs(case_dir))
    assert (out["z"].detach() - expected(case_dir, "train_z")).abs().max() < TOLERANCE


# ------------------------------------------------------------------------------- options


def test_config_from_the_fixture_options(official_fixtures, imported):
    config = load(imported["spade-vae"], device="cpu").config
    m, label, data, train = config.model, config.condition, config.data, config.train
    assert (label.num_classes, label.contain_dontcare_label, label.use_instance) == (8, True, True)
    assert (m.ngf, m.ndf, m.num_upsampling_layers, m.norm_g, m.spectral_g) == \
        (8, 8, "normal", "sync_batch", True)
    assert (m.spade_kernel_size, m.num_d, m.n_layers_d, m.norm_d, m.spectral_d) == \
        (3, 2, 4, "instance", True)
    assert (m.use_vae, m.z_dim, m.norm_e, m.spectral_e, m.gan_mode) == \
        (True, 256, "instance", True, "hinge")
    assert (m.lambda_feat, m.lambda_vgg, m.lambda_kld, m.init_gain) == (10.0, 10.0, 0.05, 1.0)
    assert (data.crop_size, data.aspect_ratio, data.layout, data.preprocess) == \
        (256, 4.0, "auto", "none")
    assert (train.lr_g, train.lr_d, train.beta1, train.beta2) == (1e-4, 4e-4, 0.0, 0.9)


def test_opt_txt_alone_gives_the_same_run(official_fixtures, imported, tmp_path):
    folder = tmp_path / "official"
    shutil.copytree(official_fixtures / "spade-default" / "checkpoint", folder)
    (folder / "opt.pkl").unlink()
    run = import_spade(folder, tmp_path / "run")
    assert load(run, "cpu").config == load(imported["spade-default"], "cpu").config


def test_norm_strings_become_typed_fields():
    assert parse_norm_g("spectralspadesyncbatch3x3") == (True, "sync_batch", 3)
    assert parse_norm_g("spadeinstance5x5") == (False, "instance", 5)
    assert parse_norm_g("spectralspadebatch3x3") == (True, "batch", 3)
    assert parse_norm_layer("spectralinstance", "norm_D") == (True, "instance")
    assert parse_norm_layer("spectral", "norm_D") == (True, "none")
    assert parse_norm_layer("syncbatch", "norm_D") == (False, "sync_batch")
    with pytest.raises(CheckpointError, match="norm_G"):
        parse_norm_g("spectralinstance")
    with pytest.raises(CheckpointError, match="norm_E"):
        parse_norm_layer("group", "norm_E")


# ------------------------------------------------------------------------------- beyond


def official_spade_state_dicts(opt: dict) -> dict[str, dict[str, tuple[int, ...]]]:
    """Key -> shape of the official netG, netD (and netE), in the official module order, from
    the official architecture (SPADEGenerator, NLayerDiscriminator, ConvEncoder)."""
    semantic = opt["label_nc"] + opt["contain_dontcare_label"] + (not opt["no_instance"])
    spectral_g, norm_g, k = parse_norm_g(opt["norm_G"])
    nf, hidden = opt["ngf"], 128
    num_up = {"normal": 5, "more": 6, "most": 7}[opt["num_upsampling_layers"]]
    sw = opt["crop_size"] // 2 ** num_up
    sh = round(sw / opt["aspect_ratio"])

    def conv(keys, name, cout, cin, kernel, bias, spectral):
        if bias:
            keys[f"{name}.bias"] = (cout,)
        if spectral:
            keys.update({f"{name}.weight_orig": (cout, cin, kernel, kernel),
                         f"{name}.weight_u": (cout,), f"{name}.weight_v": (cin * kernel ** 2,)})
        else:
            keys[f"{name}.weight"] = (cout, cin, kernel, kernel)

    def batch_norm(keys, name, channels, affine):
        if affine:
            keys.update({f"{name}.weight": (channels,), f"{name}.bias": (channels,)})
        keys.update({f"{name}.running_mean": (channels,), f"{name}.running_var": (channels,),
                     f"{name}.num_batches_tracked": ()})

    g: dict[str, tuple[int, ...]] = {}
    if opt["use_vae"]:
        g.update({"fc.weight": (16 * nf * sh * sw, opt["z_dim"]), "fc.bias": (16 * nf * sh * sw,)})
    else:
        g.update({"fc.weight": (16 * nf, semantic, 3, 3), "fc.bias": (16 * nf,)})
    blocks = [("head_0", 16, 16), ("G_middle_0", 16, 16), ("G_middle_1", 16, 16), ("up_0", 16, 8),
              ("up_1", 8, 4), ("up_2", 4, 2), ("up_3", 2, 1)]
    if opt["num_upsampling_layers"] == "most":
        blocks.append(("up_4", 1, 0.5))
    for name, fin, fout in blocks:
        fin, fout = int(fin * nf), int(fout * nf)
        middle = min(fin, fout)
        conv(g, f"{name}.conv_0", middle, fin, 3, True, spectral_g)
        conv(g, f"{name}.conv_1", fout, middle, 3, True, spectral_g)
        if fin != fout:
            conv(g, f"{name}.conv_s", fout, fin, 1, False, spectral_g)
        for norm, channels in [("norm_0", fin), ("norm_1", middle)] + (
                [("norm_s", fin)] if fin != fout else []):
            if norm_g != "instance":
                batch_norm(g, f"{name}.{norm}.param_free_norm", channels, affine=False)
            conv(g, f"{name}.{norm}.mlp_shared.0", hidden, semantic, k, True, False)
            conv(g, f"{name}.{norm}.mlp_gamma", channels, hidden, k, True, False)
            conv(g, f"{name}.{norm}.mlp_beta", channels, hidden, k, True, False)
    conv(g, "conv_img", 3, nf // 2 if opt["num_upsampling_layers"] == "most" else nf, 3, True,
         False)

    spectral_d, norm_d = parse_norm_layer(opt["norm_D"], "norm_D")
    d: dict[str, tuple[int, ...]] = {}
    for i in range(opt["num_D"]):
        width = opt["ndf"]
        conv(d, f"discriminator_{i}.model0.0", width, semantic + 3, 4, True, False)
        for n in range(1, opt["n_layers_D"]):
            previous, width = width, min(width * 2, 512)
            if norm_d == "none":
                conv(d, f"discriminator_{i}.model{n}.0", width, previous, 4, True, spectral_d)
            else:
                conv(d, f"discriminator_{i}.model{n}.0.0", width, previous, 4, False, spectral_d)
                if norm_d != "instance":
                    batch_norm(d, f"discriminator_{i}.model{n}.0.1", width, affine=True)
        conv(d, f"discriminator_{i}.model{opt['n_layers_D']}.0", 1, width, 4, True, False)
    nets = {"G": g, "D": d}
    if opt["use_vae"]:
        spectral_e, norm_e = parse_norm_layer(opt["norm_E"], "norm_E")
        e: dict[str, tuple[int, ...]] = {}
        widths = [3, nf, 2 * nf, 4 * nf, 8 * nf, 8 * nf, 8 * nf]
        for i in range(1, 7):
            name = f"layer{i}" if norm_e == "none" else f"layer{i}.0"
            conv(e, name, widths[i], widths[i - 1], 3, norm_e == "none", spectral_e)
        for fc in ("fc_mu", "fc_var"):
            e.update({f"{fc}.weight": (256, 8 * nf * 16), f"{fc}.bias": (256,)})
        nets["E"] = e
    return nets


def our_key(net: str, key: str) -> str:
    """Where an official key lands in the run: the networks' names and the shared
    discriminator's nesting (``model{n}.0.0`` -> ``layers.{n}.0``)."""
    if net == "G":
        return f"generator.{key}"
    if net == "E":
        parts = key.split(".")
        if parts[0].startswith("layer") and not parts[1].isdigit():
            parts.insert(1, "0")
        return "encoder." + ".".join(parts)
    scale, model, *rest = key.split(".")
    index, layer = scale.split("_")[1], model[len("model"):]
    if len(rest) == 3:          # a normalized layer: Sequential(Sequential(conv, norm), act)
        rest = rest[1:]
    return f"discriminator.discriminators.{index}.layers.{layer}." + ".".join(rest)


def write_official_folder(folder: Path, opt: dict, drop_num_batches: bool = False) -> dict:
    """A SPADE experiment folder (opt.txt as SPADE writes it, latest_net_*.pth) with random
    tensors; returns {net: {key: tensor}}."""
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(7)
    nets = {}
    for net, shapes in official_spade_state_dicts(opt).items():
        state = {}
        for key, shape in shapes.items():
            if key.endswith("num_batches_tracked"):
                if drop_num_batches:
                    continue
                state[key] = torch.tensor(3)
            elif key.endswith("running_var"):
                state[key] = torch.rand(shape, generator=g) + 0.5
            else:
                state[key] = torch.randn(shape, generator=g) * 0.05
        torch.save(state, folder / f"latest_net_{net}.pth")
        nets[net] = state
    lines = ["----------------- Options ---------------"]
    for key, value in sorted(opt.items()):
        lines.append(f"{key:>25}: {value!s:<30}")
    lines.append("----------------- End -------------------")
    (folder / "opt.txt").write_text("\n".join(lines) + "\n")
    return nets


BASE_OPT = {"model": "pix2pix", "netG": "spade", "netD": "multiscale", "netD_subarch": "n_layer",
            "label_nc": 8, "contain_dontcare_label": False, "no_instance": False, "ngf": 4,
            "ndf": 8, "num_upsampling_layers": "normal", "crop_size": 64, "load_size": 64,
            "aspect_ratio": 1.0, "use_vae": False, "z_dim": 256,
            "norm_G": "spectralspadesyncbatch3x3", "norm_D": "spectralinstance",
            "norm_E": "spectralinstance", "num_D": 2, "n_layers_D": 4, "gan_mode": "hinge",
            "lambda_feat": 10.0, "lambda_vgg": 10.0, "lambda_kld": 0.05, "no_ganFeat_loss": False,
            "no_vgg_loss": False, "lr": 0.0002, "beta1": 0.0, "beta2": 0.9, "no_TTUR": False,
            "batchSize": 1, "dataset_mode": "custom", "preprocess_mode": "resize_and_crop",
            "output_nc": 3, "init_type": "xavier", "init_variance": 0.02}

VARIANTS = {
    # more up-sampling, 3 classes, no instance map, plain batch norm, 3 scales of 3 layers
    "more_no_instance": dict(label_nc=3, no_instance=True, num_upsampling_layers="more",
                             crop_size=128, norm_G="spectralspadebatch3x3", num_D=3,
                             n_layers_D=3, ndf=16),
    # aspect ratio 1.5, dont-care + no instance (12 + 1 channels), instance norm in SPADE,
    # synchronized batch norm in D
    "aspect_dontcare_instancenorm": dict(label_nc=12, contain_dontcare_label=True,
                                         no_instance=True, crop_size=96, aspect_ratio=1.5,
                                         norm_G="spectralspadeinstance3x3",
                                         norm_D="spectralsyncbatch"),
    # most up-sampling, no spectral norm anywhere, 5x5 SPADE kernels, D without a norm
    "most_plain": dict(label_nc=5, num_upsampling_layers="most", crop_size=128,
                       norm_G="spadesyncbatch5x5", norm_D="spectral", gan_mode="ls",
                       no_TTUR=True, beta1=0.5, beta2=0.999),
    # the VAE at aspect ratio 2 (128x256), with an encoder without spectral norm
    "vae_aspect2": dict(use_vae=True, crop_size=256, aspect_ratio=2.0, norm_E="instance",
                        label_nc=4, contain_dontcare_label=True),
}
OUTPUT_SIZES = {"more_no_instance": (128, 128), "aspect_dontcare_instancenorm": (64, 96),
                "most_plain": (128, 128), "vae_aspect2": (128, 256)}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_import_beyond_the_fixtures(variant, tmp_path):
    opt = {**BASE_OPT, **VARIANTS[variant]}
    nets = write_official_folder(tmp_path / "official", opt)
    run = import_spade(tmp_path / "official", tmp_path / "run")
    method = load(run, device="cpu")
    ours = {f"{name}.{k}": v for name, net in method.networks().items()
            for k, v in net.state_dict().items()}
    placed = set()
    for net, state in nets.items():
        for key, tensor in state.items():
            target = our_key(net, key)
            assert torch.equal(ours[target], tensor), (key, target)
            placed.add(target)
    assert placed == set(ours)                    # every tensor of the run came from the files
    h, w = OUTPUT_SIZES[variant]
    classes = opt["label_nc"]
    label = torch.randint(0, classes, (1, h, w))
    if opt["contain_dontcare_label"]:
        label[:, : h // 8] = 255
    instance = None if opt["no_instance"] else label.clone()
    out = method.generate(label, instance=instance)
    assert out.shape == (1, 3, h, w) and torch.isfinite(out).all()
    # Trains on from the imported state.
    method.train()
    batch = {"label": torch.cat([label, label]), "image": torch.rand(2, 3, h, w) * 2 - 1}
    if instance is not None:
        batch["instance"] = torch.cat([instance, instance])
    method.config.model.lambda_vgg = 0.0
    out = method.forward_generator(batch)
    losses = {**method.discriminator_step(batch, out), **method.generator_step(batch, out)}
    assert all(torch.isfinite(v) for v in losses.values())
    if variant == "most_plain":
        c = method.config
        assert (c.model.gan_mode, c.train.lr_g, c.train.lr_d, c.train.beta1) == \
            ("lsgan", 2e-4, 2e-4, 0.5)
        assert (c.model.spectral_g, c.model.spade_kernel_size, c.model.norm_d) == \
            (False, 5, "none")


def test_files_of_old_pytorch_without_num_batches_tracked(tmp_path):
    nets = write_official_folder(tmp_path / "official", BASE_OPT, drop_num_batches=True)
    assert not any(k.endswith("num_batches_tracked") for k in nets["G"])
    run = import_spade(tmp_path / "official", tmp_path / "run")
    state = load(run, device="cpu").generator.state_dict()
    assert int(state["head_0.norm_0.param_free_norm.num_batches_tracked"]) == 0


# ------------------------------------------------------------------------------- errors


def test_missing_corrupt_and_mismatched_files_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        import_spade(tmp_path / "nowhere", tmp_path / "run")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="opt.pkl or opt.txt"):
        import_spade(tmp_path / "empty", tmp_path / "run")

    folder = tmp_path / "official"
    write_official_folder(folder, BASE_OPT)
    good_g = (folder / "latest_net_G.pth").read_bytes()
    (folder / "latest_net_G.pth").write_bytes(good_g[: len(good_g) // 2])
    with pytest.raises(CheckpointError, match="Fix"):
        import_spade(folder, tmp_path / "run")
    (folder / "latest_net_G.pth").unlink()
    with pytest.raises(CheckpointError, match="latest_net_G.pth does not exist"):
        import_spade(folder, tmp_path / "run")
    (folder / "latest_net_G.pth").write_bytes(good_g)
    (folder / "latest_net_D.pth").unlink()            # D missing: warned, not fatal
    with pytest.warns(UserWarning, match="freshly initialized discriminator"):
        import_spade(folder, tmp_path / "run_without_d")

    # Options that do not belong to the weights.
    text = (folder / "opt.txt").read_text()
    (folder / "opt.txt").write_text(text.replace("ngf: 4 ", "ngf: 8 "))
    with pytest.raises(CheckpointError, match="shape"):
        import_spade(folder, tmp_path / "run_mismatch")
    (folder / "opt.txt").write_text(text.replace("label_nc: 8 ", "label_nc: 9 "))
    with pytest.raises(CheckpointError, match="label_nc"):
        import_spade(folder, tmp_path / "run_mismatch")
    (folder / "opt.txt").write_text(text.replace("norm_G: spectralspadesyncbatch3x3",
                                                 "norm_G: spectralspadeinstance3x3"))
    with pytest.raises(CheckpointError, match="norm"):
        import_spade(folder, tmp_path / "run_mismatch")
    (folder / "opt.txt").write_text(text.replace("netG: spade", "netG: pix2pixhd"))
    with pytest.raises(CheckpointError, match="netG"):
        import_spade(folder, tmp_path / "run_mismatch")

    # A pickle that would run code is refused.
    (folder / "opt.txt").write_text(text)
    (folder / "opt.pkl").write_bytes(pickle.dumps(print))
    with pytest.raises(CheckpointError, match="refusing"):
        import_spade(folder, tmp_path / "run_pickle")

    # An existing run is not overwritten by accident.
    with pytest.raises(CheckpointError, match="already holds a run"):
        import_spade(tmp_path / "nowhere", tmp_path / "run_without_d")


# ------------------------------------------------------------------------------- training


def test_imported_run_trains_and_resumes(tmp_path):
    """The trainer continues an imported official run (`condsynth train --resume`)."""
    from condsynth.data.procedural import CLASS_NAMES, write_dataset
    from condsynth.train import train

    data = tmp_path / "data"
    write_dataset(data, 2, 64, seed=0, test_count=1, progress=False)
    write_official_folder(tmp_path / "official", {**BASE_OPT, "label_nc": len(CLASS_NAMES)})
    run = import_spade(tmp_path / "official", tmp_path / "run")
    assert read_train_state(run)["step"] == 0
    before = load(run, device="cpu").generator.state_dict()
    config = merged(load(run, device="cpu").config, [
        f"data.root={data}", "data.layout=pix2pixhd", "train.max_steps=2",
        "train.sample_every=100", "train.checkpoint_every=100", "train.tensorboard=false",
        "train.device=cpu", "train.num_samples=1", "model.lambda_vgg=0"])
    train(config, run, resume=True, progress=False)
    assert read_train_state(run)["step"] == 2
    after = load(run, device="cpu").generator.state_dict()
    assert not torch.equal(after["fc.weight"], before["fc.weight"])
