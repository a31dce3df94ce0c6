"""Attributes → sketch → image on Fashion-MNIST: does the chain draw what it is asked for?

The data is ``condsynth data attributes-from-classes`` (class one-hot + Bright + Large, 32x32);
the run is a trained ``attr2sketch2face_fmnist_cpu`` pipeline. For every class and every
combination of the two measured attributes, ``--per-cell`` images are drawn end to end
(attributes → sketch → sharp sketch → image, each with its own noise), and

- a classifier trained on real images (``condsynth classifier train``, the domain classifier;
  28x28 Fashion-MNIST, so the 28x28 centre of each 32x32 image is classified) names the class:
  the *class rate* is how often it names the requested class;
- Bright and Large are measured on the generated images exactly as the table measured them on
  the real ones (same medians): the *attribute rates* are how often they hold as requested.

The same numbers on real test images (class rate = the classifier's accuracy; attribute rates
are 100 % by construction) and on stage 3 fed the real test sketches and attributes (what the
last stage alone reaches) put them in context.

    python benchmarks/attr2face_fmnist.py --run RUN --data DIR --classifier CLF.safetensors
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from itertools import product
from pathlib import Path

import numpy as np
import torch

from condsynth.data.attribute_tables import META_FILE, measure_attributes
from condsynth.metrics.classifier import load_classifier
from condsynth.pipeline import load_chain, run_chain


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 1, H, W) in [-1, 1] → (N, H, W) uint8."""
    return images[:, 0].clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).numpy()


def centre(images: torch.Tensor, side: int) -> torch.Tensor:
    top = (images.shape[-1] - side) // 2
    return images[..., top:top + side, top:top + side]


def rates(images: torch.Tensor, classes: np.ndarray, wanted: np.ndarray, classifier,
          meta: dict) -> dict[str, float]:
    """Class rate and attribute rates of (N, 1, 32, 32) images in [-1, 1]."""
    with torch.no_grad():
        predicted = classifier.predict(centre(images, classifier.size)).numpy()
    measured = measure_attributes(to_uint8(images), meta)
    return {"class_rate": float((predicted == classes).mean()),
            "bright_rate": float((measured[:, 0] == wanted[:, 0]).mean()),
            "large_rate": float((measured[:, 1] == wanted[:, 1]).mean()),
            "all_rate": float(((predicted == classes) & (measured == wanted).all(1)).mean()),
            "images": int(len(images))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="trained attr2sketch2face pipeline run")
    parser.add_argument("--data", required=True, help="the attributes-from-classes folder")
    parser.add_argument("--classifier", required=True, help="classifier trained on real images")
    parser.add_argument("--per-cell", type=int, default=10, help="images per class x attributes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the numbers as JSON here")
    args = parser.parse_args()
    start = time.perf_counter()
    data = Path(args.data)
    meta = json.loads((data / META_FILE).read_text())
    classifier = load_classifier(args.classifier)
    pipeline, methods, _ = load_chain(args.run, device="cpu")
    num_classes = len(meta["class_names"])
    rows, classes, wanted = [], [], []
    for c, bright, large in product(range(num_classes), (-1, 1), (-1, 1)):
        onehot = [-1.0] * num_classes
        onehot[c] = 1.0
        for _ in range(args.per_cell):
            rows.append(onehot + [float(bright), float(large)])
            classes.append(c)
            wanted.append([bright, large])
    attributes = torch.tensor(rows)
    classes_np, wanted_np = np.array(classes), np.array(wanted)
    torch.manual_seed(args.seed)
    result = run_chain(pipeline, methods, len(rows), {"attributes": attributes})
    last = pipeline.chain[-1].stage
    report = {"generated": rates(result.outputs[last], classes_np, wanted_np, classifier, meta),
              "chance": {"class_rate": 1 / num_classes, "bright_rate": 0.5, "large_rate": 0.5}}
    # Context: real test images, and the last stage on real test sketches.
    from condsynth.data.sources import open_dataset

    test_data = dataclasses.replace(methods[last].config.data, root=str(data))
    test = open_dataset(test_data, "test", train=False, seed=0)
    items = [test[i] for i in range(min(len(test), 1000))]
    real = torch.stack([i["image"] for i in items])
    real_attr = torch.stack([i["attributes"] for i in items])
    real_classes = real_attr[:, :num_classes].argmax(1).numpy()
    real_wanted = real_attr[:, num_classes:].numpy().astype(int)
    report["real_test"] = rates(real, real_classes, real_wanted, classifier, meta)
    with torch.no_grad():
        from_real = methods[last].generate(torch.stack([i["source"] for i in items]),
                                           attributes=real_attr)
    report["stage3_on_real_sketches"] = rates(from_real, real_classes, real_wanted,
                                              classifier, meta)
    report["per_class_rate"] = {
        meta["class_names"][c]: float(
            (classifier.predict(centre(result.outputs[last][classes_np == c],
                                       classifier.size)).numpy()
             == c).mean()) for c in range(num_classes)}
    report["seconds"] = round(time.perf_counter() - start, 1)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
