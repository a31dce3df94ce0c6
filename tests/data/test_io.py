"""Reading label maps, instance maps, images and palettes, and the errors users see."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from condsynth.data.io import load_palette, read_image, read_instance, read_label
from condsynth.errors import DataError

from .builders import COLOURS, colour_image, label_map, write


def test_read_label_grey_png(tmp_path):
    label = label_map(0)
    out = read_label(write(tmp_path / "l.png", label))
    assert out.dtype == np.int64 and out.shape == label.shape
    np.testing.assert_array_equal(out, label)


def test_read_label_palette_mode_uses_indices_not_colours(tmp_path):
    label = label_map(1)
    img = Image.fromarray(label, "L").convert("P")
    img.putpalette([200, 10, 10] * 256)             # the colours must not matter
    img.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_label(tmp_path / "p.png"), label)


def test_read_label_16_bit(tmp_path):
    label = np.array([[0, 300], [40000, 65535]], dtype=np.uint16)
    np.testing.assert_array_equal(read_label(write(tmp_path / "l.png", label)), label)


def test_read_instance_16_bit_ids_above_32767_stay_positive(tmp_path):
    inst = np.array([[32768, 40001], [65535, 26001]], dtype=np.uint16)
    out = read_instance(write(tmp_path / "inst.png", inst))
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, inst.astype(np.int64))


def test_read_instance_8_and_32_bit(tmp_path):
    small = np.array([[0, 7], [255, 1]], dtype=np.uint8)
    np.testing.assert_array_equal(read_instance(write(tmp_path / "i8.png", small)), small)
    big = np.array([[0, 70_000], [2_000_000, 26_001]], dtype=np.int32)
    np.testing.assert_array_equal(read_instance(write(tmp_path / "i32.tif", big)), big)


def test_rgb_label_without_palette_is_an_error(tmp_path):
    path = write(tmp_path / "colour.png", colour_image(label_map(0)))
    with pytest.raises(DataError, match=r"colour\.png.*looks like a colour \(RGB\) label map; "
                                        r"pass --palette colours\.json"):
        read_label(path)


def test_grey_rgb_label_suggests_single_channel(tmp_path):
    grey = np.repeat(label_map(0)[..., None], 3, axis=2)
    with pytest.raises(DataError, match=r"three channels are equal.*mode L"):
        read_label(write(tmp_path / "grey.png", grey))


def test_rgb_label_with_palette(tmp_path):
    label = label_map(2)
    palette = {tuple(int(v) for v in COLOURS[i]): i for i in range(5)}
    rgba = np.dstack([colour_image(label), np.full(label.shape, 255, np.uint8)])
    for arr, name in ((colour_image(label), "rgb.png"), (rgba, "rgba.png")):
        np.testing.assert_array_equal(read_label(write(tmp_path / name, arr), palette), label)


def test_unknown_palette_colour_names_colour_count_and_file(tmp_path):
    image = colour_image(np.zeros((4, 4), np.uint8))
    image[0, :3] = (1, 2, 3)
    palette = {(0, 0, 0): 0}
    with pytest.raises(DataError, match=r"odd\.png: colour\(s\) not in the palette: "
                                        r"#010203 \(1, 2, 3\) on 3 pixel\(s\)"):
        read_label(write(tmp_path / "odd.png", image), palette)


def test_jpeg_label_warns(tmp_path):
    path = write(tmp_path / "label.jpg", label_map(0), quality=100)
    with pytest.warns(UserWarning, match=r"label\.jpg: label map saved as JPEG.*lossy"):
        read_label(path)


def test_png_label_does_not_warn(tmp_path):
    path = write(tmp_path / "label.png", label_map(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_label(path)


def test_truncated_png_is_detected(tmp_path):
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    data = write(tmp_path / "full.png", noise).read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 2])
    for read in (read_image, read_label, read_instance):
        with pytest.raises(DataError, match=r"cut\.png: could not be read as an image: .*"
                                            r"Fix: re-export it or remove it"):
            read(cut)


def test_non_image_file(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not a picture")
    with pytest.raises(DataError, match=r"notes\.png: could not be read as an image"):
        read_label(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nowhere\.png: file not found"):
        read_image(tmp_path / "nowhere.png")


def test_read_image_converts_to_rgb(tmp_path):
    grey = np.full((4, 5), 77, np.uint8)
    out = read_image(write(tmp_path / "g.png", grey))
    assert out.shape == (4, 5, 3) and out.dtype == np.uint8 and (out == 77).all()
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 1] = 200
    np.testing.assert_array_equal(read_image(write(tmp_path / "a.png", rgba))[..., 1], 200)
    deep = np.full((3, 3), 0x8000, np.uint16)       # 16-bit grey: high byte, not clipped
    assert (read_image(write(tmp_path / "d.png", deep)) == 128).all()


def test_load_palette_both_formats(tmp_path):
    hex_file = tmp_path / "hex.json"
    hex_file.write_text(json.dumps({"#000000": 0, "#FF8000": 3, "#ffffff": 255}))
    assert load_palette(hex_file) == {(0, 0, 0): 0, (255, 128, 0): 3, (255, 255, 255): 255}
    list_file = tmp_path / "classes.json"
    list_file.write_text(json.dumps({"names": ["a", "b"], "colours": [[1, 2, 3], [4, 5, 6]]}))
    assert load_palette(list_file) == {(1, 2, 3): 0, (4, 5, 6): 1}


@pytest.mark.parametrize(("text", "match"), [
    ("{not json", r"bad\.json: not valid JSON"),
    ('{"red": 1}', r"key 'red' is not a colour; expected '#rrggbb'"),
    ('{"#ff0000": -1}', r"class id -1 is not a non-negative integer"),
    ('{"colours": [[1, 2]]}', r"colours\[0\] is \[1, 2\], expected \[r, g, b\]"),
    ('{"colours": [[1, 2, 3], [1, 2, 3]]}', r"#010203 \(1, 2, 3\) is given twice"),
    ("[1, 2]", r"expected \{\"#rrggbb\": id"),
])
def test_bad_palette(tmp_path, text, match):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(DataError, match=match):
        load_palette(path)
