"""The app in a real browser: Debian's chromium driven by the `playwright` package.

A visitor's path through the three tabs on the tiny demo model: a refused upload explained, images
uploaded, training with a live loss curve and previews, generating with the concept, an empty
prompt explained, pushing to the local Hub server and finding the concept again. A screenshot of
each tab is saved in the test's folder and, with TEXTINV_UPDATE_SCREENSHOTS=1, in docs/screenshots.

Needs `apt-get install chromium` and `pip install playwright` (no `playwright install`: the
browser is Debian's); skipped, saying which is missing, otherwise.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

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
    for close in page.locator(".toast-close").all():  # earlier warnings would cover the page
        close.click()
    page.mouse.move(0, 0)  # no hover highlight
    page.wait_for_timeout(500)  # let plots and images settle
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("TEXTINV_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / f"{name}.png")


def status(page, element_id: str, text: str):
    """Wait until the status box `element_id` shows `text`; returns its whole text."""
    box = page.locator(f"#{element_id}")
    box.get_by_text(text, exact=False).first.wait_for()
    return box.inner_text()


def test_a_visitor_trains_generates_and_shares(page, tmp_path, hub):  # noqa: F811
    upload = page.locator("#train-images input[type=file]")

    # A file that is not an image is refused, and the page says why.
    not_image = tmp_path / "shopping-list.txt"
    not_image.write_text("eggs, milk")
    upload.set_input_files(str(not_image))
    assert "shopping-list.txt: not an image" in status(page, "image-notes", "not an image")
    page.get_by_role("button", name="Remove all images").click()
    page.get_by_text("Drop 3 to 5 images").first.wait_for()

    upload.set_input_files([str(p) for p in sorted((EXAMPLES / "red-rocket").glob("*.png"))[:4]])
    status(page, "image-notes", "4 images ready")
    assert page.locator("#thumbnails img").count() == 4

    page.locator("#concept-name textarea").fill("red rocket")
    page.locator("#init-word textarea").fill("robot")
    page.wait_for_function("document.querySelector('#keyword textarea').value === '<red-rocket>'")
    steps = page.locator("#steps input[type=number]")
    steps.fill("12")
    steps.press("Enter")
    page.get_by_text("Advanced").click()
    preview_every = page.locator("#preview-every input")
    preview_every.fill("4")
    preview_every.press("Enter")
    page.locator("#estimate").get_by_text("measured on this machine").wait_for()

    page.get_by_role("button", name="Train", exact=True).click()
    assert "12 / 12" in status(page, "train-status", "Finished")
    assert page.locator("#loss-plot canvas, #loss-plot svg").count() >= 1  # the loss curve is drawn
    assert page.locator("#previews img").count() == 3  # previews at steps 4, 8 and 12
    page.get_by_text("is ready").first.wait_for()
    page.get_by_text("Advanced").click()  # close it again for a tidy screenshot
    shoot(page, tmp_path, "train")

    # Generate: an empty prompt is explained, then the concept is used.
    page.get_by_role("button", name="Use it in Generate →").click()
    prompt = page.locator("#prompt textarea")
    assert prompt.input_value() == "a photo of <red-rocket>"
    prompt.fill("")
    page.get_by_role("button", name="Generate", exact=True).click()
    assert "prompt is empty" in status(page, "generate-status", "prompt is empty")
    prompt.fill("a photo of <red-rocket> on the moon")
    page.get_by_role("button", name="Generate", exact=True).click()
    assert "<red-rocket>" in status(page, "generate-status", "1 image")
    page.locator("#results-gallery img").first.wait_for()
    shoot(page, tmp_path, "generate")

    # Hub: push with a pasted token, then find the concept in the library.
    page.get_by_role("tab", name="Hub").click()
    page.locator("#token input").fill(ALICE_WRITE)
    page.locator("#namespace textarea").fill(ORG)
    page.get_by_role("button", name="Push to the Hub").click()
    assert f"{ORG}/red-rocket" in status(page, "push-status", "pushed to")
    assert ALICE_WRITE not in page.content()  # the token never reaches the page
    page.locator("#search textarea").fill("rocket")
    page.get_by_role("button", name="Search", exact=True).click()
    status(page, "search-status", "Found 1 concept")
    page.get_by_role("button", name="Load selected concept").click()
    status(page, "hub-status", "loaded")
    shoot(page, tmp_path, "hub")
    assert "learned_embeds.safetensors" in hub.api(ALICE_WRITE).list_repo_files(f"{ORG}/red-rocket")
