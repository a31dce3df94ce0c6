"""Sampling and exploring noise-driven models: ``condsynth sample`` and ``condsynth explore``.

``sample`` draws N images (of one class, or cycling through the classes of a class-conditional
model) and writes the PNG files, a grid and an ``index.html``. ``explore`` shows the latent
space as DCGAN's paper does: walks between random codes (linear interpolation), and vector
arithmetic on the mean codes of chosen sample groups ("smiling woman - neutral woman + neutral
man"), with the result drawn with a little noise added, as the paper shows it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from condsynth.data.dataset import tensor_to_image
from condsynth.errors import ConfigError
from condsynth.methods.base import Capability, Method
from condsynth.pages import save_png, write_table_page


def noise_driven(method: Method) -> None:
    """Raise unless the model can generate without an input picture (from noise alone, or
    from a class or an attribute vector)."""
    own = method.capabilities() & {Capability.UNCONDITIONAL, Capability.CLASS,
                                   Capability.ATTRIBUTES}
    if not own:
        raise ConfigError(f"this {method.config.method} model generates from a "
                          f"{method.config.condition.kind.replace('_', ' ')}, not from noise. "
                          "Fix: use `condsynth synthesize` with its inputs.")


def class_ids(method: Method, count: int, cls: int | None) -> Tensor | None:
    """The class of each of ``count`` samples: ``cls`` for all, or cycling 0, 1, ..., K-1
    (None for models without classes; ``cls`` given to one is an error)."""
    spec = method.config.condition
    if spec.kind != "class":
        if cls is not None:
            raise ConfigError(f"--class was given, but this {method.config.method} model has no "
                              "classes. Fix: leave it out.")
        return None
    num_classes = int(spec.num_classes or 0)
    if cls is not None:
        if not 0 <= cls < num_classes:
            names = ", ".join(f"{i} {n}" for i, n in enumerate(spec.class_names))
            raise ConfigError(f"--class {cls} is not one of this model's classes "
                              f"0..{num_classes - 1}" + (f" ({names})" if names else ""))
        return torch.full((count,), cls, dtype=torch.long)
    return torch.arange(count) % num_classes


def draw(method: Method, count: int, cls: int | None = None, z: Tensor | None = None,
         batch_size: int = 64, progress: bool = False) -> Tensor:
    """``count`` samples (count, C, H, W) in [-1, 1] from torch's global RNG (seed it first),
    in batches; ``z`` (count, latent) fixes the codes."""
    noise_driven(method)
    classes = class_ids(method, count, cls)
    out = []
    with tqdm(total=count, disable=not progress, desc="sampling", unit="image") as bar:
        for start in range(0, count, batch_size):
            n = min(batch_size, count - start)
            cond = None if classes is None else classes[start:start + n]
            codes = None if z is None else z[start:start + n]
            out.append(method.generate(cond, batch_size=n, z=codes).cpu())
            bar.update(n)
    return torch.cat(out)


def grid(images: Tensor, columns: int, pad: int = 2) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] → one (rows*(H+pad), columns*(W+pad), 3) uint8 picture."""
    n, _, h, w = images.shape
    rows = math.ceil(n / columns)
    out = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        out[y:y + h, x:x + w] = tensor_to_image(images[i])
    return out


def sample(method: Method, count: int, out: str | Path, cls: int | None = None, seed: int = 0,
           batch_size: int = 64, progress: bool = True) -> Path:
    """Write ``count`` samples as ``sample_0000.png``..., ``grid.png`` and ``index.html``
    into ``out``; returns the page."""
    if count < 1:
        raise ConfigError(f"--count {count}: give at least 1")
    out = Path(out)
    torch.manual_seed(seed)
    images = draw(method, count, cls, batch_size=batch_size, progress=progress)
    classes = class_ids(method, count, cls)
    names = method.config.condition.class_names
    rows = []
    for i in range(count):
        name = f"sample_{i:04d}.png"
        save_png(tensor_to_image(images[i]), out / name)
        label = "" if classes is None else _class_name(int(classes[i]), names)
        rows.append([str(i), label, name])
    columns = min(count, 10 if classes is None else int(method.config.condition.num_classes))
    save_png(grid(images, columns), out / "grid.png")
    notes = [f"{count} samples of {method.config.method}, seed {seed}"
             + ("" if cls is None else f", class {_class_name(cls, names)}"),
             "grid.png holds them all" + ("" if classes is None else " (a column per class)")]
    rows.insert(0, ["all", "", "grid.png"])
    write_table_page(out / "index.html", "condsynth samples", ["#", "class", "sample"], rows,
                     notes, image_scale=3)
    return out / "index.html"


def check_cascade(method: Method) -> None:
    """Raise unless ``method`` is a Laplacian-pyramid model, whose levels can be shown."""
    from condsynth.methods.lapgan import LAPGAN

    if not isinstance(method, LAPGAN):
        raise ConfigError(f"--levels shows the levels of a Laplacian-pyramid model (lapgan); "
                          f"this is a {method.config.method} model. Fix: leave out --levels.")


def sample_levels(method: Method, count: int, out: str | Path, cls: int | None = None,
                  seed: int = 0, batch_size: int = 64, band_gain: float = 4.0) -> Path:
    """Write ``levels.html`` into ``out``: how a Laplacian-pyramid model (LAPGAN) builds each of
    the ``count`` samples that :func:`sample` draws for the same seed: the coarsest level's
    image, then per finer level the image upsampled from the level below, the band-pass image
    its generator adds (times ``band_gain``, mid-grey = 0) and their sum; every picture at the
    final size (nearest-neighbour) so the columns line up. Returns the page."""
    check_cascade(method)
    if count < 1:
        raise ConfigError(f"--count {count}: give at least 1")
    out = Path(out)
    torch.manual_seed(seed)                       # the draws of sample(): same batches
    classes = class_ids(method, count, cls)
    levels: list[list[Tensor]] = []
    for start in range(0, count, batch_size):
        n = min(batch_size, count - start)
        cond = None if classes is None else classes[start:start + n]
        levels.append([image.float().cpu() for image in method.cascade(cond, batch_size=n)])
    images = [torch.cat(parts) for parts in zip(*levels, strict=True)]   # per level, coarsest
    size = images[-1].shape[-2:]

    def picture(t: Tensor, name: str) -> str:
        full = torch.nn.functional.interpolate(t[None], size=size, mode="nearest")[0]
        save_png(tensor_to_image(full), out / "levels" / name)
        return f"levels/{name}"

    sizes = method.sizes
    headers = ["#", "class", f"level {sizes[0]}x{sizes[0]}"]
    for s in sizes[1:]:
        headers += [f"upsampled to {s}x{s}", f"band {s}x{s} (x{band_gain:g})", f"= {s}x{s}"]
    names = method.config.condition.class_names
    rows = []
    for i in range(count):
        row = [str(i), "" if classes is None else _class_name(int(classes[i]), names),
               picture(images[0][i], f"{i:04d}_{sizes[0]}.png")]
        for k, s in enumerate(sizes[1:], start=1):
            low = method.upsample(images[k - 1][i:i + 1], s)[0]
            band = images[k][i] - low
            row += [picture(low, f"{i:04d}_{s}_up.png"),
                    picture(band * band_gain, f"{i:04d}_{s}_band.png"),
                    picture(images[k][i], f"{i:04d}_{s}.png")]
        rows.append(row)
    notes = [f"{count} samples of {method.config.method}, seed {seed}: the same as "
             "`condsynth sample` draws for this seed (index.html)",
             f"each row: the coarsest GAN's image, then per level the image upsampled from "
             f"the level below, the band its generator adds (x{band_gain:g}; grey is 0) and "
             "their sum; the last sum (clamped to [-1, 1]) is the sample"]
    write_table_page(out / "levels.html", "condsynth cascade levels", headers, rows, notes,
                     image_scale=2)
    return out / "levels.html"


def _class_name(cls: int, names: list[str]) -> str:
    return names[cls] if cls < len(names) else f"class {cls}"


# ----------------------------------------------------------------------------- explore


@dataclass(frozen=True)
class Arithmetic:
    """``"3,7-1,5+2"``: groups of sample indices with signs: +mean(z3, z7) - mean(z1, z5)
    + z2."""

    groups: tuple[tuple[int, tuple[int, ...]], ...]   # (sign, indices)

    @classmethod
    def parse(cls, text: str) -> Arithmetic:
        if not re.fullmatch(r"\s*\d+(\s*,\s*\d+)*(\s*[+-]\s*\d+(\s*,\s*\d+)*)*\s*", text):
            raise ConfigError(f"--arithmetic {text!r} is not groups of sample indices joined by "
                              "+ and -, for example '3,7-1,5+2' (mean of samples 3 and 7, minus "
                              "the mean of 1 and 5, plus 2)")
        groups = []
        for sign, body in re.findall(r"([+-]?)\s*([\d\s,]+)", text):
            indices = tuple(int(i) for i in body.replace(" ", "").split(",") if i)
            groups.append((-1 if sign == "-" else 1, indices))
        return cls(tuple(groups))

    def largest_index(self) -> int:
        return max(i for _, indices in self.groups for i in indices)

    def apply(self, z: Tensor) -> tuple[list[Tensor], Tensor]:
        """Each group's mean code, and their signed sum."""
        means = [z[list(indices)].mean(0) for _, indices in self.groups]
        total = sum(sign * mean for (sign, _), mean in zip(self.groups, means, strict=True))
        return means, total


def latent_codes(method: Method, count: int) -> Tensor:
    """``count`` codes from the model's prior, N(0, I), from torch's global RNG."""
    size = method.latent_size()
    if size is None or Capability.LATENT not in method.capabilities():
        raise ConfigError(f"this {method.config.method} model has no latent space to explore. "
                          "Fix: use a noise-driven model (for example --method dcgan).")
    return torch.randn(count, size)


def interpolate(a: Tensor, b: Tensor, steps: int) -> Tensor:
    """``steps`` codes from ``a`` to ``b`` on a straight line (both ends included)."""
    t = torch.linspace(0, 1, steps).unsqueeze(1)
    return (1 - t) * a.unsqueeze(0) + t * b.unsqueeze(0)


def explore(method: Method, out: str | Path, walks: int = 4, steps: int = 8,
            arithmetic: str | None = None, samples: int = 24, cls: int | None = None,
            seed: int = 0, noise: float = 0.25) -> Path:
    """Write the latent-space page into ``out``: the numbered samples that ``arithmetic``
    refers to, ``walks`` interpolations of ``steps`` codes, and the arithmetic's groups and
    result (8 draws of result + ``noise``·N(0, I)). Returns the page."""
    if walks < 0 or steps < 2 or samples < 1:
        raise ConfigError("--walks must be >= 0, --steps >= 2 and --samples >= 1")
    recipe = Arithmetic.parse(arithmetic) if arithmetic else None
    if recipe is not None and recipe.largest_index() >= samples:
        raise ConfigError(f"--arithmetic refers to sample {recipe.largest_index()}, but only "
                          f"{samples} are drawn. Fix: --samples {recipe.largest_index() + 1}")
    out = Path(out)
    notes = [f"{method.config.method}, seed {seed}"]
    if method.config.condition.kind == "class" and cls is None:
        cls = 0             # codes are compared within one class
        notes.append("class 0 throughout (choose another with --class)")
    torch.manual_seed(seed)
    z = latent_codes(method, samples)
    pictures = draw(method, samples, cls, z=z)
    save_png(grid(pictures, min(samples, 8)), out / "samples.png")
    rows = [["samples (numbered row by row from 0)", "samples.png"]]
    for w in range(walks):
        a, b = latent_codes(method, 2)
        codes = interpolate(a, b, steps)
        save_png(grid(draw(method, steps, cls, z=codes), steps), out / f"walk_{w}.png")
        rows.append([f"walk {w}: {steps} steps between two random codes", f"walk_{w}.png"])
    if recipe is not None:
        means, total = recipe.apply(z)
        shown = draw(method, len(means), cls, z=torch.stack(means))
        save_png(grid(shown, len(means)), out / "arithmetic_groups.png")
        jitter = total.unsqueeze(0) + noise * torch.randn(8, total.numel())
        jitter[0] = total
        result = draw(method, 8, cls, z=jitter)
        save_png(grid(result, 8), out / "arithmetic_result.png")
        rows.append([f"groups of '{arithmetic}' (mean codes, in order)", "arithmetic_groups.png"])
        rows.append([f"result: the signed sum (first), then with {noise}·N(0, I) added",
                     "arithmetic_result.png"])
    write_table_page(out / "index.html", "condsynth latent space", ["what", "pictures"], rows,
                     notes, image_scale=3)
    return out / "index.html"
