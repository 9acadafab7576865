"""The training loop: one loop for SD 1.x, 2.x and SDXL.

Only the concept's vectors are trained. Each step draws images from the latent cache, adds noise
at random timesteps, asks the frozen U-Net to predict the noise (or velocity) given a templated
prompt that contains the keyword, and moves the vectors to make that prediction better. Family
differences live in `models.Family`; everything here is the same for every model.

All randomness comes from one CPU `torch.Generator`, so a seed fixes the run, and a checkpoint
(vectors, optimizer, schedule, generator, data order) resumes it exactly.
"""

from __future__ import annotations

import json
import math
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Callable, Iterator

import torch
from accelerate import PartialState
from diffusers import DDPMScheduler
from diffusers.optimization import get_scheduler

from .concepts import Concept, new_concept, typical_norm
from .images import TrainingImage
from .latents import LatentCache, encode_images
from .loss import Batch, denoising_loss
from .likeness import PICTURES, Likeness, draw, image_tower, likeness, save_pictures
from .models import BaseModel
from .quality import EvalSet, Readout, evaluation_loss, evaluation_set
from .stopping import Plateau, PlateauRule
from .prompts import tokenize_all
from .templates import templates_for
from .writers import write_concept_files, write_concept_images

# Defaults for this method, from benchmarks/bench_quality.py on builtin:toyworld (see
# benchmarks/README.md): only a few thousand numbers are trained, so the learning rate is far higher
# than for fine-tuning weights (5e-3, the paper's base rate; 1e-3 and 2e-2 did no better). 500 steps
# of 4 images explained the example concepts better than 1000 steps of 1 (4.7 % against 4.5 % loss
# improvement on average, with less noise), matching the reference README recipe's final quality
# (4.7 %) in a twelfth of its time; styles needed no more steps than objects there.
DEFAULT_STEPS = 500
DEFAULT_BATCH = 4
# Not .pt: A1111, ComfyUI and InvokeAI try to load every .pt/.bin/.safetensors in a folder a user
# copies into their embeddings folder, and a checkpoint is not an embedding.
CHECKPOINT_SUFFIX = ".resume"
DEFAULT_LR = 5e-3
# A plateau reading is read this many evaluation samples at a time (evaluation_loss's own chunk), so
# a Stop can cut in between: a whole reading costs several steps' time.
READING_SLICE = 16


@dataclass
class TrainConfig:
    token: str
    init_word: str | None = None
    num_vectors: int = 1
    concept_type: str = "object"
    steps: int = DEFAULT_STEPS
    learning_rate: float = DEFAULT_LR
    lr_schedule: str = "constant"  # "constant" or "cosine", both after a linear warmup
    warmup_steps: int | None = None  # default: 5% of the steps
    batch_size: int = DEFAULT_BATCH
    grad_accum: int = 1
    resolution: int | None = None  # default: the model's native resolution
    seed: int = 0
    flip: bool = True  # turn off for text, logos and anything asymmetric
    min_snr_gamma: float | None = None  # e.g. 5.0: min-SNR loss weighting
    norm_weight: float = 0.0  # pull vector norms toward the vocabulary's (keeps the word editable)
    gradient_checkpointing: bool = False
    captions: dict[str, str] = field(default_factory=dict)  # image file name -> caption with the keyword
    save_every: int = 0
    autosave_seconds: float = 0  # also checkpoint this often (the app: every minute), keeping only the latest
    preview_every: int = 0
    preview_prompt: str | None = None
    preview_seed: int = 0
    evaluate: bool = True  # measure the learned keyword against its starting word at the end
    readout_pictures: int = PICTURES  # pictures per side for the readout's image measure (0: loss only)
    stop_when_learned: bool = False  # end the run once the evaluation loss stops improving (stopping.py)

    def check(self) -> None:
        positive = {"steps": self.steps, "batch_size": self.batch_size, "grad_accum": self.grad_accum}
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")
        if not 0 < self.learning_rate < 1:
            raise ValueError(f"learning rate must be between 0 and 1, not {self.learning_rate}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr schedule must be 'constant' or 'cosine', not {self.lr_schedule!r}")
        if self.resolution is not None and (self.resolution < 64 or self.resolution % 8):
            raise ValueError(f"resolution must be a multiple of 8 and at least 64, not {self.resolution}")


@dataclass
class Progress:
    step: int
    total: int
    loss: float
    lr: float
    elapsed: float  # seconds since this run (or resume) started
    eta: float  # seconds left, at the pace so far


@dataclass
class Preview:
    step: int
    images: list  # PIL images


@dataclass
class Reading:
    """A plateau reading (stop when learned): the evaluation loss of the vectors at `step` (0: the
    starting vectors). Readings cost several steps' time each, so whoever times a run counts them."""

    step: int
    loss: float


@dataclass
class Checkpointed:
    step: int
    path: Path


@dataclass
class Paused:
    """The run reached `pause_at`: continue it with `run()` again, or from `state_dict()` elsewhere
    (ZeroGPU runs a long training as several short GPU calls)."""

    step: int


@dataclass
class Finished:
    step: int
    stopped: bool  # True when stopped early: the files hold what was learned so far
    output_dir: Path
    concept: Concept
    readout: Readout | None = None  # how well it was learned (None when turned off, or stopped before step 1)
    learned_at: int | None = None  # stopped when learned: the step whose vectors were kept


def checkpoints_in(output_dir: Path) -> list[Path]:
    """An output folder's checkpoints, oldest first (older folders hold .pt checkpoints)."""
    folder = Path(output_dir) / "checkpoints"
    return sorted([*folder.glob(f"step-*{CHECKPOINT_SUFFIX}"), *folder.glob("step-*.pt")])


def read_checkpoint(path: Path) -> dict:
    """A checkpoint file, or the latest one in an output folder, read without unpickling anything
    but tensors and plain values."""
    path = Path(path)
    if path.is_dir():
        found = checkpoints_in(path)
        if not found:
            raise ValueError(f"{path} holds no checkpoints (train with --save-every N to make them)")
        path = found[-1]
    return torch.load(path, map_location="cpu", weights_only=True)


def _evaluation_slice(evalset: EvalSet, part: slice) -> EvalSet:
    return EvalSet(evalset.latents[part], evalset.noise[part], evalset.timesteps[part], evalset.time_ids[part],
                   evalset.templates[part])


def _on_cpu(value):
    """A copy of a nested state dict with every tensor on the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, dict):
        return {k: _on_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_on_cpu(v) for v in value)
    return value


class Trainer:
    """Owns one training run; `run()` yields events for whoever drives it (CLI, app).

    Under `accelerate launch` (pass `distributed=PartialState()`), every process trains the same
    vectors on its own draws of data and the vectors' gradients are averaged each step: the
    vectors are tiny, so this is all data parallelism needs. Only the main process writes files.

    `should_stop` is asked before every step and between the stages of preparing and of a plateau
    reading, which take several steps' time; once it says yes the run ends as `stop()` ends it
    (the app's Stop is a file, which a ZeroGPU worker sees too).
    """

    def __init__(
        self,
        model: BaseModel,
        images: list[TrainingImage],
        config: TrainConfig,
        output_dir: Path,
        distributed: PartialState | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        config.check()
        self.model, self.config, self.output_dir = model, config, Path(output_dir)
        self.rank = distributed.process_index if distributed else 0
        self.world = distributed.num_processes if distributed else 1
        self.is_main = self.rank == 0
        self.resolution = config.resolution or model.resolution
        self.concept = new_concept(
            model, config.token, config.init_word, config.num_vectors, config.concept_type, config.seed
        )
        self.start = self.concept.detached()  # the starting vectors, for the readout
        self.params = list(self.concept.vectors.values())
        self.optimizer = torch.optim.AdamW(self.params, lr=config.learning_rate, weight_decay=0.0)
        warmup = config.warmup_steps if config.warmup_steps is not None else math.ceil(0.05 * config.steps)
        self.lr_scheduler = get_scheduler(
            f"{config.lr_schedule}_with_warmup" if config.lr_schedule == "constant" else "cosine",
            self.optimizer,
            num_warmup_steps=warmup,
            num_training_steps=config.steps,
        )
        self.noise_scheduler = DDPMScheduler.from_config(model.pipe.scheduler.config)
        self.latents: LatentCache = encode_images(model, images, self.resolution, config.flip)
        self.images = images
        self.prompts = self._prompts([item.name for item in images])
        # each image's first row in the flat, tokenized list of all candidate prompts
        self.prompt_starts = torch.tensor([0, *accumulate(len(p) for p in self.prompts)][:-1])
        self.prompt_counts = torch.tensor([len(p) for p in self.prompts])
        self.tokens = tokenize_all(model, sum(self.prompts, []), [self.concept])
        self.target_norms = {slot.kind: typical_norm(slot) for slot in model.text_encoders}
        self.generator = torch.Generator().manual_seed(config.seed + 1_000_003 * self.rank)
        self.step = 0
        self.vectors_step = 0  # the step the vectors come from: behind `step` once a plateau kept its best
        self.order = torch.empty(0, dtype=torch.long)  # the current pass over the images
        self.loss_log: list[tuple[int, float, float]] = []
        self._stop = threading.Event()
        self._should_stop = should_stop
        self._autosaved: Path | None = None  # the latest time-based checkpoint, replaced by the next
        self.plateau: Plateau | None = None  # with stop_when_learned: the readings and the best vectors
        self._evalset: EvalSet | None = None  # made on first use (`_evaluation_set`)

    def _prompts(self, names: list[str]) -> list[list[str]]:
        """Candidate prompts per image: its caption if it has one, else every template."""
        templates = [t.format(self.config.token) for t in templates_for(self.config.concept_type)]
        prompts = []
        for name in names:
            caption = self.config.captions.get(name)
            if caption and self.config.token not in caption:
                caption = f"{templates[0]}, {caption}"
            prompts.append([caption] if caption else templates)
        return prompts

    # -- data ---------------------------------------------------------------------------------

    def _draw_images(self, count: int) -> torch.Tensor:
        """Image indices in shuffled passes over the set, so every image is seen equally often and
        a batch larger than the set, or a set that does not divide into batches, just works."""
        picked = []
        while len(picked) < count:
            if len(self.order) == 0:
                self.order = torch.randperm(len(self.latents), generator=self.generator)
            picked.append(self.order[0])
            self.order = self.order[1:]
        return torch.stack(picked)

    def next_batch(self) -> Batch:
        size = self.config.batch_size
        index = self._draw_images(size)
        variant = torch.randint(0, self.latents.mean.shape[1], (size,), generator=self.generator)
        pick = torch.rand(size, generator=self.generator) * self.prompt_counts[index]
        prompt_index = self.prompt_starts[index] + pick.long()
        latents = self.latents.sample(index, variant, self.generator)
        noise = torch.randn(latents.shape, generator=self.generator)
        num_timesteps = self.noise_scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, num_timesteps, (size,), generator=self.generator)
        tokens = [enc.select(prompt_index) for enc in self.tokens]
        return Batch(latents, noise, timesteps, tokens, self.latents.time_ids[index])

    # -- the loop -----------------------------------------------------------------------------

    def train_step(self) -> float:
        """One optimizer step (over `grad_accum` micro-batches); returns the mean loss."""
        total = 0.0
        for _ in range(self.config.grad_accum):
            loss = denoising_loss(
                self.model, [self.concept], self.next_batch(), self.noise_scheduler, self.config.min_snr_gamma
            )
            (loss / self.config.grad_accum).backward()
            total += loss.item() / self.config.grad_accum
        if self.config.norm_weight:
            self._norm_penalty().backward()
        if self.world > 1:
            total = self._average_gradients(total)
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total

    def _average_gradients(self, loss: float) -> float:
        for vector in self.params:
            torch.distributed.all_reduce(vector.grad)
            vector.grad /= self.world
        mean = torch.tensor([loss], device=self.params[0].grad.device)
        torch.distributed.all_reduce(mean)
        return mean.item() / self.world

    def _norm_penalty(self) -> torch.Tensor:
        return self.config.norm_weight * sum(
            ((v.norm(dim=1) - self.target_norms[kind]) ** 2).mean() for kind, v in self.concept.vectors.items()
        )

    def stop(self) -> None:
        """Ask the run to end after the current step; what was learned is saved."""
        self._stop.set()

    def _stopping(self) -> bool:
        """Whether the run was asked to end, by `stop()` or by `should_stop`."""
        if not self._stop.is_set() and self._should_stop is not None and self._should_stop():
            self._stop.set()
        return self._stop.is_set()

    def run(self, pause_at: int | None = None) -> Iterator[Progress | Reading | Preview | Checkpointed | Paused | Finished]:
        with self._checkpointing():
            yield from self._run(pause_at)

    @contextmanager
    def _checkpointing(self) -> Iterator[None]:
        """Gradient checkpointing is a switch on the shared modules: on only while this run trains,
        then back as it was. It changes memory and speed of backward passes, never results, and
        generation (no gradients) ignores it."""
        unet, encoders = self.model.pipe.unet, [slot.encoder for slot in self.model.text_encoders]
        if not self.config.gradient_checkpointing or unet.is_gradient_checkpointing:
            yield
            return
        unet.enable_gradient_checkpointing()
        for encoder in encoders:
            encoder.activation_checkpointing_enable()
        try:
            yield
        finally:
            unet.disable_gradient_checkpointing()
            for encoder in encoders:
                encoder.activation_checkpointing_disable()

    def _run(self, pause_at: int | None) -> Iterator[Progress | Reading | Preview | Checkpointed | Paused | Finished]:
        config, started, first = self.config, time.perf_counter(), self.step
        end = min(config.steps, pause_at) if pause_at else config.steps
        if self.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            self._write_settings()
            write_concept_images(self.images, self.output_dir / "concept_images", max(512, self.resolution))
        saved_at, learned = time.monotonic(), False
        if config.stop_when_learned and self.plateau is None and not self._stopping():
            self.plateau = self._watch_plateau()
            if self.plateau:
                yield Reading(0, self.plateau.start_loss)
        while self.step < end and not self._stopping() and not learned:
            loss = self.train_step()
            self.step += 1
            self.vectors_step = self.step
            lr = self.lr_scheduler.get_last_lr()[0]
            self.loss_log.append((self.step, loss, lr))
            elapsed = time.perf_counter() - started
            eta = elapsed / (self.step - first) * (config.steps - self.step)
            yield Progress(self.step, config.steps, loss, lr, elapsed, eta)
            if config.save_every and self.step % config.save_every == 0 and self.step < config.steps:
                yield Checkpointed(self.step, self.save_checkpoint())
                saved_at = time.monotonic()
            elif config.autosave_seconds and time.monotonic() - saved_at >= config.autosave_seconds:
                yield Checkpointed(self.step, self.autosave())
                saved_at = time.monotonic()
            previewing = config.preview_every and config.preview_prompt and self.step % config.preview_every == 0
            if previewing and self.is_main and not self._stopping():  # a preview costs many steps' time
                yield Preview(self.step, self.preview())
            if self.plateau and self.plateau.due(self.step) and (reading := self._reading()) is not None:
                learned = self.plateau.offer(self.step, reading, self.concept.vectors)
                yield Reading(self.step, reading)
        if learned:
            self._keep_best()
        self.autosave()  # the final state too: a finished or stopped run can be continued
        if self.step < config.steps and not self._stop.is_set() and not learned:
            yield Paused(self.step)
            return
        # nothing learned yet (stopped while preparing): a readout would only delay the stop
        quality = self.readout() if config.evaluate and self.is_main and self.step else None
        yield Finished(self.step, self.step < config.steps and not learned, self.output_dir, self.concept.detached(),
                       quality, self.plateau.best_step if learned else None)

    def _watch_plateau(self) -> Plateau | None:
        """The plateau rule's state, from a reading of the starting vectors; None when a stop cut in."""
        start = self._reading(self.start)
        if start is None:
            return None
        vectors = {k: v.detach() for k, v in self.concept.vectors.items()}
        return Plateau(PlateauRule(), start, vectors, best_step=self.vectors_step)

    def _reading(self, concept: Concept | None = None) -> float | None:
        """`_evaluation_loss`, read a slice at a time so that a stop asked for meanwhile ends it
        (None) instead of waiting for the whole reading; the same value, summed the same way."""
        evalset, total = self._evaluation_set(), 0.0
        concept = concept or self.concept.detached()
        for start in range(0, len(evalset), READING_SLICE):
            if self._stopping():
                return None
            part = _evaluation_slice(evalset, slice(start, start + READING_SLICE))
            loss = evaluation_loss(self.model, part, concept.token, [concept], chunk=READING_SLICE)
            total += loss * len(part)
        return total / len(evalset)

    def _evaluation_set(self) -> EvalSet:
        if self._evalset is None:
            self._evalset = evaluation_set(self.model, self.latents, self.config.concept_type)
        return self._evalset

    def _evaluation_loss(self, concept: Concept | None = None) -> float:
        """The loss of `concept` (default: the vectors now) on this run's fixed evaluation set,
        made once and shared by the plateau rule and the readout."""
        concept = concept or self.concept.detached()
        return evaluation_loss(self.model, self._evaluation_set(), concept.token, [concept])

    def _keep_best(self) -> None:
        """Training past the best reading only added noise: go back to the best vectors."""
        with torch.no_grad():
            for kind, vector in self.concept.vectors.items():
                vector.copy_(self.plateau.best_vectors[kind])
        self.vectors_step = self.plateau.best_step

    def preview(self) -> list:
        from .generate import generate  # generation imports the pipeline machinery; keep it lazy

        images = generate(
            self.model, self.config.preview_prompt, [self.concept.detached()], seed=self.config.preview_seed, steps=20
        )
        folder = self.output_dir / "previews"
        folder.mkdir(exist_ok=True)
        for i, image in enumerate(images):
            image.save(folder / f"step-{self.step:06d}-{i}.png")
        return images

    def readout(self) -> Readout:
        """How the learned keyword compares with its starting vectors: on a fixed evaluation set of
        the training images and, where the model has an image encoder, in pictures drawn with each
        (kept in `readout/` beside `quality.json`, so a person can see what the verdict saw)."""
        start = self.plateau.start_loss if self.plateau else self._evaluation_loss(self.start)
        result = Readout(start_loss=start, learned_loss=self._evaluation_loss(), likeness=self._likeness())
        if self.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "quality.json").write_text(json.dumps(result.as_json(), indent=2))
        return result

    def _likeness(self) -> Likeness | None:
        count = self.config.readout_pictures
        tower = image_tower(self.model) if count and self.is_main else None
        if tower is None:
            return None
        learned, start, kind = self.concept.detached(), self.start, self.config.concept_type
        pictures = {"learned": draw(self.model, learned.token, [learned], kind, count),
                    "start": draw(self.model, start.token, [start], kind, count)}
        save_pictures(self.output_dir, pictures)
        return likeness(tower, [item.image for item in self.images], pictures["learned"], pictures["start"])

    # -- files --------------------------------------------------------------------------------

    def save_outputs(self) -> None:
        if not self.is_main:
            return
        write_concept_files(self.concept.detached(), self.output_dir, self.model, step=self.vectors_step)
        with open(self.output_dir / "loss_log.csv", "w") as f:
            f.write("step,loss,lr\n")
            f.writelines(f"{s},{loss:.6f},{lr:.6g}\n" for s, loss, lr in self.loss_log)

    def _write_settings(self) -> None:
        settings = asdict(self.config) | {
            "model": self.model.spec,
            "family": self.model.family.name,
            "prediction_type": self.model.prediction_type,
            "resolution": self.resolution,
            # the images' own names, in the order of concept_images/ (never where the server keeps them)
            "images": [item.name for item in self.images],
        }
        (self.output_dir / "settings.json").write_text(json.dumps(settings, indent=2))

    def state_dict(self) -> dict:
        """Everything a resumed run needs to continue exactly as if it had never stopped, on the
        CPU (ZeroGPU hands it from one GPU worker to the next)."""
        return {
            "step": self.step,
            "vectors_step": self.vectors_step,
            "vectors": {k: v.detach().cpu().clone() for k, v in self.concept.vectors.items()},
            "optimizer": _on_cpu(self.optimizer.state_dict()),
            "lr_scheduler": self.lr_scheduler.state_dict(),
            "generators": self._gathered(self.generator.get_state()),  # one per process
            "orders": self._gathered(self.order.clone()),
            "loss_log": torch.tensor(self.loss_log, dtype=torch.float64).reshape(-1, 3),
        }

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.vectors_step = int(state.get("vectors_step", self.step))  # older checkpoints: the vectors of their step
        with torch.no_grad():
            for kind, vector in self.concept.vectors.items():
                vector.copy_(state["vectors"][kind])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        if len(state["generators"]) != self.world:
            raise ValueError(f"this checkpoint was made by {len(state['generators'])} process(es); resume with as many")
        self.generator.set_state(state["generators"][self.rank])
        self.order = state["orders"][self.rank].clone()
        self.loss_log = [(int(s), float(loss), float(lr)) for s, loss, lr in state["loss_log"].tolist()]

    def _gathered(self, value: torch.Tensor) -> list[torch.Tensor]:
        if self.world == 1:
            return [value]
        values: list = [None] * self.world
        torch.distributed.all_gather_object(values, value)
        return values

    def save_checkpoint(self) -> Path:
        """Called on every process (the state is gathered from all); the main one writes."""
        state = self.state_dict()
        path = self.output_dir / "checkpoints" / f"step-{self.step:06d}{CHECKPOINT_SUFFIX}"
        if self.is_main:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(state, path)
            self.save_outputs()  # the files on disk always hold the latest vectors
        return path

    def autosave(self) -> Path:
        """A time-based checkpoint, so a crash or a kill loses at most `autosave_seconds` of work.
        Only the latest is kept: they would otherwise pile up over a long run."""
        previous, self._autosaved = self._autosaved, self.save_checkpoint()
        if previous is not None and previous != self._autosaved and self.is_main:
            previous.unlink(missing_ok=True)
        return self._autosaved

    def resume(self, path: Path) -> None:
        """Continue from a checkpoint file, or the latest one in an output folder."""
        self.load_state_dict(read_checkpoint(path))
