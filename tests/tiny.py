"""Tiny configurations of every registered method: batch 2, 32x32, 8 base channels."""

from __future__ import annotations

import torch

from condsynth.config import Config, apply_overrides, default_config

NUM_CLASSES = 5
SIZE = 32

# Overrides that make each method small; a method registered without an entry fails the
# generic suite on purpose, so no method escapes it.
TINY: dict[str, list[str]] = {
    "pix2pix": ["model.ngf=8", "model.ndf=8", "model.num_downs=5"],
    "pix2pixhd": ["model.ngf=8", "model.ndf=8", "model.n_downsample_global=3",
                  "model.n_blocks_global=2", "model.vgg_loss=false"],
    "spade": ["model.ngf=8", "model.ndf=8", "model.spade_hidden=16", "model.lambda_vgg=0"],
    "autopainter": ["model.ngf=8", "model.ndf=8", "model.num_downs=5", "model.lambda_feat=0.0",
                    "label.num_classes=0", "label.source_channels=1", "label.use_instance=false"],
}


def tiny_config(method: str, use_instance: bool = True, extra: list[str] = ()) -> Config:
    raw = default_config(method).to_dict()
    raw["label"]["num_classes"] = NUM_CLASSES
    raw["label"]["use_instance"] = use_instance
    raw["train"].update(batch_size=2, max_steps=4, log_every=1, sample_every=2,
                        checkpoint_every=2, num_samples=2, tensorboard=False)
    raw["data"].update(load_size=SIZE, crop_size=SIZE)
    return Config.from_dict(apply_overrides(raw, TINY[method] + list(extra)))


# Methods conditioned on an image (label.num_classes 0) instead of label maps, and the channels
# of that image: their batches hold ``source`` instead of ``label`` and ``instance``.
SOURCE_CHANNELS: dict[str, int] = {"autopainter": 1}


def tiny_batch(method: str, seed: int = 0) -> dict:
    """A random batch of two tiny items in the form ``method`` trains on."""
    g = torch.Generator().manual_seed(seed)
    if method in SOURCE_CHANNELS:
        source = torch.rand(2, SOURCE_CHANNELS[method], SIZE, SIZE, generator=g) * 2 - 1
        return {"source": source, "image": torch.rand(2, 3, SIZE, SIZE, generator=g) * 2 - 1}
    label = torch.randint(0, NUM_CLASSES, (2, SIZE, SIZE), generator=g)
    return {"label": label, "instance": label * 1000 + (torch.arange(SIZE) > SIZE // 2),
            "image": torch.rand(2, 3, SIZE, SIZE, generator=g) * 2 - 1}


def generate_inputs(method: str, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The condition and instance map that ``method.generate`` takes for ``batch``."""
    if method in SOURCE_CHANNELS:
        return batch["source"], None
    return batch["label"], batch["instance"]
