"""A training run as the Train tab shows it: started from the form, streamed while it goes
(progress, loss curve, previews), then its result and downloads; resumed after a restart.

The run itself goes on in the runner's thread (`runs.py`), not in the page's request: a handler
here only starts it and watches it, so a reload or a closed tab never stops it.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import gradio as gr
import pandas as pd

from ..concepts import new_concept
from ..train import TrainConfig
from . import driving, estimate, forms, runs
from .context import RUNNER, SERVER, model, own, viewing
from .downloads import download_files
from .driving import STOP_FILE, RunView, train_config
from .fields import FieldError
from .gpu import train_on_gpu, zero_gpu_chunk_steps
from .keywords import default_preview_prompt, keywords_in
from .notices import failed, status_for, unexpected
from .session import Session
from .settings import AUTOSAVE_SECONDS
from .views import concept_views, trained_runs

log = logging.getLogger("textinv.app")


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


def newest_first(view: RunView) -> list:
    """The previews for the page, newest first, so the latest one is never below the fold."""
    return list(reversed(view.previews))


def progress_text(view: RunView) -> str:
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

def train_update(status, plot=None, previews=None, running: bool = False, clear: bool = False,
                 files: dict | None = None, session: Session | None = None, keyword: str | None = None,
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


def train(session: Session | None, **form):
    """Start a training run and stream it: progress, loss curve, previews, then the downloads. The
    run goes on by itself (`runs.Runner`): closing or reloading the page only stops the streaming.
    `form` is the Train form by field name (`train_tab.TrainForm`, `forms.train_request`). The
    session is the last output, so an API caller's first run keeps its session."""
    session = own(session)
    try:
        request = forms.train_request(SERVER.resolutions, **form)
        config = train_config(request)
        images = session.usable_images()
        if not images:
            raise ValueError("add 3 to 5 images of your concept first (drop them in the box above)")
        config.check()  # and the keyword, initializer word and vectors, before anything is written:
        concept = new_concept(model(), config.token, config.init_word, config.num_vectors, config.concept_type,
                              config.seed)
        _, missing = keywords_in([config.preview_prompt], [concept], session.refused)
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


def start_and_follow(session: Session, view: RunView, begin, what: str):
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


def start_run(session: Session, view: RunView, images, config: TrainConfig, output_dir: Path,
              state: dict | None = None) -> None:
    """Hand the run to the runner. Whatever ends it, `view.phase` says how, and a result joins
    the session whether or not a page is still watching."""
    config.autosave_seconds = AUTOSAVE_SECONDS
    stop_file = output_dir / STOP_FILE
    view.update(output_dir=output_dir, keyword=config.token)  # Stop works while it waits for a slot too

    def drive():
        return driving.run_training(images, config, output_dir, train_on_gpu, zero_gpu_chunk_steps(config), view, state)

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


def follow(view: RunView, session: Session):
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


def ended(view: RunView, session: Session) -> tuple:
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
    example = default_preview_prompt(keyword, concept.concept_type if concept else "object")
    result = (f"### ✔ `{keyword}` is ready\nUse it in a prompt, for example `{example}`"
              + (f"\n\n({view.note})" if view.note else ""))
    if view.finished.readout:
        result += f"\n\n**How well it learned:** {view.finished.readout.summary()}"
    return train_update(progress_text(view), loss_frame(view.losses), newest_first(view), files=view.files,
                        session=session, keyword=keyword, result=result)

def resume_offer(session: Session) -> tuple:
    """The resume panel: shown while the session holds a run that a server restart interrupted."""
    if not session.interrupted or session.training:
        return gr.update(visible=False), gr.update(), gr.update()
    saved = session.interrupted[-1]
    files = download_files(saved.folder, model().family.is_sdxl)
    text = (f"### ⏸ Your run of `{saved.config.token}` was interrupted\nThe server restarted at step {saved.step} of "
            f"{saved.config.steps}. Go on from there, or download what it had learned.")
    return gr.update(visible=True), text, str(files["everything"])


def watch_run(session: Session | None):
    """A reloaded page streams the session's run if one is going, else shows how the last one ended."""
    session = viewing(session)
    view = session.run or (session.finished_runs[-1] if session.finished_runs else None)
    if view is None:  # nothing to show; a generator that yields nothing would blank every output
        yield train_update(gr.update())
        return
    if view.ended_at is None:
        yield train_update(progress_text(view), loss_frame(view.losses), newest_first(view), running=True, clear=True)
    yield from follow(view, session)


def resume(session: Session | None):
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
    (saved.folder / STOP_FILE).unlink(missing_ok=True)  # left by the shutdown that interrupted it
    def begin() -> None:
        start_run(session, view, saved.images(), saved.config, saved.folder, saved.state())

    for update in start_and_follow(session, view, begin, "resuming the run"):
        yield (*update, hide)
