"""What the web app keeps per visitor: a `Session`.

Everything the app does on a visitor's behalf goes through their session: the uploaded images and
what was wrong with them, the concepts trained or loaded, the training runs and their private
output folders. Nothing here is shared between sessions except the frozen base model, which
training and generation never change (see `prompts.py`).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

from ..concepts import Concept, concept_name
from ..hub import download_concept, parse_reference
from ..images import MAX_IMAGES, SMALL_SIDE, TrainingImage
from ..models import BaseModel
from ..readers import EmbeddingFile, read_embedding
from ..sources import fit_embedding, unique_keyword
from ..train import Finished
from . import messages
from .downloads import download_files
from .driving import STOP_FILE, RunView
from .keywords import bare_keyword
from .runs import SavedRun, saved_runs, write_result
from .uploads import Upload, check_image


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


def fit_for(model: BaseModel, embedding: EmbeddingFile, display_name: str) -> tuple[Concept, list[str]]:
    """`sources.fit_embedding`, except that on the built-in demo model a file whose widths fit none
    of its encoders is refused as what it is (a real file on a toy model), with what would work."""
    if model.is_demo:
        widths = {kind: vectors.shape[1] for kind, vectors in embedding.vectors.items()}
        refusal = messages.demo_refusal(display_name, widths, model.spec, [slot.width for slot in model.text_encoders])
        if refusal:
            raise ValueError(refusal)
    return fit_embedding(embedding, model)



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
        self.run_form: dict = {}  # the Train form, by field name, of the latest run (a reopened page shows it)
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
            now = time.monotonic()  # what the run took is kept in its folder; the clock is this process's
            view = RunView(step=saved.step, total=saved.config.steps, phase="stopped" if saved.stopped else "finished",
                           output_dir=saved.folder, keyword=saved.config.token, started=now - saved.seconds,
                           finished=Finished(saved.step, saved.stopped, saved.folder, concept), ended_at=now)
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
        write_result(view.output_dir, view.step, view.finished.stopped, time.monotonic() - view.started)
        view.files = download_files(view.output_dir, is_sdxl)
        self.finished_runs.append(view)
        return note

    def start(self, total: int, form: dict | None = None) -> RunView:
        """Mark a run as going (one at a time per visitor), with the form it was started from."""
        with self._lock:
            if self.training:
                raise ValueError(f"{self.run.keyword or 'a concept'} is already training for you (maybe in another "
                                 "tab): stop it first, or wait for it")
            self.run_form = dict(form or {})
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
