"""The learning-quality measure on any model: a fixed evaluation set, its loss, and the readout."""

from __future__ import annotations

import pytest
import torch

from textinv_core.concepts import new_concept
from textinv_core.latents import encode_images
from textinv_core.quality import GOOD_IMPROVEMENT, Readout, evaluation_loss, evaluation_set


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


def test_readout_verdicts():
    assert Readout(1.0, 1.0 - GOOD_IMPROVEMENT - 0.01).verdict == "learned well"
    assert Readout(1.0, 0.985).verdict.startswith("learned somewhat")
    assert Readout(1.0, 0.999).verdict.startswith("barely changed")
    assert "2.0 % better" in Readout(0.5, 0.49).summary()
