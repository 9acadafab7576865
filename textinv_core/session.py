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

import hashlib
import html
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

from PIL import Image, ImageChops, ImageDraw, ImageFont, ImageStat

from . import messages
from .concepts import Concept, concept_name
from .fields import FieldError, parse_keyword
from .forms import TrainRequest
from .hub import download_concept, parse_reference
from .images import MAX_IMAGES, SMALL_SIDE, ImageError, TrainingImage, load_image
from .models import BaseModel
from .prompts import keyword_pattern, missing_keywords
from .readers import MAX_BYTES, EmbeddingFile, read_embedding
from .runs import SavedRun, saved_runs, write_result
from .sources import fit_embedding, unique_keyword
from .train import Finished, Paused, Preview, Progress, TrainConfig, Trainer

STOP_FILE = "STOP"
MAX_UPLOAD_BYTES = MAX_BYTES  # one photo or embedding file: 50 MB (gradio's own limit is set higher)
MAX_SIDE_KEPT = 1536  # uploads are kept in memory at most this big (training is <= 1024 px)
THUMB_SIDE = 256
MAX_NOTE_LINES = 12  # image notes shown under the thumbnails; the rest are counted
DETAIL_RATIO_MIN = 0.10  # see `detail_warnings`
FLAT_MIN = 0.5


def visitor_folder_name(visitor: str) -> str:
    """The folder of a visitor's files: named by a hash, so neither logs nor the file system show the id."""
    return "visitor-" + hashlib.sha256(visitor.encode()).hexdigest()[:24]


def run_number(folder: Path) -> int:
    """`run-07-red-rocket` -> 7."""
    match = re.match(r"run-(\d+)-", Path(folder).name)
    return int(match.group(1)) if match else 0


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
    """Decode one upload and say what is wrong with it, if anything (for a model of `resolution` px).
    Messages name the file as the visitor named it, never the server's copy."""
    name = display_name or Path(path).name
    size = Path(path).stat().st_size
    if size == 0:
        return Upload(name, None, error=f"{name}: empty file (0 bytes): the upload or copy failed; add it again")
    if size > MAX_UPLOAD_BYTES:
        return Upload(name, None, error=f"{name}: {size / 2**20:.0f} MB, over the {MAX_UPLOAD_BYTES // 2**20} MB limit "
                                        "for one image; save it as a smaller JPEG or PNG")
    try:
        item = load_image(path, resolution)
    except ImageError as err:
        message = messages.for_visitor(str(err), {str(path): name, Path(path).name: name})
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


def _escape(text: str) -> str:
    """Text for Markdown that may hold keywords like <cat-toy>, which must not read as HTML."""
    return html.escape(text, quote=False)


def _listed(names: list[str], limit: int = 5) -> str:
    """`a.png, b.png, c.png and 7 more`."""
    shown = ", ".join(names[:limit])
    return f"{shown} and {len(names) - limit} more" if len(names) > limit else shown


def refused_thumbnail() -> Image.Image:
    """The tile shown in place of a refused file: plainly a refusal, not a grey image that seems
    to be loading (the reason is in the image notes and the tile's caption)."""
    tile = Image.new("RGB", (THUMB_SIDE, THUMB_SIDE), (253, 236, 236))
    draw = ImageDraw.Draw(tile)
    red, middle, arm = (176, 42, 38), THUMB_SIDE // 2, THUMB_SIDE // 7
    draw.rectangle((0, 0, THUMB_SIDE - 1, THUMB_SIDE - 1), outline=(214, 69, 65), width=6)
    for sign in (1, -1):  # a cross (the default font has no ✖)
        draw.line((middle - arm, middle - 30 - sign * arm, middle + arm, middle - 30 + sign * arm), fill=red, width=12)
    font = ImageFont.load_default(size=THUMB_SIDE // 6)
    draw.text((middle, middle + 50), "refused", fill=red, font=font, anchor="mm")
    return tile


# -- keywords -----------------------------------------------------------------------------------


def bare_keyword(keyword: str) -> str:
    """`<Cat-Toy>` -> `cat-toy`: how keywords are compared when one may lack its brackets."""
    return keyword.strip().strip("<>").lower()


def suggest_keyword(name: str) -> str:
    """`Red Robot` -> `<red-robot>`: a keyword no tokenizer knows as one word."""
    slug = re.sub(r"[^a-z0-9]+", "-", (name or "").strip().strip("<>").lower()).strip("-")
    return f"<{slug}>" if slug else ""


def default_preview_prompt(keyword: str, concept_type: str) -> str:
    if concept_type == "style":
        return f"a painting of a house in the style of {keyword}"
    return f"a photo of {keyword}"


# -- training -----------------------------------------------------------------------------------


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
    """How long one chunk's steps, previews and finishing took, in seconds, measured where they
    ran (a ZeroGPU worker included) and handed back like `Carry`: the estimate learns from it."""

    steps: list[float] = field(default_factory=list)
    previews: list[float] = field(default_factory=list)
    finish: float | None = None


def train_chunk(model, images, config: TrainConfig, output_dir: Path, state: dict | None = None, pause_at: int | None = None):
    """Run one stretch of a training run (to `pause_at`, or to the end): the Trainer's events, a
    `Carry` before `Paused`, and a `Timing` last. Everything it yields can cross a process boundary.

    A run whose step count is not a multiple of `preview_every` gets one more preview at its last
    step, so the visitor always sees what the finished concept draws."""
    output_dir = Path(output_dir)
    trainer = Trainer(model, images, config, output_dir)
    if state is not None:
        trainer.load_state_dict(state)
    stop_file = output_dir / STOP_FILE
    if stop_file.exists():
        trainer.stop()
    timing, clock = Timing(), time.perf_counter()
    for event in trainer.run(pause_at=pause_at):
        spent = time.perf_counter() - clock
        if isinstance(event, Progress):
            timing.steps.append(spent)
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
        if stop_file.exists():
            trainer.stop()
        clock = time.perf_counter()
    if timing.finish is None:
        yield timing


def needs_final_preview(config: TrainConfig, finished: Finished) -> bool:
    """Previews are on, the run was not stopped, and its last step had no preview of its own."""
    every = config.preview_every
    return bool(every and config.preview_prompt and not finished.stopped and finished.step % every)


ChunkRunner = Callable[..., Iterator]


@dataclass
class RunView:
    """What the page shows of a run, refreshed as it goes."""

    step: int = 0
    total: int = 0
    losses: list[tuple[int, float]] = field(default_factory=list)
    previews: list[tuple[Image.Image, str]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    # waiting (for a training slot), preparing, training, stopping: going; then finished, stopped,
    # failed, or interrupted (the server shut down: the run can be resumed from its checkpoint)
    phase: str = "waiting"
    finished: Finished | None = None
    output_dir: Path | None = None
    keyword: str = ""
    timing: Timing = field(default_factory=Timing)  # the whole run's, gathered from its chunks
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
    state: dict | None = None,
) -> Iterator[RunView]:
    """Drive a run through `run_chunk(images, config, output_dir, state, pause_at)` calls, yielding
    the updated view after every event. `chunk_steps` 0 runs it in one call; `state` (a
    checkpoint) resumes a run where it was saved."""
    view = view or RunView(total=config.steps)
    view.total, view.output_dir, view.keyword = config.steps, output_dir, config.token
    if state is not None:
        view.step = int(state["step"])
        view.losses = [(int(s), float(loss)) for s, loss, _ in state["loss_log"].tolist()]
    while True:
        pause_at = min(config.steps, view.step + chunk_steps) if chunk_steps else None
        paused = False
        for event in run_chunk(images, config, output_dir, state, pause_at):
            if isinstance(event, Carry):
                state = event.state
                continue
            if isinstance(event, Timing):
                view.timing.steps += event.steps
                view.timing.previews += event.previews
                view.timing.finish = event.finish
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
    """The files to offer: `diffusers`, `a1111` and `everything` (a zip of the concept), each
    named after the concept (`red-rocket-diffusers.safetensors`), so that two concepts downloaded
    into one folder never overwrite each other. They live in `downloads/`, apart from the run's
    own files, which keep the names diffusers and A1111 expect."""
    output_dir = Path(output_dir)
    token = (output_dir / "token_identifier.txt").read_text().strip()
    name = concept_name(token)
    folder = output_dir / "downloads"
    folder.mkdir(exist_ok=True)
    files: dict[str, Path] = {}
    if family_is_sdxl:
        files["diffusers"] = folder / f"{name}-diffusers.zip"
        _zip(files["diffusers"], output_dir, ["learned_embeds.safetensors", "learned_embeds_2.safetensors", "token_identifier.txt"])
        files["a1111"] = folder / f"{name}.safetensors"
        shutil.copyfile(output_dir / f"{name}.safetensors", files["a1111"])
    else:
        files["diffusers"] = folder / f"{name}-diffusers.safetensors"
        shutil.copyfile(output_dir / "learned_embeds.safetensors", files["diffusers"])
        files["a1111"] = folder / f"{name}.pt"
        shutil.copyfile(output_dir / f"{name}.pt", files["a1111"])
    files["everything"] = folder / f"{name}-all.zip"
    keep = [p.relative_to(output_dir).as_posix() for p in sorted(output_dir.rglob("*")) if p.is_file()]
    keep = [p for p in keep if not p.startswith(("checkpoints/", "downloads/")) and p != STOP_FILE]
    _zip(files["everything"], output_dir, keep)
    return files


def _zip(path: Path, folder: Path, names: list[str]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            if (folder / name).is_file():
                archive.write(folder / name, name)


# -- concepts from files ------------------------------------------------------------------------


def fit_for(model: BaseModel, embedding: EmbeddingFile, display_name: str) -> tuple[Concept, list[str]]:
    """`sources.fit_embedding`, except that on the built-in demo model a file whose widths fit none
    of its encoders is refused as what it is (a real file on a toy model), with what would work."""
    if model.is_demo:
        widths = {kind: vectors.shape[1] for kind, vectors in embedding.vectors.items()}
        refusal = messages.demo_refusal(display_name, widths, model.spec, [slot.width for slot in model.text_encoders])
        if refusal:
            raise ValueError(refusal)
    return fit_embedding(embedding, model)


# -- the session --------------------------------------------------------------------------------


class Session:
    """Everything one visitor has made or loaded: one browser's pages, or one API caller."""

    def __init__(self, visitor: str | None = None) -> None:
        self.visitor = visitor  # see visitors.py; None: an API caller's session, ended with its connection
        self.uploads: list[Upload] = []
        self.concepts: dict[str, Concept] = {}  # lower-cased keyword -> concept
        self.run: RunView | None = None  # the latest run, going or done
        self.finished_runs: list[RunView] = []  # runs with a result, oldest first
        self.interrupted: list[SavedRun] = []  # runs a server restart cut short, which can go on
        self.runs = 0
        self.suggested = ""  # the keyword last suggested from the concept name
        self.search_results: dict = {}  # repo id -> hub.HubConcept of the latest search
        self.refused: dict[str, str] = {}  # bare_keyword() of a file or Hub concept that was refused -> its name
        self.file_keyword: dict[str, str] = {}  # uploaded file's server path -> the keyword it was loaded as
        self.pages = 0  # pages attached to a visitor's session (visitors.Visitors keeps count)
        self.detached_at = time.monotonic()
        self._folder: Path | None = None
        self._lock = threading.Lock()

    def __deepcopy__(self, memo) -> "Session":
        # gr.State deep-copies values it is given; a session is one object, however many pages show it.
        return self

    @property
    def folder_name(self) -> str:
        if self._folder is not None:
            return self._folder.name
        return visitor_folder_name(self.visitor) if self.visitor else ""

    @property
    def folder(self) -> Path:
        if self._folder is None:
            root = session_root()
            root.mkdir(parents=True, exist_ok=True)
            if self.visitor:
                self._folder = root / visitor_folder_name(self.visitor)
                self._folder.mkdir(mode=0o700, exist_ok=True)
            else:
                self._folder = Path(tempfile.mkdtemp(prefix="session-", dir=root))
        return self._folder

    def quiet_since(self) -> float:
        """Since when (monotonic) nothing has happened that its visitor may come back for: the
        last page went, or the last run ended, whichever was later."""
        ended = self.run.ended_at if self.run and self.run.ended_at else 0.0
        return max(self.detached_at or 0.0, ended)

    def cleanup(self) -> list[str]:
        """Stop this session's run and delete its files; returns the folder names removed."""
        if self.training:
            self.stop()
        if not self.folder_name:
            return []  # it never made a folder
        folder = self._folder or session_root() / self.folder_name
        if not folder.exists():
            return []
        shutil.rmtree(folder, ignore_errors=True)
        return [folder.name]

    def restore(self, model: BaseModel) -> None:
        """Bring back what this visitor's folder holds from an earlier server process: finished
        runs as concepts with their downloads, interrupted ones as runs that can be resumed."""
        if not self.visitor or not (session_root() / self.folder_name).is_dir():
            return
        for saved in saved_runs(self.folder):
            self.runs = max(self.runs, run_number(saved.folder))
            if not saved.ended:
                self.interrupted.append(saved)
                continue
            try:
                concept, _ = fit_embedding(read_embedding(saved.folder / "learned_embeds.safetensors"), model)
            except ValueError:
                continue  # trained on another base model: nothing this one can use
            concept.token, concept.concept_type = saved.config.token, saved.config.concept_type
            concept.source = f"trained here ({saved.step} steps)"
            self.add_concept(concept, replace=True)
            view = RunView(step=saved.step, total=saved.config.steps, phase="finished", output_dir=saved.folder,
                           keyword=saved.config.token, finished=Finished(saved.step, False, saved.folder, concept),
                           ended_at=time.monotonic())
            view.files = download_files(saved.folder, model.family.is_sdxl)
            self.finished_runs.append(view)

    # images

    def add_images(self, paths: list[tuple[str, str]], resolution: int = SMALL_SIDE) -> list[str]:
        """Add (path, display name) uploads for a model of `resolution` px; a name seen before
        replaces the earlier file. Returns the names of files not added (over the limit)."""
        not_added = []
        for path, name in paths:
            self.uploads = [u for u in self.uploads if u.name != name]
            if len(self.usable_images()) >= MAX_IMAGES:
                not_added.append(name)
                continue
            self.uploads.append(check_image(path, name, resolution))
        return not_added

    def image_notes(self, not_added: list[str] = ()) -> str:
        """The notes under the thumbnails (Markdown): a summary line first, then what is wrong with
        which file, at most MAX_NOTE_LINES of it, so 60 files at once still fit on a screen."""
        if not self.uploads and not not_added:
            return "Drop **3 to 5 images** of your concept above: different backgrounds, angles and lighting."
        usable = len(self.usable_images())
        refused = [u for u in self.uploads if u.error]
        warned = [u for u in self.uploads if u.warnings]
        head = [f"**{usable} image{'s' if usable != 1 else ''} ready**"]
        head += [f"{len(refused)} refused"] if refused else []
        head += [f"{len(warned)} with a warning"] if warned else []
        head += [f"{len(not_added)} not added"] if not_added else []
        summary = " · ".join(head) + "."
        if usable and usable < 3:
            summary += " Add a few more if you can: 3 to 5 usually work best."
        lines = [f"- ✖ {_escape(u.error)}" for u in refused]
        lines += [f"- ⚠ {_escape(text)}" for u in warned for _, text in u.warnings]
        if not_added:
            lines.append(f"- ✖ {len(not_added)} not added, the limit is {MAX_IMAGES} images (3 to 5 usually work "
                         f"best): {_escape(_listed(not_added))}")
        if len(lines) > MAX_NOTE_LINES:
            lines = lines[: MAX_NOTE_LINES - 1] + [f"- … and {len(lines) - MAX_NOTE_LINES + 1} more notes: see the "
                                                   "captions under the images"]
        return "\n".join([summary, *lines])

    def clear_images(self) -> None:
        self.uploads = []

    def remove_image(self, name: str) -> bool:
        """Remove the upload called `name` (as the visitor named it); False if there is none."""
        kept = [u for u in self.uploads if u.name != name]
        removed = len(kept) != len(self.uploads)
        self.uploads = kept
        return removed

    def usable_images(self) -> list[TrainingImage]:
        return [u.item for u in self.uploads if u.item is not None]

    # concepts

    def add_concept(self, concept: Concept, replace: bool = False) -> tuple[str, str | None]:
        """Add a concept under a keyword unique in this session. Returns (keyword, note)."""
        note = None
        key = concept.token.lower()
        if key in self.concepts and not replace:
            new = unique_keyword(concept.token, set(self.concepts))
            note = f"the keyword `{concept.token}` is already used in this session, so this one is `{new}`"
            concept.token, key = new, new.lower()
        elif key in self.concepts:
            note = f"replaces the earlier `{concept.token}`"
        self.concepts[key] = concept
        self.refused.pop(bare_keyword(concept.token), None)
        return concept.token, note

    def load_file(self, model: BaseModel, path: str | Path, display_name: str, keyword: str = "") -> tuple[str, list[str]]:
        """Load an uploaded embedding file as a concept, renamed to `keyword` if given. Loading the
        same upload again (with another keyword) replaces what it loaded before. Returns the
        keyword and notes; a refused file is remembered, so a prompt using its keyword can say so."""
        path = str(path)
        try:
            embedding = read_embedding(path)
            concept, notes = fit_for(model, embedding, display_name)
        except ValueError as err:
            for meant in (Path(display_name).stem, keyword):
                if meant:
                    self.refused[bare_keyword(meant)] = display_name
            raise ValueError(messages.for_visitor(str(err), {path: display_name})) from None
        concept.source = f"file {display_name}"
        if keyword:
            concept.token = keyword
        earlier = self.file_keyword.get(path)
        if earlier is not None:
            self.concepts.pop(earlier.lower(), None)
        token, note = self.add_concept(concept)
        self.file_keyword[path] = token
        return token, [messages.for_visitor(n, {path: display_name}) for n in notes] + ([note] if note else [])

    def load_from_hub(self, model: BaseModel, source: str, keyword: str, api, library: str) -> tuple[Concept, list[str]]:
        """Load a concept by Hub reference (never a server path: this is what a visitor typed)."""
        names: dict[str, str] = {}
        try:
            path = download_concept(parse_reference(source, library), api)
            names[str(path)] = source
            concept, notes = fit_for(model, read_embedding(path), source)
        except ValueError as err:
            for meant in (source.split("/")[-1], keyword):
                if meant:
                    self.refused[bare_keyword(meant)] = source
            raise ValueError(messages.for_visitor(str(err), names)) from None
        concept.source = source
        if keyword:
            concept.token = keyword
        token, note = self.add_concept(concept)
        return concept, [messages.for_visitor(n, names) for n in notes] + ([note] if note else [])

    def concept_list(self) -> list[Concept]:
        return list(self.concepts.values())

    # training

    @property
    def training(self) -> bool:
        return self.run is not None and self.run.ended_at is None

    def new_run_folder(self, token: str) -> Path:
        self.runs += 1
        folder = self.folder / f"run-{self.runs:02d}-{concept_name(token)}"
        folder.mkdir(parents=True)
        return folder

    def finish_run(self, view: RunView, is_sdxl: bool) -> str | None:
        """A run ended with a result: its concept joins the session (replacing an earlier one of
        the same keyword), its folder is marked as ended and its downloads are made. Returns a
        note for the visitor, if any."""
        concept = view.finished.concept
        concept.source = f"trained here ({view.step} steps)"
        view.keyword, note = self.add_concept(concept, replace=True)
        write_result(view.output_dir, view.step, view.finished.stopped)
        view.files = download_files(view.output_dir, is_sdxl)
        self.finished_runs.append(view)
        return note

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


def pick_seed(seed: int) -> int:
    """A negative seed means random."""
    return random.randrange(2**31) if seed < 0 else seed


def keywords_in(prompts: list[str], concepts: list[Concept], refused: dict[str, str]) -> tuple[list[str], list[str]]:
    """(keywords of `concepts` used in `prompts`, keyword-like words no concept provides), each
    once, in order, as Markdown. A missing word that names a refused file or Hub concept says so."""
    text = "\n".join(prompts)
    pattern = keyword_pattern(concepts)
    used = [f"`{word}`" for word in dict.fromkeys(pattern.findall(text))] if pattern else []
    missing = []
    for word in missing_keywords(text, concepts, expected=refused):
        source = refused.get(bare_keyword(word))
        missing.append(f"`{word}`" + (f" ({_escape(source)} could not be loaded)" if source else ""))
    return used, missing


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
