"""The server with callers that send bad requests or leave: a refused request is one line in the
log, naming the endpoint and why (a traceback would mean a bug), and the caller is told what to
do; an API caller's session, folder and all, ends when its client goes. Run with gradio's
production timings: no GRADIO_IS_E2E_TEST, which would shorten its grace for closed sessions."""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from pathlib import Path

import httpx
import pytest
from conftest import EXAMPLES
from gradio import utils as gradio_utils
from gradio_client import Client, handle_file
from PIL import Image

from textinv_core.images import ImageError, load_image
from textinv_core.space.context import VISITORS
from textinv_core.space.session import Session

ROBOT = sorted((EXAMPLES / "red-rocket").glob("*.png"))


@pytest.fixture(scope="module")
def served(tiny_sd, tmp_path_factory):
    """The app, launched as `python app.py` launches it; yields (demo, its sessions folder)."""
    import app

    assert "GRADIO_IS_E2E_TEST" not in os.environ
    root = tmp_path_factory.mktemp("sessions")
    os.environ["TEXTINV_WORK_ROOT"] = str(root)
    demo = app.build_app(tiny_sd)
    app.launch(demo, prevent_thread_lock=True, quiet=True)
    yield demo, root
    demo.close()
    os.environ.pop("TEXTINV_WORK_ROOT", None)


def session_folders(root: Path) -> set[str]:
    return {p.name for p in root.glob("session-*")}


def rest(demo, api: str, data: list, session_hash: str | None = None) -> tuple[str, str]:
    """A plain REST call (gradio's /call/ API, no gradio_client, no heartbeat): its last event
    and that event's data."""
    base = f"{demo.local_url.rstrip('/')}/gradio_api/call/{api}"
    event_id = httpx.post(base, json={"data": data, "session_hash": session_hash}).json()["event_id"]
    last = httpx.get(f"{base}/{event_id}", timeout=120).text.strip().split("\n\n")[-1]
    event, payload = (line.split(": ", 1)[1] for line in last.splitlines())
    return event, payload


def rest_args(demo, api: str, **given) -> list:
    """An endpoint's values in its order: `given` by name, the rest its defaults."""
    parameters = demo.get_api_info()["named_endpoints"][f"/{api}"]["parameters"]
    return [given.get(p["parameter_name"], p.get("parameter_default")) for p in parameters]


def file_data(**fields) -> dict:
    return {"meta": {"_type": "gradio.FileData"}, **fields}


def test_refused_requests_are_one_line_each_and_the_caller_is_told_why(served, caplog, capfd):
    demo, _ = served
    caplog.set_level(logging.WARNING, logger="textinv.refusals")
    requests = {  # what is sent: (the files, what the caller is told, what the log says)
        "never uploaded": ([file_data(path="/etc/hostname", orig_name="cat.png")],
                           "never uploaded to this server", "a file it never received"),
        "URL": ([file_data(path="http://127.0.0.1:1/cat.png", url="http://127.0.0.1:1/cat.png", orig_name="cat.png")],
                "a URL this server does not fetch", "Hostname 127.0.0.1 failed validation"),
        "malformed": ([{"meta": {"_type": "gradio.FileData"}, "path": 12, "size": "big"}],
                      "not in the form the endpoint takes", "a malformed value"),
    }
    for files, told, logged in requests.values():
        event, message = rest(demo, "add_images", [files])
        assert event == "error" and told in message
    event, message = rest(demo, "add_images", [])
    assert event == "error" and "too few values" in message

    lines = [r.getMessage() for r in caplog.records if r.name == "textinv.refusals"]
    assert len(lines) == 4 and all(line.startswith("refused a request to /add_images: ") for line in lines)
    assert all("\n" not in line for line in lines)
    for line, (_, _, logged) in zip(lines, requests.values()):
        assert logged in line
    assert "too few values" in lines[-1]
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err


def test_a_picture_over_pillows_pixel_limit_is_refused_by_name_without_a_warning(served, tmp_path, caplog, capfd):
    demo, _ = served
    huge = tmp_path / "huge.png"
    Image.new("1", (10_000, 10_000)).save(huge)  # 100 megapixels; 1 bit a pixel keeps the test light
    c = Client(demo.local_url, verbose=False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _, notes, *_ = c.predict([handle_file(str(huge))], api_name="/add_images")
    c.close()
    assert "huge.png: over 89,478,485 pixels is too large to be a training photo" in notes
    assert not [w for w in seen if issubclass(w.category, Image.DecompressionBombWarning)]
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "DecompressionBomb" not in out + err
    assert not [r for r in caplog.records if "DecompressionBomb" in r.getMessage()]


@pytest.mark.parametrize("side", [10_000, 14_000])  # Pillow warns above its limit, and refuses above twice it
def test_load_image_refuses_what_pillow_calls_a_bomb_by_name(tmp_path, side):
    path = tmp_path / "bomb.png"
    Image.new("1", (side, side)).save(path)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(ImageError, match=r"^bomb.png: over [\d,]+ pixels is too large .* resize it first$"):
            load_image(path)
    assert seen == []


def api_visit(demo, number: int) -> Client:
    """One gradio_client visitor: images, a short training run, a picture."""
    c = Client(demo.local_url, verbose=False)
    c.predict([handle_file(str(p)) for p in ROBOT[:2]], api_name="/add_images")
    status = c.predict(name=f"cycle {number}", keyword=f"<cycle-{number}>", init_word="robot", steps=2, batch_size=1,
                       preview_prompt="", preview_every=0, stop_when_learned=False, api_name="/train")[0]
    assert "Finished" in status, status
    c.predict(prompt=f"a photo of <cycle-{number}>", negative="", steps=2, seed=number, api_name="/generate")
    return c


def test_api_sessions_end_with_their_connection(served):
    """Five gradio_client visitors in a row: each one's folder goes once its client closes, after at
    most gradio's heartbeat interval (when gradio_client drops the connection) and a little."""
    demo, root = served
    bound = gradio_utils.get_heartbeat_rate() + 5
    closed: dict[str, float] = {}  # folder -> when its client closed
    gone: dict[str, float] = {}  # folder -> when it was first seen gone
    stop = threading.Event()

    def look() -> None:
        while not stop.is_set():
            now, present = time.monotonic(), session_folders(root)
            gone.update({f: now for f in list(closed) if f not in present and f not in gone})
            time.sleep(0.2)

    watcher = threading.Thread(target=look, daemon=True)
    watcher.start()
    try:
        for number in range(5):
            before = session_folders(root)
            c = api_visit(demo, number)
            mine = session_folders(root) - before
            assert len(mine) == 1
            c.close()
            closed[mine.pop()] = time.monotonic()
        deadline = time.monotonic() + bound + 2
        while len(gone) < len(closed) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        watcher.join()
    assert set(gone) == set(closed), (closed, gone)
    assert all(gone[f] - closed[f] <= bound for f in closed), {f: gone[f] - closed[f] for f in closed}


def test_a_visitors_session_outlives_a_page_connection(served, tiny_sd):
    """A browser's session (one with a visitor id) is not ended when a page's connection closes:
    the page may be reloading, and must find it again."""
    demo, _ = served
    c = Client(demo.local_url, verbose=False)
    c.predict(None, api_name="/add_images")  # the connection now has a session in gradio
    visitor = VISITORS.identity(None)
    session = VISITORS.attach(visitor, tiny_sd)
    kept = demo.state_holder.session_data[c.session_hash]
    state_id = next(key for key, value in kept.state_data.items() if isinstance(value, Session))
    VISITORS.release(kept.state_data[state_id])  # that anonymous session is replaced by the visitor's
    kept.state_data[state_id] = session
    c.close()
    deadline = time.monotonic() + gradio_utils.get_heartbeat_rate() + 5
    while not kept.is_closed and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)  # gradio has run `unload`
    assert kept.is_closed and kept.state_data[state_id] is session
    assert VISITORS.attach(visitor, tiny_sd) is session and session.pages == 2
    VISITORS.release(session)
    VISITORS.release(session)


def test_a_rest_callers_session_is_swept_once_unused(served, monkeypatch):
    """A REST caller never holds a connection whose closing gradio could see: its session ends once
    no request has used it for the grace period."""
    demo, root = served
    uploaded = httpx.post(f"{demo.local_url.rstrip('/')}/gradio_api/upload",
                          files=[("files", (p.name, p.read_bytes(), "image/png")) for p in ROBOT[:2]]).json()
    files = [file_data(path=path, orig_name=p.name) for path, p in zip(uploaded, ROBOT[:2])]
    before = session_folders(root)
    assert rest(demo, "add_images", [files], session_hash="rest-caller")[0] == "complete"
    train = rest_args(demo, "train", name="rest", keyword="<rest>", init_word="robot", steps=2, batch_size=1,
                      preview_prompt="", preview_every=0, stop_when_learned=False)
    event, result = rest(demo, "train", train, session_hash="rest-caller")
    assert event == "complete" and "Finished" in result
    mine = session_folders(root) - before
    assert len(mine) == 1
    VISITORS.sweep()
    assert mine <= session_folders(root)  # used a moment ago: kept
    monkeypatch.setattr(VISITORS, "grace", 0.0)
    VISITORS.sweep()
    assert not mine & session_folders(root)
    assert not [v for v in demo.state_holder.session_data["rest-caller"].state_data.values() if isinstance(v, Session)]
