"""Surface-normal maps: their PNG encoding, their conversion from depth maps, and their
statistics (the direction codebook of S2-GAN's pixel-wise constraint).

**Convention** (the usual encoding of NYU Depth v2 normal maps, as S2-GAN's data uses them):
normals are unit vectors in the camera's frame, x to the right, y up, z towards the viewer, so
a wall facing the camera is (0, 0, 1); a PNG stores ``(n + 1) / 2 * 255`` in R, G, B (a
camera-facing wall is light blue-violet (128, 128, 255), the floor seen from above light green
(128, 255, 128)). Read as an image in [-1, 1] (condsynth's ``image_to_tensor``) the pixel *is*
the normal. A horizontal flip of a normal map mirrors x: the x component changes sign.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from condsynth.errors import DataError

# The Kinect intrinsics of NYU Depth v2 at 640x480 (focal lengths and principal point, pixels).
NYU_INTRINSICS = (518.8579, 519.4696, 325.5824, 253.7362)


def encode_normals(normals: np.ndarray) -> np.ndarray:
    """(H, W, 3) float normals in [-1, 1] → (H, W, 3) uint8 RGB."""
    return np.clip(np.round((normals + 1.0) * 127.5), 0, 255).astype(np.uint8)


def decode_normals(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB → (H, W, 3) float32 unit normals."""
    n = rgb.astype(np.float32) / 127.5 - 1.0
    return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-6)


def flip_normals(normals: Tensor) -> Tensor:
    """A (.., 3, H, W) normal map mirrored left-right: columns reversed and x negated."""
    out = normals.flip(-1).clone()
    out[..., 0, :, :] = -out[..., 0, :, :]
    return out


def depth_to_normals(depth: np.ndarray, intrinsics: tuple[float, float, float, float],
                     valid: np.ndarray | None = None) -> np.ndarray:
    """Normals of a depth map, in the convention above.

    Args:
        depth: (H, W) distance along the optical axis (any unit; 0 or less = missing).
        intrinsics: (fx, fy, cx, cy) in pixels of this depth map's size.
        valid: (H, W) bool of measured pixels (default: depth > 0).
    Returns:
        (H, W, 3) float32 unit normals facing the camera; pixels whose neighbourhood lacks
        depth take the camera-facing normal (0, 0, 1).

    Each pixel is back-projected to a 3D point (X right, Y up, Z towards the viewer: the depth
    is -Z); the normal is the cross product of the central differences of the points along
    the columns and along the rows (one-sided at the borders).
    """
    if depth.ndim != 2:
        raise DataError(f"a depth map must be (H, W), found shape {depth.shape}")
    fx, fy, cx, cy = intrinsics
    height, width = depth.shape
    z = depth.astype(np.float64)
    valid = (z > 0) if valid is None else valid
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    points = np.stack([(u - cx) * z / fx, -(v - cy) * z / fy, -z], axis=-1)    # (H, W, 3)
    du = np.gradient(points, axis=1)                  # along a row: to the right
    dv = -np.gradient(points, axis=0)                 # along a column: upwards
    normals = np.cross(du, dv)
    length = np.linalg.norm(normals, axis=-1, keepdims=True)
    ok = valid & (length[..., 0] > 0)
    ok[:, 1:] &= valid[:, :-1]
    ok[:, :-1] &= valid[:, 1:]
    ok[1:] &= valid[:-1]
    ok[:-1] &= valid[1:]
    normals = np.where(ok[..., None], normals / np.maximum(length, 1e-12), [0.0, 0.0, 1.0])
    # Seen surfaces face the camera: the normal points towards the viewer's side of the point.
    facing = (normals * -points).sum(-1) < 0
    normals[facing & ok] *= -1
    return normals.astype(np.float32)


def unit_normals(x: Tensor, eps: float = 1e-12) -> Tensor:
    """(B, 3, H, W) → the same with every pixel's vector scaled to unit length (S2-GAN's
    ``nn.Normalize(2)`` after the generator's tanh)."""
    return F.normalize(x, p=2, dim=1, eps=eps)


def angular_error(a: Tensor, b: Tensor) -> Tensor:
    """Per-pixel angle in degrees between two (B, 3, H, W) normal maps (normalized first)."""
    cos = (unit_normals(a) * unit_normals(b)).sum(1).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.acos(cos))


def kmeans_directions(vectors: Tensor, k: int, iterations: int = 30,
                      generator: torch.Generator | None = None) -> Tensor:
    """K-means of (N, 3) unit vectors into ``k`` unit directions (k, 3): Euclidean k-means,
    whose centres are renormalized at the end; initialized by k-means++ from ``generator``.
    Clusters that lose every member keep their centre."""
    if vectors.shape[0] < k:
        raise DataError(f"k-means of {vectors.shape[0]} normals into {k} directions: need at "
                        "least as many normals as directions")
    x = vectors.double()
    first = torch.randint(x.shape[0], (1,), generator=generator)
    centres = [x[first[0]]]
    nearest = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):                                    # k-means++ seeding
        pick = torch.multinomial(nearest + 1e-12, 1, generator=generator)[0]
        centres.append(x[pick])
        nearest = torch.minimum(nearest, ((x - x[pick]) ** 2).sum(1))
    c = torch.stack(centres)
    for _ in range(iterations):
        assign = torch.cdist(x, c).argmin(1)
        sums = torch.zeros_like(c).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).unsqueeze(1).double()
        c = torch.where(counts > 0, sums / counts.clamp(min=1), c)
    return unit_normals(c[:, :, None, None]).squeeze(-1).squeeze(-1).float()


def normal_classes(normals: Tensor, codebook: Tensor, size: tuple[int, int]) -> Tensor:
    """Each pixel's codebook class: the (B, 3, H, W) normals resized (bilinear) to ``size``,
    then the codeword of the largest dot product, as S2-GAN's data loader assigns them.
    Returns (B, h, w) int64."""
    if tuple(normals.shape[-2:]) != tuple(size):
        normals = F.interpolate(normals, size=size, mode="bilinear", align_corners=False)
    scores = torch.einsum("bchw,kc->bkhw", normals, codebook.to(normals.dtype))
    return scores.argmax(1)


def read_depth(path: Path) -> np.ndarray:
    """A depth map: a ``.npy`` array, or a PNG (16-bit: any unit; the scale does not change
    the normals) as float64 (H, W)."""
    from PIL import Image

    if path.suffix.lower() == ".npy":
        depth = np.load(path, allow_pickle=False)
    else:
        try:
            with Image.open(path) as img:
                depth = np.asarray(img)
        except (OSError, SyntaxError, ValueError) as err:
            raise DataError(f"{path}: not a readable depth map ({err})") from None
    if depth.ndim == 3:
        raise DataError(f"{path}: a depth map has one channel, this one has {depth.shape[2]}. "
                        "Fix: give single-channel (16-bit) PNGs or .npy arrays of depths.")
    return depth.astype(np.float64)


def scaled_intrinsics(intrinsics: tuple[float, float, float, float] | None, height: int,
                      width: int) -> tuple[float, float, float, float]:
    """The given (fx, fy, cx, cy), or NYU Depth v2's Kinect scaled from 640x480 to the map."""
    if intrinsics is not None:
        return intrinsics
    fx, fy, cx, cy = NYU_INTRINSICS
    sx, sy = width / 640, height / 480
    return fx * sx, fy * sy, cx * sx, cy * sy


def write_normals_from_depth(depth_dir: str | Path, out: str | Path,
                             intrinsics: tuple[float, float, float, float] | None = None,
                             progress: bool = True) -> dict:
    """Convert every depth map in ``depth_dir`` (PNG or .npy) into an RGB-encoded normal map
    ``out/<stem>.png`` (:func:`depth_to_normals`). Returns a summary."""
    from PIL import Image
    from tqdm.auto import tqdm

    depth_dir, out = Path(depth_dir), Path(out)
    if not depth_dir.is_dir():
        raise DataError(f"{depth_dir}: folder of depth maps not found")
    files = sorted(p for p in depth_dir.iterdir()
                   if p.suffix.lower() in (".png", ".npy", ".tif", ".tiff"))
    if not files:
        raise DataError(f"{depth_dir}: no depth maps (.png, .npy, .tif) found")
    out.mkdir(parents=True, exist_ok=True)
    for path in tqdm(files, disable=not progress, desc="normals", unit="map"):
        depth = read_depth(path)
        normals = depth_to_normals(depth, scaled_intrinsics(intrinsics, *depth.shape))
        Image.fromarray(encode_normals(normals)).save(out / f"{path.stem}.png")
    return {"out": str(out), "count": len(files),
            "intrinsics": "given" if intrinsics else "NYU Depth v2 Kinect, scaled"}
