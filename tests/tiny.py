"""Tiny configurations of every registered method: batch 2, 32x32, 8 base channels."""

from __future__ import annotations

import torch

from condsynth.config import Config, apply_overrides
from condsynth.registry import default_config, parse_config

NUM_CLASSES = 5
SIZE = 32

TINY_ATTRIBUTES = "condition.attributes=[Smiling, Eyeglasses, Male]"
# Overrides that make each method small; a method registered without an entry fails the
# generic suite on purpose, so no method escapes it.
TINY: dict[str, list[str]] = {
    "pix2pix": ["model.ngf=8", "model.ndf=8", "model.num_downs=5"],
    "pix2pixhd": ["model.ngf=8", "model.ndf=8", "model.n_downsample_global=3",
                  "model.n_blocks_global=2", "model.vgg_loss=false"],
    "spade": ["model.ngf=8", "model.ndf=8", "model.spade_hidden=16", "model.lambda_vgg=0"],
    "autopainter": ["model.ngf=8", "model.ndf=8", "model.num_downs=5", "model.lambda_feat=0.0",
                    "condition.kind=image", "condition.image_channels=1",
                    "condition.use_instance=false"],
    "dcgan": ["model.ngf=8", "model.ndf=8", "model.z_dim=16"],
    "s2gan_structure": ["model.ngf=4", "model.ndf=4", "model.z_dim=8"],
    "s2gan_estimator": ["model.width=0.0625", "model.num_classes=6", "model.codebook_items=4"],
    "s2gan_style": ["model.ngf=4", "model.ndf=4", "model.z_dim=8", "model.lambda_fcn=0",
                    "model.estimator_width=0.0625", "model.estimator_classes=6"],
    "s2gan_joint": ["model.ngf=4", "model.ndf=4", "model.z_dim=8", "model.structure_ngf=4",
                    "model.structure_ndf=4", "model.structure_z_dim=8", "model.structure_size=16"],
    "simgan": ["model.refiner_channels=8", "model.refiner_blocks=1",
               "model.discriminator_channels=[8,8,8,8]", "model.psi=mean",
               "model.history_size=3", "model.pretrain_refiner_steps=1",
               "model.pretrain_discriminator_steps=1", "condition.image_channels=1"],
    # Grows 4x4 -> 8x8 within the generic tests' four steps (a fade-in at step 2).
    "progan": ["model.fmap_base=32", "model.fmap_max=8", "model.latent_size=8",
               "model.stabilize_images=2", "model.fade_images=4", "model.minibatch_repeats=1",
               "model.progress_images=4"],
    "lapgan": ["model.z_dim=8", "model.coarse_hidden_g=16", "model.coarse_hidden_d=16",
               "model.hidden_g=8", "model.hidden_d=8"],
    "improved_gan": ["model.d_widths=[16,8]", "model.g_widths=[16]", "model.z_dim=8",
                     "model.num_classes=5", "model.minibatch_kernels=4", "model.ema_decay=0.9",
                     "model.historical_averaging=0.01"],
    "attr2sketch": ["model.ngf=8", "model.z_dim=16", "model.embed_dim=8", TINY_ATTRIBUTES],
    "sketch2sketch": ["model.ngf=8", "model.ndf=8", "model.growth=4", "model.layers_per_block=2",
                      "model.levels=2", "model.embed_dim=8", "model.n_layers_d=3",
                      "model.lambda_perceptual=0", TINY_ATTRIBUTES],
    "sketch2face": ["model.ngf=8", "model.ndf=8", "model.num_downs=5", "model.n_layers_d=3",
                    "model.lambda_perceptual=0", TINY_ATTRIBUTES],
}
# Methods that train on attribute tables with sketches: batches hold both.
SKETCH_AND_ATTRIBUTES = ("attr2sketch", "sketch2sketch", "sketch2face")
SKETCH_OUTPUT = ("attr2sketch", "sketch2sketch")         # methods that draw sketches


def tiny_config(method: str, use_instance: bool = True, extra: list[str] = ()) -> Config:
    raw = default_config(method).to_dict()
    condition = raw["condition"]
    if condition["kind"] in ("label_map", "class"):
        condition["num_classes"] = NUM_CLASSES
    condition["use_instance"] = use_instance and condition["kind"] == "label_map"
    raw["train"].update(batch_size=2, max_steps=4, log_every=1, sample_every=2,
                        checkpoint_every=2, num_samples=2, tensorboard=False)
    raw["data"].update(load_size=SIZE, crop_size=SIZE)
    return parse_config(apply_overrides(raw, TINY[method] + list(extra)))


def image_channels(config: Config) -> int:
    """Channels of the images the method makes (``data.channels`` where the data says)."""
    if config.method in SKETCH_OUTPUT:
        return 1
    return int(getattr(config.data, "channels", 3))


def tiny_batch(method: str | Config, seed: int = 0) -> dict:
    """A random batch of two tiny items in the form ``method`` trains on."""
    config = tiny_config(method) if isinstance(method, str) else method
    spec = config.condition
    g = torch.Generator().manual_seed(seed)
    batch = {"image": torch.rand(2, image_channels(config), SIZE, SIZE, generator=g) * 2 - 1}
    if spec.kind == "image":
        batch["source"] = torch.rand(2, spec.image_channels, SIZE, SIZE, generator=g) * 2 - 1
    elif spec.kind == "label_map":
        label = torch.randint(0, NUM_CLASSES, (2, SIZE, SIZE), generator=g)
        batch["label"] = label
        batch["instance"] = label * 1000 + (torch.arange(SIZE) > SIZE // 2)
    elif spec.kind == "class":
        batch["class"] = torch.randint(0, NUM_CLASSES, (2,), generator=g)
    elif spec.kind == "vector":
        batch["attributes"] = torch.randint(0, 2, (2, len(spec.attributes)),
                                            generator=g).float() * 2 - 1
    if config.data.labeled_batch:                  # the labelled batch of a semi-supervised GAN
        batch["labeled_image"] = torch.rand(batch["image"].shape, generator=g) * 2 - 1
        batch["labeled_class"] = torch.randint(0, NUM_CLASSES, (2,), generator=g)
    if config.method in SKETCH_AND_ATTRIBUTES:
        batch["source"] = torch.rand(2, 1, SIZE, SIZE, generator=g) * 2 - 1
        batch["attributes"] = torch.randint(0, 2, (2, len(spec.attributes)),
                                            generator=g).float() * 2 - 1
    return batch


def generate_inputs(method: str | Config, batch: dict) -> tuple[torch.Tensor | None,
                                                                torch.Tensor | None]:
    """The condition and instance map that ``method.generate`` takes for ``batch``."""
    from condsynth.conditions import condition_of

    config = tiny_config(method) if isinstance(method, str) else method
    return condition_of(batch, config.condition), batch.get("instance")
