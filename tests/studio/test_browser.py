"""The studio in a real browser: Playwright driving Debian's Chromium against a live server.

Each test opens the page, paints or uploads as a person would, waits for the picture and
checks it against a direct ``generate`` call on the layout the page's own download buttons
give. Screenshots go to $CONDSYNTH_STUDIO_SHOTS (default /tmp/studio_shots).
"""

from __future__ import annotations

import base64
import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from condsynth.api import load
from condsynth.data.dataset import image_to_tensor, tensor_to_image
from condsynth.data.sketches import sketch_to_tensor
from tests.studio.conftest import SAMPLE_CLASSES, SIZE, assert_close, png_file, sample_recipe

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SHOTS = Path(os.environ.get("CONDSYNTH_STUDIO_SHOTS", "/tmp/studio_shots"))
SKY, GRASS, ROAD, TREE, CAR = 0, 4, 5, 7, 8

pytestmark = [pytest.mark.browser, pytest.mark.skipif(
    not CHROMIUM.is_file(), reason="browser tests need Debian's Chromium at /usr/bin/chromium "
    "(apt-get install -y chromium; .ci/run installs it)")]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One headless Chromium for the module, with a fresh profile; never a downloaded one."""
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900}, accept_downloads=True)
        yield context
        context.close()


class Studio:
    """The page and what it logged: script errors and Content-Security-Policy refusals."""

    def __init__(self, page) -> None:
        self.page = page
        self.problems: list[str] = []
        page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        page.on("console", lambda m: self.problems.append(m.text)
                if "Content Security Policy" in m.text or "Refused to" in m.text else None)

    def generation(self) -> int:
        return int(self.page.get_attribute("body", "data-generation"))

    def settle(self, after: int, timeout: float = 30.0) -> int:
        """Wait for a picture newer than generation ``after``, with nothing left pending."""
        deadline = time.monotonic() + timeout
        while True:
            generation = self.generation()
            if generation > after and self.page.get_attribute("body", "data-pending") == "0":
                return generation
            if self.page.locator("#error").is_visible():
                raise AssertionError(f"the page shows an error: {self.error()}")
            assert time.monotonic() < deadline, "no picture arrived"
            time.sleep(0.03)

    def error(self, timeout: float = 10.0) -> str:
        self.page.locator("#error").wait_for(state="visible", timeout=timeout * 1000)
        return self.page.inner_text("#error-text")

    def select_model(self, model_id: str) -> None:
        """Switch models; the page asks for a picture only when it has none for that model
        (its change handler marks the page pending before select_option returns)."""
        self.page.select_option("#model", model_id)
        self.settle(-1)

    def screen_point(self, x: int, y: int) -> tuple[float, float]:
        """The centre of canvas pixel (x, y) on the screen."""
        box = self.page.locator("#layout").bounding_box()
        return (box["x"] + (x + 0.5) * box["width"] / SIZE,
                box["y"] + (y + 0.5) * box["height"] / SIZE)

    def stroke(self, points: list[tuple[int, int]], shift: bool = False) -> None:
        """Drag through canvas pixels (x, y) and wait for the picture that follows."""
        before = self.generation()
        at = self.screen_point
        if shift:
            self.page.keyboard.down("Shift")
        self.page.mouse.move(*at(*points[0]))
        self.page.mouse.down()
        for point in points[1:]:
            self.page.mouse.move(*at(*point), steps=4)
        self.page.mouse.up()
        if shift:
            self.page.keyboard.up("Shift")
        self.settle(before)

    def click_and_settle(self, selector: str) -> None:
        before = self.generation()
        self.page.click(selector)
        self.settle(before)

    def upload(self, selector: str, path: Path) -> None:
        self.page.set_input_files(selector, str(path))

    def download(self, selector: str) -> np.ndarray:
        with self.page.expect_download() as info:
            self.page.click(selector)
        return np.asarray(Image.open(info.value.path()))

    def result_src(self) -> str:
        return self.page.get_attribute("#result", "src") or ""

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / name), full_page=True)


@pytest.fixture
def studio_page(browser, studio):
    page = browser.new_page()
    view = Studio(page)
    page.goto(studio.url)
    view.settle(0)
    yield view
    page.close()
    assert not view.problems, view.problems


def reference(run: Path, label: np.ndarray, instance: np.ndarray | None, seed: int = 0,
              **kwargs) -> np.ndarray:
    """What ``generate`` gives for this layout, loaded and called directly."""
    method = load(run, device="cpu")
    torch.manual_seed(seed)
    instance_t = None if instance is None else torch.from_numpy(instance.astype(np.int64))[None]
    out = method.generate(torch.from_numpy(label.astype(np.int64))[None], instance=instance_t,
                          **kwargs)
    return tensor_to_image(out[0])


def data_url_image(url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


# ----------------------------------------------------------------------------- paint mode


def test_a_stroke_makes_the_picture_of_a_direct_generate_call(studio_page, studio_runs):
    s = studio_page
    first = s.result_src()
    assert first.startswith("data:image/png")
    s.page.click("#palette button[data-class='4']")            # grass
    s.page.click("#sizes button:last-child")                   # the widest brush
    s.stroke([(0, 25), (31, 25)])
    s.page.click("#palette button[data-class='8']")            # a car
    s.page.click("#sizes button:nth-child(3)")
    s.stroke([(6, 18), (12, 18)])
    assert s.result_src() != first
    assert "ms model" in s.page.inner_text("#latency")

    label = s.download("#download-layout")
    instance = s.download("#download-instance")
    result = s.download("#download-result")
    assert label.dtype == np.uint8 and label.shape == (SIZE, SIZE)   # 8-bit, one channel
    assert set(np.unique(label)) == {SKY, GRASS, CAR}
    assert set(np.unique(instance[label == CAR])) == {CAR * 1000 + 1}
    assert result.shape == (SIZE, SIZE, 3)
    assert_close(result, reference(studio_runs["p2p"], label, instance))
    s.shot("paint_stroke.png")


def test_classes_tools_and_history(studio_page):
    s = studio_page
    s.page.click("#palette button[data-class='5']")            # road
    assert "active" in s.page.get_attribute("#palette button[data-class='5']", "class")
    assert "active" not in (s.page.get_attribute("#palette button[data-class='0']", "class")
                            or "")
    s.page.click("#tool-fill")
    s.stroke([(16, 16)])                                       # flood fill the empty sky
    assert (s.download("#download-layout") == ROAD).all()
    s.click_and_settle("#undo")
    assert (s.download("#download-layout") == SKY).all()
    s.click_and_settle("#redo")
    assert (s.download("#download-layout") == ROAD).all()

    s.page.click("#tool-eraser")
    s.stroke([(0, 0), (31, 0)])                                # the eraser paints class 0
    assert (s.download("#download-layout")[0] == SKY).all()

    # Objects: each stroke of a thing class is a new instance; Shift extends the last one.
    s.page.click("#palette button[data-class='8']")
    assert "active" in s.page.get_attribute("#tool-brush", "class")
    s.stroke([(2, 10), (8, 10)])
    s.stroke([(20, 10), (26, 10)])
    s.stroke([(20, 20), (26, 20)], shift=True)
    instance = s.download("#download-instance")
    assert set(np.unique(instance)) == {SKY, ROAD, CAR * 1000 + 1, CAR * 1000 + 2}
    assert instance[10, 22] == instance[20, 22] == CAR * 1000 + 2
    s.click_and_settle("#clear")
    assert (s.download("#download-layout") == SKY).all()


def test_switching_models_and_a_style_image(studio_page, studio_runs, tmp_path):
    s = studio_page
    s.select_model("spade")
    assert s.page.locator("#style-section").is_visible()
    assert s.page.locator("#another-look").is_visible()
    assert not s.page.locator("#looks-section").is_visible()
    s.page.click("#palette button[data-class='4']")
    s.page.click("#sizes button:last-child")
    s.stroke([(0, 24), (31, 24)])
    without_style = s.result_src()

    style_path = tmp_path / "style.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (50, 40, 3), dtype=np.uint8)
                    ).save(style_path)
    before = s.generation()
    s.upload("#upload-style", style_path)
    s.settle(before)
    assert s.result_src() != without_style
    assert "resized from 40x50" in s.page.inner_text("#notes-text")
    style = data_url_image(s.page.get_attribute("#style-preview", "src"))
    label, instance = s.download("#download-layout"), s.download("#download-instance")
    expected = reference(studio_runs["spade"], label, instance,
                         style=image_to_tensor(style)[None])
    assert_close(s.download("#download-result"), expected)
    s.shot("spade_style.png")

    s.click_and_settle("#style-clear")
    s.click_and_settle("#another-look")
    seed = int(s.page.inner_text("#seed"))
    assert seed != 0
    assert_close(s.download("#download-result"),
                 reference(studio_runs["spade"], label, instance, seed=seed))

    # Each model keeps its own layout: back to pix2pix, its canvas is still empty sky.
    s.select_model("p2p")
    assert (s.download("#download-layout") == SKY).all()


def test_pix2pixhd_looks_per_class_and_per_object(studio_page, studio_runs):
    s = studio_page
    s.select_model("hd")
    s.page.locator("#looks button[data-look='4:0']").wait_for(timeout=20000)
    assert s.page.locator("#looks .look-row").count() >= 10
    s.page.click("#palette button[data-class='4']")
    s.page.click("#sizes button:last-child")
    s.stroke([(0, 24), (31, 24)])
    s.page.click("#palette button[data-class='7']")            # a tree: an object
    s.page.click("#sizes button:nth-child(3)")
    s.stroke([(20, 4), (20, 14)])
    random_look = s.result_src()
    s.click_and_settle("#looks button[data-look='4:1']")       # grass in its second look
    assert s.result_src() != random_look

    s.page.click("#tool-pick")
    s.page.mouse.click(*s.screen_point(20, 8))
    assert s.page.text_content("#looks-target") == "object 1 of tree"
    s.click_and_settle("#looks button[data-look='7:2']")
    s.shot("pix2pixhd_looks.png")

    label, instance = s.download("#download-layout"), s.download("#download-instance")
    method = load(studio_runs["hd"], device="cpu")
    label_t = torch.from_numpy(label.astype(np.int64))[None]
    instance_t = torch.from_numpy(instance.astype(np.int64))[None]
    features = method.feature_map(label_t, instance_t, {GRASS: 1}, {TREE * 1000 + 1: 2}, seed=0)
    expected = tensor_to_image(method.generate(label_t, instance=instance_t, z=features)[0])
    assert_close(s.download("#download-result"), expected)


# ----------------------------------------------------------------------------- sketch mode


def test_sketch_mode_lines_hints_and_uploads(studio_page, studio_runs, tmp_path):
    s = studio_page
    s.select_model("painter")
    assert not s.page.locator("#palette-section").is_visible()
    assert s.page.locator("#tool-pen").is_visible() and s.page.locator("#tool-hint").is_visible()
    s.stroke([(4, 6), (28, 6)])
    s.stroke([(16, 6), (16, 28)])
    sketch = s.download("#download-sketch")
    assert sketch.dtype == np.uint8 and (sketch == 0).sum() > 30 and (sketch == 255).sum() > 600
    lines_only = s.download("#download-result")
    method = load(studio_runs["painter"], device="cpu")
    expected = tensor_to_image(method.generate(sketch_to_tensor(sketch)[None])[0])
    assert_close(lines_only, expected)

    s.page.click("#tool-hint")
    s.page.click("#sizes button:last-child")
    s.stroke([(4, 20), (10, 20)])
    assert not np.array_equal(s.download("#download-result"), lines_only)
    s.shot("sketch.png")

    drawing = np.full((64, 64), 255, np.uint8)
    drawing[10:54, 30:33] = 0
    drawing[30:33, 10:54] = 0
    Image.fromarray(drawing).save(tmp_path / "cross.png")
    before = s.generation()
    s.upload("#upload-sketch", tmp_path / "cross.png")
    s.settle(before)
    uploaded = s.download("#download-sketch")
    assert uploaded[4, 4] == 255 and uploaded[8, 15] < 128     # the cross, at 32x32

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
                    ).save(tmp_path / "photo.png")
    s.upload("#upload-sketch", tmp_path / "photo.png")
    assert "looks like a colour picture" in s.error()


# ----------------------------------------------------------------------------- sample mode


def test_sample_mode_new_samples_a_class_and_the_walk(studio_page, studio_runs):
    s = studio_page
    s.select_model("cdcgan")
    page = s.page
    # No canvas and no drawing tools: the Sample panel, the class picker and the walk.
    for hidden in ("#layout", "#tool-section", "#palette-section", "#another-look"):
        assert not page.locator(hidden).is_visible(), hidden
    assert page.locator("#new-sample").is_visible() and page.locator("#walk").is_visible()
    options = page.locator("#sample-class option").all_inner_texts()
    assert options == [f"{i} {name}" for i, name in enumerate(SAMPLE_CLASSES)]
    assert (page.inner_text("#seed-a"), page.inner_text("#seed-b")) == ("0", "1")
    first = s.result_src()

    s.click_and_settle("#new-sample")
    seed_a = int(page.inner_text("#seed-a"))
    assert seed_a != 0 and s.result_src() != first
    sample_a = s.result_src()
    s.click_and_settle("#new-b")                                # shows B: the slider at 100 %
    seed_b = int(page.inner_text("#seed-b"))
    assert page.input_value("#walk") == "100" and s.result_src() != sample_a
    sample_b = s.result_src()

    before = s.generation()
    page.fill("#walk", "30")                                    # moving the slider
    s.settle(before)
    assert page.inner_text("#walk-value") == "30"
    assert s.result_src() not in (sample_a, sample_b)
    method = load(studio_runs["cdcgan"], device="cpu")
    assert_close(s.download("#download-result"), sample_recipe(method, seed_a, 0, seed_b, 0.3))

    walked = s.result_src()
    before = s.generation()
    page.select_option("#sample-class", "2")
    s.settle(before)
    assert s.result_src() != walked
    assert_close(s.download("#download-result"), sample_recipe(method, seed_a, 2, seed_b, 0.3))
    assert "update:" in page.inner_text("#latency")
    assert not page.locator("#error").is_visible()
    s.shot("sample_class.png")

    # Across modes: a greyscale model without classes, a sketch model, and back again.
    s.select_model("dcgan")
    assert not page.locator("#class-field").is_visible()
    assert data_url_image(s.result_src()).ndim == 2               # a greyscale PNG
    s.shot("sample_grey.png")
    s.select_model("painter")
    assert page.locator("#layout").is_visible() and page.locator("#tool-pen").is_visible()
    assert not page.locator("#sample-section").is_visible()
    s.select_model("cdcgan")
    assert (page.inner_text("#seed-a"), page.input_value("#walk")) == (str(seed_a), "30")
    assert page.input_value("#sample-class") == "2"
    assert not page.locator("#error").is_visible()


# ----------------------------------------------------------------------------- errors


def test_bad_uploads_show_their_error_in_the_page(studio_page, tmp_path):
    s = studio_page
    (tmp_path / "notes.txt").write_text("not a picture")
    s.upload("#upload-label", tmp_path / "notes.txt")
    assert "notes.txt is not an image" in s.error()
    assert s.page.get_attribute("body", "data-state") == "error"

    label = np.zeros((SIZE, SIZE), np.uint8)
    label[16:] = 42
    (tmp_path / "other.png").write_bytes(png_file(label))
    s.upload("#upload-label", tmp_path / "other.png")
    s.page.wait_for_selector("#error-text:has-text('other.png')")
    message = s.error()
    assert "42" in message and "outside 0..10" in message
    s.shot("bad_upload.png")

    label[16:] = GRASS
    (tmp_path / "good.png").write_bytes(png_file(label))
    before = s.generation()
    s.upload("#upload-label", tmp_path / "good.png")
    s.settle(before)
    assert not s.page.locator("#error").is_visible()
    assert np.array_equal(s.download("#download-layout"), label)

    s.upload("#upload-instance", tmp_path / "notes.txt")
    assert "not an image" in s.error()


def test_inference_errors_are_shown(studio_page, studio, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the model ran out of memory")

    monkeypatch.setattr(studio.models["p2p"].method, "generate", broken)
    s = studio_page
    s.page.mouse.click(*s.screen_point(16, 16))
    assert "the model failed: RuntimeError: the model ran out of memory" in s.error()
