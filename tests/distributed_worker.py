"""Run by ``torchrun`` in test_distributed.py: train, then dump this rank's weights."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from condsynth import checkpoint
from condsynth.train import prepare_config, train
from tests.tiny import tiny_config


def main() -> None:
    scenes, run, out, steps, mode = sys.argv[1:6]
    run, out = Path(run), Path(out)
    if mode == "resume":
        config = checkpoint.read_config(run)
        config.train.max_steps = int(steps)
    else:
        config = prepare_config(tiny_config("pix2pix", extra=[
            f"data.root={scenes}", "label.num_classes=null", f"train.max_steps={steps}",
            "train.decay_start=1.0", "train.checkpoint_every=100"]))
    result = train(config, run, resume=mode == "resume", progress=False)
    state = {f"{name}.{k}": v for name, net in result.method.networks().items()
             for k, v in net.state_dict().items()}
    torch.save(state, out / f"rank{dist.get_rank()}.pt")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
