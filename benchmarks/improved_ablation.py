"""Which Improved-GAN technique matters? The ablation of Salimans et al. (2016), Table 3, on DCGAN.

Trains the same DCGAN preset with every technique on (minibatch discrimination, one-sided label
smoothing, virtual batch norm in G), then with each switched off in turn, plus historical
averaging added and plain DCGAN, all for the same steps and seed; scores each with the
Inception Score computed by a domain classifier (``--classifier``: a file of ``condsynth
classifier train``), and writes the table (``ablation.md``, ``ablation.json``) with the wall
time of every training. The paper's rows that remove the labels need its semi-supervised D:
see ``benchmarks/semi_supervised.py`` for what the labels add.

    OMP_NUM_THREADS=1 python benchmarks/improved_ablation.py \\
        --data /usr/share/datasets/fashion-mnist --classifier fmnist.safetensors \\
        --out ablation --steps 1500
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from condsynth.cli import main as cli

ALL = ["model.minibatch_kernels=100", "model.minibatch_dim=5", "model.label_smoothing=0.1",
       "model.generator_norm=virtual_batch"]


def without(prefix: str) -> list[str]:
    return [o for o in ALL if not o.startswith(prefix)]


# (row, overrides), in the paper's order.
VARIANTS: list[tuple[str, list[str]]] = [
    ("all techniques (minibatch features, label smoothing 0.1, VBN)", ALL),
    ("-VBN, +BN", without("model.generator_norm")),
    ("-label smoothing", without("model.label_smoothing")),
    ("-minibatch features", without("model.minibatch")),
    ("+historical averaging (weight 1e-4)", [*ALL, "model.historical_averaging=0.0001"]),
    ("none (plain DCGAN)", []),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset folder (train and test split)")
    parser.add_argument("--out", type=Path, required=True, help="folder for runs and the table")
    parser.add_argument("--classifier", help="domain classifier for the Inception Score "
                        "(condsynth classifier train); without it, only the trainings run")
    parser.add_argument("--preset", default="dcgan_cpu")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-images", type=int, default=2000,
                        help="test items synthesized and scored per variant")
    parser.add_argument("--only", nargs="+", type=int, help="indices of the variants to run")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, (name, overrides) in enumerate(VARIANTS):
        if args.only and index not in args.only:
            continue
        run = args.out / f"variant{index}"
        began = time.perf_counter()
        code = cli(["train", "--config", args.preset, "--data", args.data, "--run", str(run),
                    "--max-steps", str(args.steps), "--seed", str(args.seed), "--quiet",
                    "--overwrite", "train.tensorboard=false", *overrides])
        row = {"variant": name, "overrides": overrides, "trained": code == 0,
               "train_seconds": round(time.perf_counter() - began, 1)}
        if code == 0 and args.classifier:
            out = run / "eval_is"
            cli(["evaluate", str(run), "--data", args.data, "--metrics", "is",
                 "--classifier", args.classifier, "--max-images", str(args.max_images),
                 "--out", str(out), "--quiet", "--device", "cpu"])
            results = json.loads((out / "eval.json").read_text())
            score = results["metrics"].get("is")
            row["is"] = None if score is None else score["fake"]
            row["is_real"] = None if score is None else score["real"]
            row["error"] = results["errors"].get("is")
        rows.append(row)
        print(json.dumps(row), flush=True)
    lines = [f"| configuration ({args.preset}, {args.steps} steps, seed {args.seed}) | "
             "Inception Score (domain classifier) | train wall time (s) |", "|---|---|---|"]
    real = next((r["is_real"] for r in rows if r.get("is_real")), None)
    if real:
        lines.append(f"| real data | {real['mean']:.3f} ± {real['std']:.3f} | |")
    for r in rows:
        score = r.get("is")
        cell = (f"{score['mean']:.3f} ± {score['std']:.3f}" if score
                else r.get("error") or "not computed (no --classifier)")
        lines.append(f"| {r['variant']} | {cell} | {r['train_seconds']} |")
    table = "\n".join(lines)
    (args.out / "ablation.md").write_text(table + "\n")
    (args.out / "ablation.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(table)


if __name__ == "__main__":
    main()
