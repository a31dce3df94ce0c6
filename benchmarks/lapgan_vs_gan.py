"""LAPGAN against a single-scale GAN of similar size, under one wall-clock budget.

Both trainings run at the same time on the same machine (one thread each, ``nice``), from the
same data, for the same number of minutes; then each is stopped (SIGINT: the trainer saves a
checkpoint at the step reached). The arms:

- ``lapgan``: the ``lapgan_cpu`` preset (pyramid 8 -> 16 -> 32);
- ``gan``: DCGAN at full size (``dcgan_cpu`` with ngf 64, ndf 48: about as many parameters as
  the LAPGAN cascade, 1.07M / 0.37M against 1.25M / 0.35M, and a similar cost per step).

Each run then draws ``--images`` samples (seed 0), compared with as many test images through
the same preprocessing: sliced Wasserstein distance (``condsynth.metrics.swd``, ProGAN's
protocol, x 1e3 per level) and, with ``--classifier FILE`` (``condsynth classifier train``),
the FID in that domain classifier's feature space. A ``reference`` row compares the test
images with as many other test images (the floor of both measures at this sample size).
Writes ``results.json``, the sample grids and each run's own pages.

    python benchmarks/lapgan_vs_gan.py --data /usr/share/datasets/fashion-mnist \
        --out runs/lapgan_vs_gan --minutes 15
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

ARMS: dict[str, list[str]] = {
    "lapgan": ["--config", "lapgan_cpu"],
    "gan": ["--config", "dcgan_cpu"],
}
OVERRIDES: dict[str, list[str]] = {"lapgan": [], "gan": ["model.ngf=64", "model.ndf=48"]}


def launch(arm: str, data: Path, run: Path, seed: int, resume: bool) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    command = ["nice", "-n", "5", sys.executable, "-m", "condsynth", "train", "--run", str(run),
               "--quiet"]
    if resume:                                   # another budget on top of the first
        command.append("--resume")
    else:
        command += [*ARMS[arm], "--data", str(data), "--seed", str(seed), "data.layout=idx",
                    "train.max_steps=1000000", "train.checkpoint_every=1000000",
                    "train.sample_every=500", "train.tensorboard=false", *OVERRIDES[arm]]
    log = open(run.parent / f"{arm}.log", "a")            # noqa: SIM115  (closed by the child)
    # SIGINT back to its default in the child: started from a background job it would be
    # ignored, and Python would then not turn it into the KeyboardInterrupt that saves.
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def train_arms(data: Path, out: Path, minutes: float, seed: int,
               resume: bool = False) -> dict[str, dict]:
    """Run every arm at once for ``minutes`` (``resume``: continuing the runs in ``out``);
    their steps reached and the CPU seconds of this session."""
    processes = {arm: launch(arm, data, out / arm, seed, resume) for arm in ARMS}
    began = time.monotonic()
    deadline = began + minutes * 60
    ended: dict[str, tuple[int, object, float]] = {}
    while time.monotonic() < deadline and len(ended) < len(processes):
        time.sleep(5)
        for arm, process in processes.items():
            if arm not in ended:
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    ended[arm] = (status, usage, time.monotonic() - began)
    for arm, process in processes.items():
        if arm not in ended:
            process.send_signal(signal.SIGINT)          # the trainer saves at the step reached
            _, status, usage = os.wait4(process.pid, 0)
            ended[arm] = (status, usage, time.monotonic() - began)
    stats = {}
    for arm, (status, usage, seconds) in ended.items():
        state = torch.load(out / arm / "train_state.pt", weights_only=True)
        stats[arm] = {"steps": int(state["step"]), "wall_seconds": round(seconds, 1),
                      "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
                      "exit_status": os.waitstatus_to_exitcode(status)}
    return stats


def real_images(run: Path, count: int) -> torch.Tensor:
    """``count`` test images through the run's own preprocessing, (N, C, H, W) in [-1, 1]."""
    from condsynth import checkpoint
    from condsynth.data.factory import open_dataset

    config = checkpoint.read_config(run)
    dataset = open_dataset(config, phase="test", train=False)
    count = min(count, len(dataset))
    return torch.stack([dataset[i]["image"] for i in range(count)])


def to_uint8_rgb(images: torch.Tensor) -> torch.Tensor:
    images = images.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return images.repeat(1, 3, 1, 1) if images.shape[1] == 1 else images


def swd(real: torch.Tensor, fake: torch.Tensor) -> dict:
    from condsynth.metrics.swd import DescriptorSet, swd_between

    a, b = DescriptorSet(real.shape[-2:]), DescriptorSet(fake.shape[-2:])
    for start in range(0, real.shape[0], 256):
        a.add(to_uint8_rgb(real[start:start + 256]))
        b.add(to_uint8_rgb(fake[start:start + 256]))
    return swd_between(a, b).to_dict()


def evaluate(out: Path, images: int, classifier: str | None) -> dict[str, dict]:
    import condsynth
    from condsynth.pages import save_png
    from condsynth.sampling import draw, grid

    clf = None
    if classifier is not None:
        from condsynth.metrics.classifier import load_classifier

        clf = load_classifier(classifier)
    first = next(iter(ARMS))
    both = real_images(out / first, 2 * images)
    real, other = both[:images], both[images:]
    save_png(grid(real[:64], 8), out / "real_samples.png")
    sets = {"reference": other}
    for arm in ARMS:
        method = condsynth.load(out / arm, device="cpu")
        torch.manual_seed(0)
        sets[arm] = draw(method, real.shape[0], batch_size=250)
        save_png(grid(sets[arm][:64], 8), out / f"{arm}_samples.png")
    real_features = None if clf is None else features(clf, real)
    results = {}
    for name, fake in sets.items():
        results[name] = {"swd_x1e3": swd(real, fake), "images": real.shape[0]}
        if clf is not None:
            from condsynth.metrics.fid import fid_from_features

            results[name]["domain_fid"] = fid_from_features(real_features, features(clf, fake))
    return results


def features(clf: object, images: torch.Tensor) -> object:
    return torch.cat([clf.features(images[i:i + 500]) for i in range(0, len(images), 500)]
                     ).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="Fashion-MNIST IDX folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=15.0, help="wall-clock budget per arm")
    parser.add_argument("--images", type=int, default=2000, help="images for the metrics")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classifier", help="a domain classifier file, for its FID")
    parser.add_argument("--resume", action="store_true",
                        help="train the runs in --out for another --minutes")
    parser.add_argument("--skip-training", action="store_true", help="evaluate existing runs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"minutes": args.minutes, "resumed": args.resume,
                    "arms": {arm: ARMS[arm] + OVERRIDES[arm] for arm in ARMS}}
    name = "results_resumed.json" if args.resume else "results.json"
    if args.skip_training and (args.out / name).is_file():      # keep the training record
        report["training"] = json.loads((args.out / name).read_text()).get("training")
    if not args.skip_training:
        report["training"] = train_arms(args.data, args.out, args.minutes, args.seed, args.resume)
        print(json.dumps(report["training"], indent=1), flush=True)
    report["metrics"] = evaluate(args.out, args.images, args.classifier)
    (args.out / name).write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
