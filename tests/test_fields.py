"""What a visitor types, checked before anything runs: every field's message names the field and
what it allows; messages for the page never show server paths or class names; keywords no
concept provides are reported; an unreachable Hub is known in seconds."""

from __future__ import annotations

import socket
import time

import pytest
import torch

from textinv_core import hub
from textinv_core.space import forms, messages
from textinv_core.concepts import Concept
from textinv_core.space.fields import FieldError, NumberField, parse_keyword
from textinv_core.prompts import missing_keywords

TRAIN_OK = dict(name="red robot", keyword="", concept_type="object", init_word="robot", steps=12, lr=0.005,
                vectors=1, batch_size=1, resolution=64, seed=0, flip=True, schedule="constant", preview_prompt="",
                preview_every=4)


def train_with(**changes) -> forms.TrainRequest:
    return forms.train_request([32, 64], **(TRAIN_OK | changes))


@pytest.mark.parametrize("field, raw, expected", [
    ("lr", None, "Learning rate: empty; use a number from 0.00001 to 0.5 (default 0.005)"),
    ("lr", "abc", "Learning rate: “abc” is not a number"),
    ("steps", 0, "Steps: 0 is too small; use a whole number from 1 to 5000"),
    ("steps", -5, "Steps: -5 is too small"),
    ("steps", "", "Steps: empty"),
    ("steps", 1e9, "Steps: 1000000000 is too large; use a whole number from 1 to 5000"),
    ("steps", 2.5, "Steps: “2.5” is not a whole number"),
    ("seed", 2**63, "Seed: 9223372036854775808 is too large; use a whole number from 0 to 4294967295"),
    ("vectors", True, "Vectors per keyword: “True” is not a number"),
    ("resolution", "huge", "Training resolution (px): “huge” is not one of the choices; choose one of 32, 64"),
    ("schedule", "linear", "Learning-rate schedule: “linear” is not one of the choices"),
    ("flip", "maybe", "Mirror images at random: “maybe” is not true or false"),
    ("preview_every", float("nan"), "Preview every N steps: empty"),
    ("preview_prompt", "x" * 1_000_000, "Preview prompt: 1,000,000 characters is too long; the limit is 2,000"),
    ("keyword", "<>", "Keyword: “<>” is not a usable keyword"),
    ("keyword", "<" + "a" * 78 + ">", "Keyword: 80 characters is too long; use one word of at most 40"),
    ("keyword", "<my cat>", "Keyword: “<my cat>” holds a space"),
])
def test_every_train_field_names_itself_and_what_it_allows(field, raw, expected):
    with pytest.raises(FieldError) as caught:
        train_with(**{field: raw})
    assert str(caught.value).startswith(expected)


def test_values_from_the_page_and_the_api_are_accepted_alike():
    request = train_with(steps="12", lr="0.01", resolution="64", seed=3.0, flip="false")
    assert (request.steps, request.learning_rate, request.resolution, request.seed, request.flip) == (12, 0.01, 64, 3, False)
    assert isinstance(request.steps, int) and isinstance(request.resolution, int)


def test_generate_fields():
    request = forms.generate_request(prompt="a cat", negative=None, steps=30, guidance=7.5, width=64, height=64, seed=None, num_images=1)
    assert request.seed == -1 and request.negative == ""  # an empty seed means random
    with pytest.raises(FieldError, match="^Prompt: empty"):
        forms.generate_request(prompt="  ", negative="", steps=30, guidance=7.5, width=64, height=64, seed=0, num_images=1)
    with pytest.raises(FieldError, match="^Width: 70 is not a multiple of 8; use a multiple of 8 from 64 to 1536$"):
        forms.generate_request(prompt="a cat", negative="", steps=30, guidance=7.5, width=70, height=64, seed=0, num_images=1)
    with pytest.raises(FieldError, match="^Seed: 9223372036854775808 is too large"):
        forms.generate_request(prompt="a cat", negative="", steps=30, guidance=7.5, width=64, height=64, seed=2**63, num_images=1)
    with pytest.raises(FieldError, match="^Negative prompt: 1,000,000 characters is too long"):
        forms.generate_request(prompt="a cat", negative="x" * 1_000_000, steps=30, guidance=7.5, width=64, height=64, seed=0, num_images=1)


def test_number_limits_read_as_people_write_them():
    assert NumberField("Rate", 0.00001, 0.5, 0.005).allowed == "a number from 0.00001 to 0.5 (default 0.005)"
    assert parse_keyword("EasyNegative") == "EasyNegative" and parse_keyword(" <cat-toy> ") == "<cat-toy>"


def test_messages_for_the_page_name_the_file_as_the_visitor_did():
    server = "/tmp/gradio/1b79c0ffee/EasyNegative.pt"
    assert messages.for_visitor(f"'{server}' is empty (0 bytes)") == "'EasyNegative.pt' is empty (0 bytes)"
    assert messages.for_visitor(f"{server}: made for SD 1.x") == "EasyNegative.pt: made for SD 1.x"
    assert messages.for_visitor("x.png: not an image we can read (UnidentifiedImageError); upload a PNG") == (
        "x.png: not an image we can read; upload a PNG")
    kept = "see https://huggingface.co/user/repo/blob/main/x.pt or user/repo/x.pt"
    assert messages.for_visitor(kept) == kept  # links and repo paths are not server paths
    assert messages.for_toast("loaded `<ugly>`") == "loaded &lt;ugly&gt;"  # toasts show HTML, not Markdown
    assert messages.for_markdown("`<ugly>` is not <ugly>") == "`<ugly>` is not &lt;ugly&gt;"


def test_a_real_file_on_the_demo_model_is_explained_as_demo_mode():
    text = messages.demo_refusal("EasyNegative.pt", {"single": 768}, "builtin:toyworld", [128])
    assert "EasyNegative.pt is an embedding for SD 1.x models" in text and "built-in demo model" in text
    assert "TEXTINV_MODEL=stable-diffusion-v1-5/stable-diffusion-v1-5" in text
    sdxl = messages.demo_refusal("x.safetensors", {"clip_l": 768, "clip_g": 1280}, "builtin:toyworld", [128])
    assert "SDXL" in sdxl and "stable-diffusion-xl" in sdxl
    assert messages.demo_refusal("mine.pt", {"single": 128}, "builtin:toyworld", [128]) is None  # trained on it


def test_keywords_no_concept_provides_are_reported():
    concepts = [Concept("<red-rocket>", {"clip_l": torch.zeros(1, 4)})]
    prompt = "a <red-rocket> and <not-loaded> with EasyNegative, <red-rocket-2>"
    assert missing_keywords(prompt, concepts, expected=["easynegative"]) == ["<not-loaded>", "EasyNegative", "<red-rocket-2>"]
    assert missing_keywords("a photo of <red-rocket>", concepts) == []
    assert missing_keywords("a <b> c", []) == ["<b>"]


def test_an_unreachable_hub_is_known_in_seconds_and_remembered(monkeypatch):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    begin = time.monotonic()
    assert "can't connect to 127.0.0.1" in hub.hub_unreachable(closed)
    assert time.monotonic() - begin < hub.PROBE_SECONDS + 1

    def hanging_lookup(*args, **kwargs):  # DNS with no network: no timeout applies
        time.sleep(30)

    monkeypatch.setattr(socket, "getaddrinfo", hanging_lookup)
    begin = time.monotonic()
    assert "did not answer within" in hub.hub_unreachable("http://hub.invalid")
    assert time.monotonic() - begin < hub.PROBE_SECONDS + 1
    begin = time.monotonic()
    assert "did not answer within" in hub.hub_unreachable("http://hub.invalid")  # remembered: at once
    assert time.monotonic() - begin < 0.1
    with pytest.raises(hub.HubError, match="can't reach right now"):
        hub.search_concepts("cat", api=hub.HfApi(endpoint="http://hub.invalid"))
