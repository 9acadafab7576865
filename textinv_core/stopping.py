"""Stop when learned: end a run once the keyword has stopped getting better, and keep its best vectors.

The training loss can't tell: every step draws a new image, noise and timestep, so it jumps by more
than the whole improvement a concept brings. The loss on the fixed evaluation set (`quality.py`:
the visitor's own images with noises and timesteps fixed once) moves only when the vectors do. It
is read every `every` steps; a reading that beats the best so far by at least `min_gain` (a share of
the starting loss) is progress, and after `patience` readings without progress the run has learned
what it will. The vectors of the best reading are kept, since training past its best only adds
noise. This is the idea of DVAR (Voronov et al., 2023: a loss on fixed inputs is informative),
with a plain patience rule whose settings come from the curves in `benchmarks/README.md`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class PlateauRule:
    every: int = 25  # steps between readings
    patience: int = 6  # readings without progress before the run stops
    min_gain: float = 0.001  # progress: a new best by at least this share of the starting loss


@dataclass
class Plateau:
    """The readings of one run and the best vectors so far."""

    rule: PlateauRule
    start_loss: float
    best_vectors: dict[str, torch.Tensor]  # the starting vectors, until a reading beats them
    best_step: int = 0
    best_loss: float = field(init=False)
    since_progress: int = 0
    readings: list[tuple[int, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.best_loss = self.start_loss
        self.best_vectors = {k: v.detach().clone() for k, v in self.best_vectors.items()}

    def due(self, step: int) -> bool:
        return step % self.rule.every == 0

    def offer(self, step: int, loss: float, vectors: dict[str, torch.Tensor]) -> bool:
        """Record a reading; True once the run has stopped making progress."""
        self.readings.append((step, loss))
        if loss < self.best_loss:
            progress = self.best_loss - loss >= self.rule.min_gain * self.start_loss
            self.best_loss, self.best_step = loss, step
            self.best_vectors = {k: v.detach().clone() for k, v in vectors.items()}
            if progress:
                self.since_progress = 0
                return False
        self.since_progress += 1
        return self.since_progress >= self.rule.patience
