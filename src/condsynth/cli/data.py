"""``condsynth data``: make datasets (procedural scenes, sketch/colour pairs) or check one."""

from __future__ import annotations

import argparse
import json

from condsynth.cli.common import add_quiet_flag
from condsynth.errors import ConfigError

# XDoG flags of `data sketches` with the defaults their help states (a test checks these
# against XDoGParams; importing it here would load torch for every `condsynth --help`).
XDOG_FLAGS = {
    "sigma": (0.8, "narrow Gaussian scale in pixels: line width"),
    "k": (1.6, "ratio of the wide Gaussian's scale"),
    "tau": (0.98, "weight of the wide Gaussian; nearer 1 = more lines"),
    "epsilon": (-0.01, "threshold where ink starts"),
    "phi": (200.0, "steepness of the soft threshold"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``condsynth data procedural|render-scenes|normals-from-depth|simulate|check|...``."""
    data = subparsers.add_parser("data", help="make or check datasets")
    data_sub = data.add_subparsers(dest="data_command", metavar="COMMAND")

    p = data_sub.add_parser("procedural", help="write the built-in procedural outdoor scenes "
                            "in the pix2pixHD layout")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--count", type=int, default=500, help="training scenes")
    p.add_argument("--test-count", type=int, default=None, help="test scenes (default 10%%)")
    p.add_argument("--size", type=int, default=128, help="scene size in pixels (square)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    add_quiet_flag(p)
    p.set_defaults(func=cmd_data_procedural)

    p = data_sub.add_parser(
        "render-scenes", help="render procedural 3D rooms: image, surface normals and depth",
        description="Ray-cast rooms (floor, walls, boxes, spheres, cylinders; textured, lit from "
        "a random direction) into OUT/{train,test}_img/, _normals/ (RGB-encoded, camera frame) "
        "and _depth/ (16-bit PNG, mm): the normals layout that S2-GAN trains on.")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--count", type=int, default=2000, help="training scenes")
    p.add_argument("--test-count", type=int, default=None, help="test scenes (default 10%%)")
    p.add_argument("--size", type=int, default=64, help="scene size in pixels (square)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    add_quiet_flag(p)
    p.set_defaults(func=cmd_data_render_scenes)

    p = data_sub.add_parser(
        "normals-from-depth", help="turn depth maps into RGB-encoded surface-normal maps",
        description="Compute surface normals from depth maps (16-bit PNG in any unit, or .npy) "
        "by back-projecting pixels with the camera intrinsics and crossing the central "
        "differences; write OUT/<name>.png in the normals layout's encoding (camera frame, x "
        "right, y up, z to the viewer, RGB = (n + 1) / 2). Put them in <data>/train_normals/ "
        "beside <data>/train_img/.")
    p.add_argument("depth", metavar="DEPTH_DIR", help="folder of depth maps")
    p.add_argument("--out", required=True, help="folder of normal maps to write")
    p.add_argument("--intrinsics", help="fx,fy,cx,cy in pixels of the depth maps' size "
                   "(default: NYU Depth v2's Kinect, scaled from 640x480)")
    add_quiet_flag(p)
    p.set_defaults(func=cmd_data_normals_from_depth)

    p = data_sub.add_parser(
        "simulate", help="write labelled synthetic images from a simulator (the S of SimGAN's "
        "S+U learning)",
        description="Render labelled synthetic images: 'garments' draws flat-shaded silhouettes "
        "of the ten Fashion-MNIST classes from simple templates with random proportions, as "
        "OUT/NNNNN.png + OUT/dataset.json. With --real IDX_DIR, OUT becomes an unpaired "
        "dataset: the silhouettes in OUT/A, unlabelled real images in OUT/B (for `condsynth "
        "train --method simgan --data OUT`).")
    p.add_argument("simulator", choices=["garments"], help="what to render")
    p.add_argument("--out", required=True, help="folder to write")
    p.add_argument("--count", type=int, default=10000, help="synthetic images (classes in turn)")
    p.add_argument("--size", type=int, default=28, help="image side in pixels (square)")
    p.add_argument("--real", metavar="IDX_DIR", help="Fashion-MNIST IDX folder: also write "
                   "unlabelled real training images to OUT/B (and the synthetic ones to OUT/A)")
    p.add_argument("--real-count", type=int, help="real images to write (default --count)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    add_quiet_flag(p)
    p.set_defaults(func=cmd_data_simulate)

    p = data_sub.add_parser(
        "attributes-from-classes", help="an attribute table from IDX class data: the class "
        "one-hot and two measured attributes (Bright, Large)",
        description="Write IDX class data (Fashion-MNIST, MNIST) as an attributes_csv folder: "
        "OUT/train and OUT/test, PNGs padded to --size and an attributes.csv of Class_* (the "
        "class, one-hot, ±1), Bright (mean grey of the filled pixels above the training "
        "median) and Large (share of filled pixels above the training median); "
        "OUT/attributes.json keeps the medians, to measure generated images the same way.")
    p.add_argument("--idx", required=True, help="folder of the IDX files")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--size", type=int, default=32, help="pad the images to this size (32)")
    p.add_argument("--max-items", type=int, help="only the first N training images")
    p.add_argument("--max-test-items", type=int, help="only the first N test images")
    add_quiet_flag(p)
    p.set_defaults(func=cmd_data_attributes)

    p = data_sub.add_parser("check", help="report classes, counts, sizes and every problem")
    p.add_argument("dir", help="dataset folder")
    p.add_argument("--layout", default="auto", help="dataset layout (default: detect)")
    p.add_argument("--num-classes", type=int, help="flag label values at or above this")
    p.add_argument("--palette", help="JSON mapping colours to class ids, for RGB label maps")
    p.add_argument("--labeled-per-class", type=int, help="class data: check the semi-supervised "
                   "split keeping this many labels per class")
    p.add_argument("--attributes", help="attribute tables: report only these, comma-separated")
    p.add_argument("--idx-prefix", help="IDX files: which set of a folder holding several, "
                   "e.g. emnist-letters")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_data_check)

    p = data_sub.add_parser(
        "sketches", help="turn a folder of images into sketch/colour pairs (XDoG lines)",
        description="Extract XDoG line drawings (Winnemöller et al. 2012) from every image under "
        "IMAGES_DIR (searched recursively) and write OUT/train_sketch/ + OUT/train_img/ (and "
        "test_* with --test-count): the sketch_pairs layout that `condsynth train --method "
        "autopainter --data OUT` reads. Parameters act on grey levels in [0, 1].")
    p.add_argument("images", metavar="IMAGES_DIR", help="folder of colour images")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--size", type=int, default=None,
                   help="resize each image so that its shorter side is this many pixels first "
                   "(default: keep the size)")
    p.add_argument("--test-count", type=int, default=0,
                   help="the last N images (by name) go to test_sketch/ + test_img/")
    for name, (default, text) in XDOG_FLAGS.items():
        p.add_argument(f"--{name}", type=float, default=None, help=f"{text} (default {default:g})")
    p.add_argument("--binarize", action="store_true", help="pure black and white lines")
    p.add_argument("--random", action="store_true",
                   help="draw the XDoG parameters per image (varied line styles) instead")
    p.add_argument("--seed", type=int, default=0, help="seed of --random (same seed, same files)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_data_sketches)


def cmd_data_attributes(args: argparse.Namespace) -> int:
    from condsynth.data.attribute_tables import write_attributes_from_classes

    summary = write_attributes_from_classes(args.idx, args.out, args.size, args.max_items,
                                            args.max_test_items, progress=not args.quiet)
    print(json.dumps(summary))
    return 0


def cmd_data_procedural(args: argparse.Namespace) -> int:
    from condsynth.data.procedural import write_dataset

    summary = write_dataset(args.out, args.count, args.size, args.seed,
                            test_count=args.test_count, progress=not args.quiet)
    print(json.dumps(summary, default=str))
    return 0


def cmd_data_simulate(args: argparse.Namespace) -> int:
    from condsynth.data.garments import write_garments

    if args.size < 8:
        raise ConfigError(f"--size {args.size}: expected at least 8 pixels")
    summary = write_garments(args.out, args.count, seed=args.seed, size=args.size,
                             real=args.real, real_count=args.real_count,
                             progress=not args.quiet)
    print(json.dumps(summary))
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    from condsynth.data.check import check_dataset

    attributes = [a.strip() for a in args.attributes.split(",")] if args.attributes else None
    report = check_dataset(args.dir, layout=args.layout, num_classes=args.num_classes,
                           palette=args.palette, labeled_per_class=args.labeled_per_class,
                           attributes=attributes, idx_prefix=args.idx_prefix)
    print(json.dumps(report.to_dict(), indent=2, default=str) if args.json else report.text())
    return 0 if report.ok else 1


def cmd_data_sketches(args: argparse.Namespace) -> int:
    from condsynth.data.sketches import XDoGParams, write_sketch_pairs

    given = {name: getattr(args, name) for name in XDOG_FLAGS if getattr(args, name) is not None}
    params = XDoGParams(binarize=args.binarize, **given)
    if params.sigma <= 0 or params.k <= 0:
        raise ConfigError(f"--sigma {params.sigma} and --k {params.k} must be positive")
    summary = write_sketch_pairs(args.images, args.out, params, random_params=args.random,
                                 size=args.size, test_count=args.test_count, seed=args.seed,
                                 progress=not args.quiet)
    print(json.dumps(summary))
    return 0


def cmd_data_render_scenes(args: argparse.Namespace) -> int:
    from condsynth.data.scenes3d import write_dataset

    summary = write_dataset(args.out, args.count, args.size, args.seed,
                            test_count=args.test_count, progress=not args.quiet)
    print(json.dumps(summary))
    return 0


def cmd_data_normals_from_depth(args: argparse.Namespace) -> int:
    from condsynth.data.normals import write_normals_from_depth

    intrinsics = None
    if args.intrinsics:
        try:
            intrinsics = tuple(float(v) for v in args.intrinsics.split(","))
        except ValueError:
            intrinsics = ()
        if len(intrinsics) != 4 or min(intrinsics[:2]) <= 0:
            raise ConfigError(f"--intrinsics {args.intrinsics!r} is not fx,fy,cx,cy (four "
                              "numbers, positive focal lengths), e.g. 518.9,519.5,325.6,253.7")
    summary = write_normals_from_depth(args.depth, args.out, intrinsics,
                                       progress=not args.quiet)
    print(json.dumps(summary))
    return 0
