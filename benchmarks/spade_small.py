"""Does SPADE follow its label maps at 32x32? SPADE beside pix2pix on real 32x32 data.

Each method trains from its CPU preset (``spade_cpu``: VGG loss off; ``pix2pix_cpu``). The
data are real photographs of garments: Fashion-MNIST's 28x28 items padded to 32x32 (grey
as RGB), each with a label map that marks the item's pixels (brighter than ``--threshold``)
with its class (1-10) and the rest as background (0), written in the pix2pixHD layout. Both
methods train on it for the same steps at the same batch size, then a segmenter trained on the
real training images scores the test split: mIoU on the generated images beside the real ones'
(does the picture follow the layout?).

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/spade_small.py --out spade-small --steps 600
    python benchmarks/spade_small.py --out spade-small --steps 600 --methods spade \\
        --spade-args model.fit_size=false --tag _official

``--spade-args`` / ``--pix2pix-args`` pass key=value overrides to ``condsynth train`` (the
second line trains SPADE with the official networks at this size, for comparison).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from condsynth.cli import main as cli
from condsynth.data.idx import idx_set, read_idx_set

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def write_dataset(out: Path, source: Path, train_count: int, test_count: int,
                  threshold: int) -> None:
    """Fashion-MNIST items as (label map, image) pairs of 32x32 in the pix2pixHD layout."""
    for phase, idx_phase, count in (("train", "train", train_count), ("test", "t10k", test_count)):
        images, classes = read_idx_set(idx_set(source, idx_phase))
        (out / f"{phase}_label").mkdir(parents=True, exist_ok=True)
        (out / f"{phase}_img").mkdir(parents=True, exist_ok=True)
        for i in range(count):
            grey = np.pad(images[i], 2)                                        # (32, 32)
            label = np.where(grey > threshold, classes[i] + 1, 0).astype(np.uint8)
            Image.fromarray(label).save(out / f"{phase}_label" / f"{i:05d}.png")
            Image.fromarray(np.stack([grey] * 3, -1)).save(out / f"{phase}_img" / f"{i:05d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for data, runs, reports")
    parser.add_argument("--source", type=Path, default=FASHION_MNIST, help="Fashion-MNIST folder")
    parser.add_argument("--train-count", type=int, default=3000)
    parser.add_argument("--test-count", type=int, default=300)
    parser.add_argument("--threshold", type=int, default=20, help="grey level of item pixels")
    parser.add_argument("--methods", nargs="+", default=["spade", "pix2pix"])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--segmenter-steps", type=int, default=1000)
    parser.add_argument("--spade-args", nargs="*", default=[],
                        help="overrides of the spade_cpu preset")
    parser.add_argument("--pix2pix-args", nargs="*", default=["model.num_downs=5"],
                        help="overrides of the pix2pix_cpu preset (default: the U-Net depth "
                             "that 32 pixels take, a 1x1 bottleneck)")
    parser.add_argument("--tag", default="", help="suffix of the run folders")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = args.out / "data"
    if not (data / "test_img").is_dir():
        write_dataset(data, args.source, args.train_count, args.test_count, args.threshold)
    segmenter = args.out / "segmenter"
    if not (segmenter / "segmenter.json").is_file():
        assert cli(["segmenter", "train", "--data", str(data), "--out", str(segmenter),
                    "--size", "32", "--depth", "2", "--steps", str(args.segmenter_steps),
                    "--seed", str(args.seed), "--quiet"]) == 0
    results = {}
    for method in args.methods:
        run = args.out / f"{method}{args.tag}"
        overrides = args.spade_args if method == "spade" else args.pix2pix_args
        start = time.perf_counter()
        assert cli(["train", "--config", f"{method}_cpu", "--data", str(data), "--run",
                    str(run), "--size", "32", "--batch-size", str(args.batch_size),
                    "--max-steps", str(args.steps), "--seed", str(args.seed), "--no-instance",
                    "--overwrite", "--quiet", *overrides]) == 0
        seconds = round(time.perf_counter() - start, 1)
        assert cli(["evaluate", str(run), "--data", str(data), "--segmenter", str(segmenter),
                    "--metrics", "miou"]) == 0
        report = json.loads((run / "eval" / "eval.json").read_text())
        results[method + args.tag] = {"train_s": seconds, "overrides": overrides,
                                      "report": report}
    print(json.dumps(results, indent=2))
    name = f"spade_small_{'_'.join(args.methods)}{args.tag}.json"
    (args.out / name).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
