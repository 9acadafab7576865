"""The app's per-visitor pieces without a browser or a model: image notes and removal, refusals
named as the visitor named the file, keywords reported missing, downloads named after the
concept, the final preview, and estimates that learn from the runs a server has done."""

from __future__ import annotations

import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from conftest import EXAMPLES
from textinv_core.space import downloads, driving, estimate, forms, keywords, uploads
from textinv_core.space.session import Session
from textinv_core.concepts import Concept
from textinv_core.space.fields import MAX_KEYWORD_CHARS, FieldError
from textinv_core.train import Finished, Preview, Progress, TrainConfig

ROBOT = sorted((EXAMPLES / "red-rocket").glob("*.png"))


def form(**changes) -> dict:
    """A Train form as the page sends it, by field name."""
    return dict(name="", keyword="", concept_type="object", init_word="", steps=10, lr=0.005, vectors=1, batch_size=1,
                resolution=64, seed=0, flip=True, schedule="constant", preview_prompt="", preview_every=0) | changes


def test_image_notes_start_with_a_summary_and_stay_short(tmp_path):
    session = Session()
    empty, huge = tmp_path / "empty.png", tmp_path / "huge.tif"
    empty.write_bytes(b"")
    with open(huge, "wb") as f:
        f.truncate(uploads.MAX_UPLOAD_BYTES + 1)
    session.add_images([(str(empty), "empty.png"), (str(huge), "huge.tif"), (str(ROBOT[0]), "a.png")], 64)
    notes = uploads.notes(session.uploads)
    assert notes.splitlines()[0] == "**1 image ready** · 2 refused. Add a few more if you can: 3 to 5 usually work best."
    assert "- ✖ empty.png: empty file (0 bytes)" in notes and "- ✖ huge.tif: 50 MB, over the 50 MB limit" in notes

    assert session.remove_image("huge.tif") and not session.remove_image("huge.tif")
    assert [u.name for u in session.uploads] == ["empty.png", "a.png"]

    many = [(str(empty), f"empty-{i}.png") for i in range(30)]
    session.add_images(many, 64)
    notes = uploads.notes(session.uploads, ["late-1.png", "late-2.png"])
    assert notes.startswith("**1 image ready** · 31 refused · 2 not added.")
    assert len(notes.splitlines()) == uploads.MAX_NOTE_LINES + 1 and notes.endswith("see the captions under the images")


def test_refused_image_messages_name_the_file_and_no_class(tmp_path):
    server_copy = tmp_path / "gradio" / "0a1b2c" / "notes.png"
    server_copy.parent.mkdir(parents=True)
    server_copy.write_text("not an image")
    upload = uploads.check_image(server_copy, "notes.png")
    assert upload.error.startswith("notes.png: not an image") and "Error" not in upload.error
    assert str(tmp_path) not in upload.error


def test_keywords_in_prompts_used_and_missing():
    concepts = [Concept("<red-rocket>", {"clip_l": torch.zeros(1, 4)})]
    used, missing = keywords.keywords_in(["a <red-rocket> and <gone>", "EasyNegative"], concepts, {"easynegative": "EasyNegative.pt"})
    assert used == ["`<red-rocket>`"]
    assert missing == ["`<gone>`", "`EasyNegative` (EasyNegative.pt could not be loaded)"]


def test_downloads_are_named_after_the_concept(tmp_path):
    for name in ("learned_embeds.safetensors", "red-rocket.pt", "settings.json"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "token_identifier.txt").write_text("<red-rocket>")
    files = downloads.download_files(tmp_path, family_is_sdxl=False)
    assert {k: v.name for k, v in files.items()} == {
        "diffusers": "red-rocket-diffusers.zip", "a1111": "red-rocket.pt", "everything": "red-rocket-all.zip"}
    assert (tmp_path / "learned_embeds.safetensors").exists()  # the run's own files keep their names
    # unzipped, the diffusers download is a folder diffusers loads, its files under their own names
    with zipfile.ZipFile(files["diffusers"]) as archive:
        assert sorted(archive.namelist()) == ["red-rocket/learned_embeds.safetensors", "red-rocket/token_identifier.txt"]
    said = downloads.describe(files)
    assert "red-rocket/learned_embeds.safetensors" in said and "`red-rocket.pt`" in said


def test_a_final_preview_when_the_last_step_has_none():
    config = TrainConfig(token="<x>", steps=12, preview_every=5, preview_prompt="a photo of <x>")
    finished = Finished(12, False, Path("."), None)
    assert driving.needs_final_preview(config, finished)
    assert not driving.needs_final_preview(config, Finished(10, False, Path("."), None))  # step 10 had one
    assert not driving.needs_final_preview(config, Finished(12, True, Path("."), None))  # stopped: end at once
    assert estimate.preview_count(12, 5) == 3 and estimate.preview_count(10, 5) == 2 and estimate.preview_count(9, 0) == 0


def test_a_suggested_keyword_obeys_the_keyword_rule():
    """The app suggests only keywords that Train accepts: a long name is cut at a word, accents go."""
    long_name = "the quite long name of my favourite red rocket toy with fins"
    config = driving.train_config(forms.train_request([64], **form(name=long_name)))
    assert config.token == "<the-quite-long-name-of-my-favourite>" and len(config.token) <= MAX_KEYWORD_CHARS
    assert len(driving.train_config(forms.train_request([64], **form(name="x" * 60))).token) == MAX_KEYWORD_CHARS
    assert keywords.suggest_keyword("café crème") == "<cafe-creme>"
    assert keywords.suggest_keyword("Ærø straße") == "<aero-strasse>"
    with pytest.raises(FieldError, match="^Keyword: 62 characters is too long"):  # typed by hand: refused
        driving.train_config(forms.train_request([64], **form(keyword="<" + "x" * 60 + ">")))
    request = forms.train_request([64], **form(name="Red Robot", concept_type="style"))
    config = driving.train_config(request)
    assert config.token == "<red-robot>" and config.preview_prompt == "a painting of a house in the style of <red-robot>"


def test_estimates_learn_from_the_runs_done_here():
    model = SimpleNamespace(spec="fake/model", is_demo=False, resolution=512, family=SimpleNamespace(name="SD 1.x"),
                            pipe=SimpleNamespace(config={}),  # no toy world, no safety checker: no readout pictures
                            placement=SimpleNamespace(device=SimpleNamespace(type="cpu"), dtype=torch.float32))
    table = estimate.estimate_training(model, 100, resolution=512)
    assert not table.measured and table.runs == 0
    estimate.record_run(model, 512, 1, 1, [9.0, 2.0, 2.2, 1.8], [6.0], 3.0)  # the first step is left out
    learned = estimate.estimate_training(model, 100, resolution=512, preview_every=50)
    assert learned.runs == 1 and learned.seconds == pytest.approx(100 * 2.0 + 2 * 6.0 + 3.0)
    assert "learned from 1 run on this server" in learned.describe()
    estimate.record_run(model, 512, 1, 1, [9.0, 4.0, 4.0], [], None)
    assert estimate.estimate_training(model, 100, resolution=512).runs == 2


def _fake_model(spec: str) -> SimpleNamespace:
    return SimpleNamespace(spec=spec, is_demo=False, resolution=512, family=SimpleNamespace(name="SD 1.x"),
                           pipe=SimpleNamespace(config={}),
                           placement=SimpleNamespace(device=SimpleNamespace(type="cpu"), dtype=torch.float32))


def test_a_learned_estimate_counts_every_part_of_a_run():
    """Preparing, the steps, stop when learned's readings (the start, every 25 steps), previews and
    finishing: each as long as runs here took; with stop when learned it is an upper bound."""
    model = _fake_model("fake/parts")
    estimate.record_run(model, 512, 1, 1, [9.0, 2.0, 3.0, 1.0], [6.0], 7.0, reading_seconds=[5.0, 5.0, 4.0],
                        prepare_seconds=4.0, stop_when_learned=True)
    est = estimate.estimate_training(model, 100, resolution=512, preview_every=50, stop_when_learned=True)
    assert est.seconds == pytest.approx(4.0 + 100 * 2.0 + (1 + 4) * 5.0 + 2 * 6.0 + 7.0)  # steps: their mean
    assert est.up_to and est.describe().startswith("Up to **") and "sooner" in est.describe()
    # without the rule: no readings while training, and finishing as the table says (no run like it yet)
    without = estimate.estimate_training(model, 100, resolution=512, preview_every=50)
    assert not without.up_to and without.describe().startswith("About **")
    assert without.seconds == pytest.approx(4.0 + 100 * 2.0 + 2 * 6.0 + 2 * 5.0)
    assert estimate.readings_in(100, True) == (5, 1) and estimate.readings_in(100, False) == (0, 2)


def test_a_chunk_times_preparing_and_readings_apart(tiny_sd, monkeypatch, tmp_path):
    from textinv_core import train
    from textinv_core.stopping import PlateauRule

    monkeypatch.setattr(train, "PlateauRule", lambda: PlateauRule(every=2, patience=10))
    config = TrainConfig(token="<red-rocket>", steps=4, batch_size=1, stop_when_learned=True)
    images = [uploads.check_image(path).item for path in ROBOT[:2]]
    timing = [e for e in driving.train_chunk(tiny_sd, images, config, tmp_path) if isinstance(e, driving.Timing)][-1]
    assert timing.prepare > 0 and len(timing.steps) == 4 and len(timing.readings) == 3  # the start, steps 2 and 4
    assert timing.finish is not None


class _Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_time_left_goes_by_the_latest_steps_and_counts_the_previews(monkeypatch):
    """Waiting for a slot, preparing and a preview just made don't change the pace; the previews
    still to come are counted at what the earlier ones took."""
    clock = _Clock()
    monkeypatch.setattr(driving.time, "monotonic", clock)
    config = TrainConfig(token="<x>", steps=100, preview_every=25, preview_prompt="a <x>")
    lefts = []

    def chunk(images, config, output_dir, state, pause_at):
        clock.now += 30.0  # waiting and preparing
        for step in range(1, 51):
            clock.now += 1.0
            yield Progress(step, 100, 0.1, 0.005, 0.0, 0.0)
            if step % 25 == 0:
                clock.now += 10.0
                yield Preview(step, [])

    view = driving.RunView(total=100)
    for seen in driving.run_training([], config, Path("."), chunk, view=view):
        lefts.append(seen.eta)
    assert lefts[0] is None  # one step: no pace yet
    assert view.step == 50 and view.eta == pytest.approx(50 * 1.0 + 2 * 10.0)
    assert driving.previews_after(50, 100, 25) == 2 and driving.previews_after(0, 90, 25) == estimate.preview_count(90, 25)
    assert driving.previews_after(90, 90, 25) == 0
