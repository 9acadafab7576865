"""What the web app keeps per visitor, and the app-side steps between widgets and the library.

`app.py` only wires widgets; everything it does on a visitor's behalf goes through a `Session`
(one per browser tab, held in a `gr.State`): the uploaded images and what was wrong with them,
the concepts trained or loaded in this tab, the training runs and their private output folders.
Nothing here is shared between sessions except the frozen base model, which training and
generation never change (see `prompts.py`).

Training is driven as a series of *chunks*: `train_chunk` runs one stretch of steps and, when it
pauses, hands back the run's state as CPU tensors; `run_training` starts the next chunk from that
state. On an ordinary machine there is one chunk. On ZeroGPU every chunk is one GPU call in a
forked worker (which cannot change this process's memory), so a long run becomes several short
calls while the visitor sees one continuous run. A Stop request is a file in the run's folder,
which the worker sees too, so Stop works inside a chunk wherever it runs.
"""

from __future__ import annotations

import math
import os
import random
import re
import shutil
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from PIL import Image, ImageChops, ImageStat

from .concepts import Concept, concept_name
from .images import MAX_IMAGES, SMALL_SIDE, ImageError, TrainingImage, load_image
from .train import Finished, Paused, Preview, Progress, TrainConfig, Trainer

STOP_FILE = "STOP"
MAX_SIDE_KEPT = 1536  # uploads are kept in memory at most this big (training is <= 1024 px)
THUMB_SIDE = 256
DETAIL_RATIO_MIN = 0.10  # see `detail_warnings`
FLAT_MIN = 0.5


def session_root() -> Path:
    """Where per-session folders live: `TEXTINV_WORK_ROOT`, else the system temp folder."""
    return Path(os.environ.get("TEXTINV_WORK_ROOT") or Path(tempfile.gettempdir()) / "textinv-sessions")


# -- images -------------------------------------------------------------------------------------


@dataclass
class Upload:
    """One uploaded file: usable (`item`) with warnings, or refused (`error`)."""

    name: str
    item: TrainingImage | None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    thumb: Image.Image | None = None

    @property
    def caption(self) -> str:
        if self.error:
            return f"✖ {self.name}: refused"
        if self.warnings:
            return f"⚠ {self.name}: " + "; ".join(short for short, _ in self.warnings)
        return f"✓ {self.name}"


def _resample_error(gray: Image.Image, factor: int) -> float:
    """Mean grey-level change when the image is shrunk `factor` times and blown up again."""
    w, h = gray.size
    small = gray.resize((max(1, w // factor), max(1, h // factor)), Image.Resampling.BOX)
    return ImageStat.Stat(ImageChops.difference(gray, small.resize((w, h), Image.Resampling.BICUBIC))).mean[0]


def detail_warnings(image: Image.Image) -> list[tuple[str, str]]:
    """Cheap checks for images that train poorly: (short label, explanation) pairs.

    An image that was upscaled or is out of focus has almost no detail at the pixel scale: halving
    and re-enlarging it changes it little compared with shrinking it 16 times. On sharp photos and
    drawings the ratio of the two changes is 0.12 or more; on 2x-8x upscales and blurred copies it
    is 0.03-0.10. A nearly uniform image changes little at any scale.
    """
    gray = image.convert("L")
    side = min(*gray.size, 1024)
    left, top = (gray.width - side) // 2, (gray.height - side) // 2
    gray = gray.crop((left, top, left + side, top + side))
    coarse = _resample_error(gray, 16)
    if coarse < FLAT_MIN:
        return [("almost blank", "almost no detail at all: is it a blank or nearly uniform image?")]
    if _resample_error(gray, 2) / coarse < DETAIL_RATIO_MIN:
        return [("blurry or upscaled", "looks blurry or upscaled (very little fine detail); a sharper photo teaches more")]
    return []


def check_image(path: str | Path, display_name: str | None = None, resolution: int = SMALL_SIDE) -> Upload:
    """Decode one upload and say what is wrong with it, if anything (for a model of `resolution` px)."""
    name = display_name or Path(path).name
    try:
        item = load_image(path, resolution)
    except ImageError as err:
        message = str(err)
        return Upload(name, None, error=message if message.startswith(name) else f"{name}: {message}")
    item.name = name
    warnings = [("small", text) for text in item.warnings]
    warnings += detail_warnings(item.image)
    if min(item.image.size) > MAX_SIDE_KEPT:
        scale = MAX_SIDE_KEPT / min(item.image.size)
        item.image = item.image.resize(
            (round(item.image.width * scale), round(item.image.height * scale)), Image.Resampling.LANCZOS
        )
    thumb = item.image.copy()
    thumb.thumbnail((THUMB_SIDE, THUMB_SIDE))
    return Upload(name, item, [(short, text if text.startswith(name) else f"{name}: {text}") for short, text in warnings], thumb=thumb)


def refused_thumbnail() -> Image.Image:
    """A grey square shown in place of a file that is not a usable image."""
    return Image.new("RGB", (THUMB_SIDE, THUMB_SIDE), (225, 225, 225))


# -- keywords -----------------------------------------------------------------------------------


def suggest_keyword(name: str) -> str:
    """`Red Robot` -> `<red-robot>`: a keyword no tokenizer knows as one word."""
    slug = re.sub(r"[^a-z0-9]+", "-", (name or "").strip().strip("<>").lower()).strip("-")
    return f"<{slug}>" if slug else ""


# -- training -----------------------------------------------------------------------------------


@dataclass
class Carry:
    """The state a paused chunk hands to the next one (CPU tensors only)."""

    state: dict


def train_chunk(model, images, config: TrainConfig, output_dir: Path, state: dict | None = None, pause_at: int | None = None):
    """Run one stretch of a training run (to `pause_at`, or to the end): the Trainer's events, plus
    a `Carry` before `Paused`. Everything it yields can cross a process boundary."""
    output_dir = Path(output_dir)
    trainer = Trainer(model, images, config, output_dir)
    if state is not None:
        trainer.load_state_dict(state)
    stop_file = output_dir / STOP_FILE
    if stop_file.exists():
        trainer.stop()
    for event in trainer.run(pause_at=pause_at):
        if isinstance(event, Paused):
            yield Carry(trainer.state_dict())
        yield event
        if stop_file.exists():
            trainer.stop()


ChunkRunner = Callable[..., Iterator]


@dataclass
class RunView:
    """What the page shows of a run, refreshed as it goes."""

    step: int = 0
    total: int = 0
    losses: list[tuple[int, float]] = field(default_factory=list)
    previews: list[tuple[Image.Image, str]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    phase: str = "preparing"  # preparing, training, stopping, finished, stopped, failed
    finished: Finished | None = None
    output_dir: Path | None = None
    keyword: str = ""
    note: str = ""

    @property
    def eta(self) -> float | None:
        if self.step == 0:
            return None
        elapsed = time.monotonic() - self.started
        return elapsed / self.step * (self.total - self.step)


def run_training(
    images: list[TrainingImage],
    config: TrainConfig,
    output_dir: Path,
    run_chunk: ChunkRunner,
    chunk_steps: int = 0,
    view: RunView | None = None,
) -> Iterator[RunView]:
    """Drive a run through `run_chunk(images, config, output_dir, state, pause_at)` calls, yielding
    the updated view after every event. `chunk_steps` 0 runs it in one call."""
    view = view or RunView(total=config.steps)
    view.total, view.output_dir, view.keyword = config.steps, output_dir, config.token
    state = None
    while True:
        pause_at = min(config.steps, view.step + chunk_steps) if chunk_steps else None
        paused = False
        for event in run_chunk(images, config, output_dir, state, pause_at):
            if isinstance(event, Carry):
                state = event.state
                continue
            if isinstance(event, Progress):
                view.step, view.phase = event.step, "stopping" if view.phase == "stopping" else "training"
                view.losses.append((event.step, event.loss))
            elif isinstance(event, Preview):
                view.previews += [(image, f"step {event.step}") for image in event.images]
            elif isinstance(event, Paused):
                paused = True
            elif isinstance(event, Finished):
                view.finished, view.step = event, event.step
                view.phase = "stopped" if event.stopped else "finished"
            yield view
        if view.finished or not paused:
            return
        if (Path(output_dir) / STOP_FILE).exists():  # stopped between two chunks
            concept = Concept(config.token, {k: v.clone() for k, v in state["vectors"].items()}, config.concept_type, "trained")
            view.finished = Finished(view.step, True, Path(output_dir), concept)
            view.phase = "stopped"
            yield view
            return


def download_files(output_dir: Path, family_is_sdxl: bool) -> dict[str, Path]:
    """The files to offer: `diffusers`, `a1111` and `everything` (a zip of the concept)."""
    output_dir = Path(output_dir)
    token = (output_dir / "token_identifier.txt").read_text().strip()
    name = concept_name(token)
    files: dict[str, Path] = {}
    if family_is_sdxl:
        pair = output_dir / f"{name}-diffusers.zip"
        _zip(pair, output_dir, ["learned_embeds.safetensors", "learned_embeds_2.safetensors", "token_identifier.txt"])
        files["diffusers"] = pair
        files["a1111"] = output_dir / f"{name}.safetensors"
    else:
        files["diffusers"] = output_dir / "learned_embeds.safetensors"
        files["a1111"] = output_dir / f"{name}.pt"
    everything = output_dir / f"{name}-all.zip"
    keep = [p.relative_to(output_dir).as_posix() for p in sorted(output_dir.rglob("*")) if p.is_file()]
    keep = [p for p in keep if not p.startswith("checkpoints/") and not p.endswith(".zip") and p != STOP_FILE]
    _zip(everything, output_dir, keep)
    files["everything"] = everything
    return files


def _zip(path: Path, folder: Path, names: list[str]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            if (folder / name).is_file():
                archive.write(folder / name, name)


# -- the session --------------------------------------------------------------------------------


class Session:
    """Everything one visitor (one browser tab) has made or loaded."""

    def __init__(self) -> None:
        self.uploads: list[Upload] = []
        self.concepts: dict[str, Concept] = {}  # lower-cased keyword -> concept
        self.run: RunView | None = None  # the latest run, going or done
        self.finished_runs: list[RunView] = []  # runs with a result, oldest first
        self.runs = 0
        self.suggested = ""  # the keyword last suggested from the concept name
        self.search_results: dict = {}  # repo id -> hub.HubConcept of the latest search
        self._folder: Path | None = None
        self._lock = threading.Lock()

    def __deepcopy__(self, memo) -> "Session":
        # gr.State deep-copies its value once per visitor; a Session is made fresh for each visitor.
        return self

    @property
    def folder(self) -> Path:
        if self._folder is None:
            root = session_root()
            root.mkdir(parents=True, exist_ok=True)
            self._folder = Path(tempfile.mkdtemp(prefix="session-", dir=root))
        return self._folder

    def cleanup(self) -> None:
        """Delete this session's files (called when gradio forgets the session)."""
        if self.run and self.run.output_dir and self.training:
            (Path(self.run.output_dir) / STOP_FILE).touch()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)

    # images

    def add_images(self, paths: list[tuple[str, str]], resolution: int = SMALL_SIDE) -> list[str]:
        """Add (path, display name) uploads for a model of `resolution` px; a name seen before
        replaces the earlier file. Returns notes about files that were not added."""
        notes = []
        for path, name in paths:
            self.uploads = [u for u in self.uploads if u.name != name]
            if len(self.usable_images()) >= MAX_IMAGES:
                notes.append(f"{name}: not added, the limit is {MAX_IMAGES} images (3 to 5 usually work best)")
                continue
            self.uploads.append(check_image(path, name, resolution))
        return notes

    def clear_images(self) -> None:
        self.uploads = []

    def usable_images(self) -> list[TrainingImage]:
        return [u.item for u in self.uploads if u.item is not None]

    # concepts

    def add_concept(self, concept: Concept, replace: bool = False) -> tuple[str, str | None]:
        """Add a concept under a keyword unique in this session. Returns (keyword, note)."""
        from .sources import unique_keyword

        note = None
        key = concept.token.lower()
        if key in self.concepts and not replace:
            new = unique_keyword(concept.token, set(self.concepts))
            note = f"the keyword `{concept.token}` is already used in this session, so this one is `{new}`"
            concept.token, key = new, new.lower()
        elif key in self.concepts:
            note = f"replaces the earlier `{concept.token}`"
        self.concepts[key] = concept
        return concept.token, note

    def concept_list(self) -> list[Concept]:
        return list(self.concepts.values())

    # training

    @property
    def training(self) -> bool:
        return self.run is not None and self.run.phase in ("preparing", "training", "stopping")

    def new_run_folder(self, token: str) -> Path:
        self.runs += 1
        folder = self.folder / f"run-{self.runs:02d}-{concept_name(token)}"
        folder.mkdir(parents=True)
        return folder

    def start(self, total: int) -> RunView:
        with self._lock:
            if self.training:
                raise ValueError("a training run is already going in this tab: stop it first, or wait for it")
            self.run = RunView(total=total)
            return self.run

    def stop(self) -> bool:
        """Ask the current run to stop after its current step; returns whether one was running."""
        run = self.run
        if run is None or not self.training:
            return False
        run.phase = "stopping"
        if run.output_dir is not None:
            (Path(run.output_dir) / STOP_FILE).touch()
        return True


# -- generation -----------------------------------------------------------------------------------


def pick_seed(seed: float | int | None) -> int:
    """A negative or empty seed means random."""
    if seed is None or (isinstance(seed, float) and math.isnan(seed)) or int(seed) < 0:
        return random.randrange(2**31)
    return int(seed)


# -- the Hub --------------------------------------------------------------------------------------


def fetch_previews(result, api, limit: int = 4) -> list[str]:
    """Local copies of a search result's preview images (through the Hub cache, with the visitor's
    token), so the page never links to the Hub directly. Images that fail to download are skipped."""
    from huggingface_hub import hf_hub_download

    paths = []
    for url in result.preview_urls[:limit]:
        filename = url.split("/resolve/main/", 1)[-1]
        try:
            paths.append(hf_hub_download(result.repo_id, filename, endpoint=api.endpoint, token=api.token))
        except Exception:  # a missing preview must not stop the search from showing
            continue
    return paths
