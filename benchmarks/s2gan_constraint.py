"""S2-GAN's pixel-wise constraint, measured: do the Style-GAN's pictures show the normals they
were asked to paint?

For every item of a normals dataset's test split, each Style-GAN run paints the item's normals
(seeded noise); a separately trained normal estimator (an ``s2gan_estimator`` run that took no
part in any Style-GAN's training) reads normals back from the picture, and the mean angle
between the input normals and the read ones is reported (lower: the picture holds the asked
structure). For reference: the same estimator on the real test photographs (what it can do at
best) and on the pictures against another item's normals (what no agreement looks like).

    python benchmarks/s2gan_constraint.py --data rooms --estimator est_B \\
        --runs style_fcn style_nofcn [--json]
"""

from __future__ import annotations

import argparse
import json

import torch

from condsynth.api import load
from condsynth.config import DataConfig
from condsynth.data.dataset import PairedDataset
from condsynth.data.normals import angular_error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="normals-layout dataset (its test split)")
    parser.add_argument("--estimator", required=True, help="the measuring s2gan_estimator run")
    parser.add_argument("--runs", nargs="+", required=True, help="s2gan_style runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    estimator = load(args.estimator, device="cpu")
    size = estimator.config.data.crop_size
    data = DataConfig(root=args.data, layout="normals", load_size=size, crop_size=size,
                      preprocess="fixed", flip=False)
    items = PairedDataset(data, estimator.config.condition, phase="test", train=False)
    batch = torch.utils.data.default_collate([items[i] for i in range(len(items))])
    normals, photos = batch["source"], batch["image"]            # (N, 3, S, S) each

    def error(images: torch.Tensor, wanted: torch.Tensor) -> float:
        read = torch.cat([estimator.generate(images[i:i + args.batch_size])
                          for i in range(0, len(images), args.batch_size)])
        return float(angular_error(read, wanted).mean())

    report = {"items": len(items), "estimator": args.estimator,
              "real_photos": error(photos, normals)}
    for run in args.runs:
        method = load(run, device="cpu")
        torch.manual_seed(args.seed)
        painted = torch.cat([method.generate(normals[i:i + args.batch_size])
                             for i in range(0, len(normals), args.batch_size)])
        report[run] = {"angular_error": error(painted, normals),
                       "against_other_normals": error(painted, normals.roll(1, 0)),
                       "lambda_fcn": method.config.model.lambda_fcn}
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"{report['items']} test items; estimator {args.estimator}")
    print(f"  real photographs: {report['real_photos']:.2f} degrees")
    for run in args.runs:
        r = report[run]
        print(f"  {run} (lambda_fcn {r['lambda_fcn']}): {r['angular_error']:.2f} degrees "
              f"(against another item's normals: {r['against_other_normals']:.2f})")


if __name__ == "__main__":
    main()
