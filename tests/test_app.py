"""The web app end to end, through gradio_client against the launched app on the tiny demo model:
train -> generate -> push to the local Hub server -> load by keyword in another session; two
sessions at once; every error explained; chunked (ZeroGPU-style) training equal to one run."""

from __future__ import annotations

import os
import pickle
import threading
import time
from pathlib import Path

import pytest
import torch
from gradio_client import Client, handle_file
from PIL import Image, ImageFilter
from safetensors.torch import save_file

from conftest import EXAMPLES
from hub_server import ALICE_WRITE, ORG
from textinv_core.space import driving, estimate, hub_tab, settings, startup, uploads
from textinv_core.space.keywords import suggest_keyword
from textinv_core.space.session import Session
from textinv_core.train import TrainConfig, Trainer

ROBOT = sorted((EXAMPLES / "red-rocket").glob("*.png"))
MUG = sorted((EXAMPLES / "teal-mug").glob("*.png"))


@pytest.fixture(scope="module")
def app_module(tiny_sd, tmp_path_factory):
    import app

    os.environ["TEXTINV_WORK_ROOT"] = str(tmp_path_factory.mktemp("sessions"))  # visitors' run folders
    demo = app.build_app(tiny_sd)
    app.launch(demo, prevent_thread_lock=True, quiet=True)
    yield app, demo.local_url
    demo.close()
    os.environ.pop("TEXTINV_WORK_ROOT", None)


@pytest.fixture
def url(app_module, hub, monkeypatch):  # noqa: F811
    """The app, pointed at this test's Hub server and at its org as the concepts library."""
    monkeypatch.setenv("TEXTINV_HUB_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("TEXTINV_LIBRARY_AUTHOR", ORG)
    return app_module[1]


def client(url: str) -> Client:
    return Client(url, verbose=False)


def train_args(keyword: str, steps: int = 4, preview_every: int = 2, init: str = "robot",
               stop_when_learned: bool = False) -> tuple:
    # name, keyword, type, init word, steps, lr, vectors, batch, resolution, seed, flip, schedule,
    # preview prompt, preview every, stop when learned
    return (keyword.strip("<>"), keyword, "object", init, steps, 0.005, 1, 1, 64, 0, True, "constant", "", preview_every,
            stop_when_learned)


def add_images(c: Client, paths) -> tuple:
    """(thumbnails, image notes) after adding `paths`."""
    thumbs, notes, _, _ = c.predict([handle_file(str(p)) for p in paths], api_name="/add_images")
    return thumbs, notes


def wait_for_status(job, text: str, timeout: float = 120) -> None:
    """Wait until a streamed status holds `text`: fails (never hangs) if the run ends first or
    the text never comes."""
    deadline = time.monotonic() + timeout
    while not any(text in str(out[0]) for out in job.outputs()):
        assert not job.done(), job.result()
        assert time.monotonic() < deadline, f"no status with {text!r} in {timeout:.0f} s: {job.outputs()[-1:]}"
        time.sleep(0.1)


def no_server_path(text: str) -> bool:
    """No temp folder, upload folder or class name of the server in a message for the page."""
    return all(part not in text for part in (os.environ["GRADIO_TEMP_DIR"], "/tmp/", "Error", "Traceback"))


def keywords(c: Client) -> list[str]:
    table, _ = c.predict(api_name="/concepts")
    return [row[0] for row in table["data"]]


def test_train_generate_push_then_load_by_keyword_in_another_session(url, hub):  # noqa: F811
    alice = client(url)
    _, notes = add_images(alice, ROBOT[:3])
    assert "3 images ready" in notes

    job = alice.submit(*train_args("<red-rocket>", steps=4, preview_every=3), api_name="/train")
    final = job.result(timeout=120)
    status, plot, previews, diffusers, a1111, everything, table, _, _, result = final
    assert "Finished" in status and "4 / 4" in status
    assert [row[1:] for row in plot["data"] if row[0] == 4][0][1] == "training loss"  # the loss curve, to the last step
    assert {row[2] for row in plot["data"]} == {"training loss", "its average"}  # no readings: not stopping when learned
    assert [p["caption"] for p in previews] == ["step 4", "step 3"]  # newest first; the last step gets one too
    assert all(Path(p["image"]).exists() for p in previews)
    assert any("Training" in out[0] for out in job.outputs())  # it streamed while training
    # named after the concept, so two concepts' downloads never collide in a Downloads folder
    assert Path(diffusers).name == "red-rocket-diffusers.zip" and Path(a1111).name == "red-rocket.pt"
    assert Path(everything).name == "red-rocket-all.zip"
    assert "<red-rocket>" in result and table["data"][0][0] == "<red-rocket>"

    images, gen_status = alice.predict("a photo of <red-rocket>", "", 4, 7.5, 64, 64, 1, 1, api_name="/generate")
    assert len(images) == 1 and "<red-rocket>" in gen_status and "seed 1" in gen_status

    pushed = alice.predict("", "red-rocket", ORG, False, "openrail++", ALICE_WRITE, api_name="/push")
    assert f"{ORG}/red-rocket" in pushed and "✔" in pushed and ALICE_WRITE not in pushed
    assert "learned_embeds.safetensors" in hub.api(ALICE_WRITE).list_repo_files(f"{ORG}/red-rocket")

    bob = client(url)  # a second visitor
    assert keywords(bob) == []
    choices, previews, text = bob.predict("red", "", api_name="/search")
    assert f"{ORG}/red-rocket" in str(choices) and "<red-rocket>" in text and previews
    _, _, loaded = bob.predict("red-rocket", "", "", api_name="/load_concept")
    assert "✔" in loaded and "<red-rocket>" in loaded
    assert keywords(bob) == ["<red-rocket>"]
    images, gen_status = bob.predict("a photo of <red-rocket>", "", 4, 7.5, 64, 64, 3, 1, api_name="/generate")
    assert len(images) == 1 and "<red-rocket>" in gen_status


def test_two_visitors_at_once_see_only_their_own_concepts(url):
    one, two = client(url), client(url)
    add_images(one, ROBOT[:3])
    add_images(two, MUG[:3])
    jobs = [
        one.submit(*train_args("<robot-one>", steps=3, preview_every=0), api_name="/train"),
        two.submit(*train_args("<mug-two>", steps=3, preview_every=0, init="mug"), api_name="/train"),
    ]
    assert all("Finished" in job.result(timeout=120)[0] for job in jobs)
    assert keywords(one) == ["<robot-one>"] and keywords(two) == ["<mug-two>"]

    results = {}

    def draw(name: str, c: Client, prompt: str) -> None:
        results[name] = c.predict(prompt, "", 3, 7.5, 64, 64, 0, 1, api_name="/generate")

    threads = [
        threading.Thread(target=draw, args=("one", one, "a photo of <robot-one>")),
        threading.Thread(target=draw, args=("two", two, "a photo of <mug-two> and <robot-one>")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert "<robot-one>" in results["one"][1]
    used, _, missing = results["two"][1].partition("Not found")
    assert "<mug-two>" in used and "<robot-one>" not in used  # not theirs: plain text, and said so
    assert "`<robot-one>`" in missing


def test_errors_are_explained_in_the_page(url, tmp_path):
    c = client(url)
    not_image = tmp_path / "notes.txt"
    not_image.write_text("hello")
    blurry = tmp_path / "blurry.png"
    Image.open(ROBOT[0]).convert("RGB").resize((64, 64)).resize((512, 512)).filter(ImageFilter.GaussianBlur(2)).save(blurry)
    small = tmp_path / "small.png"  # small for SD (a warning at 512 px), but not for this 64 px model
    Image.open(ROBOT[1]).convert("RGB").resize((128, 128)).save(small)
    assert "small.png: only 128x128" in uploads.check_image(small, resolution=512).warnings[0][1]
    thumbs, notes = add_images(c, [not_image, blurry, small])
    assert "notes.txt: not an image" in notes and "Error" not in notes  # no class name
    assert notes.startswith("**2 images ready** · 1 refused")
    assert "blurry.png" in notes and "blurry or upscaled" in notes
    assert len(thumbs) == 3 and "refused" in thumbs[0]["caption"]
    c.predict(api_name="/clear_images")

    status = c.predict(*train_args("<x-thing>"), api_name="/train")[0]
    assert status.startswith("✖") and "add 3 to 5 images" in status and "Error" not in status
    add_images(c, ROBOT[:1])
    status = c.predict(*train_args("robot"), api_name="/train")[0]
    assert "already means something" in status

    _, gen_status = c.predict("   ", "", 4, 7.5, 64, 64, 0, 1, api_name="/generate")
    assert gen_status.startswith("✖ Prompt: empty; describe the image you want")

    assert "train a concept first" in c.predict("", "x", "", False, "mit", "", api_name="/push")
    assert "no such model repo" in c.predict("nobody/nothing", "", "", api_name="/load_concept")[2]
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a pickle at all")
    status = c.predict(handle_file(str(bad)), "", api_name="/load_embedding")[2]
    assert status.startswith("✖") and "bad.pt" in status and no_server_path(status)
    assert "search first" in c.predict(None, "", "", api_name="/load_selected")[2]  # its own message


def test_push_without_a_token_says_how_to_log_in(url):
    c = client(url)
    add_images(c, ROBOT[:2])
    c.predict(*train_args("<tokenless>", steps=1, preview_every=0), api_name="/train")
    status = c.predict("", "tokenless", "", False, "mit", "", api_name="/push")
    assert status.startswith("✖") and "not logged in" in status


def test_stop_ends_cleanly_and_keeps_what_was_learned(url):
    c = client(url)
    add_images(c, ROBOT[:3])
    job = c.submit(*train_args("<stopped>", steps=2000, preview_every=0), api_name="/train")
    wait_for_status(job, "step")
    assert "Stopping" in c.predict(api_name="/stop")
    status, *_, diffusers, a1111, everything, table, _, _, result = job.result(timeout=60)
    assert "Stopped early" in status and Path(diffusers).exists() and "<stopped>" in result


def test_uploaded_embedding_and_negative_keyword(url, tmp_path, tiny_sd, robot_images):
    output = tmp_path / "run"
    list(Trainer(tiny_sd, robot_images[:2], TrainConfig(token="<bad-art>", init_word="sketch", steps=1), output).run())
    c = client(url)
    _, picker, status = c.predict(handle_file(str(output / "bad-art.pt")), "<ugly>", api_name="/load_embedding")
    assert "✔" in status and picker["value"] == "<ugly>"
    _, gen_status = c.predict("a photo of a cat", "<ugly>", 3, 7.5, 64, 64, 0, 1, api_name="/generate")
    assert "<ugly>" in gen_status


def test_every_field_is_checked_and_named_through_the_api(url):
    """What the page can send, and what only the API can: empty, out of range, wrong types, huge."""
    c = client(url)
    add_images(c, ROBOT[:3])

    def train_status(**changes) -> str:
        names = ["name", "keyword", "type", "init", "steps", "lr", "vectors", "batch", "resolution", "seed", "flip",
                 "schedule", "preview_prompt", "preview_every"]
        args = dict(zip(names, train_args("<checked>", steps=2, preview_every=0))) | changes
        return c.predict(*args.values(), api_name="/train")[0]

    for changes, expected in [
        (dict(lr=None), "✖ Learning rate: empty; use a number from 0.00001 to 0.5 (default 0.005)"),
        (dict(lr="fast"), "✖ Learning rate: “fast” is not a number"),
        (dict(steps=0), "✖ Steps: 0 is too small; use a whole number from 1 to 5000"),
        (dict(steps=-5), "✖ Steps: -5 is too small"),
        (dict(steps=None), "✖ Steps: empty"),
        (dict(steps=1e9), "✖ Steps: 1000000000 is too large"),
        (dict(steps="many"), "✖ Steps: “many” is not a number"),
        (dict(seed=2**63), "✖ Seed: 9223372036854775808 is too large; use a whole number from 0 to 4294967295"),
        (dict(vectors=99), "✖ Vectors per keyword: 99 is too large; use a whole number from 1 to 16"),
        (dict(batch=[1]), "✖ Batch size: “[1]” is not a number"),
        (dict(resolution=4096), "✖ Training resolution (px): “4096” is not one of the choices"),
        (dict(schedule="linear"), "✖ Learning-rate schedule: “linear” is not one of the choices"),
        (dict(type="person"), "✖ What is it?: “person” is not one of the choices"),
        (dict(keyword="<>"), "✖ Keyword: “&lt;&gt;” is not a usable keyword"),
        (dict(keyword="<" + "a" * 78 + ">"), "✖ Keyword: 80 characters is too long"),
        (dict(preview_prompt="x" * 1_000_000), "✖ Preview prompt: 1,000,000 characters is too long; the limit is 2,000"),
        (dict(init="x" * 1_000_000), "✖ Starts from the word: 1,000,000 characters is too long"),
        (dict(preview_prompt="a photo of <other>", preview_every=1), "✖ Preview prompt: `<other>` is not this concept's keyword"),
    ]:
        assert train_status(**changes).startswith(expected), changes
    assert "Finished" in train_status(resolution="64", steps="2", seed="7")  # numbers as strings are fine

    def generate_status(*args) -> str:
        return c.predict(*args, api_name="/generate")[1]

    assert generate_status("a cat", "", 3, 7.5, 64, 64, 2**63, 1).startswith("✖ Seed: 9223372036854775808 is too large")
    assert generate_status("a cat", "", 3, 7.5, 70, 64, 0, 1).startswith("✖ Width: 70 is not a multiple of 8")
    assert generate_status("a cat", "", 0, 7.5, 64, 64, 0, 1).startswith("✖ Steps: 0 is too small; use a whole number from 1 to 100")
    assert generate_status("a cat", "", 3, "strong", 64, 64, 0, 1).startswith("✖ Guidance: “strong” is not a number")
    assert generate_status("x" * 1_000_000, "", 3, 7.5, 64, 64, 0, 1).startswith("✖ Prompt: 1,000,000 characters is too long")
    assert "seed 5" in generate_status("a cat", None, "3", 7.5, "64", 64, "5", 1)
    assert "seed" in generate_status("a cat", "", 3, 7.5, 64, 64, None, 1)  # empty seed: random
    assert c.predict("x" * 1_000_000, "", "", api_name="/load_concept")[2].startswith("✖ Concept: 1,000,000 characters")


def test_refusals_name_the_file_as_uploaded_and_the_demo_model_says_what_would_work(url, tmp_path):
    c = client(url)
    empty = tmp_path / "EasyNegative.pt"
    empty.write_bytes(b"")
    status = c.predict(handle_file(str(empty)), "", api_name="/load_embedding")[2]
    assert status.startswith("✖ 'EasyNegative.pt' is empty") and no_server_path(status)

    real = tmp_path / "badhands.safetensors"  # an SD 1.x embedding (768 wide) on a 32-wide demo model
    save_file({"emb_params": torch.randn(2, 768)}, real)
    status = c.predict(handle_file(str(real)), "", api_name="/load_embedding")[2]
    assert "badhands.safetensors is an embedding for SD 1.x models" in status and "built-in demo model" in status
    assert "TEXTINV_MODEL=stable-diffusion-v1-5/stable-diffusion-v1-5" in status and no_server_path(status)

    # a prompt using keywords no concept in this tab provides says which ones
    images, status = c.predict("a photo of <not-loaded>", "badhands", 3, 7.5, 64, 64, 0, 1, api_name="/generate")
    assert len(images) == 1 and "Not found, so read as plain words: `<not-loaded>`, `badhands` (badhands.safetensors could not be loaded)" in status


def test_images_one_removed_oversized_and_empty_files_noted_and_a_summary_first(url, tmp_path):
    c = client(url)
    huge, empty = tmp_path / "huge.png", tmp_path / "empty.jpg"
    with open(huge, "wb") as f:
        f.truncate(uploads.MAX_UPLOAD_BYTES + 2**20)  # over the app's limit, under gradio's
    empty.write_bytes(b"")
    thumbs, notes = add_images(c, [*ROBOT[:3], huge, empty])
    assert notes.startswith("**3 images ready** · 2 refused.")
    assert "huge.png: 51 MB, over the 50 MB limit for one image" in notes and "empty.jpg: empty file (0 bytes)" in notes
    assert len(thumbs) == 5

    thumbs, notes, _, picker = c.predict("huge.png", api_name="/remove_image")
    assert len(thumbs) == 4 and "huge.png" not in notes and "huge.png" not in str(picker["choices"])
    thumbs, notes, _, _ = c.predict(ROBOT[0].name, api_name="/remove_image")
    assert notes.startswith("**2 images ready** · 1 refused.")

    many = []
    for i in range(55):
        path = tmp_path / f"many-{i:02d}.png"
        Image.open(ROBOT[i % len(ROBOT)]).save(path)
        many.append(path)
    c.predict(api_name="/clear_images")
    thumbs, notes = add_images(c, many)
    assert notes.startswith("**50 images ready** · 5 not added.")
    assert len(notes.splitlines()) <= uploads.MAX_NOTE_LINES + 1


def test_without_the_hub_every_hub_action_says_so_at_once(app_module, monkeypatch):
    import socket

    with socket.socket() as probe:  # a port nothing listens on: like a machine with no network
        probe.bind(("127.0.0.1", 0))
        monkeypatch.setenv("TEXTINV_HUB_ENDPOINT", f"http://127.0.0.1:{probe.getsockname()[1]}")
    c = client(app_module[1])
    begin = time.monotonic()
    notice = c.predict(api_name="/hub_notice")
    assert notice["visible"] and "can't be reached from this server right now** (can't connect" in notice["value"]
    assert "can't reach right now" in c.predict("cat", "", api_name="/search")[2]
    assert "not in the local cache" in c.predict("someone/never-downloaded", "", "", api_name="/load_concept")[2]
    assert time.monotonic() - begin < 10


def test_the_estimate_learns_from_runs_here(url):
    c = client(url)
    add_images(c, ROBOT[:3])
    assert "measured on this machine" in c.predict(40, 2, 64, 0, api_name="/estimate")  # batch 2: not run yet here
    assert "Finished" in c.predict(*train_args("<timed>", steps=6, preview_every=0)[:7], 2, 64, 0, True, "constant", "",
                                   0, api_name="/train")[0]
    assert "learned from 1 run on this server" in c.predict(40, 2, 64, 0, api_name="/estimate")
    assert c.predict(40, 0, 64, 0, api_name="/estimate").startswith("✖ Batch size: 0 is too small")


# -- the pieces under the app ---------------------------------------------------------------------


def test_chunked_training_across_processes_equals_one_run(tiny_sd, robot_images, tmp_path):
    """ZeroGPU: each chunk runs in a forked worker, so everything crossing must pickle, and the
    chunks together must train exactly what one uninterrupted run trains."""
    config = TrainConfig(token="<red-rocket>", init_word="robot", steps=5, seed=3)
    whole = list(Trainer(tiny_sd, robot_images, config, tmp_path / "whole").run())[-1].concept

    def in_worker(images, cfg, output_dir, state=None, pause_at=None):
        args = pickle.loads(pickle.dumps((images, cfg, output_dir, state, pause_at)))
        for event in driving.train_chunk(tiny_sd, *args):
            yield pickle.loads(pickle.dumps(event))

    chunked = list(driving.run_training(robot_images, config, tmp_path / "chunked", in_worker, chunk_steps=2))
    view = chunked[-1]
    assert view.phase == "finished" and [s for s, _ in view.losses] == [1, 2, 3, 4, 5]
    assert torch.equal(view.finished.concept.vectors["clip_l"], whole.vectors["clip_l"])


def test_stop_between_chunks_finishes_with_the_vectors(tiny_sd, robot_images, tmp_path):
    config = TrainConfig(token="<red-rocket>", steps=6)
    run = driving.run_training(robot_images, config, tmp_path, lambda *a: driving.train_chunk(tiny_sd, *a), chunk_steps=2)
    for view in run:
        if view.step == 2:
            (tmp_path / driving.STOP_FILE).touch()
    assert view.phase == "stopped" and view.finished.step == 2
    assert (tmp_path / "learned_embeds.safetensors").exists()


def test_the_loss_chart_plots_the_evaluation_readings(tiny_sd, robot_images, tmp_path):
    """With stop when learned, the chart carries the fixed-noise evaluation loss the rule reads (at
    step 0 and every 25 steps) beside the noisy training loss; a one-point run draws no chart."""
    from textinv_core.space import training

    config = TrainConfig(token="<red-rocket>", steps=30, stop_when_learned=True, evaluate=False)
    view = list(driving.run_training(robot_images, config, tmp_path, lambda *a: driving.train_chunk(tiny_sd, *a)))[-1]
    frame = training.loss_frame(view.losses, view.readings)
    evaluation = frame[frame.series == training.EVALUATION]
    assert evaluation.step.tolist() == [0, 25]
    assert set(frame.series) == {training.TRAINING_LOSS, training.AVERAGE, training.EVALUATION}
    assert training.loss_frame(view.losses[:1]) is None


def test_image_checks():
    sharp = Image.open(ROBOT[0]).convert("RGB")
    assert uploads.detail_warnings(sharp) == []
    upscaled = sharp.resize((64, 64)).resize((512, 512), Image.Resampling.BICUBIC)
    assert "blurry or upscaled" in uploads.detail_warnings(upscaled)[0][0]
    assert "blank" in uploads.detail_warnings(Image.new("RGB", (300, 300), "white"))[0][0]
    assert suggest_keyword("My Red Robot!") == "<my-red-robot>" and suggest_keyword("  ") == ""


def test_session_folders_are_private_and_cleaned_up(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTINV_WORK_ROOT", str(tmp_path))
    one, two = Session(), Session()
    assert one.folder != two.folder and one.folder.parent == tmp_path
    one.cleanup()
    assert not one.folder.exists() and two.folder.exists()


def test_estimates(tiny_sd):
    measured = estimate.estimate_training(tiny_sd, 1000, batch_size=3)  # a setting no run here has used
    assert measured.measured and not measured.runs and 0 < measured.seconds < 600 and "measured" in measured.describe()
    cpu = estimate.table_seconds_per_step("SD 1.x", "cpu", 512)
    gpu = estimate.table_seconds_per_step("SD 1.x", "cuda", 512, gpu="NVIDIA H200")
    assert cpu > 50 * gpu
    assert estimate.table_seconds_per_step("SDXL", "cuda", 1024, gpu="Tesla T4") > estimate.table_seconds_per_step(
        "SDXL", "cuda", 1024, gpu="NVIDIA A100-SXM4-80GB"
    )
    slow = estimate.Estimate(1000 * cpu, cpu, "CPU (2 cores)", measured=False, cpu_only=True)
    assert "no GPU" in slow.describe() and "very slow" in slow.describe()
    assert estimate.format_duration(42) == "42 s" and estimate.format_duration(3 * 3600 + 600) == "3 h 10 min"


def test_tokens(monkeypatch):
    import gradio as gr

    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    mock = gr.OAuthToken(token=settings.MOCK_OAUTH_TOKEN, scope="", expires_at=0)
    real = gr.OAuthToken(token="hf_visitor", scope="", expires_at=0)
    assert hub_tab.visitor_token(real, "") == "hf_visitor"
    assert hub_tab.visitor_token(mock, "") == "hf_from_env"  # the local mock login is not a real token
    assert hub_tab.visitor_token(None, " hf_typed ") == "hf_typed"
    monkeypatch.setattr(hub_tab, "ON_SPACE", True)
    assert hub_tab.visitor_token(None, "") is False  # a Space never lends its own token to visitors


def test_offline_without_weights_opens_on_the_demo_model(tmp_path, monkeypatch):
    monkeypatch.setattr(startup, "DEMO_MODEL", "builtin:tiny-sd")  # the fallback itself, whichever the demo model is
    model, reason = startup.load_model(str(tmp_path))  # a folder that is not a model: like no weights at all
    assert model.is_demo and str(tmp_path) in reason and "stacktrace" not in reason

    # No network: the Hub is not waited for; the cache is looked at at once.
    monkeypatch.setattr(startup, "hub_unreachable", lambda endpoint=None: "can't connect to huggingface.co")
    begin = time.monotonic()
    model, reason = startup.load_model("someone/never-cached-model")
    assert model.is_demo and time.monotonic() - begin < 5
    assert "the Hub can't be reached: can't connect to huggingface.co, and there is no copy in the local cache" in reason


def session_folders(app_module) -> set[str]:
    return {p.name for p in Path(os.environ["TEXTINV_WORK_ROOT"]).glob("session-*")}


def test_an_api_session_ends_with_its_connection(app_module, monkeypatch):
    """gradio_client sessions are gradio sessions: closed, they are forgotten (after gradio's grace,
    here 1 s) and their folder goes with them."""
    monkeypatch.setenv("GRADIO_IS_E2E_TEST", "1")  # gradio's grace after a closed connection: 1 s, not an hour
    before = session_folders(app_module)
    c = client(app_module[1])
    add_images(c, ROBOT[:2])
    c.predict(*train_args("<short-lived>", steps=2, preview_every=0), api_name="/train")
    mine = session_folders(app_module) - before
    assert len(mine) == 1 and any((Path(os.environ["TEXTINV_WORK_ROOT"]) / mine.pop()).glob("run-*"))
    c.close()
    deadline = time.monotonic() + 30
    while session_folders(app_module) - before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert session_folders(app_module) - before == set()


def test_a_bad_keyword_or_a_failed_run_leaves_the_tab_able_to_train(app_module, monkeypatch):
    app, url = app_module
    c = client(url)
    add_images(c, ROBOT[:2])
    too_long = ("rocket", *train_args("<" + "k" * 298 + ">", steps=2)[1:])  # a fine name, a 300-character keyword
    refused = c.predict(*too_long, api_name="/train")[0]
    assert "Keyword" in refused and "too long" in refused and no_server_path(refused)

    real = driving.run_training

    def broken(*args, **kwargs):
        yield from real(*args, **kwargs)
        raise RuntimeError("the disk is full")  # fails after every step has run

    monkeypatch.setattr(driving, "run_training", broken)
    failed = c.predict(*train_args("<breaks>", steps=2, preview_every=0), api_name="/train")[0]
    assert "failed unexpectedly" in failed and "disk" not in failed  # the cause goes to the log, not the page
    monkeypatch.setattr(driving, "run_training", real)
    status, *_, result = c.predict(*train_args("<works>", steps=2, preview_every=0), api_name="/train")
    assert "Finished" in status and "<works>" in result


def test_generation_does_not_wait_behind_training(app_module):
    app, url = app_module
    assert settings.TRAIN_SLOTS == 1  # on a CPU: one run at a time, and images beside it
    first, second, drawer = client(url), client(url), client(url)
    for c in (first, second):
        add_images(c, ROBOT[:2])
    long_run = first.submit(*train_args("<long>", steps=5000, preview_every=0), api_name="/train")
    wait_for_status(long_run, "step")
    queued = second.submit(*train_args("<queued>", steps=2, preview_every=0), api_name="/train")
    wait_for_status(queued, "Waiting for a free training slot")
    images, status = drawer.predict("a photo of a robot", "", 2, 7.5, 64, 64, 1, 1, api_name="/generate")
    assert len(images) == 1 and "✔" in status and not long_run.done()  # drawn while the training goes on
    add_images(drawer, ROBOT[:2])
    given_up = drawer.submit(*train_args("<given-up>", steps=2, preview_every=0), api_name="/train")
    wait_for_status(given_up, "2 runs ahead of yours")  # the running one and <queued>
    assert "Stopping" in drawer.predict(api_name="/stop")  # Stop works on a run that is still waiting
    assert "Stopped before it started" in given_up.result(timeout=30)[0]
    assert "Stopping" in first.predict(api_name="/stop")
    assert "Stopped early" in long_run.result(timeout=60)[0]
    assert "Finished" in queued.result(timeout=120)[0]  # the waiting run then got the slot


def test_a_running_run_names_itself_and_keeps_its_images(url):
    """Another page of the same visitor can't swap a running run's images, and every status line
    names the keyword being trained; a stopped run is announced as stopped, not as ready."""
    c = client(url)
    add_images(c, ROBOT[:3])
    job = c.submit(*train_args("<locked>", steps=2000, preview_every=0), api_name="/train")
    wait_for_status(job, "step")
    assert "Training `<locked>`" in [str(out[0]) for out in job.outputs() if "step" in str(out[0])][-1]
    _, notes = add_images(c, MUG[:2])  # refused while the run trains: the run's three images stay
    assert notes.startswith("**3 images ready**")
    thumbs, notes, _, _ = c.predict(api_name="/clear_images")
    assert len(thumbs) == 3
    assert "Stopping" in c.predict(api_name="/stop")
    status, *_, result = job.result(timeout=60)
    assert "Stopped early" in status and "`<locked>`" in status
    assert "is ready" not in result and "was stopped" in result


def test_train_on_an_empty_page_asks_for_images_first(url):
    status = client(url).predict(*train_args("<" + "k" * 60 + ">", steps=2), api_name="/train")[0]
    assert "add 3 to 5 images" in status and "Keyword" not in status


def test_sizes_are_bounded_by_the_model(url, tiny_sd):
    c = client(url)
    native = tiny_sd.resolution  # a demo model draws x1 to x2 of its size
    _, status = c.predict("a photo", "", 2, 7.5, 16 * native, native, 1, 1, api_name="/generate")
    assert f"Width: {16 * native} is too large" in status and f"to {2 * native}" in status
    _, status = c.predict("a photo", "", 2, 7.5, 2 * native, native, 1, 1, api_name="/generate")
    assert status.startswith("✔") and "far from this model's own" in status


def test_the_hub_tab_says_what_is_missing(url, monkeypatch):
    c = client(url)
    status = c.predict("not a repo!!", "", "", api_name="/load_concept")[2]
    assert "“not a repo!!” is not a concept keyword" in status and "sd-concepts-library" not in status
    add_images(c, ROBOT[:2])
    c.predict(*train_args("<to-push>", steps=1, preview_every=0), api_name="/train")
    monkeypatch.setattr(hub_tab, "hub_unreachable", lambda endpoint=None: "no network")
    pushed = c.predict("", "", "", False, "openrail++", "", api_name="/push")
    assert "logged in" in pushed and "can't reach" in pushed
