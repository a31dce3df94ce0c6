"""An attribute pipeline in a real browser: the toggles, new noise and every stage's picture."""

from __future__ import annotations

import json

import pytest

from condsynth.studio.server import make_server
from tests.studio.test_browser import CHROMIUM, SHOTS, Studio, browser  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.skipif(
    not CHROMIUM.is_file(), reason="browser tests need Debian's Chromium at /usr/bin/chromium")]


@pytest.fixture(scope="module")
def attr_page(browser, attribute_pipeline):  # noqa: F811
    server = make_server([attribute_pipeline], host="127.0.0.1", port=0, device="cpu")
    server.start()
    page = browser.new_page()
    view = Studio(page)
    view.requests = []
    page.on("request", lambda r: view.requests.append(json.loads(r.post_data))
            if r.url.endswith("/api/generate") else None)
    page.goto(server.url)
    view.settle(0)
    yield view
    page.close()
    server.shutdown()
    server.server_close()
    assert not view.problems, view.problems


def test_toggling_an_attribute_runs_the_chain_again(attr_page, attribute_pipeline):
    s, page = attr_page, attr_page.page
    toggles = page.locator("#attribute-toggles input")
    assert [t.get_attribute("data-attribute") for t in toggles.all()] == [
        "Smiling", "Eyeglasses", "Male"]
    assert not any(t.is_checked() for t in toggles.all())
    assert s.requests[-1]["attributes"] == [-1, -1, -1]
    assert page.inner_text("#new-sample") == "New noise"
    assert page.locator("#stages figcaption").all_inner_texts() == ["sketch", "refine", "image"]
    assert not page.locator("#walk-section").is_visible()

    before = s.generation()
    page.check("#attribute-toggles input[data-attribute=Eyeglasses]")
    s.settle(before)
    assert s.requests[-1]["attributes"] == [-1, 1, -1]
    assert page.locator("#stages img").count() == 3
    seed = page.inner_text("#seed-a")
    assert page.inner_text("#attribute-recipe") == (
        f'condsynth synthesize {attribute_pipeline} --attributes "Eyeglasses=1" --seed {seed} '
        "--out OUT")

    stages = [img.get_attribute("src") for img in page.locator("#stages img").all()]
    s.click_and_settle("#new-sample")                       # new noise, the same attributes
    assert s.requests[-1]["attributes"] == [-1, 1, -1]
    assert s.requests[-1]["seed"] == int(page.inner_text("#seed-a")) != int(seed)
    assert [img.get_attribute("src") for img in page.locator("#stages img").all()] != stages
    assert f"--seed {s.requests[-1]['seed']}" in page.inner_text("#attribute-recipe")
    before = s.generation()
    page.check("#attribute-toggles input[data-attribute=Smiling]")
    s.settle(before)
    assert s.requests[-1]["attributes"] == [1, 1, -1]
    s.shot("attribute_pipeline.png")
