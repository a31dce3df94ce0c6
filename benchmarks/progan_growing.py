"""Does growing help? ProGAN against the same networks trained at full size from the start.

Both arms are the ``progan_cpu`` preset (32x32 greyscale, the official loss and optimizer)
on Fashion-MNIST; the baseline sets ``model.initial_resolution=32`` (the official
"nogrowing"). They train concurrently, one thread each, for the same CPU time: each arm stops
when its process has used ``--cpu-seconds`` (a CPU-time timer interrupts training, which saves
a checkpoint there), so a busy machine slows both alike. Then each run's smoothed generator
draws ``--images`` samples, scored against as many Fashion-MNIST test images by SWD (ProGAN's
protocol, ``condsynth.metrics.swd``: per pyramid level x1e3, 32x32 and 16x16) and the mean
MS-SSIM of sample pairs; the SWD of training images against the test images is the floor.
With ``--classifier`` (a domain classifier from ``condsynth classifier train``), also the FID
in that classifier's feature space.

    OMP_NUM_THREADS=1 python benchmarks/progan_growing.py \
        --data /usr/share/datasets/fashion-mnist --out progan-growing --cpu-seconds 240 \
        --classifier fmnist32.safetensors

Measured on a shared two-core machine (load ~20), 200 s of CPU per arm (40 min wall each,
concurrently), --level-images 3200, 2048 samples vs 2048 test images, FID in the feature space
of a domain classifier (91.5 % test accuracy). SWD x1e3 (32x32/16x16/mean), then FID:

    arm                        iterations  images  G's weights           smoothed G (0.999)
    progan (32x32 from it. 600)       890  28 480  62.2/106.1/84.1  196.8  141.4/208.4/174.9  338.1
    full size from the start          588  18 816  74.4/61.9/68.1   198.3  141.1/143.3/142.2  303.2
    training vs test images                        5.4/9.6/7.5        1.3

At this budget neither wins: growing is ahead at the finest level, behind at 16x16, level on
FID; both are far from the real images, and the smoothed generators are still mostly their
initial weights (0.999^890 = 0.41).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

ARMS = {"progan": [], "full_size": ["model.initial_resolution=32"]}


def arm_config(args: argparse.Namespace, arm: str):
    from condsynth.presets import load_preset
    from condsynth.train import prepare_config

    overrides = [f"data.root={args.data}", "train.max_steps=1000000",
                 f"model.stabilize_images={args.level_images}",
                 f"model.fade_images={args.level_images}",
                 "train.checkpoint_every=1000000", "train.sample_every=250",
                 "train.tensorboard=false", *ARMS[arm]]
    return prepare_config(load_preset("progan_cpu", overrides))


def train_arm(args: argparse.Namespace) -> None:
    """One arm, in its own process: train until the process has used the CPU budget."""
    from condsynth.train import train

    torch.set_num_threads(1)
    run = args.out / args.arm
    config = arm_config(args, args.arm)

    def out_of_time(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGPROF, out_of_time)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    signal.setitimer(signal.ITIMER_PROF, args.cpu_seconds)
    try:
        train(config, run, progress=False, overwrite=True)
    except KeyboardInterrupt:
        pass
    signal.setitimer(signal.ITIMER_PROF, 0)
    from condsynth import checkpoint

    state = checkpoint.read_train_state(run)
    summary = {"arm": args.arm, "steps": int(state["step"]),
               "cpu_s": round(time.process_time() - cpu0, 1),
               "wall_s": round(time.perf_counter() - wall0, 1)}
    (run / "budget.json").write_text(json.dumps(summary))
    print(json.dumps(summary), flush=True)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    return images.clamp(-1, 1).add(1).mul(127.5).round()


def evaluate(args: argparse.Namespace) -> dict:
    from condsynth.api import load
    from condsynth.data.factory import open_dataset
    from condsynth.metrics.msssim import ms_ssim
    from condsynth.metrics.swd import DescriptorSet, swd_between

    config = arm_config(args, "progan")
    test = open_dataset(config, phase="test", train=False)
    train_set = open_dataset(config, phase="train", train=False)
    n = args.images
    reals = torch.stack([test[i]["image"] for i in range(n)])
    others = torch.stack([train_set[i]["image"] for i in range(n)])

    def swd(images: torch.Tensor) -> dict:
        sets = []
        for batch in (reals, images):
            descriptors = DescriptorSet(batch.shape[-2:], seed=0)
            descriptors.add(to_uint8(batch))
            sets.append(descriptors)
        return swd_between(*sets).to_dict()

    fid = None
    if args.classifier is not None:
        from condsynth.metrics.classifier import load_classifier
        from condsynth.metrics.fid import fid_from_features

        classifier = load_classifier(args.classifier)

        def features(images: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return torch.cat([classifier.features(images[i:i + 256])
                                  for i in range(0, len(images), 256)]).numpy()

        real_features = features(reals)

        def fid(images: torch.Tensor) -> float:
            return fid_from_features(real_features, features(images))

    results = {"images": n, "train_vs_test": swd(others),
               "ms_ssim_test_pairs": float(ms_ssim(reals[: n // 2], reals[n // 2:]).mean())}
    if fid is not None:
        results["fid_train_vs_test"] = fid(others)
    from condsynth.data.dataset import tensor_to_image
    from condsynth.pages import save_png

    for arm in ARMS:
        run = args.out / arm
        method = load(run, device="cpu")
        budget = json.loads((run / "budget.json").read_text())
        results[arm] = {**budget, "images_shown": method.images_shown(budget["steps"]),
                        "resolution": method.resolution}
        # The smoothed generator (what generate draws from), then G's own weights: a decay of
        # 0.999 averages over about as many iterations as these short runs last.
        for which in ("smoothed", "raw"):
            if which == "raw":
                method.generator_smoothed.load_state_dict(method.generator.state_dict())
            torch.manual_seed(0)
            fakes = torch.cat([method.generate(batch_size=256) for _ in range(0, n, 256)])[:n]
            grid = torch.cat([torch.cat(list(fakes[r * 16:(r + 1) * 16]), dim=2)
                              for r in range(8)], dim=1)
            save_png(tensor_to_image(grid), args.out / f"{arm}_{which}_samples.png")
            scores = {"swd": swd(fakes),
                      "ms_ssim_pairs": float(ms_ssim(fakes[: n // 2], fakes[n // 2:]).mean())}
            if fid is not None:
                scores["fid"] = fid(fakes)
            results[arm][which] = scores
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Fashion-MNIST IDX folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cpu-seconds", type=float, default=240.0, help="per arm")
    parser.add_argument("--level-images", type=int, default=3200,
                        help="images stabilising and fading in per level")
    parser.add_argument("--images", type=int, default=2048, help="samples scored per arm")
    parser.add_argument("--classifier", type=Path, help="domain classifier for FID")
    parser.add_argument("--arm", choices=sorted(ARMS), help=argparse.SUPPRESS)
    parser.add_argument("--evaluate-only", action="store_true")
    args = parser.parse_args()
    if args.arm:
        train_arm(args)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.evaluate_only:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        base = [sys.executable, __file__, "--data", str(args.data), "--out", str(args.out),
                "--cpu-seconds", str(args.cpu_seconds), "--level-images", str(args.level_images)]
        procs = [subprocess.Popen([*base, "--arm", arm], env=env) for arm in ARMS]
        if any(p.wait() for p in procs):
            raise SystemExit("an arm failed")
    results = evaluate(args)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
