"""textinv: a Textual Inversion studio in the browser (the Gradio app of the Hugging Face Space).

Three tabs: Train (teach the model a new word from a few images), Generate (use it), Hub (share
it, or load someone else's). This file only wires widgets to `textinv_core`; the per-visitor logic
lives in `textinv_core/session.py`, and every field a visitor fills in is declared and checked in
`textinv_core/forms.py`.

    python app.py                         # the model in $TEXTINV_MODEL, else Stable Diffusion 1.5
    python app.py --model builtin:toyworld # the built-in demo model (offline; draws a toy world)

With no network and no cached weights the app opens on the built-in toy-world model and says so.
"""

from __future__ import annotations

try:  # ZeroGPU: `spaces` must be imported before anything initializes CUDA; elsewhere it is optional
    import spaces
except ImportError:
    spaces = None

import argparse
import html
import json
import logging
import math
import os
import re
import signal
import threading
import time
from pathlib import Path

import gradio as gr
import pandas as pd
from huggingface_hub import HfApi, snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError

from textinv_core import estimate, forms, messages, publish, runs, toyworld, visitors
from textinv_core import session as ts
from textinv_core.concepts import concept_name, new_concept
from textinv_core.fields import MAX_KEYWORD_CHARS, FieldError, NumberField, TextField
from textinv_core.generate import generate
from textinv_core.hub import CONCEPTS_LIBRARY, HubError, hub_unreachable, search_concepts
from textinv_core.images import MAX_IMAGES
from textinv_core.models import BaseModel, load_base_model
from textinv_core.train import TrainConfig

log = logging.getLogger("textinv.app")

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEMO_MODEL = "builtin:toyworld"
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
MOCK_OAUTH_TOKEN = "mock-oauth-token-for-local-dev"  # what gradio hands out locally: not a real token
ON_SPACE = bool(os.environ.get("SPACE_ID"))
ZERO_GPU = bool(os.environ.get("SPACES_ZERO_GPU"))
def _limit(name: str, on_gpu: int, on_cpu: int) -> int:
    """A concurrency limit from the environment, else sized for the hardware: on a CPU every run
    or image already uses all cores, so a second one at once only makes both slower."""
    import torch

    return int(os.environ.get(name) or (on_gpu if torch.cuda.is_available() else on_cpu))


# Training and generation have limits of their own, so an image never waits behind a training run.
TRAIN_SLOTS = _limit("TEXTINV_TRAIN_SLOTS", 2, 1)
GENERATE_CONCURRENCY = _limit("TEXTINV_GENERATE_CONCURRENCY", 2, 1)
AUTOSAVE_SECONDS = float(os.environ.get("TEXTINV_AUTOSAVE_SECONDS", "60"))  # a crash loses at most this
# A page's session is forgotten an hour after its tab closed (gradio's grace); an API caller that
# never disconnects (plain REST) is forgotten this long after its last change.
SESSION_TTL = 24 * 3600
SWEEP_SECONDS = 300
SHUTDOWN_SECONDS = 25  # on SIGTERM, how long runs get to reach their next step and save (Spaces wait 30)
RUNNER = runs.Runner(TRAIN_SLOTS)
VISITORS = visitors.Visitors()
ZERO_GPU_CALL_SECONDS = int(os.environ.get("TEXTINV_GPU_SECONDS", "110"))  # one ZeroGPU call at most
# The app refuses photos and embedding files over 50 MB itself, with a note naming the file (see
# session.MAX_UPLOAD_BYTES). gradio's own limit is higher, because a file over it never reaches the
# app: gradio's page refuses the whole batch with a toast of its own.
UPLOAD_HARD_LIMIT = "200mb"
CACHE_CLEANUP = (3600, 6 * 3600)  # every hour, delete uploads and outputs older than 6 hours
EMBEDDING_TYPES = [".pt", ".bin", ".safetensors", ".png", ".webp"]

CSS = """
.demo-banner { background: #fff4e5 !important; border: 1px solid #f0b35b !important; border-radius: 8px;
               padding: 10px 16px !important; }
.demo-banner > *, .demo-banner .prose { border: none !important; background: transparent !important; }
.demo-banner p { margin: 0; }
.notice { background: #fdecec !important; border: 1px solid #e8a09e !important; border-radius: 8px;
          padding: 8px 14px !important; }
.model-line { opacity: 0.8; font-size: 0.92em; }
.status-box { min-height: 2.2em; }
.tips { font-size: 0.92em; opacity: 0.85; margin-top: 12px !important; }
.estimate-box { border-left: 3px solid #8c9eff; padding-left: 10px !important; }
#image-actions { align-items: end; }
#image-actions button { flex-grow: 0; min-width: 0; }
#stop-btn:not([disabled]) { background: #d64541 !important; border-color: #b83330 !important; color: white !important; }
#stop-btn[disabled] { background: #f6d5d4 !important; border-color: #eebcbb !important; color: #9c4a48 !important; }
footer { display: none !important; }
"""

# While a run is going (Stop is enabled only then), the browser asks before the page is left. The
# run itself would go on (see runs.py), but a visitor who closes the tab by mistake should know.
HEAD = """<script>
window.addEventListener("beforeunload", (event) => {
  if (document.querySelector("#stop-btn:not([disabled])")) { event.preventDefault(); event.returnValue = ""; }
});
</script>"""

# Filled by build_app(): the one frozen model every visitor shares, and where the Hub is.
APP: dict = {}


# -- inputs that reach the handlers as sent -------------------------------------------------------


def as_sent(component: gr.components.Component, field: NumberField | None = None) -> gr.components.Component:
    """`component`, with its value reaching the handler exactly as the page or the API sent it,
    and described to the API by what `field` allows.

    gradio's sliders, dropdowns and radios check values themselves and answer a bad one with a
    generic "Error" toast; `forms.py` checks every field instead and names it. (Set on the
    instance: a subclass of a gradio component makes gradio write a .pyi file beside this one.)"""
    component.preprocess = lambda payload: payload
    if field is not None:
        component.api_info = lambda: {"type": "integer" if field.integer else "number", "description": field.allowed}
    return component


def number_choices(dropdown: gr.Dropdown) -> gr.Dropdown:
    """A dropdown of numbers, described to the API as numbers (gradio says "string")."""
    values = [value for _, value in dropdown.choices]
    dropdown.api_info = lambda: {"type": "integer", "enum": values}
    return as_sent(dropdown)


def number_box(field: NumberField, value: float | None = None, **kwargs) -> gr.Number:
    """A number box for `field`: its label, its default, and its allowed range as the hint. It
    has no minimum or maximum of its own: forms.py says what is wrong with a value."""
    return as_sent(gr.Number(value=field.default if value is None else value, label=kwargs.pop("label", field.label),
                             info=kwargs.pop("info", field.allowed), **kwargs), field)


def slider(field: NumberField, value: float, step: float = 1, **kwargs) -> gr.Slider:
    return as_sent(gr.Slider(field.minimum, field.maximum, value=value, step=step, label=field.label, **kwargs), field)


def textbox(field: TextField, **kwargs) -> gr.Textbox:
    """A text box for `field`, which the page stops at the field's length limit."""
    return gr.Textbox(label=kwargs.pop("label", field.label), max_length=field.max_chars, **kwargs)


# -- start-up -------------------------------------------------------------------------------------


def load_model(spec: str | None = None) -> tuple[BaseModel, str | None]:
    """The model asked for (argument, $TEXTINV_MODEL, else SD 1.5), or the demo model with the
    reason when it can't be loaded. A Hub model is looked for in the local cache at once when the
    Hub can't be reached, instead of waiting for huggingface_hub's retries (45 s without a network);
    each step is logged, so whoever starts the app sees what it is doing."""
    spec = spec or os.environ.get("TEXTINV_MODEL") or DEFAULT_MODEL
    if spec.startswith("builtin:") or Path(spec).exists():
        log.info("Loading %s…", spec)
        return _load_or_fall_back(spec, spec)
    log.info("Checking the Hub for %s…", spec)
    if reason := hub_unreachable():
        try:
            folder = snapshot_download(spec, local_files_only=True)
        except (LocalEntryNotFoundError, ValueError, OSError):
            log.warning("The Hub can't be reached (%s) and %s is not in the local cache: opening the built-in "
                        "demo model %s instead.", reason, spec, DEMO_MODEL)
            return load_base_model(DEMO_MODEL), f"`{spec}` could not be loaded (the Hub can't be reached: {reason}, and there is no copy in the local cache)"
        log.info("The Hub can't be reached (%s): loading %s from the local cache…", reason, spec)
        return _load_or_fall_back(folder, spec)
    log.info("Loading %s (downloaded into the Hugging Face cache first if it is not there: several GB)…", spec)
    return _load_or_fall_back(spec, spec)


def _load_or_fall_back(path: str, spec: str) -> tuple[BaseModel, str | None]:
    try:
        base = load_base_model(path)
    except (ValueError, OSError) as err:
        if spec.startswith("builtin:"):
            raise
        cause = _cause(err)
        log.warning("Could not load %s (%s): opening the built-in demo model %s instead.", spec, cause, DEMO_MODEL)
        return load_base_model(DEMO_MODEL), f"`{spec}` could not be loaded ({cause})"
    base.spec = spec  # the name asked for, also when it was loaded from its cached folder
    log.info("Loaded %s (%s, %d px).", spec, base.family.name, base.resolution)
    return base, None


def _cause(err: Exception) -> str:
    """The first sentence of a loading error, without diffusers' pointer to a stack trace that
    is never printed ("check out the root cause in the stacktrace above")."""
    text = re.sub(r"[^.]*stack ?trace[^.]*\.?", "", str(err), flags=re.IGNORECASE).strip()
    first = text.splitlines()[0] if text else "unknown error"
    return messages.for_visitor(first[:300])


def gpu(duration):
    """`spaces.GPU(duration=...)` on ZeroGPU; elsewhere the function runs as it is."""
    if spaces is None:
        return lambda fn: fn
    return spaces.GPU(duration=duration)


def model() -> BaseModel:
    return APP["model"]


def zero_gpu_chunk_steps(config: TrainConfig) -> int:
    """On ZeroGPU, the steps that fit in one GPU call (previews included); 0 elsewhere (one call)."""
    if not ZERO_GPU:
        return 0
    est = estimate.estimate_training(
        model(), 100, config.batch_size, config.grad_accum, config.resolution, config.preview_every
    )
    return max(1, int((ZERO_GPU_CALL_SECONDS - 20) / (est.seconds / 100)))


def _train_duration(images, config, output_dir, state=None, pause_at=None) -> int:
    done = int(state["step"]) if state else 0
    est = estimate.estimate_training(
        model(), (pause_at or config.steps) - done, config.batch_size, config.grad_accum,
        config.resolution, config.preview_every,
    )
    return int(min(ZERO_GPU_CALL_SECONDS, 20 + 1.3 * est.seconds))


@gpu(_train_duration)
def train_on_gpu(images, config, output_dir, state=None, pause_at=None):
    """One chunk of a training run; on ZeroGPU, one GPU call in a forked worker."""
    yield from ts.train_chunk(model(), images, config, output_dir, state, pause_at)


def _generate_duration(prompt, concepts, negative, steps, guidance, seed, num_images, width, height) -> int:
    return int(min(120, 10 + 1.5 * estimate.generation_seconds(model(), steps, num_images, width, height)))


@gpu(_generate_duration)
def generate_on_gpu(prompt, concepts, negative, steps, guidance, seed, num_images, width, height):
    return generate(model(), prompt, concepts, negative, steps, guidance, seed, num_images, width, height)


# -- helpers --------------------------------------------------------------------------------------


def ok(text: str) -> str:
    return f"✔ {text}"


def failed(err: Exception) -> str:
    """A user-facing error as a toast and as the text of a status box: no server paths, no class
    names, and in the toast (which shows Markdown literally) no backticks."""
    message = messages.for_visitor(str(err))
    gr.Warning(messages.for_toast(message), duration=10, title="Can't do that yet")
    return status_for(err)


def status_for(err: Exception) -> str:
    """The status-box text of a user-facing error (no toast: for runs that end with no page)."""
    return f"✖ {messages.for_markdown(messages.for_visitor(str(err)))}"


def own(session: ts.Session | None) -> ts.Session:
    """The caller's session. Pages get theirs when they load; an API caller's first call that
    keeps something makes one (and hands it back to gradio, which ends it with the connection)."""
    return session if session is not None else VISITORS.anonymous()


def viewing(session: ts.Session | None) -> ts.Session:
    """The caller's session for reading only: an empty one (kept nowhere) if it has none yet."""
    return session if session is not None else ts.Session()


def unexpected(err: Exception, what: str) -> str:
    log.exception("%s failed", what)  # the traceback goes to the server log, never to the page
    return failed(ValueError(f"{what} failed unexpectedly; please try again"))


def concepts_library() -> str:
    return APP.get("library_author") or os.environ.get("TEXTINV_LIBRARY_AUTHOR") or CONCEPTS_LIBRARY


def hub_api(token) -> HfApi:
    endpoint = APP.get("hub_endpoint") or os.environ.get("TEXTINV_HUB_ENDPOINT") or None
    return HfApi(endpoint=endpoint, token=token)


def visitor_token(oauth_token: gr.OAuthToken | None, typed: str | None):
    """The token to act with: the visitor's OAuth token on a Space, a pasted one, or HF_TOKEN.

    On a Space the Space's own HF_TOKEN is never used for a visitor (it would let anyone push to
    the owner's account), except behind gradio's local mock login, whose token is not real.
    Returns False (send no token) when there is none, so nothing stored on the server is used.
    """
    if oauth_token is not None and oauth_token.token and oauth_token.token != MOCK_OAUTH_TOKEN:
        return oauth_token.token
    typed = forms.TOKEN.parse(typed)
    if typed:
        return typed
    mocked = oauth_token is not None and oauth_token.token == MOCK_OAUTH_TOKEN
    if (not ON_SPACE or mocked) and os.environ.get("HF_TOKEN"):
        return os.environ["HF_TOKEN"]
    return False


def concept_rows(session: ts.Session) -> pd.DataFrame:
    rows = [
        {"keyword": c.token, "type": c.concept_type, "vectors": c.num_vectors, "from": c.source or "trained"}
        for c in session.concept_list()
    ]
    return pd.DataFrame(rows, columns=["keyword", "type", "vectors", "from"])


def concept_views(session: ts.Session | None, selected: str | None = None):
    """The Generate tab's concept table and keyword picker."""
    session = viewing(session)
    keywords = [c.token for c in session.concept_list()]
    value = selected if selected in keywords else (keywords[-1] if keywords else None)
    return concept_rows(session), gr.update(choices=keywords, value=value)


def trained_runs(session: ts.Session):
    """The Hub tab's 'concept to push' choices: finished runs of this session."""
    choices = [(f"{run.keyword} ({Path(run.output_dir).name})", str(run.output_dir)) for run in session.finished_runs]
    return gr.update(choices=choices, value=choices[-1][1] if choices else None)


def image_views(session: ts.Session, not_added: list[str] = ()):
    """The Train tab's thumbnails, image notes, the emptied upload box and the image picker."""
    items = [(u.thumb if u.thumb is not None else ts.refused_thumbnail(), u.caption) for u in session.uploads]
    names = [u.name for u in session.uploads]
    return items, session.image_notes(list(not_added)), None, gr.update(choices=names, value=None)


def loss_frame(losses: list[tuple[int, float]]) -> pd.DataFrame | None:
    """Long-format loss and its trailing average, thinned to at most ~400 points per series; None
    (an empty plot) before the first step: an empty frame would freeze gradio's plot."""
    if not losses:
        return None
    window = max(5, min(100, len(losses) // 10))
    values = [loss for _, loss in losses]
    smoothed, total = [], 0.0
    for i, loss in enumerate(values):
        total += loss - (values[i - window] if i >= window else 0.0)
        smoothed.append(total / min(i + 1, window))
    every = max(1, math.ceil(len(losses) / 400))
    keep = list(range(0, len(losses), every))
    if keep[-1] != len(losses) - 1:
        keep.append(len(losses) - 1)
    steps = [losses[i][0] for i in keep]
    return pd.DataFrame(
        {
            "step": steps * 2,
            "loss": [values[i] for i in keep] + [smoothed[i] for i in keep],
            "series": ["loss"] * len(keep) + ["average"] * len(keep),
        }
    )


def newest_first(view: ts.RunView) -> list:
    """The previews for the page, newest first, so the latest one is never below the fold."""
    return list(reversed(view.previews))


def progress_text(view: ts.RunView) -> str:
    if view.phase == "waiting":
        ahead = f"{view.ahead} run{'s' if view.ahead != 1 else ''} ahead of yours" if view.ahead else "next in line"
        return f"⏳ Waiting for a free training slot ({ahead}); it starts by itself, you can leave this page."
    if view.phase == "preparing":
        return "Preparing: encoding your images…"
    elapsed = estimate.format_duration(time.monotonic() - view.started)
    if view.phase in ("finished", "stopped"):
        verb = "Finished" if view.phase == "finished" else "Stopped early, keeping what was learned"
        learned_at = view.finished.learned_at if view.finished else None
        if learned_at is not None:
            return (f"✔ **Finished: learned** by step {view.step} of {view.total} in {elapsed}; it got no better "
                    f"after step {learned_at}, whose vectors it kept.")
        return f"✔ **{verb}**: {view.step} / {view.total} steps in {elapsed}."
    eta = view.eta
    left = f" · about {estimate.format_duration(eta)} left" if eta is not None else ""
    loss = f" · loss {view.losses[-1][1]:.4f}" if view.losses else ""
    state = "■ Stopping after this step…" if view.phase == "stopping" else "▶ Training"
    return f"{state} · step **{view.step} / {view.total}**{loss}{left} · {elapsed} so far"


def resolution_choices(native: int) -> list[int]:
    choices = {native}
    for factor in (0.5, 0.75, 1.25, 1.5):
        size = int(native * factor) // 8 * 8
        if size >= 64 and size <= 1536:
            choices.add(size)
    return sorted(choices)


def demo_files_note(base: BaseModel) -> str:
    """On a demo model, said where files are loaded: real community files can't fit it."""
    if not base.is_demo:
        return ""
    return (f"\n\nThis app runs the built-in demo model, so only concepts trained on it load here; real "
            f"community files need a Stable Diffusion model (run the app with `TEXTINV_MODEL={DEFAULT_MODEL}`).")


# -- handlers: Train ------------------------------------------------------------------------------


def add_images(files, session: ts.Session | None):
    session = own(session)
    paths = [(str(f), Path(str(f)).name) for f in (files or [])]
    return (*image_views(session, session.add_images(paths, model().resolution)), session)


def clear_images(session: ts.Session | None):
    session = viewing(session)
    session.clear_images()
    return image_views(session)


def remove_image(name, session: ts.Session):
    """Remove one image, picked by clicking its thumbnail (or by name through the API)."""
    session = viewing(session)
    if not name:
        gr.Warning("Click a thumbnail first to pick the image to remove.", title="Nothing picked")
    elif not session.remove_image(str(name)):
        gr.Warning(messages.for_toast(f"There is no image called {name} here."), title="Not found")
    return image_views(session)


def pick_image(session: ts.Session, evt: gr.SelectData):
    """A click on a thumbnail picks that image for "Remove this image"."""
    session = viewing(session)
    index = evt.index if isinstance(evt.index, int) else None
    if index is None or not 0 <= index < len(session.uploads):
        return gr.update()
    return gr.update(value=session.uploads[index].name)


def suggest_keyword(name: str, keyword: str, session: ts.Session):
    """Follow the concept name with `<name>` until the visitor edits the keyword themselves."""
    session = viewing(session)
    suggestion = ts.suggest_keyword(name)
    previous = session.suggested
    session.suggested = suggestion
    if not keyword or keyword == previous:
        return suggestion
    return gr.update()


def show_estimate(steps, batch_size, resolution, preview_every):
    """How long these settings should take, or, while a field is not valid, what is wrong with it."""
    try:
        values = [forms.STEPS.parse(steps), forms.BATCH_SIZE.parse(batch_size),
                  forms.resolution_field(APP["resolutions"]).parse(resolution), forms.PREVIEW_EVERY.parse(preview_every)]
    except FieldError as err:
        return f"✖ {messages.for_markdown(str(err))}"
    try:
        steps, batch_size, resolution, preview_every = values
        return estimate.estimate_training(model(), steps, batch_size, 1, resolution, preview_every).describe()
    except Exception as err:  # the estimate must never break the page
        log.warning("estimate failed: %s", err)
        return ""


def train_update(status, plot=None, previews=None, running: bool = False, clear: bool = False,
                 files: dict | None = None, session: ts.Session | None = None, keyword: str | None = None,
                 result: str = "") -> tuple:
    """The Train handler's outputs, in the order `build_app` wires them: status, loss plot, previews,
    result panel, the three downloads, Train and Stop buttons, the Generate tab's concept table and
    keyword picker, the Hub tab's concept choices, and the result text. `None` leaves a widget as is;
    `clear` hides the previous run's result (a new run started), `files` shows this one's."""
    keep = gr.update()
    if files:
        panel = (gr.update(visible=True), str(files["diffusers"]), str(files["a1111"]), str(files["everything"]))
    elif clear:
        panel = (gr.update(visible=False), None, None, None)
    else:
        panel = (keep, keep, keep, keep)
    concepts = concept_views(session, keyword) if session is not None else (keep, keep)
    return (
        status,
        keep if plot is None else plot,
        keep if previews is None else previews,
        *panel,
        gr.update(interactive=not running),
        gr.update(interactive=running),
        *concepts,
        trained_runs(session) if session is not None else keep,
        result if (files or clear) else keep,
    )


def train(name, keyword, concept_type, init_word, steps, lr, vectors, batch_size, resolution, seed, flip,
          schedule, preview_prompt, preview_every, stop_when_learned, session: ts.Session | None):
    """Start a training run and stream it: progress, loss curve, previews, then the downloads. The
    run goes on by itself (`runs.Runner`): closing or reloading the page only stops the streaming.
    The session is the last output, so an API caller's first run keeps its session."""
    session = own(session)
    try:
        request = forms.train_request(APP["resolutions"], name, keyword, concept_type, init_word, steps, lr, vectors,
                                      batch_size, resolution, seed, flip, schedule, preview_prompt, preview_every,
                                      stop_when_learned)
        config = ts.train_config(request)
        images = session.usable_images()
        if not images:
            raise ValueError("add 3 to 5 images of your concept first (drop them in the box above)")
        config.check()  # and the keyword, initializer word and vectors, before anything is written:
        concept = new_concept(model(), config.token, config.init_word, config.num_vectors, config.concept_type,
                              config.seed)
        _, missing = ts.keywords_in([config.preview_prompt], [concept], session.refused)
        if missing:
            raise FieldError(f"Preview prompt: {', '.join(missing)} is not this concept's keyword (`{config.token}`); "
                             "previews can only use the keyword being trained")
        view = session.start(config.steps)
    except ValueError as err:
        yield (*train_update(failed(err)), session)
        return
    except Exception as err:
        yield (*train_update(unexpected(err, "starting the run")), session)
        return
    def begin() -> None:
        start_run(session, view, images, config, session.new_run_folder(config.token))

    for update in start_and_follow(session, view, begin, "starting the run"):
        yield (*update, session)


def start_and_follow(session: ts.Session, view: ts.RunView, begin, what: str):
    """Call `begin()` to start a run the session has marked as training, then stream it. From the
    mark on, any failure must end the run, or the tab could never train again."""
    try:
        begin()
    except Exception as err:
        view.update(phase="failed", ended_at=time.monotonic())
        yield train_update(unexpected(err, what))
        return
    plot = loss_frame(view.losses) if view.losses else gr.update(value=None)
    yield train_update(progress_text(view), plot, previews=[], running=True, clear=True)
    yield from follow(view, session)


def start_run(session: ts.Session, view: ts.RunView, images, config: TrainConfig, output_dir: Path,
              state: dict | None = None) -> None:
    """Hand the run to the runner. Whatever ends it, `view.phase` says how, and a result joins
    the session whether or not a page is still watching."""
    config.autosave_seconds = AUTOSAVE_SECONDS
    stop_file = output_dir / ts.STOP_FILE
    view.update(output_dir=output_dir, keyword=config.token)  # Stop works while it waits for a slot too

    def drive():
        return ts.run_training(images, config, output_dir, train_on_gpu, zero_gpu_chunk_steps(config), view, state)

    def on_end(error: Exception | None) -> None:
        if error is not None:
            stop_file.touch()  # a chunk still running elsewhere (ZeroGPU) stops too
            if not isinstance(error, ValueError):
                log.error("training failed", exc_info=error)
                error = ValueError("training failed unexpectedly; please try again")
            view.phase, view.error = "failed", status_for(error)
        elif RUNNER.shutting_down.is_set() and (view.finished is None or view.finished.stopped):
            view.phase = "interrupted"  # saved in its checkpoint, resumable after the restart
        elif view.finished is None:
            view.phase = "stopped"  # stopped while waiting for a slot: nothing was learned
        else:
            estimate.record_run(model(), config.resolution, config.batch_size, config.grad_accum, view.timing.steps,
                                view.timing.previews, view.timing.finish)
            view.note = session.finish_run(view, model().family.is_sdxl)

    RUNNER.start(view, drive, stop_file, on_end)


def follow(view: ts.RunView, session: ts.Session):
    """The Train outputs for a run as it goes (at most two page updates a second, every preview
    at once), then its end: the result and downloads, or what happened instead."""
    shown_previews = len(view.previews) - 1
    for _ in runs.watch(view):
        if view.ended_at is not None:
            break
        new_previews = len(view.previews) != shown_previews
        shown_previews = len(view.previews)
        yield train_update(progress_text(view), loss_frame(view.losses), newest_first(view) if new_previews else None,
                           running=True)
    yield ended(view, session)


def ended(view: ts.RunView, session: ts.Session) -> tuple:
    """The Train outputs for a run that has ended."""
    if view.phase == "failed":
        return train_update(view.error or "✖ training failed; please try again", session=session)
    if view.phase == "interrupted":
        return train_update(f"■ **The server is restarting.** Your run was saved at step {view.step} of {view.total}; "
                            "reload this page when it is back to go on from there.", session=session)
    if view.finished is None:
        return train_update("■ Stopped before it started: nothing was trained.", session=session)
    keyword = view.keyword
    concept = session.concepts.get(keyword.lower())
    example = ts.default_preview_prompt(keyword, concept.concept_type if concept else "object")
    result = (f"### ✔ `{keyword}` is ready\nUse it in a prompt, for example `{example}`"
              + (f"\n\n({view.note})" if view.note else ""))
    if view.finished.readout:
        result += f"\n\n**How well it learned:** {view.finished.readout.summary()}"
    return train_update(progress_text(view), loss_frame(view.losses), newest_first(view), files=view.files,
                        session=session, keyword=keyword, result=result)


def stop(session: ts.Session | None):
    if viewing(session).stop():
        return "■ Stopping after the current step; what was learned so far is kept…"
    return gr.update()


def use_in_generate(session: ts.Session | None):
    session = viewing(session)
    run = session.finished_runs[-1] if session.finished_runs else None
    if run is None:
        return gr.Tabs(), gr.update(), gr.update()
    concept = session.concepts.get(run.keyword.lower())
    prompt = ts.default_preview_prompt(run.keyword, concept.concept_type if concept else "object")
    return gr.Tabs(selected="generate"), prompt, gr.update(value=run.keyword)


def go_push(session: ts.Session | None):
    session = viewing(session)
    run = session.finished_runs[-1] if session.finished_runs else None
    name = concept_name(run.keyword) if run else ""
    return gr.Tabs(selected="hub"), trained_runs(session), name


def attach(stored: str, profile: gr.OAuthProfile | None = None):
    """A page opens: its visitor's session (a first visit gets an id that the browser keeps)."""
    visitor = VISITORS.identity(stored, profile.username if profile else None)
    return VISITORS.attach(visitor, model()), (stored if visitor.startswith("hf:") else visitor)


def attach_page(stored: str):
    """`attach` where there is no Hub login (gradio asks for a profile only where OAuth is set up)."""
    return attach(stored)


def show_session(session: ts.Session | None):
    """What a reloaded page shows of its session: images, concepts, pushable runs and, after a
    restart, the run that was cut short."""
    session = viewing(session)
    return (*image_views(session), *concept_views(session), trained_runs(session), *resume_offer(session))


def resume_offer(session: ts.Session) -> tuple:
    """The resume panel: shown while the session holds a run that a server restart interrupted."""
    if not session.interrupted or session.training:
        return gr.update(visible=False), gr.update(), gr.update()
    saved = session.interrupted[-1]
    files = ts.download_files(saved.folder, model().family.is_sdxl)
    text = (f"### ⏸ Your run of `{saved.config.token}` was interrupted\nThe server restarted at step {saved.step} of "
            f"{saved.config.steps}. Go on from there, or download what it had learned.")
    return gr.update(visible=True), text, str(files["everything"])


def watch_run(session: ts.Session | None):
    """A reloaded page streams the session's run if one is going, else shows how the last one ended."""
    session = viewing(session)
    view = session.run or (session.finished_runs[-1] if session.finished_runs else None)
    if view is None:  # nothing to show; a generator that yields nothing would blank every output
        yield train_update(gr.update())
        return
    if view.ended_at is None:
        yield train_update(progress_text(view), loss_frame(view.losses), newest_first(view), running=True, clear=True)
    yield from follow(view, session)


def resume(session: ts.Session | None):
    """Go on with the interrupted run from its latest checkpoint, streaming it like a new run."""
    session = viewing(session)
    hide = gr.update(visible=False)
    if not session.interrupted:
        yield (*train_update(failed(ValueError("there is no interrupted run to resume in this session"))), hide)
        return
    try:
        saved = session.interrupted[-1]
        view = session.start(saved.config.steps)
    except ValueError as err:
        yield (*train_update(failed(err)), gr.update())
        return
    session.interrupted.pop()
    (saved.folder / ts.STOP_FILE).unlink(missing_ok=True)  # left by the shutdown that interrupted it
    def begin() -> None:
        start_run(session, view, saved.images(), saved.config, saved.folder, saved.state())

    for update in start_and_follow(session, view, begin, "resuming the run"):
        yield (*update, hide)


# -- handlers: Generate ---------------------------------------------------------------------------


def run_generate(prompt, negative, steps, guidance, width, height, seed, num_images, session: ts.Session | None):
    session = viewing(session)
    try:
        request = forms.generate_request(prompt, negative, steps, guidance, width, height, seed, num_images)
        seed = ts.pick_seed(request.seed)
        begin = time.monotonic()
        images = generate_on_gpu(request.prompt, session.concept_list(), request.negative, request.steps,
                                 request.guidance, seed, request.num_images, request.width, request.height)
    except ValueError as err:
        return gr.update(), failed(err)
    except Exception as err:
        return gr.update(), unexpected(err, "generation")
    used, missing = ts.keywords_in([request.prompt, request.negative], session.concept_list(), session.refused)
    concepts = f" · concepts: {', '.join(used)}" if used else ""
    took = estimate.format_duration(time.monotonic() - begin)
    status = ok(f"{len(images)} image{'s' if len(images) != 1 else ''} in {took} · seed {seed}{concepts}")
    if missing:
        warning = f"Not found, so read as plain words: {', '.join(missing)}. Only the concepts listed in this tab apply: train or load one first."
        gr.Warning(messages.for_toast(warning), duration=10, title="Keyword not found")
        status += f"\n\n⚠ {warning}"
    return images, status


def insert_keyword(text: str, keyword: str | None):
    if not keyword:
        return gr.update()
    text = (text or "").rstrip()
    return f"{text} {keyword}".strip() if text else keyword


def load_embedding(file, keyword, session: ts.Session):
    """Load the chosen file at once (and again, replacing it, when the keyword is changed)."""
    session = own(session)
    try:
        if not file:
            raise ValueError("choose an embedding file first (.pt, .bin, .safetensors, or an A1111 .png / .webp)")
        keyword = forms.optional_keyword(keyword)
        name = Path(str(file)).name  # gradio keeps the visitor's file name as the last part
        token, notes = session.load_file(model(), str(file), name, keyword)
    except ValueError as err:
        return (*concept_views(session), failed(err), session)
    except Exception as err:
        return (*concept_views(session), unexpected(err, "loading the file"), session)
    extra = "; ".join(notes)
    message = ok(f"loaded `{token}` from {name}" + (f" ({extra})" if extra else ""))
    return (*concept_views(session, token), message, session)


# -- handlers: Hub --------------------------------------------------------------------------------


def require_hub(api: HfApi, action: str) -> None:
    """Fail at once, saying so, while the Hub can't be reached (instead of waiting for retries)."""
    if reason := hub_unreachable(api.endpoint):
        raise HubError(f"{action} needs the Hugging Face Hub, which this server can't reach right now ({reason})")


def hub_notice():
    """The Hub tab's first line while the Hub can't be reached from this server."""
    reason = hub_unreachable(hub_api(False).endpoint)
    if reason is None:
        return gr.update(visible=False)
    text = (f"⚠ **The Hugging Face Hub can't be reached from this server right now** ({html.escape(reason, quote=False)}). "
            "Searching and pushing won't work until it is back; concepts this server downloaded before can "
            "still be loaded by name.")
    return gr.update(value=text, visible=True)


def own_namespace(api: HfApi) -> str:
    """The token owner's user name, or the reason there is none (not logged in, bad token, offline)."""
    try:
        return api.whoami()["name"]
    except Exception:
        publish.check_can_push(api, "")  # raises the explanation
        raise ValueError("could not find your user name on the Hub: fill in the namespace") from None


def push(run_dir, name, namespace, private, license, token_text, session: ts.Session,
         oauth_token: gr.OAuthToken | None = None):
    session = viewing(session)
    try:
        runs = {str(run.output_dir): run for run in session.finished_runs}
        if not runs:
            raise ValueError("train a concept first (Train tab): pushing shares a concept trained in this tab")
        run = runs.get(str(run_dir)) or session.finished_runs[-1]
        name, namespace = forms.REPO_NAME.parse(name), forms.NAMESPACE.parse(namespace)
        api = hub_api(visitor_token(oauth_token, token_text))
        require_hub(api, "pushing")
        namespace = namespace or own_namespace(api)
        repo_id = publish.repo_id_for(namespace, name or concept_name(run.keyword))
        url = publish.push_concept(run.output_dir, repo_id, api, private=bool(private), license=license)
    except ValueError as err:
        return failed(err)
    except Exception as err:
        return unexpected(err, "the push")
    return ok(f"pushed to [{repo_id}]({url}){' (private)' if private else ''}. Others can load it here by typing `{repo_id}`.")


def search(query, token_text, session: ts.Session | None, oauth_token: gr.OAuthToken | None = None):
    """Search the concepts library; the results are kept in the session for "Load selected"."""
    session = own(session)
    try:
        query = forms.SEARCH.parse(query)
        api = hub_api(visitor_token(oauth_token, token_text))
        results = search_concepts(query, api=api, author=concepts_library(), limit=24)
    except ValueError as err:
        return gr.update(choices=[], value=None), [], failed(err), session
    session.search_results = {r.repo_id: r for r in results}
    if not results:
        shown = html.escape(query, quote=False)
        return gr.update(choices=[], value=None), [], f"No concepts found for “{shown}” in {concepts_library()}.", session
    choices = [(f"{r.keyword} — {r.repo_id}" + (f" ({r.concept_type})" if r.concept_type else ""), r.repo_id) for r in results]
    first = results[0]
    return (gr.update(choices=choices, value=first.repo_id), ts.fetch_previews(first, api),
            describe_result(first, len(results)), session)


def describe_result(result, count: int | None = None) -> str:
    head = f"Found {count} concept{'s' if count != 1 else ''}. " if count else ""
    kind = result.concept_type or "unknown type"
    previews = "" if result.preview_urls else " This repo has no preview images."
    return f"{head}`{result.keyword}` · {kind} · `{result.repo_id}`.{previews}"


def show_result(repo_id, token_text, session: ts.Session | None, oauth_token: gr.OAuthToken | None = None):
    result = viewing(session).search_results.get(repo_id)
    if result is None:
        return [], gr.update()
    try:
        api = hub_api(visitor_token(oauth_token, token_text))
    except ValueError as err:
        return [], failed(err)
    return ts.fetch_previews(result, api), describe_result(result)


def load_from_hub(source, keyword, token_text, session: ts.Session, oauth_token: gr.OAuthToken | None = None):
    """Load a concept from the Hub into the session: the concept table, picker, status text, session."""
    session = own(session)
    try:
        source, keyword = forms.HUB_SOURCE.parse(source), forms.optional_keyword(keyword)
        api = hub_api(visitor_token(oauth_token, token_text))
        concept, notes = session.load_from_hub(model(), source, keyword, api, concepts_library())
    except ValueError as err:
        return (*concept_views(session), failed(err), session)
    except Exception as err:
        return (*concept_views(session), unexpected(err, "loading the concept"), session)
    extra = "; ".join(notes)
    message = f"loaded `{concept.token}` ({concept.concept_type}) from {source}; it is listed in the Generate tab"
    return (*concept_views(session, concept.token), ok(message + (f" ({extra})" if extra else "")), session)


def load_selected(repo_id, keyword, token_text, session: ts.Session, oauth_token: gr.OAuthToken | None = None):
    """"Load selected concept": the search result picked above, with its own message and status."""
    if not repo_id:
        return (*concept_views(viewing(session)), failed(ValueError("search first, then pick a concept in the results")),
                session)
    return load_from_hub(repo_id, keyword, token_text, session, oauth_token)


def account_status(token_text: str | None = None, profile: gr.OAuthProfile | None = None) -> str:
    if profile is not None:
        return f"Logged in as **{profile.username}**: you can push concepts to your account and your organizations."
    if OAUTH:
        return "Log in with Hugging Face to push concepts to your account (searching and loading need no login)."
    if os.environ.get("HF_TOKEN"):
        return "Using the token in `HF_TOKEN` on this machine; paste another one below to use it instead."
    return "Paste a Hugging Face token with **write** access to push (searching and loading need none)."


OAUTH = ON_SPACE and bool(os.environ.get("OAUTH_CLIENT_ID"))


# -- the demo model -------------------------------------------------------------------------------


def demo_banner(base: BaseModel, fallback: str | None) -> str:
    """What the built-in model can and cannot do, said before anything else on the page."""
    reason = f"{fallback}, so " if fallback else ""
    vocab = toyworld.vocabulary(base)
    if vocab is None:
        return (f"⚠ **Demo mode.** {reason}this app runs on `{base.spec}`, a tiny built-in model with **random "
                "weights: its images are noise.** Every step works end to end (training, previews, downloads, the "
                "Hub), but nothing it draws means anything. Set `TEXTINV_MODEL` to a Stable Diffusion model for "
                "real results.")
    prompts = " · ".join(f"`{p}`" for p in vocab["example_prompts"])
    return (f"🧸 **Demo mode.** {reason}this app runs on `{base.spec}`, a small model this project trained on a "
            f"toy world of {vocab['size']} px pictures, not Stable Diffusion. It draws "
            f"{toyworld.summary(vocab)}. Try {prompts}. It can also draw things it has **no word for**: "
            "teach it one from an example set in the Train tab. For real photos, set `TEXTINV_MODEL` to a "
            "Stable Diffusion model.")


def example_sets(base: BaseModel) -> list[dict]:
    """The example concept sets made for this model (`examples/*/concept.json`)."""
    sets = []
    for meta_file in sorted(EXAMPLES_DIR.glob("*/concept.json")):
        meta = json.loads(meta_file.read_text())
        if meta.get("model") == base.spec:
            sets.append(meta | {"folder": meta_file.parent})
    return sets


def load_example(example: dict, session: ts.Session):
    """Put an example set's images in the Train tab and fill in its name, keyword and word."""
    session = own(session)
    session.clear_images()
    files = sorted(p for p in example["folder"].iterdir() if p.suffix == ".png")
    not_added = session.add_images([(str(p), p.name) for p in files], model().resolution)
    name = example["folder"].name.replace("-", " ")
    return (*image_views(session, not_added), name, example["token"], example["init_word"], example["concept"], session)


# -- the page -------------------------------------------------------------------------------------


def build_app(model_spec: str | BaseModel | None = None, hub_endpoint: str | None = None,
              library_author: str | None = None) -> gr.Blocks:
    """The Blocks of the app. `model_spec`: a loaded model, a spec, or None for $TEXTINV_MODEL."""
    if isinstance(model_spec, BaseModel):
        base, fallback = model_spec, None
    else:
        base, fallback = load_model(model_spec)
    native = base.resolution
    APP.update(
        model=base,
        resolutions=resolution_choices(native),
        hub_endpoint=hub_endpoint,  # None: $TEXTINV_HUB_ENDPOINT (read at each request), else the Hub
        library_author=library_author,  # None: $TEXTINV_LIBRARY_AUTHOR (read at each request), else the library
    )
    if "sweeper" not in APP:  # at start-up, then every few minutes: session folders nobody owns any more
        APP["sweeper"] = VISITORS.sweep_every(SWEEP_SECONDS)
    # Ask the Hub now, so the Hub tab can say at once whether it is there.
    threading.Thread(target=hub_unreachable, args=(hub_api(False).endpoint,), name="hub-probe", daemon=True).start()
    device = estimate.device_name(base.placement.device.type)

    with gr.Blocks(title="textinv · Textual Inversion studio", delete_cache=CACHE_CLEANUP) as demo:
        # One session per visitor (see visitors.py): made when a page loads, or by an API caller's first
        # call that keeps something; gradio forgets it an hour after the page closed.
        session = gr.State(None, time_to_live=SESSION_TTL, delete_callback=VISITORS.release)
        visitor = gr.BrowserState("", storage_key=visitors.STORAGE_KEY, secret=visitors.browser_secret())
        gr.Markdown(
            "# textinv · teach Stable Diffusion a new word\n"
            "Drop a few photos of an object or a style, train a keyword for it, then use the keyword in prompts, "
            "download it for AUTOMATIC1111 / ComfyUI / diffusers, or share it on the Hugging Face Hub."
        )
        if base.is_demo:
            gr.Markdown(demo_banner(base, fallback), elem_classes="demo-banner", elem_id="demo-banner",
                        container=False)
        gr.Markdown(f"Model: `{base.spec}` · {base.family.name} · {base.resolution} px · running on {device}",
                    elem_classes="model-line")

        with gr.Tabs() as tabs:
            # ---------------------------------------------------------------- Train
            with gr.Tab("Train", id="train"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=5):
                        gr.Markdown(f"### 1 · Your images\nDrop 3–5 images below (up to {MAX_IMAGES}, "
                                    f"{ts.MAX_UPLOAD_BYTES // 2**20} MB each).")
                        example_buttons = []
                        if examples := example_sets(base):
                            with gr.Row(elem_id="example-sets"):
                                gr.Markdown("**Try an example:**")
                                example_buttons = [(gr.Button(ex["token"], size="sm"), ex) for ex in examples]
                        upload = gr.File(label="Images", file_count="multiple", elem_id="train-images", height=140)
                        thumbs = gr.Gallery(
                            label="Training images", columns=5, height=220, object_fit="cover", elem_id="thumbnails",
                            allow_preview=False, show_label=False, buttons=[],
                        )
                        image_notes = gr.Markdown(ts.Session().image_notes(), elem_id="image-notes")
                        with gr.Row(equal_height=False, elem_id="image-actions"):
                            image_pick = as_sent(gr.Dropdown([], label="Image", info="Click a thumbnail to pick it",
                                                             elem_id="image-pick", scale=3))
                            remove_btn = gr.Button("Remove this image", size="sm", variant="secondary", scale=1)
                            clear_btn = gr.Button("Remove all images", size="sm", variant="secondary", scale=1)
                        gr.Markdown(
                            "**What works best**\n"
                            "- the concept itself, large in the frame, in every image\n"
                            "- different backgrounds, angles and lighting (a style: different subjects)\n"
                            "- sharp photos of 512 px or more; no text or watermarks\n\n"
                            "Training teaches the model one new word; the model itself never changes, so "
                            "your concept stays yours: nobody else using this page sees it.",
                            elem_classes="tips",
                        )
                    with gr.Column(scale=4):
                        gr.Markdown("### 2 · Your concept")
                        name = textbox(forms.NAME, placeholder="e.g. red robot", elem_id="concept-name")
                        with gr.Row():
                            keyword = gr.Textbox(
                                label="Keyword", placeholder="<red-rocket>", elem_id="keyword",
                                max_length=MAX_KEYWORD_CHARS,
                                info=f"The new word you will type in prompts (one word, up to {MAX_KEYWORD_CHARS} characters)",
                            )
                            init_word = textbox(forms.INIT_WORD, placeholder="e.g. robot", elem_id="init-word",
                                                info="A word close to your concept")
                        concept_type = as_sent(gr.Radio(
                            list(forms.CONCEPT_TYPE.options), value="object", label=forms.CONCEPT_TYPE.label,
                            info="object: a thing or a character · style: the look of images",
                        ))
                        gr.Dropdown([base.spec], value=base.spec, label="Base model", interactive=False,
                                    info="Set by whoever runs this app ($TEXTINV_MODEL)")
                        with gr.Row():
                            steps = number_box(forms.STEPS, elem_id="steps", scale=2,
                                               info="at most; it stops sooner once learned (1 to 5000)")
                            lr = number_box(forms.LEARNING_RATE, step=0.0005, elem_id="learning-rate", scale=1,
                                            info="the method's default; 0.00001 to 0.5")
                        with gr.Accordion("Advanced", open=False):
                            with gr.Row():
                                vectors = slider(forms.VECTORS, 1, info="More can hold more detail but overfits sooner")
                                batch_size = slider(forms.BATCH_SIZE, forms.BATCH_SIZE.default)
                            with gr.Row():
                                resolution = number_choices(gr.Dropdown(APP["resolutions"], value=native,
                                                                        label=forms.resolution_field([]).label))
                                seed = number_box(forms.TRAIN_SEED, elem_id="train-seed")
                            with gr.Row():
                                schedule = as_sent(gr.Radio(list(forms.SCHEDULE.options), value="constant",
                                                            label=forms.SCHEDULE.label))
                                flip = gr.Checkbox(value=True, label=forms.FLIP.label,
                                                   info="Turn off for text, logos or anything one-sided")
                                stop_when_learned = gr.Checkbox(
                                    value=True, label=forms.STOP_WHEN_LEARNED.label, elem_id="stop-when-learned",
                                    info="End the run once your images are explained no better, keeping the best vectors")
                            with gr.Row():
                                preview_prompt = textbox(forms.PREVIEW_PROMPT, placeholder="default: a photo of <keyword>",
                                                         elem_id="preview-prompt")
                                preview_every = number_box(forms.PREVIEW_EVERY, elem_id="preview-every",
                                                           label="Preview every N steps (0: never)")
                        estimate_md = gr.Markdown(elem_classes="estimate-box", elem_id="estimate")
                        with gr.Row():
                            train_btn = gr.Button("Train", variant="primary", size="lg")
                            stop_btn = gr.Button("Stop", variant="stop", size="lg", interactive=False, elem_id="stop-btn")
                gr.Markdown("### 3 · Training")
                train_status = gr.Markdown("Not started yet.", elem_classes="status-box", elem_id="train-status")
                with gr.Row(equal_height=False):
                    loss_plot = gr.LinePlot(
                        x="step", y="loss", color="series", label="Loss", elem_id="loss-plot",
                        x_title="step", y_title="loss", scale=3,
                        color_map={"loss": "#c5cae9", "average": "#3949ab"},
                    )
                    previews = gr.Gallery(label="Previews (newest first)", columns=3, height=300, scale=2,
                                          object_fit="contain", elem_id="previews")
                with gr.Column(visible=False, elem_id="resume-box") as resume_box:
                    resume_md = gr.Markdown()
                    with gr.Row():
                        resume_btn = gr.Button("Resume training", variant="primary", elem_id="resume-btn")
                        resume_dl = gr.DownloadButton("⬇ what it learned so far (.zip)", variant="secondary")
                with gr.Column(visible=False) as result_box:
                    result_md = gr.Markdown()
                    with gr.Row():
                        dl_diffusers = gr.DownloadButton("⬇ diffusers (.safetensors)", variant="secondary",
                                                         elem_id="download-diffusers")
                        dl_a1111 = gr.DownloadButton("⬇ AUTOMATIC1111 / ComfyUI", variant="secondary",
                                                     elem_id="download-a1111")
                        dl_all = gr.DownloadButton("⬇ everything (.zip)", variant="secondary", elem_id="download-all")
                    with gr.Row():
                        to_generate = gr.Button("Use it in Generate →", variant="primary")
                        to_hub = gr.Button("Share it on the Hub →")

            # ---------------------------------------------------------------- Generate
            with gr.Tab("Generate", id="generate"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3):
                        prompt = textbox(forms.PROMPT, lines=2, elem_id="prompt",
                                         placeholder="a photo of <your-keyword> on a beach")
                        negative = textbox(forms.NEGATIVE, lines=1, elem_id="negative",
                                           placeholder="what to avoid; negative embeddings' keywords go here")
                        with gr.Row():
                            gen_steps = slider(forms.GEN_STEPS, 30)
                            guidance = slider(forms.GUIDANCE, 7.5, step=0.5)
                        with gr.Row():
                            width = slider(forms.WIDTH, native, step=8)
                            height = slider(forms.HEIGHT, native, step=8)
                        with gr.Row():
                            gen_seed = number_box(forms.GEN_SEED, label="Seed (-1 or empty: random)", elem_id="gen-seed",
                                                  info=f"0 to {forms.MAX_SEED} repeats an image")
                            num_images = slider(forms.NUM_IMAGES, 1)
                        gen_btn = gr.Button("Generate", variant="primary", size="lg")
                        gen_status = gr.Markdown(elem_classes="status-box", elem_id="generate-status")
                    with gr.Column(scale=4):
                        gallery = gr.Gallery(label="Results", columns=2, height=480, object_fit="contain", elem_id="results-gallery")
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3):
                        gr.Markdown("### Concepts in this tab\nTrained here or loaded from a file or the Hub; "
                                    "only you see them.")
                        concept_table = gr.Dataframe(concept_rows(ts.Session()), interactive=False, max_height=220)
                        with gr.Row():
                            concept_pick = gr.Dropdown([], label="Keyword", scale=2, allow_custom_value=True)
                            insert_pos = gr.Button("Insert in prompt", size="sm", scale=1)
                            insert_neg = gr.Button("Insert in negative", size="sm", scale=1)
                    with gr.Column(scale=2):
                        gr.Markdown("### Load an embedding file\n.pt, .bin or .safetensors from A1111, ComfyUI or "
                                    "diffusers, or an A1111 embedding image (PNG or WebP), up to "
                                    f"{ts.MAX_UPLOAD_BYTES // 2**20} MB. It loads as soon as you choose it."
                                    + demo_files_note(base), elem_id="embedding-help")
                        emb_keyword = gr.Textbox(label=forms.OPTIONAL_KEYWORD, placeholder="keep the file's",
                                                 max_length=MAX_KEYWORD_CHARS, elem_id="embedding-keyword",
                                                 info="Press Enter to load the chosen file again under this keyword")
                        emb_file = gr.File(label="Embedding file", elem_id="embedding-file", height=140,
                                           file_types=EMBEDDING_TYPES)
                        emb_status = gr.Markdown(elem_classes="status-box", elem_id="embedding-status")

            # ---------------------------------------------------------------- Hub
            with gr.Tab("Hub", id="hub"):
                hub_offline = gr.Markdown(visible=False, elem_id="hub-offline", elem_classes="notice")
                with gr.Row(equal_height=False):
                    with gr.Column():
                        gr.Markdown("### Your account")
                        account_md = gr.Markdown(account_status())
                        if OAUTH:
                            gr.LoginButton()
                        token_box = gr.Textbox(
                            label=forms.TOKEN.label, type="password", placeholder="hf_…", elem_id="token",
                            max_length=forms.TOKEN.max_chars,
                            info="Used for this tab's requests only; never stored or shown", visible=not OAUTH,
                        )
                        gr.Markdown("### Share a concept you trained")
                        push_run = gr.Dropdown([], label="Concept", info="Concepts trained in this tab", allow_custom_value=True)
                        with gr.Row():
                            repo_name = textbox(forms.REPO_NAME, placeholder="red-rocket")
                            namespace = textbox(forms.NAMESPACE, placeholder="your user name", elem_id="namespace",
                                                info="Empty: your account; or an organization of yours")
                        with gr.Row():
                            license_ = gr.Dropdown(list(publish.LICENSES), value=publish.LICENSES[0], label="License")
                            private = gr.Checkbox(label="Private repo", value=False)
                        push_btn = gr.Button("Push to the Hub", variant="primary")
                        push_status = gr.Markdown(elem_classes="status-box", elem_id="push-status")
                    with gr.Column():
                        gr.Markdown(f"### Find community concepts\nSearch the `{concepts_library()}` library."
                                    + demo_files_note(base))
                        with gr.Row():
                            query = textbox(forms.SEARCH, placeholder="cat, watercolor, robot…", scale=3,
                                            elem_id="search")
                            search_btn = gr.Button("Search", scale=1)
                        results = gr.Dropdown([], label="Results", allow_custom_value=True)
                        search_md = gr.Markdown(elem_id="search-status")
                        result_previews = gr.Gallery(label="Preview images", columns=4, height=180,
                                                     object_fit="cover")
                        load_selected_btn = gr.Button("Load selected concept", variant="primary")
                        selected_status = gr.Markdown(elem_classes="status-box", elem_id="selected-status")
                        gr.Markdown("Or load any concept by keyword (`cat-toy`), repo (`user/name`) or Hub link:")
                        with gr.Row():
                            hub_source = textbox(forms.HUB_SOURCE, placeholder="cat-toy", scale=3, elem_id="hub-source")
                            hub_keyword = gr.Textbox(label=forms.OPTIONAL_KEYWORD, placeholder="keep its own", scale=2,
                                                     max_length=MAX_KEYWORD_CHARS)
                            hub_load_btn = gr.Button("Load", scale=1)
                        hub_status = gr.Markdown(elem_classes="status-box", elem_id="hub-status")

        # ---------------------------------------------------------------- wiring
        generation = dict(concurrency_limit=GENERATE_CONCURRENCY, concurrency_id="generate")
        image_outputs = [thumbs, image_notes, upload, image_pick]
        train_outputs = [train_status, loss_plot, previews, result_box, dl_diffusers, dl_a1111, dl_all, train_btn,
                         stop_btn, concept_table, concept_pick, push_run, result_md]
        page = demo.load(attach if OAUTH else attach_page, [visitor], [session, visitor], api_visibility="private")
        page = page.then(show_session, [session], [*image_outputs, concept_table, concept_pick, push_run, resume_box,
                                                   resume_md, resume_dl], api_visibility="private")
        page.then(watch_run, [session], train_outputs, api_visibility="private", show_progress="hidden")
        upload.upload(add_images, [upload, session], [*image_outputs, session], api_name="add_images")
        clear_btn.click(clear_images, [session], image_outputs, api_name="clear_images")
        remove_btn.click(remove_image, [image_pick, session], image_outputs, api_name="remove_image")
        thumbs.select(pick_image, [session], [image_pick], api_visibility="private")
        for button, example in example_buttons:
            button.click(lambda s, ex=example: load_example(ex, s), [session],
                         [*image_outputs, name, keyword, init_word, concept_type, session],
                         api_name=f"example_{concept_name(example['token']).replace('-', '_')}")
        name.change(suggest_keyword, [name, keyword, session], [keyword], api_visibility="private")
        # One at a time and in order, so a slow first measurement can't overwrite a newer estimate.
        in_order = dict(concurrency_limit=1, concurrency_id="estimate", trigger_mode="always_last")
        estimate_inputs = [steps, batch_size, resolution, preview_every]
        demo.load(show_estimate, estimate_inputs, [estimate_md], api_name="estimate", **in_order)
        for widget in estimate_inputs:
            widget.change(show_estimate, estimate_inputs, [estimate_md], api_visibility="private", **in_order)
        concept_type.change(lambda kw, t: gr.update(placeholder=ts.default_preview_prompt(kw or "<keyword>", t)),
                            [keyword, concept_type], [preview_prompt], api_visibility="private")

        # Train only watches the run (the runner limits how many train at once), so it needs no slot of its own.
        train_btn.click(
            train,
            [name, keyword, concept_type, init_word, steps, lr, vectors, batch_size, resolution, seed, flip,
             schedule, preview_prompt, preview_every, stop_when_learned, session],
            [*train_outputs, session], api_name="train", show_progress="hidden", concurrency_limit=None,
        ).then(show_estimate, estimate_inputs, [estimate_md], api_visibility="private", **in_order)  # now learned
        resume_btn.click(resume, [session], [*train_outputs, resume_box], api_name="resume", show_progress="hidden",
                         concurrency_limit=None)
        stop_btn.click(stop, [session], [train_status], api_name="stop", concurrency_limit=None)
        to_generate.click(use_in_generate, [session], [tabs, prompt, concept_pick], api_visibility="private")
        to_hub.click(go_push, [session], [tabs, push_run, repo_name], api_visibility="private")

        generate_inputs = [prompt, negative, gen_steps, guidance, width, height, gen_seed, num_images, session]
        gen_btn.click(run_generate, generate_inputs, [gallery, gen_status], api_name="generate", **generation)
        prompt.submit(run_generate, generate_inputs, [gallery, gen_status], api_visibility="private", **generation)
        insert_pos.click(insert_keyword, [prompt, concept_pick], [prompt], api_visibility="private")
        insert_neg.click(insert_keyword, [negative, concept_pick], [negative], api_visibility="private")
        embedding_outputs = [concept_table, concept_pick, emb_status, session]
        emb_file.upload(load_embedding, [emb_file, emb_keyword, session], embedding_outputs, api_name="load_embedding")
        emb_keyword.submit(load_embedding, [emb_file, emb_keyword, session], embedding_outputs,
                           api_visibility="private")
        demo.load(concept_views, [session], [concept_table, concept_pick], api_name="concepts")

        push_btn.click(push, [push_run, repo_name, namespace, private, license_, token_box, session], [push_status],
                       api_name="push")
        search_outputs = [results, result_previews, search_md, session]
        search_btn.click(search, [query, token_box, session], search_outputs, api_name="search")
        query.submit(search, [query, token_box, session], search_outputs, api_visibility="private")
        results.input(show_result, [results, token_box, session], [result_previews, search_md], api_visibility="private")
        load_selected_btn.click(load_selected, [results, hub_keyword, token_box, session],
                                [concept_table, concept_pick, selected_status, session], api_name="load_selected")
        hub_load_btn.click(load_from_hub, [hub_source, hub_keyword, token_box, session],
                           [concept_table, concept_pick, hub_status, session], api_name="load_concept")
        demo.load(hub_notice, None, [hub_offline], api_name="hub_notice")
        if OAUTH:
            demo.load(account_status, None, [account_md], api_visibility="private")
    return demo


def launch_options() -> dict:
    """What `launch()` needs besides the Blocks (gradio 6 takes theme and css here)."""
    return dict(
        theme=gr.themes.Soft(primary_hue="indigo", secondary_hue="slate"),
        css=CSS,
        head=HEAD,
        max_file_size=UPLOAD_HARD_LIMIT,
        allowed_paths=[str(ts.session_root())],
    )


def launch(demo: gr.Blocks, **kwargs):
    """Queue and launch with the app's options; `kwargs` override them (tests: prevent_thread_lock)."""
    demo.queue(default_concurrency_limit=4)  # uploads, Hub calls, pages: light work; training and generation have their own
    return demo.launch(**(launch_options() | kwargs))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="textinv: the Textual Inversion studio (Gradio app)")
    parser.add_argument("--model", help="Hub id, local diffusers folder or builtin:toyworld (default $TEXTINV_MODEL)")
    parser.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1; 0.0.0.0 to share)")
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    demo = build_app(args.model)
    signal.signal(signal.SIGTERM, shut_down)
    launch(demo, server_name=args.host, server_port=args.port)


def shut_down(signum, frame) -> None:
    """SIGTERM (a Space restarting): every run stops at its next step and saves a checkpoint, which
    its visitor is offered to resume after the restart; then the server closes."""
    log.info("shutting down: stopping %d training run(s) at their next step", RUNNER.running())
    if not RUNNER.shutdown(SHUTDOWN_SECONDS):
        log.warning("some runs did not stop in %d s; they keep their last checkpoint", SHUTDOWN_SECONDS)
    raise KeyboardInterrupt  # gradio's launch loop closes the server on it


if __name__ == "__main__":
    main()
