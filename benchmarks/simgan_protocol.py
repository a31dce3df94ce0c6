"""SimGAN's evaluation protocol (Shrivastava et al., 2017, Section 4): train the same task model
on raw synthetic images and on refined ones, test both on labelled real images, and compare
the errors. Here the task is Fashion-MNIST classification: a small CNN trained on a labelled
folder (``dataset.json``, class folders), tested on the real test split (IDX files), whose
labels serve only this final test.

Two commands:

``compare``: the protocol on folders that exist::

    python benchmarks/simgan_protocol.py compare --train raw=su/A --train refined=refined \\
        --real /usr/share/datasets/fashion-mnist --seeds 0 1 2

``check``: the whole S+U workflow per seed (train SimGAN with that seed, refine the synthetic
images, then ``compare`` raw vs refined with that seed's classifier), averaged over seeds::

    python benchmarks/simgan_protocol.py check --data su --work runs --seeds 0 1 2 \\
        --real /usr/share/datasets/fashion-mnist -- --config simgan_garments

Arguments after ``--`` go to ``condsynth train`` (preset, overrides).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from condsynth.config import DataConfig
from condsynth.data.idx import idx_set, read_idx_set
from condsynth.data.sources import load_source, to_channels


class TaskNet(nn.Module):
    """(B, 1, 28, 28) grey images in [-1, 1] → (B, classes) logits: two 3x3 conv layers with
    max-pooling and a linear classifier (a small Fashion-MNIST CNN)."""

    def __init__(self, classes: int = 10, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(2))
        self.classifier = nn.Linear(2 * width * 7 * 7, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


def to_tensor(pixels: np.ndarray) -> Tensor:
    """(N, 28, 28) uint8 → (N, 1, 28, 28) float32 in [-1, 1]."""
    return torch.from_numpy(pixels.astype(np.float32) / 127.5 - 1.0)[:, None]


def read_labelled_folder(folder: str | Path, size: int = 28) -> tuple[Tensor, Tensor]:
    """The images (grey, size x size) and classes of a labelled folder (``dataset.json`` or
    class folders)."""
    source = load_source(DataConfig(root=str(folder), layout="class_folders", channels=1))
    pixels = []
    for i in range(len(source)):
        image = to_channels(source.read(i), 1)
        if image.shape != (size, size):
            image = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
        pixels.append(image)
    return to_tensor(np.stack(pixels)), torch.from_numpy(source.classes)


def read_real_test(idx_folder: str | Path) -> tuple[Tensor, Tensor]:
    pixels, labels = read_idx_set(idx_set(idx_folder, "test"))
    return to_tensor(pixels), torch.from_numpy(labels.astype(np.int64))


def train_classifier(images: Tensor, labels: Tensor, seed: int, epochs: int = 4,
                     batch_size: int = 64, lr: float = 1e-3) -> TaskNet:
    """The task model trained on ``images`` with Adam (seeded: init and batch order)."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = TaskNet(int(labels.max()) + 1)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), batch_size):
            index = order[start:start + batch_size]
            loss = F.cross_entropy(net(images[index]), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return net.eval()


@torch.no_grad()
def error_rate(net: TaskNet, images: Tensor, labels: Tensor, batch_size: int = 1000) -> float:
    wrong = sum(int((net(images[i:i + batch_size]).argmax(1) != labels[i:i + batch_size]).sum())
                for i in range(0, len(images), batch_size))
    return wrong / len(images)


def compare(train_sets: dict[str, str | Path], real: str | Path, seeds: list[int],
            epochs: int = 4) -> dict[str, dict[str, float | list[float]]]:
    """Test error on the real test split of the task model trained on each labelled folder,
    per seed and averaged."""
    test_x, test_y = read_real_test(real)
    results = {}
    for name, folder in train_sets.items():
        x, y = read_labelled_folder(folder)
        errors = [error_rate(train_classifier(x, y, seed, epochs), test_x, test_y)
                  for seed in seeds]
        results[name] = {"errors": errors, "mean": statistics.mean(errors),
                         "std": statistics.pstdev(errors), "train_images": len(x)}
    return results


def check(data: Path, work: Path, real: str, seeds: list[int], epochs: int,
          train_args: list[str]) -> dict:
    """Per seed: train SimGAN, refine ``data/A``, compare raw vs refined with that seed."""
    per_seed = []
    for seed in seeds:
        run = work / f"simgan_seed{seed}"
        refined = work / f"refined_seed{seed}"
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "condsynth", "train", "--method", "simgan",
                        "--data", str(data), "--run", str(run), "--quiet", "--overwrite",
                        *train_args, f"train.seed={seed}"], check=True)
        trained = time.perf_counter() - began
        subprocess.run([sys.executable, "-m", "condsynth", "refine", str(run), "--images",
                        str(data / "A"), "--out", str(refined), "--quiet"], check=True)
        result = compare({"raw": data / "A", "refined": refined}, real, [seed], epochs)
        entry = {"seed": seed, "simgan_seconds": round(trained, 1),
                 "seconds": round(time.perf_counter() - began, 1),
                 "raw_error": result["raw"]["mean"], "refined_error": result["refined"]["mean"]}
        print(json.dumps(entry), flush=True)
        per_seed.append(entry)
    summary = {name: statistics.mean(e[f"{name}_error"] for e in per_seed)
               for name in ("raw", "refined")}
    return {"per_seed": per_seed, "mean_error": summary,
            "mean_accuracy": {k: 1 - v for k, v in summary.items()}}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    train_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, train_args = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("compare", help="task error on real test images per training folder")
    p.add_argument("--train", action="append", required=True, metavar="NAME=DIR")
    p.add_argument("--real", required=True, help="Fashion-MNIST IDX folder (test split used)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=4)
    p = sub.add_parser("check", help="train SimGAN, refine, compare; per seed")
    p.add_argument("--data", required=True, help="unpaired dataset: A/ synthetic, B/ real")
    p.add_argument("--work", required=True, help="folder for the runs and refined images")
    p.add_argument("--real", required=True, help="Fashion-MNIST IDX folder (test split used)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.command == "compare":
        sets = dict(item.split("=", 1) for item in args.train)
        result = compare(sets, args.real, args.seeds, args.epochs)
    else:
        result = check(Path(args.data), Path(args.work), args.real, args.seeds, args.epochs,
                       train_args)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
