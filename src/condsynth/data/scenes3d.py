"""Procedural indoor scenes rendered by ray casting: (image, surface normals, depth) triples.

Made so that S2-GAN (structure, then style) can be trained and tested offline: a room (floor,
back wall, side walls) seen from a camera at a random height, pitch and yaw, holding boxes,
spheres and upright cylinders that rest on the floor. Every surface has a colour and a
procedural texture (stripes, checks, speckle or plain); one directional light from a random
direction plus ambient light shades them (Lambert), with hard shadows cast by the objects.

Everything is numpy ray casting, one ray per pixel: a 64x64 scene renders in a few
milliseconds. Normals are written in the convention of :mod:`condsynth.data.normals` (camera
frame, x right, y up, z towards the viewer, RGB = (n + 1) / 2), depth as 16-bit PNG in
millimetres along the optical axis. The same arguments write the same files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from condsynth.data.normals import encode_normals
from condsynth.errors import ConfigError

FAR = 1e9


@dataclass
class _Surface:
    """What a ray hit: distance, world normal, world point, and the surface's id."""

    t: np.ndarray
    normal: np.ndarray
    ident: np.ndarray


def _planes(origin: np.ndarray, dirs: np.ndarray, planes: list[tuple[np.ndarray, float]],
            first_id: int) -> _Surface:
    """Nearest hit of rays with planes n·p = d (seen from the side the normal faces)."""
    n_rays = dirs.shape[0]
    best = _Surface(np.full(n_rays, FAR), np.zeros((n_rays, 3)), np.full(n_rays, -1))
    for i, (normal, offset) in enumerate(planes):
        denom = dirs @ normal
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (offset - origin @ normal) / denom
        hit = (denom < -1e-9) & (t > 1e-6) & (t < best.t)
        best.t[hit] = t[hit]
        best.normal[hit] = normal
        best.ident[hit] = first_id + i
    return best


def _sphere(origin: np.ndarray, dirs: np.ndarray, centre: np.ndarray,
            radius: float) -> tuple[np.ndarray, np.ndarray]:
    oc = origin - centre
    b = (dirs * oc).sum(-1)
    c = (oc * oc).sum(-1) - radius * radius
    disc = b * b - c
    t = np.where(disc > 0, -b - np.sqrt(np.maximum(disc, 0)), FAR)
    t = np.where(t > 1e-6, t, FAR)
    points = origin + dirs * t[:, None]
    return t, (points - centre) / radius


def _box(origin: np.ndarray, dirs: np.ndarray, centre: np.ndarray, half: np.ndarray,
         yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """A box turned by ``yaw`` about the vertical axis (slab method in its own frame)."""
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])          # world → box frame
    o = (origin - centre) @ rot.T
    d = dirs @ rot.T
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        t1 = (-half - o) * inv
        t2 = (half - o) * inv
    t_near = np.nanmax(np.minimum(t1, t2), axis=1)
    t_far = np.nanmin(np.maximum(t1, t2), axis=1)
    hit = (t_near <= t_far) & (t_near > 1e-6)
    t = np.where(hit, t_near, FAR)
    axis = np.argmax(np.minimum(t1, t2), axis=1)
    local = np.zeros_like(d)
    rows = np.arange(d.shape[0])
    local[rows, axis] = -np.sign(d[rows, axis])
    return t, local @ rot                                        # back to the world frame


def _cylinder(origin: np.ndarray, dirs: np.ndarray, base: np.ndarray, radius: float,
              height: float) -> tuple[np.ndarray, np.ndarray]:
    """An upright cylinder standing on ``base`` (side and top cap)."""
    o = origin - base
    a = dirs[:, 0] ** 2 + dirs[:, 2] ** 2
    b = 2 * (o[..., 0] * dirs[:, 0] + o[..., 2] * dirs[:, 2])
    c = o[..., 0] ** 2 + o[..., 2] ** 2 - radius * radius
    disc = b * b - 4 * a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        t_side = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
    y = o[..., 1] + dirs[:, 1] * t_side
    side = (disc > 0) & (t_side > 1e-6) & (y >= 0) & (y <= height)
    t = np.where(side, t_side, FAR)
    normal = np.zeros_like(dirs)
    points = o + dirs * np.where(side, t_side, 0)[:, None]
    normal[:, 0], normal[:, 2] = points[:, 0] / radius, points[:, 2] / radius
    with np.errstate(divide="ignore", invalid="ignore"):
        t_top = (height - o[..., 1]) / dirs[:, 1]
    top_points = o + dirs * np.where(np.isfinite(t_top), t_top, 0)[:, None]
    top = ((t_top > 1e-6) & (top_points[:, 0] ** 2 + top_points[:, 2] ** 2 <= radius * radius)
           & (t_top < t))
    t = np.where(top, t_top, t)
    normal[top] = [0.0, 1.0, 0.0]
    return t, normal


def _rotation(pitch: float, yaw: float) -> np.ndarray:
    """Camera → world: pitch about x (down is negative), then yaw about y."""
    cp, sp, cy, sy = np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    pitch_m = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    yaw_m = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    return yaw_m @ pitch_m


class _Scene:
    """A room and its objects, with one texture and colour per surface id."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.width = rng.uniform(2.5, 4.0)           # the room spans x in [-w, w]
        self.depth = rng.uniform(4.0, 7.0)           # back wall at z = -depth
        self.eye_height = rng.uniform(1.0, 1.8)      # floor at y = 0
        # Walls and floor: ids 0 floor, 1 back wall, 2 left wall, 3 right wall.
        self.planes = [(np.array([0.0, 1.0, 0.0]), 0.0),
                       (np.array([0.0, 0.0, 1.0]), -self.depth),
                       (np.array([1.0, 0.0, 0.0]), -self.width),
                       (np.array([-1.0, 0.0, 0.0]), -self.width)]
        self.objects: list[tuple[str, dict]] = []
        for _ in range(int(rng.integers(1, 5))):
            kind = str(rng.choice(["box", "sphere", "cylinder"]))
            x = rng.uniform(-self.width + 0.6, self.width - 0.6)
            z = rng.uniform(-self.depth + 0.6, -1.8)
            if kind == "box":
                half = np.array([rng.uniform(0.2, 0.7), rng.uniform(0.2, 0.8),
                                 rng.uniform(0.2, 0.7)])
                self.objects.append((kind, {"centre": np.array([x, half[1], z]), "half": half,
                                            "yaw": rng.uniform(0, np.pi / 2)}))
            elif kind == "sphere":
                r = rng.uniform(0.2, 0.6)
                self.objects.append((kind, {"centre": np.array([x, r, z]), "radius": r}))
            else:
                self.objects.append((kind, {"base": np.array([x, 0.0, z]),
                                            "radius": rng.uniform(0.15, 0.45),
                                            "height": rng.uniform(0.4, 1.6)}))
        count = len(self.planes) + len(self.objects)
        self.colours = rng.uniform(0.15, 0.95, (count, 3))
        self.textures = rng.integers(0, 4, count)            # plain, stripes, checks, speckle
        self.scales = rng.uniform(2.0, 6.0, count)
        self.light = np.array([rng.uniform(-1, 1), rng.uniform(0.4, 1.2), rng.uniform(-0.2, 1)])
        self.light /= np.linalg.norm(self.light)
        self.ambient = rng.uniform(0.2, 0.4)

    def cast(self, origin: np.ndarray, dirs: np.ndarray, room: bool = True) -> _Surface:
        """Nearest hits of rays from ``origin`` ((3,) or (N, 3)); without ``room`` only the
        objects (shadow rays: the light comes from outside the open room)."""
        best = _planes(origin, dirs, self.planes if room else [], 0)
        for i, (kind, p) in enumerate(self.objects):
            if kind == "box":
                t, normal = _box(origin, dirs, p["centre"], p["half"], p["yaw"])
            elif kind == "sphere":
                t, normal = _sphere(origin, dirs, p["centre"], p["radius"])
            else:
                t, normal = _cylinder(origin, dirs, p["base"], p["radius"], p["height"])
            nearer = t < best.t
            best.t[nearer] = t[nearer]
            best.normal[nearer] = normal[nearer]
            best.ident[nearer] = len(self.planes) + i
        return best

    def texture(self, ident: np.ndarray, points: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
        """(N, 3) albedo of the surface points."""
        colour = self.colours[np.maximum(ident, 0)]
        kind = self.textures[np.maximum(ident, 0)]
        scale = self.scales[np.maximum(ident, 0)]
        u = points[:, 0] + points[:, 2]
        v = points[:, 1] + 0.5 * points[:, 2]
        stripes = 0.75 + 0.25 * (np.sin(u * scale * 2) > 0)
        checks = 0.7 + 0.3 * ((np.floor(u * scale / 2) + np.floor(v * scale / 2)) % 2)
        speckle = 0.8 + 0.2 * rng.random(len(u))
        factor = np.select([kind == 1, kind == 2, kind == 3], [stripes, checks, speckle], 1.0)
        return colour * factor[:, None]


def render_scene(size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene: (H, W, 3) uint8 image, (H, W, 3) float32 unit normals (camera frame) and
    (H, W) float32 depth in metres along the optical axis."""
    rng = np.random.default_rng(seed)
    scene = _Scene(rng)
    focal = size / (2 * np.tan(np.deg2rad(rng.uniform(50, 65)) / 2))
    rotation = _rotation(rng.uniform(-0.35, -0.05), rng.uniform(-0.35, 0.35))
    origin = np.array([rng.uniform(-0.5, 0.5), scene.eye_height, rng.uniform(-0.3, 0.3)])
    ys, xs = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
    cam = np.stack([(xs - size / 2) / focal, -(ys - size / 2) / focal,
                    -np.ones_like(xs)], -1).reshape(-1, 3)
    dirs_cam = cam / np.linalg.norm(cam, axis=1, keepdims=True)
    dirs = dirs_cam @ rotation.T
    hit = scene.cast(origin, dirs)
    points = origin + dirs * hit.t[:, None]
    normal = hit.normal / np.maximum(np.linalg.norm(hit.normal, axis=1, keepdims=True), 1e-12)
    albedo = scene.texture(hit.ident, points, rng)
    lambert = np.clip(normal @ scene.light, 0, None)
    shadow = scene.cast(points + normal * 1e-4, np.broadcast_to(scene.light, dirs.shape).copy(),
                        room=False)
    lit = lambert * (shadow.t >= FAR)
    rgb = albedo * (scene.ambient + (1 - scene.ambient) * lit)[:, None]
    image = (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8).reshape(size, size, 3)
    normals_cam = (normal @ rotation).reshape(size, size, 3).astype(np.float32)
    depth = (hit.t * -dirs_cam[:, 2]).reshape(size, size).astype(np.float32)
    return image, normals_cam, depth


def write_dataset(out: str | Path, count: int, size: int, seed: int = 0,
                  test_count: int | None = None, progress: bool = True) -> dict:
    """Write ``{train,test}_img/``, ``{train,test}_normals/`` (RGB-encoded normals) and
    ``{train,test}_depth/`` (16-bit PNG, millimetres) with files ``000000.png`` ...: the
    ``normals`` layout. Returns a summary."""
    if count < 1 or (test_count is not None and test_count < 0) or size < 8:
        raise ConfigError(f"--count must be at least 1, --test-count at least 0 and --size at "
                          f"least 8; got {count}, {test_count} and {size}")
    test_count = max(1, count // 10) if test_count is None else test_count
    root = Path(out)
    jobs = [("train", i) for i in range(count)] + [("test", i) for i in range(test_count)]
    for split in ("train", "test"):
        for kind in ("img", "normals", "depth"):
            (root / f"{split}_{kind}").mkdir(parents=True, exist_ok=True)
    for split, i in tqdm(jobs, disable=not progress, desc="rendering", unit="scene"):
        scene_seed = int(seed) * 1_000_003 + (0 if split == "train" else 500_000_000) + i
        image, normals, depth = render_scene(size, scene_seed)
        name = f"{i:06d}.png"
        Image.fromarray(image).save(root / f"{split}_img" / name)
        Image.fromarray(encode_normals(normals)).save(root / f"{split}_normals" / name)
        millimetres = np.clip(np.round(depth * 1000), 0, 65535).astype(np.uint16)
        Image.fromarray(millimetres).save(root / f"{split}_depth" / name)
    summary = {"out": str(root), "train_count": count, "test_count": test_count,
               "size": size, "seed": seed, "layout": "normals"}
    (root / "scenes.json").write_text(json.dumps(summary, indent=1))
    return summary
