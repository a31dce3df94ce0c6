"""Tiny configurations of every registered method: batch 2, 32x32, 8 base channels."""

from __future__ import annotations

from condsynth.config import Config, apply_overrides, default_config

NUM_CLASSES = 5
SIZE = 32

# Overrides that make each method small; a method registered without an entry fails the
# generic suite on purpose, so no method escapes it.
TINY: dict[str, list[str]] = {
    "pix2pix": ["model.ngf=8", "model.ndf=8", "model.num_downs=5"],
}


def tiny_config(method: str, use_instance: bool = True, extra: list[str] = ()) -> Config:
    raw = default_config(method).to_dict()
    raw["label"]["num_classes"] = NUM_CLASSES
    raw["label"]["use_instance"] = use_instance
    raw["train"].update(batch_size=2, max_steps=4, log_every=1, sample_every=2,
                        checkpoint_every=2, num_samples=2, tensorboard=False)
    raw["data"].update(load_size=SIZE, crop_size=SIZE)
    return Config.from_dict(apply_overrides(raw, TINY[method] + list(extra)))
