"""Training step for step like the official pix2pixHD and SPADE code.

The shared training fixtures (``../shared/fixtures/official-train``, see their README) hold an
official checkpoint, three batches and what the official ``train.py`` did with them: every loss
term of every iteration, the generator outputs, the buffers and the weights afterwards. The
tolerances are the README's; every wrong order it measured falls outside them, and the last
test here checks that condsynth's own D-before-G order does too.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from condsynth import checkpoint
from condsynth.compat.official import load_official_state_dict
from condsynth.compat.pix2pixhd import (
    _map_network,
    import_pix2pixhd,
    official_discriminator_layout,
    official_generator_layout,
)
from condsynth.compat.spade import align_state_dict, import_spade
from condsynth.data.factory import open_dataset
from condsynth.registry import build_method
from condsynth.train import (
    Distributed,
    ResumableBatches,
    iterate,
    make_optimizers,
    resolve_optimizers,
    train_step,
)

pytestmark = [pytest.mark.parity, pytest.mark.slow]

CASES = ["pix2pixhd-global-train", "spade-default-train"]
CPU = torch.device("cpu")
# Official loss names -> ours, and the factor ours carry (pix2pixHD halves D's terms in its
# loss; losses.json records them before the halving).
LOSS_NAMES = {
    "pix2pixhd": {"G_GAN": ("g_gan", 1.0), "G_GAN_Feat": ("g_feat", 1.0),
                  "G_VGG": ("g_vgg", 1.0), "D_real": ("d_real", 0.5),
                  "D_fake": ("d_fake", 0.5)},
    "spade": {"GAN": ("g_gan", 1.0), "GAN_Feat": ("g_feat", 1.0), "VGG": ("g_vgg", 1.0),
              "D_real": ("d_real", 1.0), "D_Fake": ("d_fake", 1.0)},
}
NETWORKS = {"G": "generator", "D": "discriminator"}
# Bound on D's relL2 after three steps. The README's 0.1 rests on one machine's float orders
# (SPADE's D at most 0.036 there). On an AMD EPYC, condsynth's own SPADE run differs from
# itself by 0.12 (AVX-512 vs scalar ATen kernels) to 0.20 (oneDNN limited to AVX2), and from
# the official weights by 0.087 to 0.167; the wrong step orders are at 0.94 and 1.0.
AFTER_3_D = {"pix2pixhd": 0.1, "spade": 0.4}


def kind_of(case: Path) -> str:
    return "pix2pixhd" if case.name.startswith("pix2pixhd") else "spade"


def initial_checkpoint(case: Path) -> Path:
    info = json.loads((case / "case.json").read_text())["initial_checkpoint"]
    return (case / info["dir"]).resolve()


def vgg_file(case: Path) -> Path:
    info = json.loads((case / "case.json").read_text())["vgg19"]
    return (case / info["path"]).resolve()


def import_official(case: Path, folder: Path, out: Path) -> Path:
    if kind_of(case) == "pix2pixhd":
        return import_pix2pixhd(folder, out, vgg_weights=str(vgg_file(case)))
    return import_spade(folder, out, vgg_weights=str(vgg_file(case)))


def write_data(case: Path, root: Path) -> Path:
    """The case's batches in the pix2pixHD layout, in training order."""
    for item in sorted((case / "inputs").iterdir()):
        for part, png in (("label", "label.png"), ("inst", "inst.png"), ("img", "image.png")):
            (root / f"train_{part}").mkdir(parents=True, exist_ok=True)
            shutil.copy(item / png, root / f"train_{part}" / f"{item.name}.png")
    return root


def official_losses(case: Path) -> list[dict[str, float]]:
    data = json.loads((case / "expected" / "losses.json").read_text())
    return [it["losses"] for it in data["iterations"]]


def relative_errors(ours: dict[str, float], official: dict[str, float], kind: str
                    ) -> dict[str, float]:
    names = LOSS_NAMES[kind]
    assert {names[k][0] for k in official} == set(ours)
    return {k: abs(ours[names[k][0]] / names[k][1] - v) / abs(v) for k, v in official.items()}


# ----------------------------------------------------------------------------- names


def official_keys(case: Path, method: Any) -> dict[str, dict[str, str]]:
    """{network: {our parameter or buffer name: official key}}, found by importing a marked
    copy of the official state (each tensor filled with its own index) through the importer's
    own mapping."""
    folder = initial_checkpoint(case)
    result = {}
    for letter, name in NETWORKS.items():
        official = load_official_state_dict(folder / f"latest_net_{letter}.pth", name)
        keys = list(official)
        marked = {k: torch.full_like(v, float(i), dtype=torch.float64)
                  for i, (k, v) in enumerate(official.items())}
        network = method.networks()[name]
        if kind_of(case) == "pix2pixhd":
            layout = (official_generator_layout if letter == "G"
                      else official_discriminator_layout)(method.config.model)
            probe = build_method(method.config).networks()[name].double()
            _map_network(probe, marked, layout, name, folder)
            state = probe.state_dict()
        else:
            state = align_state_dict(network.double(), marked, name, folder)
            network.float()
        result[name] = {k: keys[int(v.flatten()[0])] for k, v in state.items()
                        if k in marked or v.numel() and k.split(".")[-1] != "num_batches_tracked"}
    return result


def gauge_keys(case: Path) -> dict[str, set[str]]:
    tensors = json.loads((case / "case.json").read_text())["gauge_parameters"]["tensors"]
    return {NETWORKS[letter]: set(names) for letter, names in tensors.items()}


def weights(run: Path) -> dict[str, dict[str, torch.Tensor]]:
    config = checkpoint.read_config(run)
    method = build_method(config)
    checkpoint.load_method(run, method)
    return {name: {k: p.detach().clone() for k, p in method.networks()[name].named_parameters()}
            for name in NETWORKS.values()}


def update_rel_l2(ours: dict[str, torch.Tensor], official: dict[str, torch.Tensor],
                  initial: dict[str, torch.Tensor], keep: set[str]) -> float:
    """‖w − w_official‖ / ‖w_official − w_initial‖ over the parameters in ``keep``."""
    diff = sum(float((ours[k] - official[k]).double().pow(2).sum()) for k in keep)
    update = sum(float((official[k] - initial[k]).double().pow(2).sum()) for k in keep)
    return (diff / update) ** 0.5


# ----------------------------------------------------------------------------- training


def train_iterations(run: Path, data: Path, steps: int, step_order: str = "official"
                     ) -> tuple[Any, list[dict[str, Any]]]:
    """``steps`` iterations of the imported run through ``train_step``, with the batches and
    the fresh optimizers ``condsynth train --resume`` uses; per iteration its loss terms, the
    fake G's loss used, the fake D learned from, and the networks' states afterwards."""
    config = checkpoint.read_config(run)
    config.data.root, config.data.shuffle, config.data.flip = str(data), False, False
    config.data.preprocess = "none"
    config.model.step_order = step_order
    method = build_method(config)
    checkpoint.load_method(run, method)
    method.train()
    optimizers = make_optimizers(method, resolve_optimizers(config, method), CPU,
                                 fused=config.train.fused_adam)
    dataset = open_dataset(config, phase="train", train=True,
                           size_multiple=method.size_multiple())
    plan = ResumableBatches(len(dataset), 1, config.train.seed, Distributed(), shuffle=False)
    seen: dict[str, Any] = {}
    phase_losses = method.phase_losses

    def spy(phase, batch, cache):
        terms = phase_losses(phase, batch, cache)
        out = cache.get("discriminator_out") if phase.name == "discriminator" else None
        seen[phase.name] = (out or cache["out"])["fake"].detach().clone()
        return terms

    method.phase_losses = spy
    records = []
    for step, (_, batch) in zip(range(steps), iterate(dataset, plan, 0, config), strict=False):
        losses = train_step(method, batch, optimizers, step, "fp32", CPU)
        records.append({
            "losses": {k: float(v.detach()) for k, v in losses.items()},
            "fake": seen["generator"], "dfake": seen["discriminator"],
            "state": {name: {k: v.detach().clone() for k, v in net.state_dict().items()}
                      for name, net in method.networks().items()}})
    return method, records


def distance_to_official(case: Path, method: Any, tmp_path: Path) -> Any:
    """``rel_l2(weights, official_run)``: per network, the relative L2 distance of the update
    to the official run's, over the non-gauge parameters."""
    names = official_keys(case, method)
    gauge = gauge_keys(case)
    initial = weights(import_official(case, initial_checkpoint(case), tmp_path / "initial"))

    def rel_l2(after: dict[str, dict[str, torch.Tensor]], official_run: Path) -> dict[str, float]:
        official = weights(official_run)
        out = {}
        for name in NETWORKS.values():
            keep = {k for k in official[name] if names[name][k] not in gauge[name]}
            out[name] = update_rel_l2(after[name], official[name], initial[name], keep)
        return out

    return rel_l2


def check_losses(case: Path, losses: list[dict[str, float]], report: dict[str, Any]) -> None:
    """Iteration 1's terms within 1e-5, the later ones within 3e-3 (relative)."""
    report["losses"] = []
    official = official_losses(case)
    assert len(losses) == len(official)
    for k, (ours, theirs) in enumerate(zip(losses, official, strict=True)):
        errors = relative_errors(ours, theirs, kind_of(case))
        report["losses"].append(errors)
        limit = 1e-5 if k == 0 else 3e-3
        assert max(errors.values()) <= limit, f"iteration {k + 1}: {errors}"


def check_trajectory(case: Path, method: Any, records: list[dict[str, Any]],
                     tmp_path: Path, report: dict[str, Any]) -> None:
    """Every check of the README's tolerances; ``report`` gets the measured numbers."""
    kind = kind_of(case)
    check_losses(case, [record["losses"] for record in records], report)
    expected = case / "expected"
    fake = torch.from_numpy(np.load(expected / "fake_it1.npy"))
    report["fake_it1"] = float((records[0]["fake"] - fake).abs().max())
    assert report["fake_it1"] <= 1e-4
    names = official_keys(case, method)
    rel_l2 = distance_to_official(case, method, tmp_path)
    if kind == "spade":
        dfake = torch.from_numpy(np.load(expected / "dfake_it1.npy"))
        report["dfake_it1"] = float((records[0]["dfake"] - dfake).abs().max())
        assert report["dfake_it1"] <= 1e-3
        buffers = torch.load(expected / "buffers_it1.pth", weights_only=True)
        worst = 0.0
        for name, state in records[0]["state"].items():
            if name not in NETWORKS.values():
                continue
            letter = "G" if name == "generator" else "D"
            for key, value in state.items():
                # The batch counter only matters with momentum None (a cumulative average);
                # the official synchronized batch norm does not count, ours does.
                if key.endswith("num_batches_tracked") or key not in names[name]:
                    continue
                theirs = buffers[letter].get(names[name][key])
                if theirs is None:
                    continue
                rel = float((value - theirs).abs().max() / theirs.abs().max())
                worst = max(worst, rel)
        report["buffers_it1"] = worst
        assert worst <= 3e-3
    else:
        after_1 = {n: {k: v for k, v in records[0]["state"][n].items()} for n in NETWORKS.values()}
        official_1 = import_official(case, expected / "checkpoint_after_1", tmp_path / "after_1")
        report["after_1"] = rel_l2(after_1, official_1)
        assert all(v <= 0.1 for v in report["after_1"].values()), report["after_1"]
    check_after_3(case, {n: dict(records[-1]["state"][n]) for n in NETWORKS.values()},
                  tmp_path, report, rel_l2)


def check_after_3(case: Path, after_3: dict[str, dict[str, torch.Tensor]], tmp_path: Path,
                  report: dict[str, Any], rel_l2: Any) -> None:
    """The weights after the last iteration, coarsely: relL2 of the update <= 0.15 (G) and
    0.1 (D; SPADE's 0.4, see AFTER_3_D)."""
    official_3 = import_official(case, case / "expected" / "checkpoint_after_3",
                                 tmp_path / "after_3")
    report["after_3"] = rel_l2(after_3, official_3)
    bound_d = AFTER_3_D[kind_of(case)]
    assert report["after_3"]["generator"] <= 0.15 and \
        report["after_3"]["discriminator"] <= bound_d, report["after_3"]


@pytest.mark.parametrize("name", CASES)
def test_three_iterations_follow_the_official_ones(official_train_fixtures, tmp_path, name):
    case = official_train_fixtures / name
    run = import_official(case, initial_checkpoint(case), tmp_path / "run")
    data = write_data(case, tmp_path / "data")
    method, records = train_iterations(run, data, 3)
    report: dict[str, Any] = {}
    check_trajectory(case, method, records, tmp_path, report)
    print(name, json.dumps(report))


@pytest.mark.parametrize("name", CASES)
def test_discriminator_first_fails_the_checks(official_train_fixtures, tmp_path, name):
    """The checks have teeth: condsynth's other order (D, then G against the updated D) is
    caught, as the README's wrong orders are."""
    case = official_train_fixtures / name
    run = import_official(case, initial_checkpoint(case), tmp_path / "run")
    data = write_data(case, tmp_path / "data")
    method, records = train_iterations(run, data, 3, step_order="d_first")
    report: dict[str, Any] = {}
    with pytest.raises(AssertionError):
        check_trajectory(case, method, records, tmp_path, report)
    # Already iteration 1 is off: G's terms come from D before any step in the official
    # order, from D after its step here (D's terms are the same until then).
    first = report["losses"][0]
    assert max(first.values()) > 1e-3, first
    print(name, "d_first", json.dumps(report))


@pytest.mark.parametrize("name", CASES)
def test_the_command_line_trains_like_the_official_code(official_train_fixtures, tmp_path, name):
    """The documented commands: import, then three serial iterations with fresh optimizers."""
    from condsynth.cli import main

    case = official_train_fixtures / name
    run, data, vgg = tmp_path / "run", write_data(case, tmp_path / "data"), vgg_file(case)
    assert main(["import", kind_of(case), str(initial_checkpoint(case)), "--out", str(run),
                 "--vgg-weights", str(vgg)]) == 0
    assert main(["train", "--run", str(run), "--resume", "--data", str(data), "--max-steps", "3",
                 "--batch-size", "1", "--quiet", "data.shuffle=false", "data.flip=false",
                 "data.preprocess=none", f"model.vgg_weights={vgg}",
                 "train.log_every=1"]) == 0
    logged = [json.loads(line) for line in (run / "losses.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in logged] == [1, 2, 3]
    names = {ours for ours, _ in LOSS_NAMES[kind_of(case)].values()}
    report: dict[str, Any] = {}
    check_losses(case, [{k: v for k, v in e.items() if k in names} for e in logged], report)
    config = checkpoint.read_config(run)
    method = build_method(config)
    check_after_3(case, weights(run), tmp_path, report,
                  distance_to_official(case, method, tmp_path))
    print(name, "command line", json.dumps(report))
