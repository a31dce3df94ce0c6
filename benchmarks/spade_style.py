"""Does a SPADE run with the VAE take the look of a style image? And do different z differ?

Trains (or reuses) a ``spade_cpu_style`` run (SPADE with the VAE) on procedural scenes, then on
the test split: every layout is synthesized with every style image (z = the encoder's mu), and with
random z. The procedural scenes' moods (clear, hazy, overcast, dusk; autumn trees; grass
colours) are independent of the layout, so a model that carries style must copy them from the
style image. Measured: the correlation, over all (layout, style) pairs, between the mean colour
of a class (sky, grass, road, ...) in the output and the same class's mean colour in the style
image. Random z gives the baseline (no relation expected). Writes ``style_grid.png`` (top row:
style images; then one row per layout) and ``multimodal.png`` (one layout, eight random z).

    condsynth data procedural --out scenes --count 400 --size 128
    python benchmarks/spade_style.py --data scenes --run runs/spade_style --out style
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import condsynth
from condsynth.data.dataset import image_to_tensor, tensor_to_image
from condsynth.data.io import read_image, read_instance, read_label
from condsynth.pages import save_png


def train_run(data: Path, run: Path, steps: int) -> None:
    from condsynth.cli import main as cli

    assert cli(["train", "--config", "spade_cpu_style", "--data", str(data), "--run", str(run),
                "--max-steps", str(steps)]) == 0


def class_means(picture: np.ndarray, label: np.ndarray,
                min_pixels: int = 64) -> dict[int, np.ndarray]:
    """Mean RGB (0..1) of every class covering at least ``min_pixels`` pixels."""
    out = {}
    for c in np.unique(label):
        mask = label == c
        if mask.sum() >= min_pixels:
            out[int(c)] = picture[mask].mean(axis=0) / 255.0
    return out


def colour_correlation(pairs: list[tuple[int, np.ndarray, np.ndarray]]) -> float:
    """Pearson correlation of output and style colours over all (pair, channel) values, centred
    per class and channel (so the classes' own base colours, which the layout alone gives, do
    not count: only how the colours vary around them)."""
    classes = np.array([c for c, _, _ in pairs])
    out = np.array([o for _, o, _ in pairs])
    ref = np.array([r for _, _, r in pairs])
    for c in np.unique(classes):
        rows = classes == c
        out[rows] -= out[rows].mean(axis=0)
        ref[rows] -= ref[rows].mean(axis=0)
    return float((out * ref).sum() / np.sqrt((out ** 2).sum() * (ref ** 2).sum()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="procedural scenes")
    parser.add_argument("--run", type=Path, required=True, help="VAE run (trained if absent)")
    parser.add_argument("--steps", type=int, default=3000, help="training steps if trained")
    parser.add_argument("--out", type=Path, required=True, help="folder for the pictures")
    parser.add_argument("--layouts", type=int, default=8)
    parser.add_argument("--styles", type=int, default=16)
    args = parser.parse_args()
    if not (args.run / "generator.safetensors").is_file():
        train_run(args.data, args.run, args.steps)
    model = condsynth.load(args.run, device="cpu")
    size = model.config.data.crop_size
    names = sorted(p.name for p in (args.data / "test_label").iterdir())
    layouts = names[:args.layouts]
    styles = names[-args.styles:]

    def load_item(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (read_label(args.data / "test_label" / name),
                read_instance(args.data / "test_inst" / name),
                read_image(args.data / "test_img" / name))

    style_items = [load_item(n) for n in styles]
    style_batch = torch.stack([image_to_tensor(img) for _, _, img in style_items])
    rows = [np.concatenate([img for _, _, img in style_items], axis=1)]
    guided, random = [], []
    for name in layouts:
        label, instance, _ = load_item(name)
        labels = torch.from_numpy(label)[None].expand(len(styles), -1, -1)
        instances = torch.from_numpy(instance)[None].expand(len(styles), -1, -1)
        fake_style = model.generate(labels, instance=instances, style=style_batch)
        torch.manual_seed(len(rows))
        fake_random = model.generate(labels, instance=instances)
        pictures = [tensor_to_image(t) for t in fake_style]
        rows.append(np.concatenate(pictures, axis=1))
        for k, (s_label, _, s_img) in enumerate(style_items):
            ref = class_means(s_img, s_label)
            got = class_means(pictures[k], label)
            rnd = class_means(tensor_to_image(fake_random[k]), label)
            for c in set(ref) & set(got):
                guided.append((c, got[c], ref[c]))
                random.append((c, rnd[c], ref[c]))
    args.out.mkdir(parents=True, exist_ok=True)
    save_png(np.concatenate(rows, axis=0), args.out / "style_grid.png")
    label, instance, _ = load_item(layouts[0])
    torch.manual_seed(0)
    multi = model.generate(torch.from_numpy(label)[None].expand(8, -1, -1),
                           instance=torch.from_numpy(instance)[None].expand(8, -1, -1))
    save_png(np.concatenate([tensor_to_image(t) for t in multi], axis=1),
             args.out / "multimodal.png")
    spread = float(multi.std(dim=0).mean())
    result = {"run": str(args.run), "size": size, "pairs": len(guided),
              "colour_correlation_style": round(colour_correlation(guided), 3),
              "colour_correlation_random_z": round(colour_correlation(random), 3),
              "multimodal_pixel_std": round(spread, 4)}
    print(json.dumps(result, indent=2))
    (args.out / "style.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
