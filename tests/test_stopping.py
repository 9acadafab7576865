"""Stop when learned: the plateau rule on made-up readings, and on a real concept in the toy world."""

from __future__ import annotations

import torch

from conftest import EXAMPLES
from textinv_core.images import load_images
from textinv_core.stopping import Plateau, PlateauRule
from textinv_core.train import TrainConfig, Trainer


def readings(losses: list[float], rule: PlateauRule) -> tuple[int | None, Plateau]:
    """Feed `losses` (one per reading); the reading index the rule stopped at, and its state."""
    plateau = Plateau(rule, start_loss=1.0, best_vectors={"clip_l": torch.zeros(1, 2)})
    for i, loss in enumerate(losses, start=1):
        if plateau.offer(i * rule.every, loss, {"clip_l": torch.full((1, 2), float(i))}):
            return i, plateau
    return None, plateau


def test_the_rule_waits_for_progress_to_stop_and_keeps_the_best_vectors():
    rule = PlateauRule(every=10, patience=3, min_gain=0.01)
    stopped, plateau = readings([0.95, 0.90, 0.91, 0.895, 0.92, 0.80], rule)
    # 0.895 beats 0.90 by less than 1 % of the start: a better vector to keep, but not progress
    assert stopped == 5 and plateau.best_step == 40 and plateau.best_loss == 0.895
    assert torch.equal(plateau.best_vectors["clip_l"], torch.full((1, 2), 4.0))
    stopped, _ = readings([0.95, 0.90, 0.91, 0.89, 0.88, 0.87], rule)
    assert stopped is None  # steady progress of 1 % a reading never stops


def test_nothing_better_than_the_start_keeps_the_start():
    stopped, plateau = readings([1.2, 1.1, 1.3], PlateauRule(every=5, patience=3))
    assert stopped == 3 and plateau.best_step == 0 and torch.equal(plateau.best_vectors["clip_l"], torch.zeros(1, 2))


def test_a_toy_world_concept_stops_when_learned_with_its_best_vectors(toyworld, tmp_path):
    images = load_images([EXAMPLES / "red-rocket"])
    config = TrainConfig(token="<red-rocket>", init_word="toy", steps=1000, stop_when_learned=True)
    trainer = Trainer(toyworld, images, config, tmp_path)
    finished = list(trainer.run())[-1]
    assert finished.learned_at is not None and not finished.stopped and finished.step < 600
    best_step, best_loss = min(trainer.plateau.readings, key=lambda r: r[1])
    assert finished.learned_at == best_step and trainer._evaluation_loss(finished.concept) == best_loss
    assert finished.readout.verdict == "learned well"
