"""Which method learns best in `condsynth demo`'s five-minute CPU budget?

Trains each method's CPU preset on the demo's procedural scenes for the steps the demo itself
would calibrate on this machine, then scores the test split with measures that need no
downloaded weights: mIoU / pixel accuracy of a segmenter trained on the same scenes (does the
picture follow the layout?) and SWD (do the colours and textures match real scenes?).

    python benchmarks/demo_methods.py --out demo-methods            # pix2pix and spade
    python benchmarks/demo_methods.py --out demo-methods --methods pix2pix spade pix2pixhd
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

from condsynth.cli import main as cli
from condsynth.demo import run_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for runs and reports")
    parser.add_argument("--methods", nargs="+", default=["pix2pix", "spade"])
    parser.add_argument("--segmenter-steps", type=int, default=500)
    parser.add_argument("--reuse", action="store_true", help="keep runs already in --out")
    args = parser.parse_args()
    results = {}
    for method in args.methods:
        results[method] = {}
        if args.reuse and (args.out / method / "run" / "generator.safetensors").is_file():
            continue
        start = time.perf_counter()
        run_demo(args.out / method, method=None if method == "pix2pix" else method)
        results[method]["train_and_data_s"] = round(time.perf_counter() - start, 1)
    data = args.out / args.methods[0] / "data"
    segmenter = args.out / "segmenter"
    if not (segmenter / "segmenter.json").is_file():
        assert cli(["segmenter", "train", "--data", str(data), "--out", str(segmenter),
                    "--steps", str(args.segmenter_steps)]) == 0
    for method in args.methods:
        run = args.out / method / "run"
        assert cli(["evaluate", str(run), "--data", str(args.out / method / "data"),
                    "--segmenter", str(segmenter), "--metrics", "swd,miou"]) == 0
        report = json.loads((run / "eval" / "eval.json").read_text())
        config = yaml.safe_load((run / "config.yaml").read_text())
        results[method].update(steps=config["train"]["max_steps"], report=report)
    print(json.dumps(results, indent=2))
    (args.out / "demo_methods.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
