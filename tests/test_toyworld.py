"""The toy world and `builtin:toyworld`: a model whose pictures mean something, so these tests can
check that a concept is *learned*, not only that training runs."""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline

from conftest import EXAMPLES
from textinv_core.builtin import TOYWORLD_DIR
from textinv_core.concepts import validate_token
from textinv_core.images import load_images
from textinv_core.likeness import PICTURES, saved_pictures
from textinv_core.quality import evaluation_loss, evaluation_set
from textinv_core.toyworld import checker as attribute_checker
from textinv_core.toyworld import measure, vocabulary, world
from textinv_core.train import TrainConfig, Trainer

EXAMPLE_SETS = sorted(p.parent for p in EXAMPLES.glob("*/concept.json"))
# What the base model must draw at least this often. Measured by this test's own prompts (48
# pictures, guidance 5): kind 87.5 %, colour 100 %, background 100 % (the model before hidden words:
# 46 %, 83 %, 100 %); chance is 12 %, 9 % and 17 %.
RATE_FLOOR = {"kind": 0.75, "color": 0.9, "background": 0.9}
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def checker(toyworld):
    return measure.load_checker(toyworld)


def test_scenes_are_seeded_and_any_slice_is_the_same():
    scenes = world.scenes(3, 12)
    assert scenes == world.scenes(3, 12) and scenes[5:9] == world.scenes(3, 4, start=5)
    assert scenes != world.scenes(4, 12)
    assert world.render(scenes[0]).tobytes() == world.render(world.scenes(3, 1)[0]).tobytes()


def test_captions_use_single_tokens_and_never_name_the_unnamed(toyworld):
    tokenizer = toyworld.pipe.tokenizer
    for word in world.caption_words():
        assert len(tokenizer(word, add_special_tokens=False).input_ids) == 1, word
    unnamed = set(world.HIDDEN_OBJECTS) | set(world.HIDDEN_COLORS) | set(world.HIDDEN_STYLES)
    for word in unnamed:
        assert len(tokenizer(word, add_special_tokens=False).input_ids) > 1, word
    rng = random.Random(0)
    for scene in world.scenes(5, 400):
        words = set(world.caption(scene, rng).replace(",", " ").replace("-", " ").split())
        assert not words & unnamed
        assert words <= set(world.caption_words()) | {"a", "the"}


def test_world_json_lists_the_vocabulary(toyworld, tiny_sd):
    vocab = vocabulary(toyworld)
    # the committed weights were built from this world: change the world, rebuild the model
    assert {k: v for k, v in vocab.items() if k != "build"} == world.vocabulary()
    assert len(vocab["colors"]) >= 8 and {"robot", "mug"} <= set(vocab["objects"])
    assert set(vocab["backgrounds"]) == set(world.BACKGROUNDS) and set(vocab["styles"]) == set(world.STYLES)
    assert vocabulary(tiny_sd) is None  # any other model is not a toy world


def test_a_plain_diffusers_pipeline_loads_and_runs_it():
    pipe = StableDiffusionPipeline.from_pretrained(TOYWORLD_DIR)
    pipe.set_progress_bar_config(disable=True)
    image = pipe("a red robot on the beach", num_inference_steps=20, generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (64, 64) and np.asarray(image).std() > 10  # a picture, not a flat field


def test_the_checker_reads_rendered_scenes(checker):
    scenes = world.scenes(99, 160)
    readings = attribute_checker.read(checker, world.to_array([world.render(s) for s in scenes]))
    for name in attribute_checker.HEADS:
        accuracy = np.mean([r[name] == getattr(s, name) for r, s in zip(readings, scenes)])
        assert accuracy >= 0.9, (name, accuracy)


def test_the_model_draws_the_asked_colour_object_and_background(toyworld, checker):
    asks = measure.prompt_grid(per_attribute=1)
    hits = {"kind": [], "color": [], "background": []}
    for i, asked in enumerate(asks):
        for reading in measure.readings(toyworld, checker, measure.ask(asked), count=4, seed=i):
            for name in hits:
                hits[name].append(reading[name] == asked[name])
    rates = {name: float(np.mean(v)) for name, v in hits.items()}
    # benchmarks/bench_toyworld.py measured (4 pictures x 12 prompts, guidance 5): see its README table
    assert rates["color"] >= RATE_FLOOR["color"] and rates["kind"] >= RATE_FLOOR["kind"], rates
    assert rates["background"] >= RATE_FLOOR["background"], rates



@pytest.mark.parametrize("folder", EXAMPLE_SETS, ids=lambda p: p.name)
def test_example_sets_show_what_their_concept_json_says(folder, toyworld, checker):
    meta = json.loads((folder / "concept.json").read_text())
    assert meta["model"] == "builtin:toyworld" and meta["concept"] in ("object", "style")
    validate_token(meta["token"], toyworld)
    assert len(toyworld.pipe.tokenizer(meta["init_word"], add_special_tokens=False).input_ids) == 1
    readings = attribute_checker.read(checker, [item.image for item in load_images([folder])])
    assert attribute_checker.agreement(readings, **meta["attributes"]) == {k: 1.0 for k in meta["attributes"]}
    named = set(world.caption_words())
    assert set(meta["attributes"].values()) - named, "an example concept must hold something no word names"


@pytest.mark.parametrize("word, prompt, attribute", [
    ("rocket", "a photo of a red {} on the beach", "kind"),
    ("duck", "a photo of a red {} on the beach", "kind"),
    ("teal", "a photo of a {} mug in the snow", "color"),
    ("blocky", "a photo of a yellow car in the city, {} style", "style"),
])
def test_every_unnamed_thing_is_drawn_from_its_hidden_vector(toyworld, checker, word, prompt, attribute):
    """Each unnamed thing is reachable from some embedding: its hidden word's (measured: 11 to 12
    of 12 pictures each); so a learned concept has a true oracle to be measured against."""
    hidden = measure.hidden_concept(toyworld, word)
    readings = measure.readings(toyworld, checker, prompt.format(hidden.token), [hidden], count=12, seed=3)
    assert attribute_checker.agreement(readings, **{attribute: word})[attribute] >= 0.75
    assert len(toyworld.pipe.tokenizer(word, add_special_tokens=False).input_ids) > 1  # no plain prompt reaches it


def test_only_measuring_reads_the_hidden_vectors(toyworld, tmp_path):
    """Training, generation, the app and the command line never read the hidden words: only the
    toy world's measuring code (and the build that writes them) names their file."""
    readers = {str(p.relative_to(ROOT)) for p in [*ROOT.glob("textinv_core/**/*.py"), ROOT / "app.py"]
               if re.search(r"hidden_words\.safetensors|HIDDEN_FILE|hidden_concept", p.read_text())}
    assert readers == {"textinv_core/toyworld/measure.py", "textinv_core/toyworld/build.py"}
    # and without the file a run and its pictures are as they were
    copy = tmp_path / "toyworld"
    shutil.copytree(TOYWORLD_DIR, copy, ignore=shutil.ignore_patterns("hidden_words.safetensors"))
    from textinv_core.models import load_base_model
    model = load_base_model(str(copy))
    config = TrainConfig(token="<t>", init_word="toy", steps=2, seed=0, evaluate=False)
    trainer = Trainer(model, load_images([EXAMPLES / "red-rocket"]), config, tmp_path / "run")
    finished = list(trainer.run())[-1]
    assert finished.step == 2 and measure.readings(model, measure.load_checker(model), "a photo of <t>",
                                                   [finished.concept], count=1)
    with pytest.raises(ValueError, match="no hidden words"):
        measure.hidden_concept(model, "rocket")


def test_a_run_at_the_defaults_learns_an_unnamed_concept(toyworld, checker, tmp_path):
    """A red rocket: the model draws rockets, but a plain prompt can only say "toy", which draws
    rockets or ducks. The oracle is the hidden word's vector: "red <rocket>"."""
    folder = EXAMPLES / "red-rocket"
    meta = json.loads((folder / "concept.json").read_text())
    config = TrainConfig(token=meta["token"], init_word=meta["init_word"], seed=0)  # 500 steps of 4 images
    trainer = Trainer(toyworld, load_images([folder]), config, tmp_path / "run")
    finished = list(trainer.run())[-1]
    evalset = evaluation_set(toyworld, trainer.latents, "object")
    start = evaluation_loss(toyworld, evalset, meta["token"], [trainer.start])
    learned = evaluation_loss(toyworld, evalset, meta["token"], [finished.concept])
    rocket = measure.hidden_concept(toyworld, "rocket")
    oracle = evaluation_loss(toyworld, evalset, f"red {rocket.token}", [rocket])
    assert measure.gap_closed(start, learned, oracle) >= 0.5, (start, learned, oracle)

    seen = measure.readings(toyworld, checker, f"a photo of {meta['token']}", [finished.concept], count=16)
    before = measure.readings(toyworld, checker, f"a photo of {meta['init_word']}", count=16)
    rockets = attribute_checker.agreement(seen, **meta["attributes"])
    plain = attribute_checker.agreement(before, **meta["attributes"])
    # measured: red rockets in 15 of 16 (red 16 of 16); "toy" draws rockets too (14 of 16) but in any colour (4 of 16)
    assert rockets["color"] >= 0.75 and rockets["color"] >= plain["color"] + 0.4, (rockets, plain)
    assert rockets["kind"] >= 0.75, (rockets, plain)
    # and the readout says so, from pictures of its own (the toy world's image tower)
    assert finished.readout.likeness is not None and finished.readout.verdict == "learned well", finished.readout


def test_a_run_that_cannot_move_is_read_out_as_barely_changed(toyworld, tmp_path):
    """Learning rate 1e-9: the vectors stay where they started, and so must the verdict, though the
    loss of a few noisy draws could suggest otherwise."""
    folder = EXAMPLES / "red-rocket"
    meta = json.loads((folder / "concept.json").read_text())
    config = TrainConfig(token=meta["token"], init_word=meta["init_word"], steps=50, learning_rate=1e-9)
    finished = list(Trainer(toyworld, load_images([folder]), config, tmp_path).run())[-1]
    assert finished.readout.verdict.startswith("barely changed"), finished.readout
    saved = json.loads((tmp_path / "quality.json").read_text())
    assert saved["judged_by"] == "pictures" and saved["verdict"] == finished.readout.verdict
    assert len(saved_pictures(tmp_path, "learned")) == len(saved_pictures(tmp_path, "start")) == PICTURES

