"""Does the K+1 GAN learn from unlabelled images? Semi-supervised test error on an IDX dataset.

For each label draw (seed s keeps ``--labels-per-class`` labels per class, the same for all
three models), trains the improved_gan preset, the same discriminator on the labelled images
alone (``model.supervised_only=true``, equal steps), and fits a logistic regression on the raw
pixels of the labelled images (scikit-learn's default objective, C = 1); then reports each
model's test error, averaged over the draws, with the wall time of every training (the
baseline trains in a second process while the GAN trains, so both meet the same machine).

    OMP_NUM_THREADS=1 python benchmarks/semi_supervised.py \\
        --data /usr/share/datasets/fashion-mnist --out semi-supervised --steps 600
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from condsynth.data.sources import load_source, semi_supervised_split
from condsynth.metrics.accuracy import logistic_predict, logistic_regression
from condsynth.metrics.evaluate import EvalOptions, evaluate_run
from condsynth.presets import load_preset
from condsynth.train import prepare_config, train


def pixels(data_root: str, phase: str) -> tuple[torch.Tensor, torch.Tensor, object]:
    """(N, H*W) pixels in [0, 1], (N,) labels, and the source of an IDX split."""
    config = load_preset("improved_gan_fmnist_cpu", [f"data.root={data_root}"])
    source = load_source(config.data, phase)
    x = torch.from_numpy(source.pixels.reshape(len(source), -1).astype(np.float32) / 255)
    return x, torch.from_numpy(source.classes), source


def train_and_score(preset: str, data: str, run: Path, seed: int, steps: int,
                    overrides: list[str]) -> dict[str, float]:
    config = load_preset(preset, [f"data.root={data}", f"train.seed={seed}",
                                  f"train.max_steps={steps}", "train.tensorboard=false",
                                  *overrides])
    began = time.perf_counter()
    train(prepare_config(config), run, progress=False, overwrite=True)
    seconds = time.perf_counter() - began
    results = evaluate_run(run, data, EvalOptions(metrics=["accuracy"], device="cpu",
                                                  progress=False))
    accuracy = results["metrics"]["accuracy"]
    return {"error": accuracy["error"], "train_seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="IDX dataset folder (train and t10k)")
    parser.add_argument("--out", type=Path, required=True, help="folder for runs and the table")
    parser.add_argument("--preset", default="improved_gan_fmnist_cpu")
    parser.add_argument("--steps", type=int, default=600, help="training steps of each model")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="label draws (train.seed)")
    parser.add_argument("--labels-per-class", type=int, default=10)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    train_x, train_y, source = pixels(args.data, "train")
    test_x, test_y, _ = pixels(args.data, "test")
    rows: dict[str, list[dict[str, float]]] = {"K+1 GAN": [], "supervised-only D": [],
                                               "logistic regression (pixels)": []}
    labels = [f"data.labeled_per_class={args.labels_per_class}"]
    for seed in args.seeds:
        chosen = torch.from_numpy(semi_supervised_split(source, args.labels_per_class, seed))
        began = time.perf_counter()
        weights = logistic_regression(train_x[chosen], train_y[chosen], 10)
        error = float((logistic_predict(weights, test_x) != test_y).double().mean())
        rows["logistic regression (pixels)"].append(
            {"error": error, "train_seconds": round(time.perf_counter() - began, 1)})
        # The baseline trains in a second process at the same time as the K+1 GAN: the same
        # machine conditions for both (their wall times are comparable).
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            baseline = pool.submit(train_and_score, args.preset, args.data,
                                   args.out / f"supervised_seed{seed}", seed, args.steps,
                                   [*labels, "model.supervised_only=true"])
            rows["K+1 GAN"].append(train_and_score(args.preset, args.data,
                                                   args.out / f"kplus1_seed{seed}", seed,
                                                   args.steps, labels))
            rows["supervised-only D"].append(baseline.result())
        print(json.dumps({name: r[-1] for name, r in rows.items()}), flush=True)
    lines = [f"| model ({args.labels_per_class} labels per class, {len(args.seeds)} draws, "
             f"{args.steps} steps) | test error (%) | per draw | train wall time (s) |",
             "|---|---|---|---|"]
    for name, runs in rows.items():
        errors = [100 * r["error"] for r in runs]
        spread = statistics.stdev(errors) if len(errors) > 1 else 0.0
        lines.append(f"| {name} | {statistics.mean(errors):.2f} ± {spread:.2f} | "
                     f"{', '.join(f'{e:.2f}' for e in errors)} | "
                     f"{', '.join(str(r['train_seconds']) for r in runs)} |")
    table = "\n".join(lines)
    (args.out / "semi_supervised.md").write_text(table + "\n")
    (args.out / "semi_supervised.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(table)


if __name__ == "__main__":
    main()
