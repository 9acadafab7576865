"""The learning-quality measure on any model: a fixed evaluation set, its loss, and the readout."""

from __future__ import annotations

import json
import statistics
from dataclasses import replace

import pytest
import torch
from PIL import Image

from textinv_core.concepts import new_concept
from textinv_core.latents import encode_images
from textinv_core.likeness import Likeness, image_tower, likeness
from textinv_core.quality import GOOD_IMPROVEMENT, SOME_IMPROVEMENT, Readout, evaluation_loss, evaluation_set
from textinv_core.train import TrainConfig, Trainer


@pytest.fixture(scope="module")
def cache(tiny_sd, robot_images):
    return encode_images(tiny_sd, robot_images[:3], 64, flip=True)


def test_the_evaluation_set_is_fixed_by_its_seed(tiny_sd, cache):
    a, b = evaluation_set(tiny_sd, cache, "object"), evaluation_set(tiny_sd, cache, "object")
    assert torch.equal(a.latents, b.latents) and torch.equal(a.noise, b.noise) and a.templates == b.templates
    other = evaluation_set(tiny_sd, cache, "object", seed=1)
    assert not torch.equal(a.noise, other.noise)
    # every noise level is covered once: timesteps spread evenly over the schedule
    assert sorted(a.timesteps.tolist()) == sorted(((torch.arange(64) + 0.5) / 64 * 1000).long().tolist())


def test_starting_vectors_score_as_their_word(tiny_sd, cache):
    """A keyword holding the embedding of `robot` is, to the model, the word robot."""
    evalset = evaluation_set(tiny_sd, cache, "object", samples=16)
    start = new_concept(tiny_sd, "<start>", "robot", 1, "object", 0).detached()
    as_keyword = evaluation_loss(tiny_sd, evalset, "<start>", [start])
    assert as_keyword == pytest.approx(evaluation_loss(tiny_sd, evalset, "robot"), rel=1e-5)
    assert as_keyword != evaluation_loss(tiny_sd, evalset, "house")


def test_readout_verdicts_by_the_loss_say_what_they_rest_on():
    assert Readout(1.0, 1.0 - GOOD_IMPROVEMENT - 0.01).verdict == "learned well"
    assert Readout(1.0, 1.0 - (GOOD_IMPROVEMENT + SOME_IMPROVEMENT) / 2).verdict.startswith("learned somewhat")
    assert Readout(1.0, 1.0 - SOME_IMPROVEMENT / 2).verdict.startswith("barely changed")
    assert "2.0 % better" in Readout(0.5, 0.49).summary() and "loss alone" in Readout(0.5, 0.49).summary()


def test_pictures_overrule_the_loss():
    """A keyword that explains the images better but draws nothing like them is not learned, and
    one whose pictures reached its images' likeness is, whatever the loss says."""
    far = Likeness(learned=0.50, floor=0.50, ceiling=0.90, tower="test")
    near = Likeness(learned=0.88, floor=0.50, ceiling=0.90, tower="test")
    assert Readout(1.0, 0.80, far).verdict.startswith("barely changed")
    assert Readout(1.0, 1.0, near).verdict == "learned well"
    assert near.score == pytest.approx(0.95)
    assert "95 % of the way" in Readout(1.0, 1.0, near).summary()


def test_a_span_within_the_pictures_spread_is_not_read_as_progress():
    """A style's images are barely more alike than any pictures: a lucky seed must not look learned."""
    lucky = Likeness(learned=0.705, floor=0.697, ceiling=0.689, tower="test", floor_each=[0.65, 0.70, 0.74, 0.70])
    assert lucky.score == pytest.approx(0.008 / statistics.pstdev(lucky.floor_each))
    assert Readout(1.0, 1.0, lucky).verdict.startswith("barely changed")


def tiny_clip_tower_parts():
    """A safety checker with a tiny CLIP vision tower and its image processor, random weights."""
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    vision = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=32,
                  patch_size=8)
    text = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, vocab_size=99)
    checker = StableDiffusionSafetyChecker(CLIPConfig(vision_config=vision, text_config=text, projection_dim=16))
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return checker.eval(), processor


def test_sd1_pipelines_with_a_safety_checker_measure_pictures_by_its_clip_tower(tiny_sd, robot_images, tmp_path):
    """The tower is the checker's vision model and projection, fed by the pipeline's feature
    extractor; the checker's forward(), which blanks pictures, is never called for it."""
    from diffusers import StableDiffusionPipeline

    checker, processor = tiny_clip_tower_parts()
    pipe = StableDiffusionPipeline(**tiny_sd.pipe.components | {"safety_checker": checker, "feature_extractor": processor},
                                   requires_safety_checker=False)
    model = replace(tiny_sd, pipe=pipe, spec="tiny-sd-with-checker")
    tower = image_tower(model)
    assert tower is not None and "CLIP" in tower.name
    assert image_tower(tiny_sd) is None  # no checker, no tower: the loss alone

    def blanking(*args, **kwargs):
        raise AssertionError("the readout called the safety checker's forward()")

    checker.forward = blanking
    pictures = [item.image for item in robot_images[:3]]
    rows = tower.embed(pictures)
    pixels = processor(images=pictures, return_tensors="pt").pixel_values
    expected = torch.nn.functional.normalize(checker.visual_projection(checker.vision_model(pixels)[1]), dim=1)
    assert torch.allclose(rows, expected, atol=1e-5) and torch.allclose(rows.norm(dim=1), torch.ones(3))
    # the training pictures themselves are as alike as it gets (more: each meets itself); drawing
    # what the starting word draws is no progress at all
    noise = [Image.effect_noise((64, 64), 80).convert("RGB") for _ in range(3)]
    same = likeness(tower, pictures, pictures, noise)
    assert same.learned > same.ceiling  # (random weights: how far noise lies from them means nothing)
    assert likeness(tower, pictures, noise, noise).score == pytest.approx(0.0, abs=1e-6)


def test_a_run_on_a_model_without_an_image_encoder_is_judged_by_its_loss(tiny_sd, robot_images, tmp_path):
    config = TrainConfig(token="<bot>", init_word="robot", steps=2)
    finished = list(Trainer(tiny_sd, robot_images[:2], config, tmp_path).run())[-1]
    saved = json.loads((tmp_path / "quality.json").read_text())
    assert finished.readout.likeness is None and saved["judged_by"] == "loss"
    assert not (tmp_path / "readout").exists()
