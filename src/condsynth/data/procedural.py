"""Procedural outdoor scenes: the built-in dataset of label maps, instance maps and images.

Each scene is drawn from a small scene grammar with a pinhole ground-plane camera: a horizon,
sky with clouds, optional mountain ranges, a ground plane of grass with an optional road
(converging to its vanishing point), lake or sea with a sandy shore, and things standing on the
ground (buildings, trees, cars, persons) whose size and height in the image follow their
distance. The image is rendered from the layout with per-scene lighting, per-class colour
jitter, per-instance colours and procedural textures, so one label map admits many images.

It exists so that pix2pix (Isola et al., 2017), pix2pixHD (Wang et al., 2018) and SPADE
(Park et al., 2019) can be trained and tested end to end in minutes on a CPU, with no download.
The label/instance encoding follows Cityscapes: stuff pixels hold their class id, instance ``k``
of thing class ``c`` holds ``c * 1000 + k``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from condsynth.errors import ConfigError

__all__ = [
    "CLASS_COLOURS",
    "CLASS_NAMES",
    "THING_CLASSES",
    "colourize",
    "make_scene",
    "write_dataset",
]

CLASS_NAMES: list[str] = [
    "sky", "cloud", "mountain", "water", "grass", "road",
    "building", "tree", "car", "person", "sand",
]
# Visualisation palette only (the rendered image uses its own, jittered colours).
CLASS_COLOURS: list[tuple[int, int, int]] = [
    (110, 170, 235),  # sky
    (235, 235, 245),  # cloud
    (125, 95, 70),    # mountain
    (25, 65, 200),    # water
    (120, 200, 60),   # grass
    (128, 64, 128),   # road
    (140, 140, 150),  # building
    (20, 95, 35),     # tree
    (15, 15, 145),    # car
    (225, 25, 60),    # person
    (235, 210, 150),  # sand
]
SKY, CLOUD, MOUNTAIN, WATER, GRASS, ROAD, BUILDING, TREE, CAR, PERSON, SAND = range(11)
THING_CLASSES: frozenset[int] = frozenset({BUILDING, TREE, CAR, PERSON})

# Image-only parts: regions that share a label but not an appearance (windows in a wall, lane
# markings on a road). The layout draws them; the renderer colours them.
(P_NONE, P_MOUNT_FAR, P_MOUNT_NEAR, P_SNOW, P_ROAD_MARK, P_WALL, P_WINDOW, P_ROOF, P_DOOR,
 P_CROWN, P_TRUNK, P_CAR_BODY, P_CAR_GLASS, P_WHEEL, P_TAIL_LIGHT, P_HEAD_LIGHT, P_SKIN, P_TOP,
 P_LEGS) = range(19)

# Draws a thing's shapes given its foot point (x, y) in pixels and its pixels per unit.
_ShapeMaker = Callable[[float, float, float], list[tuple]]

_NOISE_SIZE = 64          # side of the value-noise lattice (a power of two: indices wrap by &)
_DEPTH_FAR = 400.0        # depth given to rows that touch the horizon (avoids 1/0)


# --------------------------------------------------------------------------- noise


def _noise_table(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, (_NOISE_SIZE, _NOISE_SIZE)).astype(np.float32)


def _value_noise(table: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Smooth value noise in [-1, 1] at arbitrary coordinates (lattice spacing 1, wraps)."""
    mask = _NOISE_SIZE - 1
    u0 = np.floor(u)
    v0 = np.floor(v)
    fu = (u - u0).astype(np.float32)
    fv = (v - v0).astype(np.float32)
    fu = fu * fu * (3.0 - 2.0 * fu)   # smoothstep: no visible lattice creases
    fv = fv * fv * (3.0 - 2.0 * fv)
    iu = u0.astype(np.int64) & mask
    iv = v0.astype(np.int64) & mask
    iu1 = (iu + 1) & mask
    iv1 = (iv + 1) & mask
    a = table[iv, iu]
    b = table[iv, iu1]
    c = table[iv1, iu]
    d = table[iv1, iu1]
    return a + (b - a) * fu + (c - a) * fv + (a - b - c + d) * fu * fv


def _fbm(table: np.ndarray, u: np.ndarray, v: np.ndarray, octaves: int = 3) -> np.ndarray:
    """Fractal sum of value-noise octaves, roughly in [-1, 1]."""
    total = np.float32(0.0)
    amplitude, norm = 1.0, 0.0
    for octave in range(octaves):
        scale = float(2**octave)
        # Shift each octave so that the octaves do not share lattice points.
        total = total + amplitude * _value_noise(table, u * scale + 17.3 * octave,
                                          v * scale + 31.7 * octave)
        norm += amplitude
        amplitude *= 0.5
    return total / norm


def _noise_1d(rng: np.random.Generator, x: np.ndarray, period: float, octaves: int) -> np.ndarray:
    """Fractal 1-D noise over pixel columns ``x`` with feature size ``period`` pixels."""
    total = np.zeros(x.shape, np.float32)
    amplitude, norm = 1.0, 0.0
    for _ in range(octaves):
        knots = int(np.ceil((x.max() - x.min()) / period)) + 2
        values = rng.uniform(-1.0, 1.0, knots)
        total += amplitude * np.interp((x - x.min()) / period, np.arange(knots), values)
        norm += amplitude
        amplitude *= 0.5
        period /= 2.0
    return total / norm


# --------------------------------------------------------------------------- layout


@dataclass
class _Thing:
    """One object instance: its class, depth (for far-to-near painting) and shapes."""

    cls: int
    depth: float
    foot_x: float                 # pixel column of the contact point with the ground
    foot_y: float                 # pixel row of the contact point
    width: float                  # pixel width at the ground (for the cast shadow)
    shapes: list[tuple] = field(default_factory=list)   # (kind, part, *params)


@dataclass
class _Ground:
    """The ground plane's stuff regions, as functions of ground coordinates.

    ``lateral`` is the sideways distance and ``depth`` the forward distance, both in units of
    the camera height; the pixel at (x, y) sees ``depth = H / (y - horizon(x))`` and
    ``lateral = (x - centre_x) / (y - horizon(x))``.
    """

    table: np.ndarray
    road: tuple[float, float, float] | None = None          # x0, slope, half width
    lake: tuple[float, float, float, float] | None = None   # centre x, centre d, radii x, d
    sea_shore: float | None = None                           # depth at which the sea begins
    sand_width: float = 0.0                                  # shore width (lake: relative)

    def road_centre(self, depth: np.ndarray | float) -> np.ndarray | float:
        assert self.road is not None
        return self.road[0] + self.road[1] * depth

    def classify(self, lateral: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Stuff class ids (grass, sand, water, road) of ground points."""
        cls = np.full(lateral.shape, GRASS, np.uint8)
        if self.sea_shore is not None:
            # A wavy shoreline: noise along the lateral axis, in depth units.
            wobble = self.sea_shore * 0.12 * _value_noise(self.table, lateral * 0.15, 0.0)
            shore = self.sea_shore + wobble
            beach = shore - self.sand_width * self.sea_shore
            cls[depth > beach] = SAND
            cls[depth > shore] = WATER
        if self.lake is not None:
            lx, ld, rx, rd = self.lake
            wobble = 0.25 * _value_noise(self.table, lateral / rx * 2.0 + 9.0, depth / rd * 2.0)
            e = ((lateral - lx) / rx) ** 2 + ((depth - ld) / rd) ** 2 + wobble
            if self.sand_width > 0:
                cls[e < (1.0 + self.sand_width) ** 2] = SAND
            cls[e < 1.0] = WATER
        if self.road is not None:
            on_road = np.abs(lateral - self.road_centre(depth)) < self.road[2]
            if self.sea_shore is not None:
                on_road &= depth < (beach + shore) / 2   # the road runs onto the beach
            cls[on_road] = ROAD
        return cls

    def at(self, lateral: float, depth: float) -> int:
        return int(self.classify(np.array([lateral]), np.array([depth]))[0])


@dataclass
class _Layout:
    """Everything the renderer needs: the maps and the scene's geometry."""

    label: np.ndarray          # (H, W) uint8
    instance: np.ndarray       # (H, W) int32
    part: np.ndarray           # (H, W) uint8 image-only sub-regions
    nx: np.ndarray             # (H, W) float32 horizontal shape coordinate in [-1, 1]
    ny: np.ndarray             # (H, W) float32 vertical shape coordinate in [-1, 1]
    horizon: np.ndarray        # (W,) float32 horizon row per column
    depth: np.ndarray          # (H, W) float32 ground depth (0 above the horizon)
    lateral: np.ndarray        # (H, W) float32 ground lateral coordinate
    things: list[_Thing]
    ground: _Ground


class _Canvas:
    """Paints shapes into the label, instance, part and shape-coordinate maps."""

    def __init__(self, height: int, width: int) -> None:
        self.height, self.width = height, width
        self.label = np.zeros((height, width), np.uint8)
        self.instance = np.zeros((height, width), np.int32)
        self.part = np.zeros((height, width), np.uint8)
        self.nx = np.zeros((height, width), np.float32)
        self.ny = np.zeros((height, width), np.float32)

    def _window(self, x0: float, y0: float, x1: float, y1: float):
        """Integer bounds of a float box, clipped, and pixel-centre grids inside it."""
        c0, c1 = max(int(np.floor(x0)), 0), min(int(np.ceil(x1)), self.width)
        r0, r1 = max(int(np.floor(y0)), 0), min(int(np.ceil(y1)), self.height)
        if c0 >= c1 or r0 >= r1:
            return None
        xs = np.arange(c0, c1, dtype=np.float32)[None, :] + 0.5
        ys = np.arange(r0, r1, dtype=np.float32)[:, None] + 0.5
        return (slice(r0, r1), slice(c0, c1)), xs, ys

    def paint(self, cls: int, inst: int, shape: tuple) -> None:
        kind, part, *p = shape
        if kind == "rect":
            x0, y0, x1, y1 = p
            win = self._window(x0, y0, x1, y1)
            if win is None:
                return
            sl, xs, ys = win
            u = (xs - x0) / max(x1 - x0, 1e-3) * 2.0 - 1.0
            v = (ys - y0) / max(y1 - y0, 1e-3) * 2.0 - 1.0
            mask = (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0)
        elif kind == "ellipse":
            cx, cy, rx, ry = p
            win = self._window(cx - rx, cy - ry, cx + rx, cy + ry)
            if win is None:
                return
            sl, xs, ys = win
            u = (xs - cx) / max(rx, 1e-3)
            v = (ys - cy) / max(ry, 1e-3)
            mask = u * u + v * v <= 1.0
        elif kind == "trapezoid":  # centred at cx, rows top..bottom, half widths top/bottom
            cx, top, bottom, top_hw, bottom_hw = p
            half = max(top_hw, bottom_hw)
            win = self._window(cx - half, top, cx + half, bottom)
            if win is None:
                return
            sl, xs, ys = win
            t = (ys - top) / max(bottom - top, 1e-3)
            reach = top_hw + (bottom_hw - top_hw) * t          # half width at each row
            u = (xs - cx) / max(half, 1e-3)
            v = t * 2.0 - 1.0
            mask = (np.abs(xs - cx) <= reach) & (t >= 0.0) & (t <= 1.0)
        elif kind == "windows":    # a window grid inside a wall box: image-only detail
            x0, y0, x1, y1, cols, rows = p
            win = self._window(x0, y0, x1, y1)
            if win is None:
                return
            sl, xs, ys = win
            fu = ((xs - x0) / (x1 - x0) * cols) % 1.0
            fv = ((ys - y0) / (y1 - y0) * rows) % 1.0
            inside = (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
            mask = inside & (fu > 0.28) & (fu < 0.72) & (fv > 0.25) & (fv < 0.7)
            u = np.broadcast_to((xs - x0) / (x1 - x0) * 2.0 - 1.0, mask.shape)
            v = np.broadcast_to((ys - y0) / (y1 - y0) * 2.0 - 1.0, mask.shape)
        else:
            raise AssertionError(kind)
        if kind != "windows":
            # Windows only change the part; the wall below has already set label and id.
            self.label[sl][mask] = cls
            self.instance[sl][mask] = inst
        self.part[sl][mask] = part
        self.nx[sl][mask] = np.broadcast_to(u, mask.shape)[mask]
        self.ny[sl][mask] = np.broadcast_to(v, mask.shape)[mask]


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    # Depths drawn log-uniformly: as many near objects as far ones, per octave of distance.
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


class _SceneBuilder:
    """Draws the layout of one scene from the layout random generator."""

    def __init__(self, height: int, width: int, rng: np.random.Generator) -> None:
        self.h, self.w, self.rng = height, width, rng
        self.canvas = _Canvas(height, width)
        self.things: list[_Thing] = []
        self.centre_x = width / 2.0
        self.aspect = width / height

    # geometry ---------------------------------------------------------------

    def horizon_at(self, x: float) -> float:
        return float(self.horizon0 + self.tilt * (x - self.centre_x))

    def project(self, lateral: float, depth: float) -> tuple[float, float, float]:
        """Ground point -> (pixel x, pixel y, pixels per unit at that depth)."""
        scale = self.h / depth
        x = self.centre_x + lateral * scale
        return x, self.horizon_at(x) + scale, scale

    def lateral_at(self, x: float, depth: float) -> float:
        return (x - self.centre_x) * depth / self.h

    def random_ground_point(self, near: float, far: float) -> tuple[float, float]:
        depth = _log_uniform(self.rng, max(near, self.depth_min), max(far, self.depth_min * 1.2))
        x = self.rng.uniform(-0.05, 1.05) * self.w
        return self.lateral_at(x, depth), depth

    # stuff ------------------------------------------------------------------

    def build(self) -> _Layout:
        rng, h, w = self.rng, self.h, self.w
        self.horizon0 = rng.uniform(0.30, 0.55) * h
        self.tilt = rng.uniform(-0.04, 0.04) if rng.random() < 0.5 else 0.0
        cols = np.arange(w, dtype=np.float32) + 0.5
        horizon = (self.horizon0 + self.tilt * (cols - self.centre_x)).astype(np.float32)
        # Depth of the bottom row: nearer ground is below the image.
        self.depth_min = h / (h - float(horizon.min()))
        rows = np.arange(h, dtype=np.float32)[:, None] + 0.5
        dy = rows - horizon[None, :]                                   # (H, W)
        ground = dy > 0
        depth = np.where(ground, h / np.maximum(dy, h / _DEPTH_FAR), 0).astype(np.float32)
        lateral = np.where(ground, (cols[None, :] - self.centre_x) / np.maximum(dy, 1e-3),
                           0).astype(np.float32)

        self._clouds(horizon)
        self._mountains(cols, horizon)
        self.ground = _Ground(table=_noise_table(rng))
        self._ground_regions()
        c = self.canvas
        c.label[ground] = self.ground.classify(lateral[ground], depth[ground])
        self._road_marks(ground, lateral, depth)

        self._buildings()
        self._trees()
        self._cars()
        self._persons()

        # Cityscapes ids: stuff = class id; instance k of thing class c = c * 1000 + k.
        c.instance[:] = c.label
        counters = dict.fromkeys(THING_CLASSES, 0)
        ids = []
        for thing in self.things:
            ids.append(thing.cls * 1000 + counters[thing.cls])
            counters[thing.cls] += 1
        # Far to near, so that nearer objects occlude farther ones.
        for order in sorted(range(len(self.things)), key=lambda i: -self.things[i].depth):
            thing = self.things[order]
            for shape in thing.shapes:
                c.paint(thing.cls, ids[order], shape)
        return _Layout(c.label, c.instance, c.part, c.nx, c.ny, horizon, depth, lateral,
                       self.things, self.ground)

    def _clouds(self, horizon: np.ndarray) -> None:
        rng, c = self.rng, self.canvas
        c.label[:] = SKY
        top = float(horizon.min())
        count = int(rng.choice([0, 1, 2, 3, 4, 5], p=[0.12, 0.15, 0.25, 0.2, 0.15, 0.13]))
        count = int(round(count * self.aspect))
        for _ in range(count):
            cx = rng.uniform(0, self.w)
            cy = rng.uniform(0.08, 0.75) * top
            rx = rng.uniform(0.05, 0.16) * self.h * (1.0 + cy / top)   # nearer the horizon
            ry = rx * rng.uniform(0.25, 0.45)                           # looks farther/flatter
            base = cy + ry * 0.45                     # cumulus: flat bottom, puffy top
            win = c._window(cx - 1.6 * rx, cy - 1.6 * ry, cx + 1.6 * rx, base)
            if win is None:
                continue
            sl, xs, ys = win
            density = np.zeros((ys.shape[0], xs.shape[1]), np.float32)
            for _ in range(int(rng.integers(3, 8))):
                bx = cx + rng.uniform(-0.8, 0.8) * rx
                by = cy + rng.uniform(-0.4, 0.3) * ry
                br = rng.uniform(0.35, 0.65) * rx
                d2 = ((xs - bx) / br) ** 2 + ((ys - by) / (br * ry / rx * 1.6)) ** 2
                density = np.maximum(density, 1.0 - d2)
            mask = (density > 0) & (ys < base) & (ys < horizon[None, sl[1]])
            c.label[sl][mask] = CLOUD
            c.nx[sl][mask] = np.broadcast_to(density, mask.shape)[mask]     # puff density
            c.ny[sl][mask] = np.broadcast_to((ys - cy) / (base - cy + ry), mask.shape)[mask]

    def _mountains(self, cols: np.ndarray, horizon: np.ndarray) -> None:
        rng, c = self.rng, self.canvas
        if rng.random() > 0.6:
            return
        rows = np.arange(self.h, dtype=np.float32)[:, None] + 0.5
        top = float(horizon.min())
        # Two ranges: a tall, hazy far one and a lower, darker near one (drawn over it).
        for part, amp, period in ((P_MOUNT_FAR, rng.uniform(0.25, 0.7), 0.35),
                                  (P_MOUNT_NEAR, rng.uniform(0.1, 0.35), 0.2)):
            if part == P_MOUNT_NEAR and rng.random() < 0.4:
                continue
            shape = _noise_1d(rng, cols, period * self.w, octaves=5)
            # An envelope so that ranges often cover only part of the horizon.
            envelope = np.clip(0.6 + _noise_1d(rng, cols, 0.8 * self.w, octaves=1) * 1.2, 0, 1)
            height = amp * top * envelope * np.clip(0.55 + 0.75 * shape, 0.0, 1.0)
            ridge = horizon - height                                       # (W,)
            mask = (rows >= ridge[None, :]) & (rows < horizon[None, :]) & (height[None, :] > 1)
            c.label[mask] = MOUNTAIN
            c.part[mask] = part
            # nx: slope of the ridge (which side faces the sun); ny: 0 at ridge, 1 at foot.
            # Smoothed, so that faces are shaded as wholes rather than as column stripes.
            kernel = np.ones(max(3, self.w // 24), np.float32)
            smooth = np.convolve(np.pad(ridge, kernel.size, mode="edge"), kernel / kernel.sum(),
                                 mode="same")[kernel.size:-kernel.size]
            slope = np.clip(np.gradient(smooth) * 2.0, -1, 1).astype(np.float32)
            c.nx[mask] = np.broadcast_to(slope[None, :], mask.shape)[mask]
            rel = (rows - ridge[None, :]) / np.maximum(height[None, :], 1.0)
            c.ny[mask] = rel[mask]
            if part == P_MOUNT_FAR and amp > 0.45 and rng.random() < 0.6:
                snowline = horizon - amp * top * rng.uniform(0.5, 0.75)
                wobble = _noise_1d(rng, cols, 0.03 * self.w, octaves=2) * 0.05 * amp * top
                snow = mask & (rows < (snowline + wobble)[None, :])
                c.part[snow] = P_SNOW

    def _ground_regions(self) -> None:
        rng, g = self.rng, self.ground
        half_view = self.aspect / 2.0 / (1.0 - self.horizon0 / self.h)   # lateral at bottom
        if rng.random() < 0.7:
            x0 = rng.uniform(-1.0, 1.0) * max(half_view, 1.0) * 1.2
            slope = rng.uniform(-0.15, 0.15)        # the road's vanishing point moves sideways
            half_width = rng.uniform(0.9, 2.0)
            g.road = (x0, slope, half_width)
        water = rng.random()
        if water < 0.22:                            # a sea reaching to the horizon
            g.sea_shore = _log_uniform(rng, 6.0, 30.0)
            g.sand_width = rng.uniform(0.15, 0.4) if rng.random() < 0.8 else 0.0
        elif water < 0.55:                          # a lake, kept clear of the road
            for _ in range(10):
                depth = _log_uniform(rng, 5.0, 40.0)
                radius_d = depth * rng.uniform(0.15, 0.45)
                radius_x = rng.uniform(0.4, 1.2) * depth * 0.5
                lateral = self.lateral_at(rng.uniform(0.1, 0.9) * self.w, depth)
                if depth - radius_d < self.depth_min * 1.3:
                    continue
                if g.road is not None:
                    margin = radius_x * 1.5 + g.road[2] + 1.0
                    if any(abs(lateral - g.road_centre(d)) < margin
                           for d in (depth - radius_d, depth, depth + radius_d)):
                        continue
                g.lake = (lateral, depth, radius_x, radius_d)
                g.sand_width = rng.uniform(0.08, 0.25) if rng.random() < 0.5 else 0.0
                break

    def _road_marks(self, ground: np.ndarray, lateral: np.ndarray, depth: np.ndarray) -> None:
        g, c = self.ground, self.canvas
        if g.road is None:
            return
        on_road = ground & (c.label == ROAD)
        d = depth[on_road]
        offset = lateral[on_road] - g.road_centre(d)
        # Lines fade out where they would be thinner than ~0.6 pixel (aliasing speckle).
        visible = 0.08 * self.h / d > 0.6
        centre = (np.abs(offset) < 0.05) & ((d * 0.45) % 1.0 < 0.5)
        edge = np.abs(np.abs(offset) - (g.road[2] - 0.12)) < 0.04
        marks = np.zeros(on_road.shape, bool)
        marks[on_road] = visible & (centre | edge)
        c.part[marks] = P_ROAD_MARK

    # things -----------------------------------------------------------------

    def _on(self, lateral: float, depth: float, allowed: tuple[int, ...]) -> bool:
        return self.ground.at(lateral, depth) in allowed

    def _add(self, cls: int, lateral: float, depth: float, width_units: float,
             make: _ShapeMaker) -> None:
        x, y, scale = self.project(lateral, depth)
        if x + width_units * scale < 0 or x - width_units * scale > self.w:
            return
        self.things.append(_Thing(cls, depth, x, y, width_units * scale, make(x, y, scale)))

    def _buildings(self) -> None:
        rng = self.rng
        if rng.random() > 0.6:
            return
        for _ in range(int(rng.integers(1, 4))):
            # A street front: adjacent buildings, mostly touching (shared walls).
            depth = _log_uniform(rng, max(6.0, self.depth_min * 2), 45.0)
            lateral = self.lateral_at(rng.uniform(-0.1, 0.9) * self.w, depth)
            tall = rng.random() < 0.5 + 0.3 * min(depth / 45.0, 1.0)
            for _ in range(int(rng.integers(2, 7))):
                width = rng.uniform(1.5, 4.0) if tall else rng.uniform(1.8, 3.0)
                centre = lateral + width / 2
                if all(self._on(centre + dx * width / 2, depth, (GRASS, SAND))
                       for dx in (-0.9, 0.0, 0.9)):
                    self._add(BUILDING, centre, depth + rng.uniform(0, 0.4), width / 2,
                              self._building_shapes(width, tall))
                lateral += width + (0.0 if rng.random() < 0.75 else rng.uniform(0.3, 1.5))

    def _building_shapes(self, width: float, tall: bool) -> _ShapeMaker:
        rng = self.rng
        height = rng.uniform(2.0, 7.0) if tall else rng.uniform(1.0, 1.8)
        floors = max(1, int(round(height / (0.5 if tall else 0.55))))
        cols = max(1, int(round(width / rng.uniform(0.45, 0.7))))
        pitched = (not tall) and rng.random() < 0.75
        roof = rng.uniform(0.22, 0.4)

        def make(x: float, y: float, s: float) -> list[tuple]:
            x0, x1 = x - width / 2 * s, x + width / 2 * s
            top = y - height * s
            shapes: list[tuple] = [("rect", P_WALL, x0, top, x1, y)]
            if pitched:
                shapes.append(("trapezoid", P_ROOF, x, top - roof * width * s, top + 0.5,
                               0.0, width / 2 * s * 1.08))
            else:
                shapes.append(("rect", P_ROOF, x0, top, x1, top + max(0.12 * s, 1.0)))
            # Windows only where a window cell spans enough pixels to read as one.
            if (x1 - x0) / cols >= 3.0 and height * s / floors >= 3.0:
                shapes.append(("windows", P_WINDOW, x0 + 0.05 * width * s, top + 0.12 * s,
                               x1 - 0.05 * width * s, y, cols, floors))
                if not tall or rng.random() < 0.5:
                    door_w = min(0.25, 0.2 * width) * s
                    dx = rng.uniform(-0.25, 0.25) * width * s
                    shapes.append(("rect", P_DOOR, x + dx - door_w, y - 0.38 * s,
                                   x + dx + door_w, y))
            return shapes

        return make

    def _trees(self) -> None:
        rng, g = self.rng, self.ground
        if rng.random() > 0.88:
            return
        conifer_share = rng.uniform(0.0, 1.0)
        groups: list[tuple[float, float, float, float, int]] = []  # lateral, depth, dx, dd, n
        if g.road is not None and rng.random() < 0.6:
            # An avenue: a row along the road side, trees overlapping in the image.
            side = rng.choice([-1.0, 1.0])
            depth = _log_uniform(rng, self.depth_min * 1.5, 10.0)
            lateral = g.road_centre(depth) + side * (g.road[2] + rng.uniform(0.8, 2.0))
            groups.append((lateral, depth, g.road[1] * 3.0, 3.0, int(rng.integers(3, 8))))
        for _ in range(int(rng.integers(1, 4) * self.aspect)):
            lateral, depth = self.random_ground_point(self.depth_min * 1.8, 40.0)
            groups.append((lateral, depth, 1.4, 0.0, int(rng.integers(1, 6))))
        for lateral, depth, step_x, step_d, count in groups:
            for i in range(count):
                la = lateral + i * step_x + rng.normal(0, 0.2)
                de = depth + i * step_d + rng.normal(0, 0.3) + (0 if step_d else rng.uniform(0, 2))
                if de < self.depth_min * 1.05 or not self._on(la, de, (GRASS, SAND)):
                    continue
                self._add(TREE, la, de, 0.6, self._tree_shapes(rng.random() < conifer_share))

    def _tree_shapes(self, conifer: bool) -> _ShapeMaker:
        rng = self.rng
        height = rng.uniform(1.8, 4.5)
        crown = rng.uniform(0.24, 0.36) * (0.75 if conifer else 1.0) * height
        trunk = rng.uniform(0.025, 0.04) * height
        lumps = [(rng.uniform(-0.35, 0.35), rng.uniform(-0.2, 0.15), rng.uniform(0.6, 0.85))
                 for _ in range(int(rng.integers(0, 4)))]

        def make(x: float, y: float, s: float) -> list[tuple]:
            shapes: list[tuple] = []
            if conifer:
                shapes.append(("rect", P_TRUNK, x - trunk * s, y - 0.35 * height * s,
                               x + trunk * s, y))
                # Stacked tiers, wider at the bottom.
                for tier in range(3):
                    bottom = y - (0.15 + 0.22 * tier) * height * s
                    top = y - (0.55 + 0.15 * tier) * height * s - 0.15 * height * s
                    shapes.append(("trapezoid", P_CROWN, x, top, bottom, 0.0,
                                   crown * s * (1.25 - 0.3 * tier)))
            else:
                centre = y - (height - crown * 1.1) * s
                shapes.append(("rect", P_TRUNK, x - trunk * s, centre, x + trunk * s, y))
                shapes.append(("ellipse", P_CROWN, x, centre, crown * s, crown * 1.15 * s))
                for dx, dy, r in lumps:
                    shapes.append(("ellipse", P_CROWN, x + dx * crown * 2 * s,
                                   centre + dy * crown * 2 * s, crown * r * s,
                                   crown * r * 1.1 * s))
            return shapes

        return make

    def _cars(self) -> None:
        rng, g = self.rng, self.ground
        if g.road is None or rng.random() > 0.85:
            return
        lanes = [-0.5, 0.5] if g.road[2] < 1.4 else [-0.75, -0.25, 0.25, 0.75]
        for _ in range(int(rng.integers(1, 4))):
            lane = float(rng.choice(lanes))
            depth = _log_uniform(rng, self.depth_min * 1.15, 30.0)
            # A queue: cars in one lane, a car length apart, overlapping in the image.
            for _ in range(int(rng.integers(1, 5))):
                lateral = g.road_centre(depth) + lane * g.road[2] + rng.normal(0, 0.05)
                if self._on(lateral, depth, (ROAD,)):
                    self._add(CAR, lateral, depth, 0.55, self._car_shapes(lane > 0))
                depth += rng.uniform(2.6, 5.0)

    def _car_shapes(self, oncoming: bool) -> _ShapeMaker:
        rng = self.rng
        width = rng.uniform(0.95, 1.15)
        body = rng.uniform(0.4, 0.55)
        cabin = rng.uniform(0.3, 0.45)

        def make(x: float, y: float, s: float) -> list[tuple]:
            hw = width / 2 * s
            body_top = y - (0.12 + body) * s
            cabin_top = body_top - cabin * s
            light_w, light_h = 0.16 * s, 0.09 * s
            lamp = P_HEAD_LIGHT if oncoming else P_TAIL_LIGHT
            return [
                ("rect", P_WHEEL, x - hw + 0.04 * s, y - 0.25 * s, x - hw + 0.24 * s, y),
                ("rect", P_WHEEL, x + hw - 0.24 * s, y - 0.25 * s, x + hw - 0.04 * s, y),
                ("rect", P_CAR_BODY, x - hw, body_top, x + hw, y - 0.12 * s),
                # Cabin narrowing to the roof, and its rear (or front) window.
                ("trapezoid", P_CAR_BODY, x, cabin_top, body_top + 0.5, hw * 0.62, hw * 0.92),
                ("trapezoid", P_CAR_GLASS, x, cabin_top + 0.06 * s, body_top - 0.03 * s,
                 hw * 0.52, hw * 0.8),
                ("rect", lamp, x - hw + 0.05 * s, body_top + 0.08 * s,
                 x - hw + 0.05 * s + light_w, body_top + 0.08 * s + light_h),
                ("rect", lamp, x + hw - 0.05 * s - light_w, body_top + 0.08 * s,
                 x + hw - 0.05 * s, body_top + 0.08 * s + light_h),
            ]

        return make

    def _persons(self) -> None:
        rng, g = self.rng, self.ground
        if rng.random() > 0.7:
            return
        for _ in range(int(rng.integers(1, 4))):
            if g.road is not None and rng.random() < 0.6:
                depth = _log_uniform(rng, self.depth_min * 1.6, 20.0)
                side = rng.choice([-1.0, 1.0])
                lateral = g.road_centre(depth) + side * (g.road[2] + rng.uniform(0.2, 1.2))
            else:
                lateral, depth = self.random_ground_point(self.depth_min * 1.6, 20.0)
            # A group standing shoulder to shoulder: touching or overlapping instances.
            for _ in range(int(rng.integers(1, 5))):
                if self._on(lateral, depth, (GRASS, SAND, ROAD)):
                    self._add(PERSON, lateral, depth, 0.2, self._person_shapes())
                lateral += rng.uniform(0.22, 0.4) * rng.choice([-1.0, 1.0, 1.0])
                depth += rng.normal(0, 0.15)

    def _person_shapes(self) -> _ShapeMaker:
        rng = self.rng
        height = rng.uniform(0.95, 1.15)
        build = rng.uniform(0.85, 1.15)
        skirt = rng.random() < 0.25

        def make(x: float, y: float, s: float) -> list[tuple]:
            hs = height * s
            half = 0.1 * build * s
            legs_top = y - 0.5 * hs
            shapes: list[tuple] = []
            if skirt:
                shapes.append(("rect", P_SKIN, x - half * 0.7, y - 0.3 * hs, x - half * 0.1, y))
                shapes.append(("rect", P_SKIN, x + half * 0.1, y - 0.3 * hs, x + half * 0.7, y))
                shapes.append(("trapezoid", P_LEGS, x, legs_top - 0.05 * hs, y - 0.28 * hs,
                               half * 1.0, half * 1.5))
            else:
                shapes.append(("rect", P_LEGS, x - half, legs_top, x - half * 0.1, y))
                shapes.append(("rect", P_LEGS, x + half * 0.1, legs_top, x + half, y))
            shapes.append(("trapezoid", P_TOP, x, y - 0.83 * hs, legs_top + 0.02 * hs,
                           half * 1.4, half * 1.15))
            shapes.append(("ellipse", P_SKIN, x, y - 0.91 * hs, 0.07 * hs, 0.085 * hs))
            return shapes

        return make


# --------------------------------------------------------------------------- appearance


def _jitter(rng: np.random.Generator, rgb: tuple[float, float, float], brightness: float = 0.12,
            tint: float = 10.0) -> np.ndarray:
    """A per-scene variant of a base colour: brightness scale and a small RGB shift."""
    colour = np.asarray(rgb, np.float32) * rng.uniform(1 - brightness, 1 + brightness)
    return np.clip(colour + rng.normal(0.0, tint, 3), 0, 255).astype(np.float32)


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    t = np.asarray(t, np.float32)
    if t.ndim == 1:
        t = t[:, None]
    return a + (b - a) * t


_BUILDING_WALLS = [(170, 85, 65), (205, 190, 165), (150, 150, 152), (225, 220, 210),
                   (95, 115, 145), (175, 145, 110), (120, 100, 90), (190, 170, 140)]
_CAR_PAINTS = [(180, 25, 30), (30, 60, 150), (225, 225, 225), (30, 30, 35), (160, 165, 170),
               (210, 180, 40), (40, 110, 60), (110, 30, 40), (90, 95, 100)]
_SKIN_TONES = [(240, 200, 170), (215, 165, 125), (175, 120, 85), (120, 80, 55), (90, 60, 45)]
_TROUSERS = [(40, 50, 90), (30, 30, 35), (90, 80, 70), (60, 70, 110)]
_CLOTHES = [(200, 40, 40), (40, 70, 160), (230, 230, 225), (30, 30, 30), (70, 120, 70),
            (230, 180, 40), (130, 60, 140), (120, 120, 125), (220, 110, 40)]


def _palette_lut(rng: np.random.Generator, palette: list, count: int, spread: float = 12.0):
    """Per-instance colours: a palette pick plus a small jitter for each instance index."""
    picks = rng.integers(0, len(palette), count)
    base = np.asarray(palette, np.float32)[picks]
    return np.clip(base * rng.uniform(0.85, 1.1, (count, 1)) + rng.normal(0, spread, (count, 3)),
                   0, 255).astype(np.float32)


_LUT_SIZE = 64   # per-instance colour tables; instance k takes entry k % 64


@dataclass
class _Look:
    """A scene's appearance: lighting, sky, per-class and per-instance colours, noise.

    Drawn in full, in a fixed order, before anything looks at the layout, so that one
    appearance seed gives the same look to any layout.
    """

    table: np.ndarray          # (64, 64) value-noise lattice for textures
    sun_x: float               # the sun's side: -1 left .. +1 right
    sun_height: float          # sun glow height, as a fraction of the horizon row
    mood: str                  # clear | hazy | overcast | dusk
    contrast: float            # strength of directional light (low when overcast)
    light: np.ndarray          # (3,) global RGB gain: brightness and warm/cool tint
    zenith: np.ndarray         # (3,) sky colour at the top
    horizon: np.ndarray        # (3,) sky colour at the horizon
    cloud_white: np.ndarray
    cloud_grey: np.ndarray
    rock: np.ndarray
    snow: np.ndarray
    haze_scale: float          # ground distance at which haze reaches 63%
    grass: np.ndarray
    sand: np.ndarray
    asphalt: np.ndarray
    road_paint: np.ndarray
    water: np.ndarray
    bark: np.ndarray
    glass: np.ndarray
    walls: np.ndarray          # (64, 3) per-instance colour tables
    leaves: np.ndarray
    car_paints: np.ndarray
    skins: np.ndarray
    tops: np.ndarray
    trousers: np.ndarray

    @classmethod
    def sample(cls, rng: np.random.Generator) -> _Look:
        table = _noise_table(rng)
        sun_x = float(rng.uniform(-1.0, 1.0))
        sun_height = float(rng.uniform(0.2, 0.8))
        mood = str(rng.choice(["clear", "hazy", "overcast", "dusk"], p=[0.5, 0.2, 0.15, 0.15]))
        contrast = {"clear": 1.0, "hazy": 0.8, "overcast": 0.5, "dusk": 0.8}[mood]
        zenith, horizon = {
            "clear": ((55, 115, 205), (175, 205, 235)),
            "hazy": ((100, 145, 200), (205, 215, 225)),
            "overcast": ((125, 140, 165), (185, 192, 200)),
            "dusk": ((60, 80, 150), (235, 165, 115)),
        }[mood]
        zenith, horizon = _jitter(rng, zenith), _jitter(rng, horizon)
        tint = float(rng.uniform(-0.06, 0.06)) + (0.08 if mood == "dusk" else 0.0)
        light = np.array([1 + tint, 1.0, 1 - tint], np.float32) * np.float32(
            rng.uniform(0.85, 1.1) * (0.8 if mood == "dusk" else 1.0))
        white = _jitter(rng, (245, 245, 248) if mood != "overcast" else (205, 208, 215), 0.05, 4)
        grey = white * np.float32(rng.uniform(0.65, 0.8))
        if mood == "dusk":
            white = _mix(white, np.array([255, 190, 150], np.float32), 0.5)
        rocks = [(95, 100, 115), (85, 100, 85), (115, 100, 90)]
        grasses = [(75, 135, 50), (95, 140, 45), (60, 120, 55), (125, 140, 60)]
        paint = (225, 225, 215) if rng.random() < 0.7 else (220, 190, 60)
        autumn = rng.random() < 0.12
        leaf = _jitter(rng, (150, 100, 40) if autumn else (45, 95, 40), 0.15, 8)
        return cls(
            table=table, sun_x=sun_x, sun_height=sun_height, mood=mood, contrast=contrast,
            light=light, zenith=zenith, horizon=horizon, cloud_white=white, cloud_grey=grey,
            rock=_jitter(rng, rocks[rng.integers(len(rocks))]),
            snow=_jitter(rng, (235, 240, 250), 0.05, 5),
            haze_scale=float(rng.uniform(40.0, 120.0)) * (0.5 if mood == "hazy" else 1.0),
            grass=_jitter(rng, grasses[rng.integers(len(grasses))], 0.15, 8),
            sand=_jitter(rng, (215, 195, 145), 0.08, 6),
            asphalt=_jitter(rng, (80, 80, 85), 0.2, 4),
            road_paint=_jitter(rng, paint, 0.05, 4),
            water=_jitter(rng, (15, 60, 110), 0.2, 8),
            bark=_jitter(rng, (85, 62, 45), 0.15, 5),
            glass=_mix(_jitter(rng, (45, 55, 70), 0.2, 5), zenith, 0.3),
            walls=_palette_lut(rng, _BUILDING_WALLS, _LUT_SIZE),
            leaves=_palette_lut(rng, [tuple(leaf)], _LUT_SIZE, 8),
            car_paints=_palette_lut(rng, _CAR_PAINTS, _LUT_SIZE, 8),
            skins=_palette_lut(rng, _SKIN_TONES, _LUT_SIZE, 6),
            tops=_palette_lut(rng, _CLOTHES, _LUT_SIZE, 15),
            trousers=_palette_lut(rng, _TROUSERS, _LUT_SIZE),
        )


def _render(lay: _Layout, look: _Look, rng: np.random.Generator) -> np.ndarray:
    """Render a layout as an RGB image (H, W, 3) uint8; ``rng`` only adds sensor grain."""
    h, w = lay.label.shape
    table, sun_x, contrast = look.table, look.sun_x, look.contrast
    img = np.zeros((h, w, 3), np.float32)
    label, part, nx, ny = lay.label, lay.part, lay.nx, lay.ny
    rows = np.arange(h, dtype=np.float32)[:, None] + 0.5
    above = rows < lay.horizon[None, :]

    # Sky (also behind clouds and mountains, which blend with it): a zenith-to-horizon
    # gradient with a glow around the sun.
    sky_y, sky_x = np.nonzero(above | (label == SKY) | (label == CLOUD))
    t = np.clip((sky_y + 0.5) / lay.horizon[sky_x], 0, 1) ** 1.6
    sky = _mix(look.zenith, look.horizon, t)
    sun_px = (0.5 + 0.45 * sun_x) * w
    sun_py = float(lay.horizon.mean()) * look.sun_height
    glow = np.exp(-(((sky_x - sun_px) ** 2 + (sky_y - sun_py) ** 2) / (0.3 * h) ** 2))
    sky = sky + (glow * 45 * contrast)[:, None] * np.array([1.0, 0.95, 0.8], np.float32)
    img[sky_y, sky_x] = sky
    sky_full = img.copy()

    cy, cx = np.nonzero(label == CLOUD)
    if cy.size:
        fluff = _fbm(table, cx / (0.04 * h), cy / (0.03 * h), 3)
        shade = np.clip(0.5 * ny[cy, cx] + 0.5 - 0.3 * fluff, 0, 1)     # lit top, grey base
        cloud = _mix(look.cloud_white, look.cloud_grey, shade)
        alpha = np.clip(0.55 + 0.6 * nx[cy, cx], 0, 1)                   # soft thin edges
        img[cy, cx] = _mix(img[cy, cx], cloud, alpha)

    # Mountains: rock colour, sunlit and shaded slopes, aerial haze, snow.
    my, mx = np.nonzero(label == MOUNTAIN)
    if my.size:
        p = part[my, mx]
        slope = nx[my, mx] * sun_x
        strata = _fbm(table, mx / (0.05 * h) + 40, my / (0.015 * h), 3)
        base = np.where((p == P_SNOW)[:, None], look.snow[None, :], look.rock[None, :])
        colour = base * (1.0 + (0.25 * slope * contrast + 0.12 * strata))[:, None]
        # Aerial perspective: distant rock takes the sky's colour, most of all at its foot.
        haze = np.where(p == P_MOUNT_NEAR, 0.2, 0.45) + 0.3 * ny[my, mx]
        img[my, mx] = _mix(colour, sky_full[my, mx], np.clip(haze, 0, 0.85))

    # Ground stuff: textures in ground coordinates so that they shrink with distance.
    depth, lateral = lay.depth, lay.lateral
    horizon_sky = look.horizon * 0.85

    def ground_finish(ys: np.ndarray, xs: np.ndarray, colour: np.ndarray) -> None:
        haze = 1.0 - np.exp(-depth[ys, xs] / look.haze_scale)
        img[ys, xs] = _mix(colour, horizon_sky, haze)

    gy, gx = np.nonzero(label == GRASS)
    if gy.size:
        d, la = depth[gy, gx], lateral[gy, gx]
        patches = _fbm(table, la * 0.35, d * 0.35, 3)
        fade = np.clip(1.0 - d / 30.0, 0, 1)           # blades only where they are resolved
        blades = _value_noise(table, gx / 1.3 + 3.1, gy / 5.0) * fade
        colour = _mix(look.grass, look.grass * 0.65, np.clip(0.45 + 0.45 * patches, 0, 1))
        colour = colour * (1.0 + 0.15 * blades * contrast)[:, None]
        ground_finish(gy, gx, colour)

    sy, sx = np.nonzero(label == SAND)
    if sy.size:
        d, la = depth[sy, sx], lateral[sy, sx]
        ripples = _value_noise(table, la * 0.8 + 11.0, d * 4.0)
        grain = _value_noise(table, sx / 0.9, sy / 0.9)
        ground_finish(sy, sx, look.sand * (1.0 + 0.07 * ripples + 0.05 * grain)[:, None])

    ry, rx = np.nonzero(label == ROAD)
    if ry.size:
        road = lay.ground.road
        assert road is not None
        d, la = depth[ry, rx], lateral[ry, rx]
        patches = _fbm(table, la * 0.5 + 23.0, d * 0.3, 2)
        grain = _value_noise(table, rx / 0.8 + 5.0, ry / 0.8)
        offset = (la - lay.ground.road_centre(d)) / road[2]
        tracks = np.exp(-((np.abs(offset) % 0.5 - 0.25) / 0.08) ** 2)    # worn tyre tracks
        colour = look.asphalt * (1.0 + 0.08 * patches + 0.06 * grain - 0.1 * tracks)[:, None]
        colour = np.where((part[ry, rx] == P_ROAD_MARK)[:, None], look.road_paint, colour)
        ground_finish(ry, rx, colour)

    # Things: per-instance colours, shaded with the shape coordinates (lit on the sun's side).
    ty, tx = np.nonzero(np.isin(label, list(THING_CLASSES)))
    if ty.size:
        k = lay.instance[ty, tx] % 1000 % _LUT_SIZE
        p = part[ty, tx]
        u, v = nx[ty, tx], ny[ty, tx]
        colour = np.zeros((ty.size, 3), np.float32)
        shade = np.ones(ty.size, np.float32)
        speck = _value_noise(table, tx / 1.7 + 50.0, ty / 1.7)

        def put(sel: np.ndarray, value: np.ndarray) -> None:
            colour[sel] = value if value.ndim == 1 else value[sel]

        put(p == P_WALL, look.walls[k])
        put(p == P_ROOF, look.walls[k] * 0.6)
        put(p == P_DOOR, look.walls[k] * 0.35)
        window = p == P_WINDOW
        put(window, look.glass)
        if look.mood == "dusk":                  # some windows light up at dusk
            lit = window & (_value_noise(table, tx / 2.0 + 70.0, ty / 2.0) > 0.3)
            put(lit, np.array([255, 215, 130], np.float32))
        wall_like = np.isin(p, [P_WALL, P_ROOF, P_DOOR, P_WINDOW])
        # Facades face the camera: light from the side dims them a little, grime darkens the
        # lower floors.
        shade[wall_like] = (1.0 - 0.15 * abs(sun_x) * contrast + 0.05 * speck[wall_like]
                            - 0.08 * np.clip(v[wall_like], 0, 1))

        crown = p == P_CROWN
        put(crown, look.leaves[k])
        # Round crowns: lit on the sun's side and on top, darker below, speckled leaves.
        shade[crown] = (1.0 + contrast * (0.25 * u[crown] * sun_x - 0.2 * v[crown])
                        + 0.18 * speck[crown])
        trunk = p == P_TRUNK
        put(trunk, look.bark)
        shade[trunk] = 1.0 + 0.2 * u[trunk] * sun_x

        body = p == P_CAR_BODY
        put(body, look.car_paints[k])
        shade[body] = 1.05 - 0.2 * v[body] + 0.1 * u[body] * sun_x
        put(p == P_CAR_GLASS, look.glass * 0.8)
        put(p == P_WHEEL, np.array([22, 22, 24], np.float32))
        put(p == P_TAIL_LIGHT, np.array([200, 30, 25], np.float32))
        put(p == P_HEAD_LIGHT, np.array([235, 230, 200], np.float32))

        put(p == P_SKIN, look.skins[k])
        put(p == P_TOP, look.tops[k])
        put(p == P_LEGS, look.trousers[k])
        person = label[ty, tx] == PERSON
        shade[person] = 1.0 + 0.2 * u[person] * sun_x
        img[ty, tx] = colour * shade[:, None]

    # Cast shadows on the ground, away from the sun: they anchor things to the ground plane.
    ground_stuff = np.isin(label, [GRASS, ROAD, SAND])
    strength = 0.45 * contrast
    for thing in lay.things:
        radius_x = thing.width * (0.7 + 0.5 * abs(sun_x))
        radius_y = max(thing.width * 0.18, 0.6)
        centre_x = thing.foot_x - sun_x * thing.width * 0.45
        c0, c1 = max(int(centre_x - radius_x), 0), min(int(np.ceil(centre_x + radius_x)), w)
        r0 = max(int(thing.foot_y - radius_y), 0)
        r1 = min(int(np.ceil(thing.foot_y + radius_y)), h)
        if c0 >= c1 or r0 >= r1:
            continue
        yy = np.arange(r0, r1, dtype=np.float32)[:, None] + 0.5
        xx = np.arange(c0, c1, dtype=np.float32)[None, :] + 0.5
        fall = 1.0 - ((xx - centre_x) / radius_x) ** 2 - ((yy - thing.foot_y) / radius_y) ** 2
        dim = 1.0 - strength * np.clip(fall * 2.0, 0, 1) * ground_stuff[r0:r1, c0:c1]
        img[r0:r1, c0:c1] *= dim[:, :, None]

    # Water last: it mirrors what stands above it (sky, mountains, far shore) with ripples.
    wy, wx = np.nonzero(label == WATER)
    if wy.size:
        d, la = depth[wy, wx], lateral[wy, wx]
        ripple = _fbm(table, la * 1.2 + 90.0, d * 3.0, 2)
        ripple = ripple * np.clip(1.0 - d / 60.0, 0.2, 1.0)
        dy = wy + 0.5 - lay.horizon[wx]
        mirror_y = np.clip((lay.horizon[wx] - dy - 0.5).astype(np.int64), 0, h - 1)
        mirror_x = np.clip((wx + ripple * 0.02 * w).astype(np.int64), 0, w - 1)
        mirrored = img[mirror_y, mirror_x]
        mirrored = np.where((label[mirror_y, mirror_x] == WATER)[:, None], look.horizon,
                            mirrored)
        # Fresnel: grazing (far) water reflects most, water at the viewer's feet shows depth.
        # The reflection is dimmed and blued: water absorbs red first.
        reflect = np.clip(0.7 - 1.6 * dy / h, 0.15, 0.7)
        colour = _mix(look.water, mirrored * np.array([0.65, 0.8, 0.95], np.float32), reflect)
        colour = colour * (1.0 + 0.12 * ripple * contrast)[:, None]
        ground_finish(wy, wx, colour)

    # Global light: sun colour and strength, drifting cloud shadows on everything below the sky.
    below = ~above | np.isin(label, list(THING_CLASSES))
    cloud_shadow = 1.0 + 0.12 * contrast * _fbm(table, np.arange(w)[None, :] / (0.35 * w) + 7.0,
                                                rows / (0.2 * h), 2)
    img *= np.where(below, cloud_shadow, 1.0)[:, :, None]
    img *= look.light
    img += rng.normal(0.0, 2.0, img.shape).astype(np.float32)          # sensor grain
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- public API


def _size_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        height = width = int(size)
    else:
        try:
            height, width = (int(v) for v in size)
        except (TypeError, ValueError):
            raise ConfigError(
                f"size must be an int S (square) or a (height, width) pair, got {size!r}"
            ) from None
    if height < 8 or width < 8:
        raise ConfigError(f"scene size (--size) must be at least 8x8 pixels, got "
                          f"{height}x{width}. Fix: --size 8 or more (128 is the usual).")
    return height, width


def make_scene(size: int | tuple[int, int], seed: int,
               appearance_seed: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one procedural outdoor scene.

    Args:
        size: ``S`` for an S x S scene, or ``(H, W)``.
        seed: non-negative seed; the same (size, seed) gives byte-identical arrays.
        appearance_seed: seed of the image's look (lighting, colours, textures) only; the label
            and instance maps depend on ``seed`` alone. Defaults to ``seed``. Varying it renders
            the same layout as different plausible images.
    Returns:
        label: (H, W) uint8 class ids (see ``CLASS_NAMES``).
        instance: (H, W) int32 Cityscapes ids: class id for stuff, ``class * 1000 + k`` for
            instance ``k`` of a thing class.
        image: (H, W, 3) uint8 RGB.
    """
    height, width = _size_hw(size)
    if int(seed) < 0 or (appearance_seed is not None and int(appearance_seed) < 0):
        raise ConfigError(f"seeds must be non-negative integers, got {seed}, {appearance_seed}")
    look_seed = int(seed) if appearance_seed is None else int(appearance_seed)
    # Separate streams: the look never shifts the layout's random draws, and vice versa.
    layout = _SceneBuilder(height, width, np.random.default_rng([int(seed), 0])).build()
    look_rng = np.random.default_rng([look_seed, 1])
    image = _render(layout, _Look.sample(look_rng), look_rng)
    return layout.label, layout.instance, image


def colourize(label: np.ndarray) -> np.ndarray:
    """Colour a label map for viewing: (H, W) class ids -> (H, W, 3) uint8 ``CLASS_COLOURS``.

    Values outside the classes (dont-care 255, unknown ids) are black.
    """
    label = np.asarray(label)
    lut = np.zeros((len(CLASS_COLOURS) + 1, 3), np.uint8)
    lut[: len(CLASS_COLOURS)] = CLASS_COLOURS
    index = np.where((label >= 0) & (label < len(CLASS_COLOURS)), label, len(CLASS_COLOURS))
    return lut[index.astype(np.intp)]


def _scene_seed(seed: int, split: int, index: int) -> int:
    # Train scenes take even and test scenes odd sub-seeds: the splits never share a scene,
    # and each split's scenes do not depend on the other split's count.
    return (int(seed) << 32) | (2 * index + split)


def write_dataset(out: str | Path, count: int, size: int | tuple[int, int], seed: int,
                  test_count: int | None = None, progress: bool = True) -> dict:
    """Write a procedural dataset in the pix2pixHD layout.

    Writes ``{train,test}_label/`` (8-bit PNG class ids), ``{train,test}_inst/`` (16-bit PNG
    Cityscapes instance ids), ``{train,test}_img/`` (RGB PNG), files ``000000.png`` ..., and
    ``classes.json`` with ``names``, ``colours`` and ``things``.

    Args:
        out: dataset directory (created if missing; existing files with the same names are
            overwritten).
        count: number of training scenes.
        size: ``S`` or ``(H, W)``.
        seed: non-negative dataset seed; the same arguments write identical files.
        test_count: number of test scenes (default ``max(1, count // 10)``), drawn from seeds
            disjoint from the training ones.
        progress: show a tqdm progress bar.
    Returns:
        A summary: ``{"out", "train_count", "test_count", "size", "seed", "num_classes"}``.
    """
    height, width = _size_hw(size)
    if count < 1 or (test_count is not None and test_count < 0):
        raise ConfigError(f"the number of scenes (--count) must be at least 1 and the test "
                          f"scenes (--test-count) at least 0; got {count} and {test_count}.")
    if not 0 <= int(seed) < 2**31:
        raise ConfigError(f"the seed (--seed) must be in [0, 2**31), got {seed}")
    test_count = max(1, count // 10) if test_count is None else int(test_count)
    root = Path(out)
    jobs = [("train", 0, i) for i in range(count)] + [("test", 1, i) for i in range(test_count)]
    for split in ("train", "test"):
        for kind in ("label", "inst", "img"):
            (root / f"{split}_{kind}").mkdir(parents=True, exist_ok=True)
    for split, split_id, index in tqdm(jobs, desc=f"scenes -> {root}", disable=not progress,
                                       unit="scene"):
        label, instance, image = make_scene((height, width), _scene_seed(seed, split_id, index))
        name = f"{index:06d}.png"
        Image.fromarray(label).save(root / f"{split}_label" / name)
        Image.fromarray(instance.astype(np.uint16)).save(root / f"{split}_inst" / name)
        Image.fromarray(image).save(root / f"{split}_img" / name)
    classes = {"names": CLASS_NAMES, "colours": [list(c) for c in CLASS_COLOURS],
               "things": sorted(THING_CLASSES)}
    (root / "classes.json").write_text(json.dumps(classes, indent=2) + "\n")
    return {"out": str(root), "train_count": count, "test_count": test_count,
            "size": [height, width], "seed": int(seed), "num_classes": len(CLASS_NAMES)}
