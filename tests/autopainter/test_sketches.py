"""User sketches (cleaning and refusals), colour hints (training samples and hint images),
sketch/colour pair folders and the dataset items made from them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from condsynth.config import ConditionConfig, DataConfig
from condsynth.data.dataset import PairedDataset, tensor_to_image
from condsynth.data.layouts import available_phases, detect_num_classes, discover
from condsynth.data.sketches import (
    HINT_CHANNELS,
    XDoGParams,
    hint_picture,
    hints_from_array,
    image_sketch,
    load_hints,
    load_sketch,
    sample_hints,
    write_sketch_pairs,
)
from condsynth.errors import DataError

from .conftest import photo, write_png


def drawing(height: int = 40, width: int = 48) -> np.ndarray:
    """Dark lines on white: a box outline and a diagonal."""
    sketch = np.full((height, width), 255, np.uint8)
    sketch[8, 8:40] = sketch[30, 8:40] = 0
    sketch[8:31, 8] = sketch[8:31, 39] = 0
    for i in range(20):
        sketch[10 + i, 12 + i] = 30
    return sketch


# ----------------------------------------------------------------------------- user sketches


def test_a_clean_drawing_is_kept_as_it_is(tmp_path):
    sketch, notes = load_sketch(write_png(drawing(), tmp_path / "s.png"))
    assert notes == [] and np.array_equal(sketch, drawing())


def test_rgb_jpeg_and_16_bit_drawings_read_as_grey(tmp_path):
    rgb = np.repeat(drawing()[..., None], 3, axis=2)
    Image.fromarray(rgb).save(tmp_path / "s.jpg", quality=95)
    sketch, _ = load_sketch(tmp_path / "s.jpg")
    assert sketch.shape == (40, 48) and sketch[8, 20] < 60 and sketch[20, 30] > 230
    wide = Image.fromarray(drawing().astype(np.uint16) * 257)
    wide.save(tmp_path / "s16.png")
    sketch, _ = load_sketch(tmp_path / "s16.png")
    assert np.array_equal(sketch, drawing())


def test_white_lines_on_black_are_inverted(tmp_path):
    sketch, notes = load_sketch(write_png(255 - drawing(), tmp_path / "neg.png"))
    assert np.array_equal(sketch, drawing())
    assert any("inverted" in n for n in notes)


def test_transparent_paper_is_white(tmp_path):
    rgba = np.zeros((40, 48, 4), np.uint8)                   # transparent black everywhere
    rgba[drawing() < 128, 3] = 255                            # opaque black lines
    sketch, _ = load_sketch(write_png(rgba, tmp_path / "alpha.png"))
    assert np.array_equal(sketch < 128, drawing() < 128) and sketch.max() == 255


def test_grey_paper_is_brought_to_white(tmp_path):
    paper = (drawing().astype(np.float32) * 0.8).round().astype(np.uint8)   # paper at 204
    sketch, notes = load_sketch(write_png(paper, tmp_path / "grey.png"))
    assert sketch[20, 30] == 255 and sketch[8, 20] == 0
    assert any("grey paper" in n for n in notes)


@pytest.mark.parametrize(("value", "word"), [(0, "all black"), (255, "all white")])
def test_blank_sketches_are_refused(tmp_path, value, word):
    path = write_png(np.full((40, 48), value, np.uint8), tmp_path / "blank.png")
    with pytest.raises(DataError, match=f"blank.png: the sketch is {word}: nothing is drawn"):
        load_sketch(path)


def test_a_faint_smudge_has_no_lines(tmp_path):
    faint = np.full((40, 48), 255, np.uint8)
    faint[10:14, 10:40] = 200
    with pytest.raises(DataError, match="no lines found"):
        load_sketch(write_png(faint, tmp_path / "faint.png"))


def test_a_colour_photo_is_refused_with_the_fix(tmp_path):
    with pytest.raises(DataError, match=r"photo.png: this looks like a colour picture.*"
                                        r"condsynth data sketches"):
        load_sketch(write_png(photo(1), tmp_path / "photo.png"))


def test_blue_pen_lines_are_a_sketch_not_a_photo(tmp_path):
    rgb = np.full((40, 48, 3), 255, np.uint8)
    rgb[drawing() < 128] = (20, 40, 200)
    sketch, _ = load_sketch(write_png(rgb, tmp_path / "blue.png"))
    assert np.array_equal(sketch < 128, drawing() < 128)


def test_a_grey_photo_gets_a_note(tmp_path):
    ramp = np.tile(np.linspace(60, 200, 48).astype(np.uint8), (40, 1))
    ramp[:, ::7] = 0
    _, notes = load_sketch(write_png(ramp, tmp_path / "ramp.png"))
    assert any("mid-grey" in n for n in notes)


def test_not_an_image_is_a_data_error(tmp_path):
    (tmp_path / "x.png").write_text("not a png")
    with pytest.raises(DataError, match="could not be read as an image"):
        load_sketch(tmp_path / "x.png")


# ----------------------------------------------------------------------------- hints


def test_hint_images_without_alpha_take_non_white_pixels():
    picture = np.full((4, 5, 3), 255, np.uint8)
    picture[1, 2] = (255, 0, 0)
    picture[3, 0] = (0, 0, 0)                                 # black is a hint too
    picture[0, 0] = (240, 240, 240)                           # near-white is paper
    hints = hints_from_array(picture)
    assert hints.shape == (HINT_CHANNELS, 4, 5)
    assert hints[3].nonzero().tolist() == [[1, 2], [3, 0]]
    assert hints[:3, 1, 2].tolist() == [1.0, -1.0, -1.0]
    assert hints[:3, 3, 0].tolist() == [-1.0, -1.0, -1.0]
    assert hints[:3, 0, 0].tolist() == [0.0, 0.0, 0.0]


def test_hint_images_with_alpha_take_opaque_pixels():
    picture = np.zeros((3, 3, 4), np.uint8)
    picture[1, 1] = (255, 255, 255, 255)                      # an opaque white hint
    hints = hints_from_array(picture)
    assert hints[3].nonzero().tolist() == [[1, 1]] and hints[:3, 1, 1].tolist() == [1.0] * 3
    assert np.array_equal(hint_picture(hints)[1, 1], [255, 255, 255])


def test_load_hints_resizes_the_same_shape_and_refuses_another(tmp_path):
    picture = np.full((20, 24, 3), 255, np.uint8)
    picture[4:8, 4:8] = (0, 128, 255)
    path = write_png(picture, tmp_path / "h.png")
    hints, notes = load_hints(path, (20, 24))
    assert notes == [] and hints.shape == (4, 20, 24) and hints[3].sum() == 16
    hints, notes = load_hints(path, (40, 48))
    assert hints.shape == (4, 40, 48) and hints[3].sum() == 64
    assert any("resized from 24x20 to the sketch's 48x40" in n for n in notes)
    with pytest.raises(DataError, match=r"h.png: the hint image is 24x20 but the sketch is "
                                        r"48x20.*another shape"):
        load_hints(path, (20, 48))
    blank = write_png(np.full((20, 24, 3), 255, np.uint8), tmp_path / "blank.png")
    assert any("no hint found" in n for n in load_hints(blank, (20, 24))[1])


def test_sampled_hints_take_the_real_colours():
    torch.manual_seed(0)
    image = torch.empty(4, 3, 64, 64)
    colours = torch.tensor([[0.8, -0.2, 0.1], [-1.0, 0.5, 0.9], [0.0, 0.0, 0.0],
                            [1.0, 1.0, -1.0]])
    image[:] = colours[:, :, None, None]                     # one flat colour per image
    hints = sample_hints(image, max_strokes=8, none_prob=0.0)
    assert hints.shape == (4, 4, 64, 64)
    mask = hints[:, 3]
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert (mask.flatten(1).sum(1) > 0).all()                 # every item got strokes
    for b in range(4):
        on = mask[b] > 0
        assert torch.allclose(hints[b, :3][:, on], colours[b][:, None].expand(3, int(on.sum())))
        assert (hints[b, :3][:, ~on] == 0).all()
    assert mask.mean() < 0.2                                   # sparse strokes, not a fill


def test_hint_count_and_none_share():
    torch.manual_seed(1)
    image = torch.zeros(200, 3, 16, 16)
    none = sample_hints(image, max_strokes=4, none_prob=1.0)
    assert not none.any()
    some = sample_hints(image, max_strokes=4, none_prob=0.5)[:, 3].flatten(1).sum(1)
    assert 60 < int((some == 0).sum()) < 140
    assert sample_hints(image[:2], 0, 0.0).shape == (2, 4, 16, 16)


def test_sampled_hints_are_reproducible():
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    torch.manual_seed(7)
    a = sample_hints(image, 6, 0.2)
    torch.manual_seed(7)
    assert torch.equal(a, sample_hints(image, 6, 0.2))


# ----------------------------------------------------------------------------- pair folders


def test_write_sketch_pairs_layout_and_reading_back(photos, tmp_path):
    out = tmp_path / "pairs"
    summary = write_sketch_pairs(photos, out, test_count=2, size=32, progress=False)
    assert summary == {"out": str(out), "layout": "sketch_pairs", "train": 4, "test": 2}
    names = sorted(p.stem for p in (out / "train_sketch").iterdir())
    assert names == ["more__photo4", "more__photo5", "photo0", "photo1"]   # sorted paths
    assert sorted(p.stem for p in (out / "test_img").iterdir()) == ["photo2", "photo3"]
    sketch = np.asarray(Image.open(out / "train_sketch" / "photo1.png"))
    image = np.asarray(Image.open(out / "train_img" / "photo1.png"))
    assert sketch.ndim == 2 and image.shape == (32, 38, 3) and sketch.shape == (32, 38)
    assert np.array_equal(sketch, image_sketch(image))
    assert discover(out, "auto")[0] == "sketch_pairs"
    assert discover(out, "sketch")[0] == "sketch_pairs"       # pairs, not a mix of both
    assert available_phases(out, "sketch_pairs") == ["train", "test"]
    assert detect_num_classes(out) == 0
    again = tmp_path / "again"
    write_sketch_pairs(photos, again, XDoGParams(sigma=1.0), random_params=True, seed=3,
                       progress=False)
    write_sketch_pairs(photos, tmp_path / "third", random_params=True, seed=3, progress=False)
    for name in ("photo0", "more__photo4"):
        assert (out / "train_sketch" / f"{name}.png").is_file()
        assert np.array_equal(np.asarray(Image.open(again / "train_sketch" / f"{name}.png")),
                              np.asarray(Image.open(tmp_path / "third" / "train_sketch"
                                                    / f"{name}.png")))


def test_write_sketch_pairs_bad_input(tmp_path):
    with pytest.raises(DataError, match="folder not found"):
        write_sketch_pairs(tmp_path / "nope", tmp_path / "out", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        write_sketch_pairs(tmp_path / "empty", tmp_path / "out", progress=False)


def _dataset(root, layout, train, **data) -> PairedDataset:
    return PairedDataset(DataConfig(root=str(root), layout=layout, preprocess="none", **data),
                         ConditionConfig(kind="image", image_channels=1), train=train)


def test_sketch_layout_draws_lines_on_the_fly(photos):
    plain = _dataset(photos, "sketch", train=True)
    assert set(plain[0]) == {"image", "path"}                 # as before: no line extraction
    fixed = _dataset(photos, "sketch", train=True, line_extraction="xdog")
    item = fixed[1]
    assert set(item) == {"source", "image", "path"} and item["source"].shape == (1, 40, 48)
    expected = image_sketch(tensor_to_image(item["image"]))
    assert np.array_equal(tensor_to_image(item["source"])[..., 0], expected)
    random = _dataset(photos, "sketch", train=True, line_extraction="xdog_random")
    again = _dataset(photos, "sketch", train=True, line_extraction="xdog_random")
    assert torch.equal(random[2]["source"], again[2]["source"])          # (seed, epoch, index)
    draws = [random[i]["source"] for i in range(6)]
    random.set_epoch(1)
    assert any(not torch.equal(a, random[i]["source"]) for i, a in enumerate(draws))
    evaluation = _dataset(photos, "sketch", train=False, line_extraction="xdog_random")
    assert torch.equal(evaluation[1]["source"], item["source"])          # defaults in eval


def test_sketch_layout_in_a_paired_dataset_reads_its_photos(tmp_path):
    root = tmp_path / "paired"
    for phase in ("train", "test"):
        write_png(photo(0), root / f"{phase}_img" / "a.png")
        write_png(np.zeros((40, 48), np.uint8), root / f"{phase}_label" / "a.png")
    _, samples = discover(root, "sketch", "test")
    assert [s.image for s in samples] == [root / "test_img" / "a.png"]
    with pytest.raises(DataError, match="val_img"):
        discover(root, "sketch", "val")


def test_sketch_pairs_items_and_mismatches(tmp_path):
    root = tmp_path / "pairs"
    write_png(drawing(), root / "train_sketch" / "a.png")
    write_png(photo(0), root / "train_img" / "a.png")
    write_png(255 - drawing(), root / "train_sketch" / "b.png")  # inverted: fixed on reading
    write_png(photo(1), root / "train_img" / "b.png")
    dataset = _dataset(root, "auto", train=False)
    assert dataset.layout == "sketch_pairs" and len(dataset) == 2
    item = dataset[1]
    assert set(item) == {"source", "image", "path"} and item["path"].endswith("b.png")
    assert np.array_equal(tensor_to_image(item["source"])[..., 0], drawing())
    write_png(photo(2)[:20], root / "train_img" / "b.png")
    with pytest.raises(DataError, match=r"size mismatch: sketch .*b.png is 48x40 but image"):
        dataset[1]
    write_png(drawing(), root / "train_sketch" / "c.png")
    with pytest.raises(DataError, match="do not pair up by name: c"):
        discover(root, "sketch_pairs")
