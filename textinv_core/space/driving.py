"""A training run driven as a series of chunks, and the view a page has of it.

`train_chunk` runs one stretch of steps and, when it pauses, hands back the run's state as CPU
tensors; `run_training` starts the next chunk from that state. On an ordinary machine there is
one chunk. On ZeroGPU every chunk is one GPU call in a forked worker (which cannot change this
process's memory), so a long run becomes several short calls while the visitor sees one
continuous run. A Stop request is a file in the run's folder, which the worker sees too, so Stop
works inside a chunk wherever it runs.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from PIL import Image

from .. import likeness
from ..concepts import Concept
from ..images import TrainingImage
from ..train import Finished, Paused, Preview, Progress, Reading, TrainConfig, Trainer
from .estimate import PREVIEW_STEPS_EQUIVALENT
from .fields import FieldError, parse_keyword
from .forms import TrainRequest
from .keywords import default_preview_prompt, suggest_keyword

STOP_FILE = "STOP"
PACE_STEPS = 50  # the "left" of a run goes by its latest steps: two plateau readings' worth


def train_config(request: TrainRequest) -> TrainConfig:
    """The run a checked Train form asks for; an empty keyword is suggested from the name."""
    keyword = request.keyword or suggest_keyword(request.name)
    if not keyword:
        raise FieldError("Keyword: empty; give your concept a name (or a keyword like <my-cat>) first")
    keyword = parse_keyword(keyword)  # a suggested one must pass the same rule (length)
    return TrainConfig(
        token=keyword,
        init_word=request.init_word or None,
        num_vectors=request.vectors,
        concept_type=request.concept_type,
        steps=request.steps,
        learning_rate=request.learning_rate,
        lr_schedule=request.schedule,
        batch_size=request.batch_size,
        resolution=request.resolution,
        seed=request.seed,
        flip=request.flip,
        preview_every=request.preview_every,
        preview_prompt=request.preview_prompt or default_preview_prompt(keyword, request.concept_type),
        preview_seed=request.seed,
        stop_when_learned=request.stop_when_learned,
    )


@dataclass
class Carry:
    """The state a paused chunk hands to the next one (CPU tensors only)."""

    state: dict


@dataclass
class Timing:
    """How long one chunk's parts took, in seconds, measured where they ran (a ZeroGPU worker
    included) and handed back like `Carry`: the estimate learns from it."""

    prepare: float = 0.0  # building the trainer: encoding the images
    steps: list[float] = field(default_factory=list)
    readings: list[float] = field(default_factory=list)  # stop when learned's, the first included
    previews: list[float] = field(default_factory=list)
    finish: float | None = None  # the last checkpoint and the quality readout

    def add(self, chunk: Timing) -> None:
        """Count a later chunk of the same run in."""
        self.prepare += chunk.prepare
        self.steps += chunk.steps
        self.readings += chunk.readings
        self.previews += chunk.previews
        self.finish = chunk.finish


def train_chunk(model, images, config: TrainConfig, output_dir: Path, state: dict | None = None, pause_at: int | None = None):
    """Run one stretch of a training run (to `pause_at`, or to the end): the Trainer's events, a
    `Carry` before `Paused`, and a `Timing` last. Everything it yields can cross a process boundary.

    A run whose step count is not a multiple of `preview_every` gets one more preview at its last
    step, so the visitor always sees what the finished concept draws."""
    output_dir = Path(output_dir)
    clock = time.perf_counter()
    trainer = Trainer(model, images, config, output_dir, should_stop=(output_dir / STOP_FILE).exists)
    if state is not None:
        trainer.load_state_dict(state)
    timing = Timing(prepare=time.perf_counter() - clock)
    clock = time.perf_counter()
    for event in trainer.run(pause_at=pause_at):
        spent = time.perf_counter() - clock
        if isinstance(event, Progress):
            timing.steps.append(spent)
        elif isinstance(event, Reading):
            timing.readings.append(spent)
        elif isinstance(event, Preview):
            timing.previews.append(spent)
        elif isinstance(event, Paused):
            yield Carry(trainer.state_dict())
        elif isinstance(event, Finished):
            timing.finish = spent
            if needs_final_preview(config, event):
                clock = time.perf_counter()
                yield Preview(event.step, trainer.preview())
                timing.previews.append(time.perf_counter() - clock)
            yield timing
        yield event
        clock = time.perf_counter()
    if timing.finish is None:
        yield timing


def needs_final_preview(config: TrainConfig, finished: Finished) -> bool:
    """Previews are on, the run was not stopped, and its last step had no preview of its own."""
    every = config.preview_every
    return bool(every and config.preview_prompt and not finished.stopped and finished.step % every)


ChunkRunner = Callable[..., Iterator]


@dataclass
class Pace:
    """How fast a run goes now, as its page sees it: the time between its latest steps (plateau
    readings and checkpoints included, previews apart), so that "left" stays steady and is not
    slowed by preparing, waiting for a slot, or a preview that just happened."""

    steps: deque = field(default_factory=lambda: deque(maxlen=PACE_STEPS))
    previews: list[float] = field(default_factory=list)
    _last_step: float | None = None  # when this chunk's latest step ended (None: none yet)
    _last_event: float | None = None
    _previewing: float = 0.0  # previews since the latest step

    def chunk_started(self) -> None:
        """A chunk's first step pays for preparing: it starts no sample."""
        self._last_step = self._last_event = None

    def saw(self, event, now: float) -> None:
        if isinstance(event, Preview) and self._last_event is not None:
            self.previews.append(now - self._last_event)
            self._previewing += self.previews[-1]
        elif isinstance(event, Progress):
            if self._last_step is not None:
                self.steps.append(now - self._last_step - self._previewing)
            self._last_step, self._previewing = now, 0.0
        self._last_event = now

    def left(self, step: int, total: int, preview_every: int) -> float | None:
        """Seconds to the last step, its previews included; None before two steps were seen."""
        if not self.steps:
            return None
        per_step = statistics.mean(self.steps)
        preview = statistics.median(self.previews) if self.previews else PREVIEW_STEPS_EQUIVALENT * per_step
        return (total - step) * per_step + previews_after(step, total, preview_every) * preview


def previews_after(step: int, total: int, preview_every: int) -> int:
    """The previews a run still makes after `step`: one every `preview_every` steps and, if its
    last step has none, one at the end."""
    if not preview_every or step >= total:
        return 0
    return total // preview_every - step // preview_every + (1 if total % preview_every else 0)


@dataclass
class RunView:
    """What the page shows of a run, refreshed as it goes."""

    step: int = 0
    total: int = 0
    losses: list[tuple[int, float]] = field(default_factory=list)
    readings: list[tuple[int, float]] = field(default_factory=list)  # stop when learned's evaluation losses
    previews: list[tuple[Image.Image, str]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    # waiting (for a training slot), preparing, training, stopping: going; then finished, stopped,
    # failed, or interrupted (the server shut down: the run can be resumed from its checkpoint)
    phase: str = "waiting"
    finished: Finished | None = None
    output_dir: Path | None = None
    keyword: str = ""
    timing: Timing = field(default_factory=Timing)  # the whole run's, gathered from its chunks
    pace: Pace = field(default_factory=Pace)
    preview_every: int = 0
    stop_when_learned: bool = False  # so the time left is at most, not about
    ahead: int = 0  # runs waiting before this one for a training slot
    error: str = ""  # what went wrong, for the visitor, when the run failed
    note: str | None = None  # said with the result (e.g. the keyword it replaced)
    files: dict[str, Path] = field(default_factory=dict)  # the downloads, once it has a result
    ended_at: float | None = None  # monotonic time the run ended, its result (if any) complete
    version: int = 0  # bumped by every change, so a watching page knows when to redraw
    _changed: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def update(self, **changes) -> None:
        """Change fields (or just say something changed) and wake whoever watches the run."""
        with self._changed:
            for name, value in changes.items():
                setattr(self, name, value)
            self.version += 1
            self._changed.notify_all()

    def wait_change(self, seen: int, timeout: float) -> int:
        """Wait until the version differs from `seen` or `timeout` passes; the version now."""
        with self._changed:
            self._changed.wait_for(lambda: self.version != seen, timeout)
            return self.version

    @property
    def eta(self) -> float | None:
        """Seconds left at the pace of the latest steps (None until it is known)."""
        return self.pace.left(self.step, self.total, self.preview_every)


READOUT_SHOWN = 4  # of each side's readout pictures, after the previews


def readout_previews(output_dir: Path, keyword: str) -> list[tuple[Image.Image, str]]:
    """The pictures the readout's verdict was drawn from, the starting word's then the keyword's
    (the page shows the newest first), so a visitor sees what the verdict saw."""
    captions = {"start": "readout · starting word", "learned": f"readout · {keyword}"}
    shown = []
    for side in ("start", "learned"):
        for path in likeness.saved_pictures(output_dir, side)[:READOUT_SHOWN]:
            with Image.open(path) as image:
                shown.append((image.convert("RGB"), captions[side]))
    return shown


def run_training(
    images: list[TrainingImage],
    config: TrainConfig,
    output_dir: Path,
    run_chunk: ChunkRunner,
    chunk_steps: int = 0,
    view: RunView | None = None,
    state: dict | None = None,
) -> Iterator[RunView]:
    """Drive a run through `run_chunk(images, config, output_dir, state, pause_at)` calls, yielding
    the updated view after every event. `chunk_steps` 0 runs it in one call; `state` (a
    checkpoint) resumes a run where it was saved."""
    view = view or RunView(total=config.steps)
    view.total, view.output_dir, view.keyword, view.preview_every = config.steps, output_dir, config.token, config.preview_every
    view.stop_when_learned = config.stop_when_learned
    if state is not None:
        view.step = int(state["step"])
        view.losses = [(int(s), float(loss)) for s, loss, _ in state["loss_log"].tolist()]
    while True:
        pause_at = min(config.steps, view.step + chunk_steps) if chunk_steps else None
        paused = False
        view.pace.chunk_started()
        for event in run_chunk(images, config, output_dir, state, pause_at):
            if isinstance(event, Carry):
                state = event.state
                continue
            if isinstance(event, Timing):
                view.timing.add(event)
                continue
            view.pace.saw(event, time.monotonic())
            if isinstance(event, Progress):
                view.step, view.phase = event.step, "stopping" if view.phase == "stopping" else "training"
                view.losses.append((event.step, event.loss))
            elif isinstance(event, Reading):
                view.readings.append((event.step, event.loss))
            elif isinstance(event, Preview):
                view.previews += [(image, f"step {event.step}") for image in event.images]
            elif isinstance(event, Paused):
                paused = True
            elif isinstance(event, Finished):
                view.finished, view.step = event, event.step
                view.phase = "stopped" if event.stopped else "finished"
                view.previews += readout_previews(output_dir, config.token)
            yield view
        if view.finished or not paused:
            return
        if (Path(output_dir) / STOP_FILE).exists():  # stopped between two chunks
            concept = Concept(config.token, {k: v.clone() for k, v in state["vectors"].items()}, config.concept_type, "trained")
            view.finished = Finished(view.step, True, Path(output_dir), concept)
            view.phase = "stopped"
            yield view
            return

