"""A run outlives its page and its server: the app as a real server process (`python app.py` on the
tiny demo model) and a real browser (Debian's chromium through playwright). A visitor starts a long
run; the page asks before it is left; reloading it re-attaches to the run, which streams on; the
server is killed (SIGKILL), and after a restart on the same address the returning visitor (the
same browser) is offered the interrupted run and resumes it from its checkpoint; then SIGTERM,
which a Space restart sends, makes the run save at its next step before the server exits.

Skipped like test_browser.py when chromium or playwright is missing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import EXAMPLES, ROOT
from test_browser import CHROMIUM, CHROMIUM_ARGS

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install playwright)")
if not CHROMIUM.exists():
    pytest.skip("no /usr/bin/chromium (apt-get install chromium)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(root: Path, port: int, log: Path) -> subprocess.Popen:
    env = os.environ | {"TEXTINV_WORK_ROOT": str(root), "TEXTINV_AUTOSAVE_SECONDS": "1", "HF_HUB_OFFLINE": "1",
                        "TEXTINV_MODEL": "builtin:tiny-sd"}
    server = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env,
                              stdout=log.open("a"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text()[-3000:]
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise AssertionError(f"the server did not start: {log.read_text()[-3000:]}")


def shown_step(page) -> int:
    """The step the Train status shows now (waits for one to show)."""
    page.locator("#train-status").get_by_text(re.compile(r"step \d+")).first.wait_for()
    return int(re.search(r"step (\d+)", page.locator("#train-status").inner_text()).group(1))


def run_folder(root: Path) -> Path:
    (folder,) = root.glob("visitor-*/run-01-*")  # a browser visitor's session, named by its id's hash
    return folder


def checkpoint_step(folder: Path) -> int:
    found = sorted((folder / "checkpoints").glob("step-*.resume"))
    return int(found[-1].stem.split("-")[1]) if found else 0


def wait_for(condition, seconds: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_a_run_survives_a_reload_a_kill_and_a_restart(tiny_sd, tmp_path):
    root, port, log = tmp_path / "sessions", free_port(), tmp_path / "server.log"
    url = f"http://127.0.0.1:{port}/"
    server = start_server(root, port, log)
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_context().new_page()  # one context: the browser's storage lasts across reloads
            page.set_default_timeout(60_000)
            asked = []
            page.on("dialog", lambda dialog: (asked.append(dialog.type), dialog.accept()))
            page.goto(url)
            page.locator("#train-images input[type=file]").set_input_files(
                [str(p) for p in sorted((EXAMPLES / "red-rocket").glob("*.png"))[:3]])
            page.locator("#image-notes").get_by_text("3 images ready").wait_for()
            page.locator("#concept-name textarea").fill("long rocket")
            page.locator("#init-word textarea").fill("robot")
            page.locator("#steps input[type=number]").fill("5000")
            page.get_by_text("Advanced").click()
            page.locator("#stop-when-learned input").uncheck()  # this run must go on until it is killed
            page.get_by_role("button", name="Train", exact=True).click()
            first = shown_step(page)

            page.reload()  # mid-run: the page asks first, and comes back to the same run, still going
            assert asked == ["beforeunload"]
            page.locator("#train-status").get_by_text("Training").wait_for()
            again = shown_step(page)
            page.wait_for_timeout(1500)
            assert again >= first and shown_step(page) > again  # it streams on
            assert page.locator("#stop-btn").is_enabled()

            folder = run_folder(root)
            wait_for(lambda: checkpoint_step(folder) > 0, what="an autosave")
            server.send_signal(signal.SIGKILL)  # no chance to save anything more
            server.wait(30)
            saved = checkpoint_step(folder)
            assert saved > 0 and not (folder / "result.json").exists()
            state = torch.load(sorted((folder / "checkpoints").glob("*.resume"))[-1], weights_only=True)
            on_disk = load_file(folder / "learned_embeds.safetensors")["<long-rocket>"]
            assert torch.equal(on_disk.reshape(-1), state["vectors"]["clip_l"].reshape(-1))  # files = last checkpoint

            server = start_server(root, port, log)
            page.reload()
            offer = page.locator("#resume-box")
            offer.get_by_text("was interrupted").wait_for()
            assert f"at step {saved} of 5000" in offer.inner_text()
            page.get_by_role("button", name="Resume training").click()
            page.locator("#train-status").get_by_text("Training").wait_for()
            assert shown_step(page) >= saved

            wait_for(lambda: checkpoint_step(folder) > saved, what="an autosave of the resumed run")
            before_term = checkpoint_step(folder)
            server.send_signal(signal.SIGTERM)  # a Space restart: the run stops at its next step and saves, then the server exits
            server.wait(60)
            assert "shutting down: stopping 1 training run" in log.read_text()
            after = sorted((folder / "checkpoints").glob("*.resume"))[-1]
            state = torch.load(after, weights_only=True)
            assert state["step"] >= before_term and state["loss_log"][-1, 0] == state["step"]  # every step trained is saved
            on_disk = load_file(folder / "learned_embeds.safetensors")["<long-rocket>"]
            assert torch.equal(on_disk.reshape(-1), state["vectors"]["clip_l"].reshape(-1))
            assert not (folder / "result.json").exists()  # still resumable
            settings = json.loads((folder / "settings.json").read_text())
            assert settings["token"] == "<long-rocket>" and settings["steps"] == 5000
            browser.close()
    finally:
        if server.poll() is None:
            server.kill()
