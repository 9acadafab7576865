"""Measures that only the toy world allows, because it knows what every picture should show.

- `readings`: what the attribute checker sees in pictures generated for a prompt, so how often the
  model draws what it was asked (or a concept's kind, colour or style) becomes a rate.
- `oracle`: the best plain wording of the vocabulary for a concept's images, the target a learned
  keyword is compared with (the share of the start-to-oracle gap that training closed).
- `hidden_concept`: the vector of an unnamed thing's hidden word, which the model was trained with
  and ships without: the true oracle of a concept, and the ceiling of what its pictures can show.
  This module is the only reader of that file (`tests/test_toyworld.py` checks it): training, the
  app and the command line never see it, so a learned concept is measured against it honestly.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

from safetensors.torch import load_file

from ..concepts import Concept
from ..generate import generate
from ..models import BaseModel
from ..quality import EvalSet, evaluation_loss
from . import WORLD_FILE, model_folder, world
from . import checker as attribute_checker

HIDDEN_FILE = "hidden_words.safetensors"  # written by build.export


def hidden_concept(model: BaseModel, word: str, token: str | None = None) -> Concept:
    """The hidden word `word` (`world.hidden_words()`) as a concept with its trained vector."""
    folder = model_folder(model)
    path = folder / HIDDEN_FILE if folder else None
    if path is None or not path.is_file():
        raise ValueError(f"{model.spec} has no hidden words ({HIDDEN_FILE})")
    vectors = load_file(str(path))
    if word not in vectors:
        raise ValueError(f"{word!r} is not a hidden word of {model.spec}: {', '.join(sorted(vectors))}")
    kind = model.text_encoders[0].kind
    concept_type = "style" if word in world.HIDDEN_STYLES else "object"
    return Concept(token or f"<hidden-{word}>", {kind: vectors[word].float()}, concept_type, "hidden word")


def load_checker(model: BaseModel) -> attribute_checker.AttributeChecker:
    folder = model_folder(model)
    if folder is None:
        raise ValueError(f"{model.spec} is not a toy-world model: it has no {WORLD_FILE}")
    return attribute_checker.load(folder)


def readings(
    model: BaseModel,
    checker: attribute_checker.AttributeChecker,
    prompt: str,
    concepts: Sequence[Concept] = (),
    count: int = 8,
    seed: int = 0,
    guidance: float = 5.0,
) -> list[dict[str, str]]:
    """What the checker sees in `count` pictures generated for `prompt` in one seeded batch."""
    images = generate(model, prompt, concepts, seed=seed, steps=20, guidance=guidance, num_images=count)
    return attribute_checker.read(checker, images)


@dataclass
class Oracle:
    words: str  # the best wording found, e.g. "red toy"
    loss: float


def oracle(model: BaseModel, evalset: EvalSet, concept_type: str) -> Oracle:
    """The plain wording with the lowest evaluation loss, searched one attribute at a time: the
    best object word, then the best colour before it (objects); the best style word (styles)."""
    best = lambda options: min((Oracle(w, evaluation_loss(model, evalset, w)) for w in options), key=lambda o: o.loss)  # noqa: E731
    if concept_type == "style":
        return best([""] + [f"{s}" for s in world.STYLES] + [f"{s} style" for s in world.STYLES])
    kind = best([*world.OBJECTS, world.GENERIC_OBJECT])
    return best([kind.words] + [f"{c} {kind.words}" for c in world.COLORS])


def gap_closed(start_loss: float, learned_loss: float, oracle_loss: float) -> float:
    """The share of the start-to-oracle loss gap that training closed (above 1: better than any
    plain wording, as a concept that no word names can be)."""
    return (start_loss - learned_loss) / (start_loss - oracle_loss)


def prompt_grid(per_attribute: int = 2) -> list[dict[str, str]]:
    """Prompts in the vocabulary, each with the attributes it asks for: every object with a few
    colours and backgrounds, so every word is asked for about equally often."""
    colors, backgrounds = list(world.COLORS), list(world.BACKGROUNDS)
    asks = []
    for i, (kind, k) in enumerate(itertools.product(world.OBJECTS, range(per_attribute))):
        color = colors[(3 * i + k) % len(colors)]
        background = backgrounds[(5 * i + 2 * k) % len(backgrounds)]
        asks.append({"kind": kind, "color": color, "background": background})
    return asks


def ask(attributes: dict[str, str]) -> str:
    return f"a {attributes['color']} {attributes['kind']} {world.BACKGROUNDS[attributes['background']]}"
