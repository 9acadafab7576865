"""The app in a real browser: Debian's chromium driven by the `playwright` package.

A visitor's path through the three tabs on the tiny demo model: refused uploads explained (by the
file's own name, never a server path or a class name), one image removed, an empty learning rate
explained, training with a live loss curve and previews (the newest first, the last step's
included), a download named after the concept, generating with the concept, an empty prompt and
an unknown keyword explained, a real embedding file refused as demo mode as soon as it is chosen,
pushing to the local Hub server and finding the concept again; and the Hub tab saying up front
that the Hub can't be reached. No toast is ever gradio's generic "Error". A screenshot of each tab
is saved in the test's folder and, with TEXTINV_UPDATE_SCREENSHOTS=1, in docs/screenshots.

Needs `apt-get install chromium` and `pip install playwright` (no `playwright install`: the
browser is Debian's); skipped, saying which is missing, otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from conftest import EXAMPLES, ROOT
from hub_server import ALICE_WRITE, ORG

CHROMIUM = Path("/usr/bin/chromium")
# Headless as root, and never reaching for the internet (updates, sync, safe browsing...).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
]
SCREENSHOTS = ROOT / "docs" / "screenshots"

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install playwright)")
if not CHROMIUM.exists():
    pytest.skip("no /usr/bin/chromium (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def app_url(tiny_sd, tmp_path_factory):
    import app

    os.environ["TEXTINV_WORK_ROOT"] = str(tmp_path_factory.mktemp("sessions"))  # visitors' run folders
    demo = app.build_app(tiny_sd, library_author=ORG)  # the page names the library it searches
    app.launch(demo, prevent_thread_lock=True, quiet=True)
    yield demo.local_url
    demo.close()
    os.environ.pop("TEXTINV_WORK_ROOT", None)


@pytest.fixture
def page(app_url, hub, monkeypatch):  # noqa: F811
    monkeypatch.setenv("TEXTINV_HUB_ENDPOINT", hub.endpoint)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(60_000)
        page.goto(app_url)
        page.locator("#train-images").wait_for()
        yield page
        browser.close()


def shoot(page, tmp_path: Path, name: str) -> None:
    close_toasts(page)  # earlier warnings would cover the page
    page.mouse.move(0, 0)  # no hover highlight
    page.wait_for_timeout(500)  # let plots and images settle
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("TEXTINV_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / f"{name}.png")


def status(page, element_id: str, text: str):
    """Wait until the status box `element_id` shows `text`; returns its whole text, which must
    read as a message for a visitor: no server path, no class name."""
    box = page.locator(f"#{element_id}")
    box.get_by_text(text, exact=False).first.wait_for()
    shown = box.inner_text()
    assert "/tmp/" not in shown and "Error" not in shown and "Traceback" not in shown, shown
    return shown


def toasts(page) -> list[str]:
    """The toasts on the page now (title and text), read and closed."""
    texts = [toast.inner_text() for toast in page.locator("[data-testid='toast-body']").all()]
    close_toasts(page)
    return texts


def close_toasts(page) -> None:
    """Close every toast (stacked toasts cover each other's close buttons, so click them in script)."""
    page.evaluate("document.querySelectorAll(\"[data-testid='toast-close']\").forEach(button => button.click())")
    page.wait_for_timeout(300)


def assert_no_generic_errors(page) -> None:
    for text in toasts(page):
        assert not text.strip().startswith("Error") and "/tmp/" not in text and "`" not in text, text


def test_a_visitor_trains_generates_and_shares(page, tmp_path, hub):  # noqa: F811
    upload = page.locator("#train-images input[type=file]")

    # Files that are not usable images are refused, and the page says why, by their own names.
    not_image, empty = tmp_path / "shopping-list.txt", tmp_path / "holiday.jpg"
    not_image.write_text("eggs, milk")
    empty.write_bytes(b"")
    upload.set_input_files([str(not_image), str(empty)])
    notes = status(page, "image-notes", "holiday.jpg")
    assert "shopping-list.txt: not an image" in notes and "holiday.jpg: empty file (0 bytes)" in notes
    assert notes.startswith("0 images ready · 2 refused")
    page.get_by_role("button", name="Remove all images").click()
    page.get_by_text("Drop 3 to 5 images").first.wait_for()

    robots = sorted((EXAMPLES / "red-rocket").glob("*.png"))
    upload.set_input_files([str(p) for p in robots[:5]])
    status(page, "image-notes", "5 images ready")
    assert page.locator("#thumbnails img").count() == 5
    page.locator("#thumbnails button.thumbnail-item").nth(4).click()  # pick one thumbnail, then remove just that one
    page.wait_for_function(f"document.querySelector('#image-pick input').value === '{robots[4].name}'")
    page.get_by_role("button", name="Remove this image").click()
    status(page, "image-notes", "4 images ready")
    assert page.locator("#thumbnails img").count() == 4

    page.locator("#concept-name textarea").fill("red rocket")
    page.locator("#init-word textarea").fill("robot")
    page.wait_for_function("document.querySelector('#keyword textarea').value === '<red-rocket>'")

    # An empty learning rate is explained, naming the field and what it allows.
    learning_rate = page.locator("#learning-rate input")
    learning_rate.fill("")
    learning_rate.press("Enter")
    page.get_by_role("button", name="Train", exact=True).click()
    assert "Learning rate: empty; use a number from 0.00001 to 0.5" in status(page, "train-status", "Learning rate")
    assert_no_generic_errors(page)
    learning_rate.fill("0.005")
    learning_rate.press("Enter")

    steps = page.locator("#steps input[type=number]")
    steps.fill("0")
    steps.press("Enter")
    assert "Steps: 0 is too small" in status(page, "estimate", "Steps: 0 is too small")  # said before Train
    steps.fill("12")
    steps.press("Enter")
    page.get_by_text("Advanced").click()
    preview_every = page.locator("#preview-every input")
    preview_every.fill("5")
    preview_every.press("Enter")
    # measured on the demo model, or learned from runs the same server did in earlier tests
    page.locator("#estimate").get_by_text(re.compile("measured on this machine|learned from")).wait_for()

    page.get_by_role("button", name="Train", exact=True).click()
    assert "12 / 12" in status(page, "train-status", "Finished")
    assert page.locator("#loss-plot canvas, #loss-plot svg").count() >= 1  # the loss curve is drawn
    assert page.locator("#previews img").count() == 3  # previews at steps 5 and 10, and the last step
    assert page.locator("#previews").get_by_text("step", exact=False).first.inner_text().strip() == "step 12"
    page.get_by_text("is ready").first.wait_for()
    # this run now counts (earlier tests' runs on the same server may count too)
    page.locator("#estimate").get_by_text(re.compile(r"learned from \d+ runs? on this server")).wait_for()
    with page.expect_download() as download:
        page.locator("#download-diffusers").click()
    assert download.value.suggested_filename == "red-rocket-diffusers.zip"
    page.get_by_text("Advanced").click()  # close it again for a tidy screenshot
    shoot(page, tmp_path, "train")

    # Generate: an empty prompt and an unknown keyword are explained, then the concept is used.
    page.get_by_role("button", name="Use it in Generate →").click()
    prompt = page.locator("#prompt textarea")
    assert prompt.input_value() == "a photo of <red-rocket>"
    prompt.fill("")
    page.get_by_role("button", name="Generate", exact=True).click()
    assert "Prompt: empty" in status(page, "generate-status", "Prompt: empty")
    prompt.fill("a photo of <red-rocket> with <not-loaded> on the moon")
    page.get_by_role("button", name="Generate", exact=True).click()
    shown = status(page, "generate-status", "1 image")
    assert "<red-rocket>" in shown and "Not found, so read as plain words: <not-loaded>" in shown
    page.locator("#results-gallery img").first.wait_for()
    assert_no_generic_errors(page)

    # A real SD 1.x embedding is refused as soon as it is chosen, as what it is on the demo model.
    real = tmp_path / "EasyNegative.safetensors"
    save_file({"emb_params": torch.randn(8, 768)}, real)
    assert "PNG" in page.locator("#embedding-help").inner_text()
    page.locator("#embedding-file input[type=file]").set_input_files(str(real))
    shown = status(page, "embedding-status", "EasyNegative.safetensors")
    assert "built-in demo model" in shown and "TEXTINV_MODEL=" in shown
    assert_no_generic_errors(page)
    shoot(page, tmp_path, "generate")

    # Hub: push with a pasted token, then find the concept in the library.
    page.get_by_role("tab", name="Hub").click()
    assert not page.locator("#hub-offline").is_visible()
    page.get_by_role("button", name="Load selected concept").click()  # nothing selected yet: said under it
    status(page, "selected-status", "search first")
    page.locator("#token input").fill(ALICE_WRITE)
    page.locator("#namespace textarea").fill(ORG)
    page.get_by_role("button", name="Push to the Hub").click()
    assert f"{ORG}/red-rocket" in status(page, "push-status", "pushed to")
    assert ALICE_WRITE not in page.content()  # the token never reaches the page
    page.locator("#search textarea").fill("rocket")
    page.get_by_role("button", name="Search", exact=True).click()
    status(page, "search-status", "Found 1 concept")
    page.get_by_role("button", name="Load selected concept").click()
    status(page, "selected-status", "loaded")
    assert_no_generic_errors(page)
    shoot(page, tmp_path, "hub")
    assert "learned_embeds.safetensors" in hub.api(ALICE_WRITE).list_repo_files(f"{ORG}/red-rocket")


def test_the_hub_tab_says_up_front_when_the_hub_is_unreachable(page, monkeypatch):
    with socket.socket() as probe:  # a port nothing listens on: like a machine with no network
        probe.bind(("127.0.0.1", 0))
        monkeypatch.setenv("TEXTINV_HUB_ENDPOINT", f"http://127.0.0.1:{probe.getsockname()[1]}")
    page.reload()
    page.get_by_role("tab", name="Hub").click()
    assert "can't be reached from this server" in status(page, "hub-offline", "can't be reached")
    page.locator("#search textarea").fill("rocket")
    page.get_by_role("button", name="Search", exact=True).click()
    status(page, "search-status", "can't reach right now")


def test_a_narrow_screen(page, tmp_path):
    """At a phone's width the upload box's label must not cover its icon (checked by eye in the
    screenshot), and the Stop button is a stop colour even before a run."""
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(500)
    label = page.locator("#train-images label, #train-images [data-testid='block-label']").first.bounding_box()
    icon = page.locator("#train-images svg").last.bounding_box()
    assert label and icon and (label["y"] + label["height"] <= icon["y"] or label["x"] + label["width"] <= icon["x"])
    shoot(page, tmp_path, "narrow")
