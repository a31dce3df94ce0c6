"""IDX files: MNIST, Fashion-MNIST, KMNIST and EMNIST as distributed.

The IDX format (LeCun et al., "Gradient-based learning applied to document recognition", 1998)
is a big-endian header (two zero bytes, a type code, the number of dimensions, then each
dimension as a 32-bit unsigned integer) followed by the values in row-major order. The files
come gzipped (``*.gz``) or not; both are read.

File names follow the releases:

=================  ===============================================================
MNIST-like         ``train-images-idx3-ubyte`` + ``train-labels-idx1-ubyte``, and
                   ``t10k-*`` for the test split (MNIST, Fashion-MNIST, KMNIST)
EMNIST             ``emnist-<set>-train-images-idx3-ubyte``, ``emnist-<set>-test-*``
                   and ``emnist-<set>-mapping.txt`` (label → character code)
=================  ===============================================================

EMNIST stores every image transposed (column-major), so its images are transposed back here.
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from condsynth.errors import DataError

__all__ = ["IdxSet", "read_idx", "find_idx_sets", "idx_set", "read_idx_set", "idx_class_names"]

# Type codes of the IDX header and the big-endian numpy type each one stores.
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

# "train-images-idx3-ubyte.gz", "t10k-labels.idx1-ubyte", "emnist-letters-test-images-idx3-ubyte"
_IMAGES = re.compile(r"^(?P<prefix>(?:.+-)?)(?P<split>train|t10k|test)-images[-.]idx3-ubyte"
                     r"(?:\.gz)?$")

# The releases' class names, in label order; chosen by the folder's name (see idx_class_names).
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot"]
KMNIST_CLASSES = ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]


@dataclass(frozen=True)
class IdxSet:
    """The image and label files of one split of one IDX dataset."""

    prefix: str          # "" for MNIST-like names, "emnist-letters" for EMNIST ones
    split: str           # "train" or "test"
    images: Path
    labels: Path

    @property
    def transposed(self) -> bool:
        """EMNIST stores its images transposed."""
        return self.prefix.startswith("emnist")


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzipped or not) as a numpy array in native byte order.

    Raises:
        DataError: the file is missing, not gzip although named ``.gz``, not IDX (bad magic
            number), or holds fewer or more bytes than its header announces.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found. Fix: check data.root.")
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":    # gzip magic, whatever the file is called
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: could not be decompressed ({err}); the download is probably "
                        "incomplete. Fix: download the file again.") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _DTYPES or raw[3] == 0:
        raise DataError(f"{path}: not an IDX file (its first bytes are {raw[:4].hex(' ') or 'none'}"
                        ", expected 00 00, a type code among "
                        f"{', '.join(f'{c:02x}' for c in _DTYPES)} and the number of "
                        "dimensions). Fix: point data.root at the unpacked MNIST-style files.")
    dtype = np.dtype(_DTYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes, the header alone needs "
                        f"{header}). Fix: download the file again.")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        state = "truncated" if len(raw) < expected else "longer than its header says"
        raise DataError(f"{path}: {state}: the header announces shape {shape} "
                        f"({expected} bytes in all) but the file holds {len(raw)} bytes. Fix: "
                        "download the file again.")
    values = np.frombuffer(raw, dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))


def find_idx_sets(folder: str | Path) -> list[IdxSet]:
    """Every (images, labels) pair of IDX files directly in ``folder``, sorted by prefix and
    split. Image files without their labels file are left out."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir()):
        match = _IMAGES.match(path.name)
        if match is None or not path.is_file():
            continue
        name = path.name.replace("-images", "-labels").replace("idx3", "idx1")
        # The images may be gzipped and the labels not, or the other way round.
        candidates = [folder / name, folder / name.removesuffix(".gz"), folder / f"{name}.gz"]
        labels = next((c for c in candidates if c.is_file()), None)
        if labels is None:
            continue
        split = "test" if match["split"] in ("t10k", "test") else "train"
        found.append(IdxSet(match["prefix"].rstrip("-"), split, path, labels))
    return sorted(found, key=lambda s: (s.prefix, s.split != "train"))


def idx_set(folder: str | Path, phase: str, prefix: str | None = None) -> IdxSet:
    """The IDX files of ``phase`` (``train``, or ``test``/``val`` for the ``t10k``/``test``
    files) in ``folder``; ``prefix`` picks one set of a folder holding several (EMNIST)."""
    folder = Path(folder)
    sets = find_idx_sets(folder)
    if not sets:
        stray = sorted(p.name for p in folder.glob("*idx*")) if folder.is_dir() else []
        hint = (f" Found {', '.join(stray[:4])} without their pair (images idx3 and labels idx1)."
                if stray else "")
        raise DataError(f"{folder}: no IDX files found (expected train-images-idx3-ubyte[.gz] "
                        f"with train-labels-idx1-ubyte[.gz], or t10k-* for the test split).{hint}"
                        " Fix: point data.root at the folder holding them.")
    prefixes = sorted({s.prefix for s in sets})
    if prefix is None and len(prefixes) > 1:
        raise DataError(f"{folder}: holds several IDX datasets ({', '.join(prefixes)}). Fix: "
                        "choose one with data.idx_prefix, e.g. "
                        f"data.idx_prefix={prefixes[-1]}.")
    chosen = prefixes[0] if prefix is None else prefix
    if chosen not in prefixes:
        raise DataError(f"{folder}: no IDX files with the prefix '{chosen}' (found: "
                        f"{', '.join(p or '(none)' for p in prefixes)}). Fix: set "
                        "data.idx_prefix to one of these.")
    split = "train" if phase == "train" else "test"
    for found in sets:
        if found.prefix == chosen and found.split == split:
            return found
    raise DataError(f"{folder}: no {split} split among the IDX files of "
                    f"'{chosen or 'train/t10k'}'. Fix: add its images and labels files, or "
                    "choose another phase.")


def read_idx_set(found: IdxSet) -> tuple[np.ndarray, np.ndarray]:
    """The images ``(N, H, W)`` uint8 (EMNIST transposed back) and labels ``(N,)`` int64."""
    images = read_idx(found.images)
    labels = read_idx(found.labels)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{found.images}: expected unsigned bytes of shape (N, H, W), found "
                        f"{images.dtype} of shape {images.shape}. Fix: check that this is an "
                        "images file (idx3-ubyte).")
    if labels.ndim != 1:
        raise DataError(f"{found.labels}: expected one label per image, shape (N,), found "
                        f"{labels.shape}. Fix: check that this is a labels file (idx1-ubyte).")
    if len(labels) != len(images):
        raise DataError(f"{found.labels} holds {len(labels)} labels but {found.images} holds "
                        f"{len(images)} images. Fix: use the files of one release.")
    if found.transposed:
        images = np.ascontiguousarray(images.transpose(0, 2, 1))
    return images, labels.astype(np.int64)


def idx_class_names(found: IdxSet, num_classes: int) -> list[str]:
    """Class names of an IDX dataset: EMNIST's characters from its mapping file; the
    Fashion-MNIST and KMNIST names when the folder's name says which it is (the files of the
    releases have the same names); digits otherwise."""
    folder = found.images.parent
    mapping = folder / f"{found.prefix}-mapping.txt"
    if found.prefix and mapping.is_file():
        names = [str(i) for i in range(num_classes)]
        for line in mapping.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
                label, code = int(parts[0]), int(parts[1])
                if label < num_classes:
                    names[label] = chr(code)
        return names
    where = str(folder).lower()
    for key, names in (("fashion", FASHION_MNIST_CLASSES), ("kmnist", KMNIST_CLASSES)):
        if key in where and num_classes <= len(names):
            return names[:num_classes]
    return [str(i) for i in range(num_classes)]
