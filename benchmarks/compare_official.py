"""Compare condsynth with the official implementations' figures in ../shared/BENCHMARKS.md.

Speed on shared machines drifts, so each figure is work in "GEMM-GFLOP equivalents":
seconds x the matrix-multiply yardstick measured in the same run. The official figures were
taken the same way (batch 1, fp32, 2 threads). A ratio above 1 means condsynth is faster.

    python benchmarks/compare_official.py                    # every configuration, fp32
    python benchmarks/compare_official.py --fast             # bf16 + channels_last as well
    python benchmarks/compare_official.py --only spade_reduced --json
"""

from __future__ import annotations

import argparse
import json

from condsynth.bench import run_bench

# name: (method, size, overrides, official train x yardstick, official infer x yardstick)
CONFIGS: dict[str, tuple[str, str, list[str], float, float]] = {
    "pix2pixhd_global": ("pix2pixhd", "256x512", [
        "model.ngf=64", "model.n_downsample_global=4", "model.n_blocks_global=9",
        "model.num_d=3", "model.ndf=64", "model.n_layers_d=3", "label.num_classes=35",
        "label.use_instance=true"], 1135, 241),
    "spade": ("spade", "256x512", [
        "model.ngf=64", "model.num_d=2", "model.ndf=64", "model.n_layers_d=4",
        "label.num_classes=35", "label.use_instance=true", "data.crop_size=512",
        "data.aspect_ratio=2.0"], 3170, 717),
    "pix2pix": ("pix2pix", "256x256", [
        "model.ngf=64", "model.ndf=64", "model.num_downs=8", "model.norm=batch",
        "label.num_classes=0", "label.source_channels=3"], 122, 15),
    "pix2pixhd_reduced": ("pix2pixhd", "128x256", [
        "model.ngf=32", "model.ndf=32", "model.n_downsample_global=4",
        "model.n_blocks_global=9", "model.num_d=3", "label.num_classes=35",
        "label.use_instance=true"], 140, 26),
    "spade_reduced": ("spade", "128x256", [
        "model.ngf=32", "model.ndf=32", "model.num_d=2", "model.n_layers_d=4",
        "label.num_classes=35", "label.use_instance=true", "data.crop_size=256",
        "data.aspect_ratio=2.0"], 416, 38),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(CONFIGS), help="configurations")
    parser.add_argument("--fast", action="store_true", help="also bf16 + channels_last")
    parser.add_argument("--compile", action="store_true", help="also torch.compile (fast)")
    parser.add_argument("--skip-train", action="store_true", help="inference only")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args()
    variants = [("fp32", False, False)]
    if args.fast:
        variants.append(("bf16", True, args.compile))
    for name in args.only or CONFIGS:
        method, size, overrides, off_train, off_infer = CONFIGS[name]
        for precision, channels_last, compile_ in variants:
            r = run_bench(method=method, size=size, batch=1, precision=precision,
                          channels_last=channels_last, compile=compile_, overrides=overrides,
                          skip_train=args.skip_train)
            r["config"] = name
            r["infer_speedup_vs_official"] = round(off_infer / r["infer_s_x_yardstick"], 2)
            if "train_iter_s" in r:
                r["train_speedup_vs_official"] = round(off_train / r["train_iter_s_x_yardstick"],
                                                       2)
            if args.json:
                print(json.dumps(r), flush=True)
            else:
                print(f"{name:18s} {precision:4s}{' cl' if channels_last else '   '} "
                      f"yardstick {r['yardstick_gflops']:6.1f}/"
                      f"{r.get('yardstick_train_gflops', float('nan')):6.1f} | "
                      f"infer {r['infer_s']:.3f}s "
                      f"x{r['infer_speedup_vs_official']} | train "
                      f"{r.get('train_iter_s', float('nan')):.3f}s "
                      f"x{r.get('train_speedup_vs_official', float('nan'))}"
                      + (f" | PSNR {r['psnr_vs_fp32_db']} dB" if "psnr_vs_fp32_db" in r else ""),
                      flush=True)


if __name__ == "__main__":
    main()
