"""How well a concept was learned, measured the same way on any model.

The training loss is too noisy to judge by: every step draws new noise at a new timestep. Instead we
fix an evaluation set once (the user's own images, with noises, timesteps and prompt templates
chosen by a seed) and compare the denoising loss on it with the learned vectors against the loss
with the starting vectors. The same set, with the keyword replaced by plain words, tells how well
any wording does (the toy world's oracle is the best wording in its vocabulary).

The loss says how well the keyword explains the images, not what the model draws with it, so the
readout's verdict goes by pictures wherever the model has an image encoder (`likeness.py`), and by
the loss, saying so, where it has none.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import torch
from diffusers import DDPMScheduler

from .concepts import Concept
from .latents import LatentCache
from .likeness import Likeness
from .models import BaseModel
from .prompts import tokenize_all
from .templates import templates_for
from .loss import Batch, denoising_loss

EVAL_SAMPLES = 64
EVAL_SEED = 20231


@dataclass
class EvalSet:
    """Fixed latents, noises and timesteps, and a prompt template per sample (`{}` is the keyword)."""

    latents: torch.Tensor
    noise: torch.Tensor
    timesteps: torch.Tensor
    time_ids: torch.Tensor
    templates: list[str]

    def __len__(self) -> int:
        return len(self.templates)


def evaluation_set(
    model: BaseModel, cache: LatentCache, concept_type: str, samples: int = EVAL_SAMPLES, seed: int = EVAL_SEED
) -> EvalSet:
    """Every image (and mirror) in turn, with timesteps spread evenly over the schedule, so the
    set weighs every image and noise level alike and two runs on the same images compare exactly."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.arange(samples) % len(cache)
    variant = (torch.arange(samples) // len(cache)) % cache.mean.shape[1]
    latents = cache.sample(image, variant, generator)
    num_timesteps = model.pipe.scheduler.config.num_train_timesteps
    spread = ((torch.arange(samples) + 0.5) / samples * num_timesteps).long()
    timesteps = spread[torch.randperm(samples, generator=generator)]
    templates = templates_for(concept_type)
    picks = torch.randint(0, len(templates), (samples,), generator=generator).tolist()
    return EvalSet(
        latents=latents,
        noise=torch.randn(latents.shape, generator=generator),
        timesteps=timesteps,
        time_ids=cache.time_ids[image],
        templates=[templates[i] for i in picks],
    )


@torch.no_grad()
def evaluation_loss(
    model: BaseModel, evalset: EvalSet, words: str, concepts: Sequence[Concept] = (), chunk: int = 16
) -> float:
    """Mean denoising loss on the set with `words` in each template: a concept's keyword (its
    vectors given in `concepts`) or any plain wording."""
    noise_scheduler = DDPMScheduler.from_config(model.pipe.scheduler.config)
    prompts = [t.format(words) for t in evalset.templates]
    total = 0.0
    for start in range(0, len(evalset), chunk):
        part = slice(start, start + chunk)
        tokens = tokenize_all(model, prompts[part], concepts)
        batch = Batch(evalset.latents[part], evalset.noise[part], evalset.timesteps[part], tokens, evalset.time_ids[part])
        total += denoising_loss(model, concepts, batch, noise_scheduler).item() * len(prompts[part])
    return total / len(evalset)


@dataclass
class Readout:
    """The learned keyword against its starting word: on the user's own images (the loss) and,
    where the model brings an image encoder, in pictures drawn with each (`likeness.py`)."""

    start_loss: float
    learned_loss: float
    likeness: Likeness | None = None

    @property
    def improvement(self) -> float:
        """How much less of the images is left unexplained: 0.05 means the loss fell by 5 %."""
        return (self.start_loss - self.learned_loss) / self.start_loss

    @property
    def level(self) -> str:
        """"well", "somewhat" or "barely": by the pictures where they were measured, else by the loss."""
        if self.likeness is not None:
            value, good, some = self.likeness.score, GOOD_LIKENESS, SOME_LIKENESS
        else:
            value, good, some = self.improvement, GOOD_IMPROVEMENT, SOME_IMPROVEMENT
        return "well" if value >= good else "somewhat" if value >= some else "barely"

    @property
    def verdict(self) -> str:
        return {
            "well": "learned well",
            "somewhat": "learned somewhat: more steps may help",
            "barely": "barely changed: try more steps, a higher learning rate or another starting word",
        }[self.level]

    def summary(self) -> str:
        loss = (f"the keyword explains your images {100 * self.improvement:.1f} % better than its starting word "
                f"did (denoising loss {self.start_loss:.4f} → {self.learned_loss:.4f}, {EVAL_SAMPLES} fixed noises)")
        if self.likeness is None:
            return (f"{self.verdict} — judged by the loss alone, as this model has no image encoder at hand: {loss}. "
                    f"The loss says how well the keyword explains your images, not what the model draws with it.")
        like = self.likeness
        return (f"{self.verdict} — its pictures are {100 * like.score:.0f} % of the way from its starting word's "
                f"pictures to your own images' likeness to each other (similarity {like.floor:.3f} → "
                f"{like.learned:.3f}, ceiling {like.ceiling:.3f}, by {like.tower}); {loss}")

    def as_json(self) -> dict:
        """What `quality.json` holds."""
        out = {"start_loss": self.start_loss, "learned_loss": self.learned_loss, "improvement": self.improvement,
               "verdict": self.verdict, "judged_by": "pictures" if self.likeness else "loss"}
        if self.likeness:
            out["likeness"] = asdict(self.likeness) | {"score": self.likeness.score}
        return out


# Thresholds, set from the spread of runs on builtin:toyworld in benchmarks/bench_readout.py, where
# the attribute checker says what each run's pictures show (see benchmarks/README.md).
GOOD_LIKENESS = 0.8
SOME_LIKENESS = 0.4
GOOD_IMPROVEMENT = 0.03
SOME_IMPROVEMENT = 0.01
