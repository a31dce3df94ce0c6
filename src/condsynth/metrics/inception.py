"""The FID Inception network: the TensorFlow Inception-v3 graph of 2015-12-05 that FID (Heusel
et al., 2017), KID (Bińkowski et al., 2018) and the Inception Score (Salimans et al., 2016) are
defined on, as a PyTorch module.

The network is torch-fidelity's ``FeatureExtractorInceptionV3`` (a port of that graph that matches
TensorFlow's resizing and pooling), fed with a local weights file only: condsynth never downloads.
The standard file is pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (torch-fidelity
caches the same bytes as ``weights-inception-2015-12-05-6726825d.pth``); its SHA-256 is checked,
because scores from any other weights cannot be compared with published ones.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from condsynth.errors import CheckpointError

# SHA-256 of the standard FID Inception weights file (95,628,359 bytes). torch.hub names files
# after the first 8 hex digits of this hash, hence the "-6726825d" in both file names below.
STANDARD_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
STANDARD_FILENAMES = ("pt_inception-2015-12-05-6726825d.pth",        # pytorch-fid's release
                      "weights-inception-2015-12-05-6726825d.pth")   # torch-fidelity's cache
WEIGHTS_ENV = "CONDSYNTH_INCEPTION_WEIGHTS"
POOL_FEATURES = 2048     # pool3: the FID / KID features
NUM_LOGITS = 1008        # the 2015 graph's classifier: 1000 ImageNet classes + 8 unused
NONSTANDARD_NOTE = ("These scores come from non-standard Inception weights: they are NOT "
                    "comparable with published FID / KID / Inception Score numbers.")


@dataclass(frozen=True)
class InceptionWeights:
    """A verified weights file: its path, SHA-256 and whether it is the standard file."""

    path: Path
    sha256: str
    standard: bool

    @property
    def tag(self) -> str:
        """A short name of the weights for cache keys and reports."""
        return self.sha256[:16]


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def cache_candidates() -> list[Path]:
    """Where the standard file is looked for when no path is given: torch hub's checkpoints
    folder (``$TORCH_HOME/hub/checkpoints``), under both usual names."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    return [folder / name for name in STANDARD_FILENAMES]


def resolve_inception_weights(path: str | Path | None = None,
                              allow_nonstandard: bool = False) -> InceptionWeights:
    """Find and verify the Inception weights: ``path``, else ``$CONDSYNTH_INCEPTION_WEIGHTS``,
    else the torch hub cache. A file whose SHA-256 is not the standard one is refused unless
    ``allow_nonstandard``; no file at all is an error, never a download or a random network."""
    given = path or os.environ.get(WEIGHTS_ENV)
    if given:
        found = Path(given).expanduser()
        if not found.is_file():
            raise CheckpointError(f"Inception weights file {found} does not exist. Fix: give the "
                                  f"path of {STANDARD_FILENAMES[0]} with --inception-weights.")
    else:
        found = next((p for p in cache_candidates() if p.is_file()), None)
        if found is None:
            raise CheckpointError(
                "FID, KID and the Inception Score need the standard FID Inception weights, and "
                f"none were found (looked for {', '.join(str(p) for p in cache_candidates())}). "
                "condsynth never downloads weights by itself. Fix: download "
                f"{STANDARD_FILENAMES[0]} (pytorch-fid's release) once, then pass "
                "--inception-weights PATH or put it in "
                f"{cache_candidates()[0].parent}; or leave out fid,kid,is from --metrics.")
    digest = sha256_file(found)
    standard = digest == STANDARD_SHA256
    if not standard and not allow_nonstandard:
        raise CheckpointError(
            f"{found} is not the standard FID Inception weights file (SHA-256 {digest}, expected "
            f"{STANDARD_SHA256}). Scores from other weights cannot be compared with published "
            "ones. Fix: use the standard file, or pass --allow-nonstandard-weights to score "
            "anyway (every report then says the scores are not comparable).")
    return InceptionWeights(found, digest, standard)


class InceptionFeatures(nn.Module):
    """The FID Inception-v3 on uint8 images.

    Input: (B, 3, H, W) uint8 RGB of any size (resized to 299x299 inside, as TensorFlow did).
    Output: ``(pool, logits)``: (B, 2048) pool3 features (FID, KID) and (B, 1008) classifier
    logits without the bias, the quantity the original Inception Score code took its softmax of.
    """

    def __init__(self, weights: InceptionWeights) -> None:
        super().__init__()
        # Read once with the safe loader: a file that passes holds only tensors, so the second
        # read inside torch-fidelity (which unpickles freely) cannot run code.
        from condsynth.checkpoint import safe_torch_load

        safe_torch_load(weights.path, "the Inception weights", "give the standard FID "
                        "Inception weights file (see the README's Evaluation section)")
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        try:
            self.net = FeatureExtractorInceptionV3(
                "inception-v3-compat", ["2048", "logits_unbiased"],
                feature_extractor_weights_path=str(weights.path))
        except RuntimeError as err:
            raise CheckpointError(f"Inception weights {weights.path} do not fit the FID "
                                  f"Inception-v3: {str(err).splitlines()[0]}") from None
        self.weights = weights

    @torch.no_grad()
    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) uint8 images, found {tuple(images.shape)} "
                             f"{images.dtype}")
        pool, logits = self.net(images)
        return pool, logits


_LOADED: dict[tuple[str, str, str], InceptionFeatures] = {}


def load_inception(weights: InceptionWeights, device: torch.device | str = "cpu",
                   ) -> InceptionFeatures:
    """The network for ``weights`` on ``device``; kept in memory for the next call (evaluations
    in one process share it)."""
    key = (str(weights.path), weights.sha256, str(device))
    if key not in _LOADED:
        _LOADED.clear()   # one network at a time: it holds 95 MB
        _LOADED[key] = InceptionFeatures(weights).to(device).eval()
    return _LOADED[key]


def write_random_inception_weights(path: str | Path, seed: int = 0) -> Path:
    """Write a weights file of the FID Inception-v3's exact structure with random values.

    For tests and dry runs of the evaluation pipeline only: its scores mean nothing, and it needs
    ``--allow-nonstandard-weights``. Convolutions get He-normal weights so that activations keep
    their scale through the 94 layers (PyTorch's default init shrinks them to denormals, which
    are slow on CPUs); batch norms are the identity.
    """
    import torchvision

    # torchvision's Inception-v3 has the same parameter names and shapes as the FID network.
    template = torchvision.models.inception_v3(weights=None, aux_logits=False,
                                               init_weights=False, num_classes=NUM_LOGITS)
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in template.state_dict().items():
        if key.endswith("conv.weight"):
            fan_in = value[0].numel()
            value = torch.randn(value.shape, generator=generator) * (2.0 / fan_in) ** 0.5
        elif key == "fc.weight":
            value = torch.randn(value.shape, generator=generator) * value.shape[1] ** -0.5
        state[key] = value.clone()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path
