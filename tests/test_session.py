"""The app's per-visitor pieces without a browser or a model: image notes and removal, refusals
named as the visitor named the file, keywords reported missing, downloads named after the
concept, the final preview, and estimates that learn from the runs a server has done."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from conftest import EXAMPLES
from textinv_core import estimate, forms
from textinv_core import session as ts
from textinv_core.concepts import Concept
from textinv_core.fields import FieldError
from textinv_core.train import Finished, TrainConfig

ROBOT = sorted((EXAMPLES / "red-rocket").glob("*.png"))


def test_image_notes_start_with_a_summary_and_stay_short(tmp_path):
    session = ts.Session()
    empty, huge = tmp_path / "empty.png", tmp_path / "huge.tif"
    empty.write_bytes(b"")
    with open(huge, "wb") as f:
        f.truncate(ts.MAX_UPLOAD_BYTES + 1)
    session.add_images([(str(empty), "empty.png"), (str(huge), "huge.tif"), (str(ROBOT[0]), "a.png")], 64)
    notes = session.image_notes()
    assert notes.splitlines()[0] == "**1 image ready** · 2 refused. Add a few more if you can: 3 to 5 usually work best."
    assert "- ✖ empty.png: empty file (0 bytes)" in notes and "- ✖ huge.tif: 50 MB, over the 50 MB limit" in notes

    assert session.remove_image("huge.tif") and not session.remove_image("huge.tif")
    assert [u.name for u in session.uploads] == ["empty.png", "a.png"]

    many = [(str(empty), f"empty-{i}.png") for i in range(30)]
    session.add_images(many, 64)
    notes = session.image_notes(["late-1.png", "late-2.png"])
    assert notes.startswith("**1 image ready** · 31 refused · 2 not added.")
    assert len(notes.splitlines()) == ts.MAX_NOTE_LINES + 1 and notes.endswith("see the captions under the images")


def test_refused_image_messages_name_the_file_and_no_class(tmp_path):
    server_copy = tmp_path / "gradio" / "0a1b2c" / "notes.png"
    server_copy.parent.mkdir(parents=True)
    server_copy.write_text("not an image")
    upload = ts.check_image(server_copy, "notes.png")
    assert upload.error.startswith("notes.png: not an image") and "Error" not in upload.error
    assert str(tmp_path) not in upload.error


def test_keywords_in_prompts_used_and_missing():
    concepts = [Concept("<red-rocket>", {"clip_l": torch.zeros(1, 4)})]
    used, missing = ts.keywords_in(["a <red-rocket> and <gone>", "EasyNegative"], concepts, {"easynegative": "EasyNegative.pt"})
    assert used == ["`<red-rocket>`"]
    assert missing == ["`<gone>`", "`EasyNegative` (EasyNegative.pt could not be loaded)"]


def test_downloads_are_named_after_the_concept(tmp_path):
    for name in ("learned_embeds.safetensors", "red-rocket.pt", "settings.json"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "token_identifier.txt").write_text("<red-rocket>")
    files = ts.download_files(tmp_path, family_is_sdxl=False)
    assert {k: v.name for k, v in files.items()} == {
        "diffusers": "red-rocket-diffusers.safetensors", "a1111": "red-rocket.pt", "everything": "red-rocket-all.zip"}
    assert (tmp_path / "learned_embeds.safetensors").exists()  # the run's own files keep their names


def test_a_final_preview_when_the_last_step_has_none():
    config = TrainConfig(token="<x>", steps=12, preview_every=5, preview_prompt="a photo of <x>")
    finished = Finished(12, False, Path("."), None)
    assert ts.needs_final_preview(config, finished)
    assert not ts.needs_final_preview(config, Finished(10, False, Path("."), None))  # step 10 had one
    assert not ts.needs_final_preview(config, Finished(12, True, Path("."), None))  # stopped: end at once
    assert estimate.preview_count(12, 5) == 3 and estimate.preview_count(10, 5) == 2 and estimate.preview_count(9, 0) == 0


def test_a_suggested_keyword_obeys_the_keyword_rule():
    request = forms.train_request([64], "x" * 60, "", "object", "", 10, 0.005, 1, 1, 64, 0, True, "constant", "", 0)
    with pytest.raises(FieldError, match="^Keyword: 62 characters is too long"):
        ts.train_config(request)
    request = forms.train_request([64], "Red Robot", "", "style", "", 10, 0.005, 1, 1, 64, 0, True, "constant", "", 0)
    config = ts.train_config(request)
    assert config.token == "<red-robot>" and config.preview_prompt == "a painting of a house in the style of <red-robot>"


def test_estimates_learn_from_the_runs_done_here():
    model = SimpleNamespace(spec="fake/model", is_demo=False, resolution=512, family=SimpleNamespace(name="SD 1.x"),
                            placement=SimpleNamespace(device=SimpleNamespace(type="cpu"), dtype=torch.float32))
    table = estimate.estimate_training(model, 100, resolution=512)
    assert not table.measured and table.runs == 0
    estimate.record_run(model, 512, 1, 1, [9.0, 2.0, 2.2, 1.8], [6.0], 3.0)  # the first step is left out
    learned = estimate.estimate_training(model, 100, resolution=512, preview_every=50)
    assert learned.runs == 1 and learned.seconds == pytest.approx(100 * 2.0 + 2 * 6.0 + 3.0)
    assert "learned from 1 run on this server" in learned.describe()
    estimate.record_run(model, 512, 1, 1, [9.0, 4.0, 4.0], [], None)
    assert estimate.estimate_training(model, 100, resolution=512).runs == 2
