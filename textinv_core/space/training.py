"""A training run as the Train tab shows it: started from the form, streamed while it goes
(progress, loss curve, previews), then its result and downloads; resumed after a restart.

The run itself goes on in the runner's thread (`runs.py`), not in the page's request: a handler
here only starts it and watches it, so a reload or a closed tab never stops it.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from ..concepts import concept_name, new_concept
from ..train import TrainConfig
from . import driving, estimate, forms, runs
from .context import RUNNER, SERVER, model, own, viewing
from .downloads import describe as describe_downloads
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


TRAINING_LOSS, AVERAGE, EVALUATION = "training loss", "its average", "your images, fixed noises"


def loss_frame(losses: list[tuple[int, float]], readings: list[tuple[int, float]] = ()) -> pd.DataFrame | None:
    """Long-format chart data: the training loss (thinned to ~400 points), its trailing average and,
    with stop when learned, the evaluation loss it reads every 25 steps. The training loss jumps with
    every draw of noise; the evaluation loss, on fixed noises, falls only as the keyword learns, so
    it is the line with a trend to read. None (an empty plot) until there are two points of either:
    an empty frame would freeze gradio's plot, and one point makes a chart with no trend."""
    if len(losses) < 2 and len(readings) < 2:
        return None
    steps, values, series = [], [], []
    if len(losses) >= 2:
        window = max(5, min(100, len(losses) // 10))
        raw = [loss for _, loss in losses]
        smoothed, total = [], 0.0
        for i, loss in enumerate(raw):
            total += loss - (raw[i - window] if i >= window else 0.0)
            smoothed.append(total / min(i + 1, window))
        every = max(1, math.ceil(len(losses) / 400))
        keep = list(range(0, len(losses), every))
        if keep[-1] != len(losses) - 1:
            keep.append(len(losses) - 1)
        for name, line in ((TRAINING_LOSS, raw), (AVERAGE, smoothed)):
            steps += [losses[i][0] for i in keep]
            values += [line[i] for i in keep]
            series += [name] * len(keep)
    steps += [step for step, _ in readings]
    values += [loss for _, loss in readings]
    series += [EVALUATION] * len(readings)
    return pd.DataFrame({"step": steps, "loss": values, "series": series})


def newest_first(view: RunView) -> list:
    """The previews for the page, newest first, so the latest one is never below the fold."""
    return list(reversed(view.previews))


def run_seconds(view: RunView) -> float:
    """How long the run took (an ended one) or has taken so far."""
    return (view.ended_at if view.ended_at is not None else time.monotonic()) - view.started


def progress_text(view: RunView, replacing: bool = False) -> str:
    """The status line of a run, naming its keyword: two pages of one visitor may show it."""
    keyword = f"`{view.keyword}`" if view.keyword else "your concept"
    if view.phase == "waiting":
        ahead = f"{view.ahead} run{'s' if view.ahead != 1 else ''} ahead of yours" if view.ahead else "next in line"
        return (f"⏳ Waiting for a free training slot for {keyword} ({ahead}); it starts by itself, you can leave "
                "this page.")
    if view.phase == "preparing":
        return f"Preparing {keyword}: encoding your images…"
    elapsed = estimate.format_duration(run_seconds(view))
    if view.phase == "finished":
        learned_at = view.finished.learned_at if view.finished else None
        if learned_at is not None:
            return (f"✔ **Finished: {keyword} learned** by step {view.step} of {view.total} in {elapsed}; it got no "
                    f"better after step {learned_at}, whose vectors it kept.")
        return f"✔ **Finished** {keyword}: {view.step} / {view.total} steps in {elapsed}."
    if view.phase == "stopped":
        return (f"■ **Stopped early** {keyword} at step {view.step} of {view.total} after {elapsed}, keeping what it "
                "had learned.")
    eta = view.eta
    bound = "at most" if view.stop_when_learned else "about"  # stop when learned may end it sooner
    left = f" · {bound} {estimate.format_duration(eta)} left" if eta is not None else ""
    loss = f" · loss {view.losses[-1][1]:.4f}" if view.losses else ""
    state = f"■ Stopping {keyword} after this step…" if view.phase == "stopping" else f"▶ Training {keyword}"
    replaces = f"\n\n⚠ When it ends it replaces your earlier {keyword}." if replacing else ""
    return f"{state} · step **{view.step} / {view.total}**{loss}{left} · {elapsed} so far{replaces}"


@dataclass
class RunWidgets:
    """What a run's updates fill, across the tabs: the Train tab's progress, result and buttons,
    the widgets locked while it trains (anything that would change the run's images or form),
    Generate's concept table and picker, Hub's pushable runs, and the visitor's session."""

    status: gr.Markdown
    loss_plot: gr.LinePlot
    previews: gr.Gallery
    result_box: gr.Column
    result_md: gr.Markdown
    downloads: dict[str, gr.DownloadButton]  # by `download_files` key: diffusers, a1111, everything
    train_btn: gr.Button
    stop_btn: gr.Button
    locked: list  # interactive only while no run is going
    concept_table: gr.Dataframe
    concept_pick: gr.Dropdown
    push_run: gr.Dropdown
    resume_box: gr.Column
    session: gr.State

    def outputs(self) -> list:
        """In the order API callers of /train get them (the result text last, the session unseen)."""
        return [self.status, self.loss_plot, self.previews, self.result_box, *self.downloads.values(), self.train_btn,
                self.stop_btn, *self.locked, self.concept_table, self.concept_pick, self.push_run, self.result_md,
                self.session]


def run_update(w: RunWidgets, status, plot=None, previews=None, running: bool = False, clear: bool = False,
               files: dict | None = None, session: Session | None = None, keyword: str | None = None,
               result: str = "") -> dict:
    """One update of a run's widgets. `None` leaves a widget as it is; `clear` hides the previous
    run's result (a new run started), `files` shows this one's; `session` refreshes what the other
    tabs show of it and hands it back to gradio (an API caller's first run keeps its session)."""
    update = {w.status: status, w.train_btn: gr.update(interactive=not running),
              w.stop_btn: gr.update(interactive=running)}
    update |= {widget: gr.update(interactive=not running) for widget in w.locked}
    if plot is not None:
        update[w.loss_plot] = plot
    if previews is not None:
        update[w.previews] = previews
    if files:
        update |= {w.result_box: gr.update(visible=True), w.result_md: result}
        update |= {button: str(files[key]) for key, button in w.downloads.items()}
    elif clear:
        update |= {w.result_box: gr.update(visible=False), w.result_md: ""}
        update |= {button: None for button in w.downloads.values()}
    if session is not None:
        update[w.concept_table], update[w.concept_pick] = concept_views(session, keyword)
        update[w.push_run] = trained_runs(session)
        update[w.session] = session
    return update


def train(w: RunWidgets, session: Session | None, **form):
    """Start a training run and stream it: progress, loss curve, previews, then the downloads. The
    run goes on by itself (`runs.Runner`): closing or reloading the page only stops the streaming.
    `form` is the Train form by field name (`train_tab.TrainForm`, `forms.train_request`)."""
    session = own(session)
    try:
        images = session.usable_images()
        if not images:
            raise ValueError("add 3 to 5 images of your concept first (drop them in the box above)")
        request = forms.train_request(SERVER.resolutions, **form)
        config = train_config(request)
        config.check()  # and the keyword, initializer word and vectors, before anything is written:
        concept = new_concept(model(), config.token, config.init_word, config.num_vectors, config.concept_type,
                              config.seed)
        _, missing = keywords_in([config.preview_prompt], [concept], session.refused)
        if missing:
            raise FieldError(f"Preview prompt: {', '.join(missing)} is not this concept's keyword (`{config.token}`); "
                             "previews can only use the keyword being trained")
        view = session.start(config.steps, form | {"keyword": config.token})
    except ValueError as err:
        yield run_update(w, failed(err, "Training not started"), session=session)
        return
    except Exception as err:
        yield run_update(w, unexpected(err, "starting the run"), session=session)
        return

    def begin() -> None:
        start_run(session, view, images, config, session.new_run_folder(config.token))

    yield from start_and_follow(w, session, view, begin, "starting the run")


def start_and_follow(w: RunWidgets, session: Session, view: RunView, begin, what: str):
    """Call `begin()` to start a run the session has marked as training, then stream it. From the
    mark on, any failure must end the run, or the tab could never train again."""
    try:
        begin()
    except Exception as err:
        view.update(phase="failed", ended_at=time.monotonic())
        yield run_update(w, unexpected(err, what), session=session)
        return
    plot = loss_frame(view.losses, view.readings) if view.losses else gr.update(value=None)
    yield run_update(w, progress_text(view), plot, previews=[], running=True, clear=True, session=session)
    yield from follow(w, view, session)


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
                                view.timing.previews, view.timing.finish, reading_seconds=view.timing.readings,
                                prepare_seconds=view.timing.prepare, stop_when_learned=config.stop_when_learned)
            view.note = session.finish_run(view, model().family.is_sdxl)

    RUNNER.start(view, drive, stop_file, on_end)


def follow(w: RunWidgets, view: RunView, session: Session):
    """The Train outputs for a run as it goes (at most two page updates a second, every preview
    at once), then its end: the result and downloads, or what happened instead."""
    shown_previews = len(view.previews) - 1
    replacing = view.keyword.lower() in session.concepts  # an earlier concept of the same keyword
    for _ in runs.watch(view):
        if view.ended_at is not None:
            break
        new_previews = len(view.previews) != shown_previews
        shown_previews = len(view.previews)
        yield run_update(w, progress_text(view, replacing), loss_frame(view.losses, view.readings),
                         newest_first(view) if new_previews else None, running=True)
    yield ended(w, view, session)


def ended(w: RunWidgets, view: RunView, session: Session) -> dict:
    """The Train outputs for a run that has ended."""
    if view.phase == "failed":
        return run_update(w, view.error or "✖ training failed; please try again", session=session)
    if view.phase == "interrupted":
        return run_update(w, f"■ **The server is restarting.** Your run was saved at step {view.step} of {view.total}; "
                          "reload this page when it is back to go on from there.", session=session)
    if view.finished is None:
        return run_update(w, "■ Stopped before it started: nothing was trained.", session=session)
    return run_update(w, progress_text(view), loss_frame(view.losses, view.readings), newest_first(view), files=view.files,
                      session=session, keyword=view.keyword, result=result_text(view, session))


def result_text(view: RunView, session: Session) -> str:
    """What a run with a result left: ready, or stopped early and how far it got, then how to use
    it and how well it learned."""
    keyword = view.keyword
    concept = session.concepts.get(keyword.lower())
    example = default_preview_prompt(keyword, concept.concept_type if concept else "object")
    if view.finished.stopped and view.step < max(10, view.total // 20):
        head = (f"### ■ `{keyword}` was stopped after {view.step} step{'s' if view.step != 1 else ''}\nIt has "
                "barely moved from its starting word: train it longer for it to mean something. You can still try it, "
                f"for example `{example}`")
    elif view.finished.stopped:
        head = (f"### ■ `{keyword}` was stopped at step {view.step} of {view.total}\nIt keeps what it had learned by "
                f"then, which may be less than a full run would. Use it in a prompt, for example `{example}`")
    else:
        head = f"### ✔ `{keyword}` is ready\nUse it in a prompt, for example `{example}`"
    text = head + (f"\n\n({view.note})" if view.note else "")
    if view.finished.readout:
        seen = " The pictures marked *readout* above are what it was judged by." if view.finished.readout.likeness else ""
        text += f"\n\n**How well it learned:** {view.finished.readout.summary()}{seen}"
    if view.files:
        text += "\n\n" + describe_downloads(view.files)
    return text

def resume_offer(session: Session) -> tuple:
    """The resume panel: shown while the session holds a run that a server restart interrupted."""
    if not session.interrupted or session.training:
        return gr.update(visible=False), gr.update(), gr.update()
    saved = session.interrupted[-1]
    files = download_files(saved.folder, model().family.is_sdxl)
    text = (f"### ⏸ Your run of `{saved.config.token}` was interrupted\nThe server restarted at step {saved.step} of "
            f"{saved.config.steps}. Go on from there, or download what it had learned.")
    return gr.update(visible=True), text, str(files["everything"])


def watch_run(w: RunWidgets, session: Session | None):
    """A reloaded page streams the session's run if one is going, else shows how the last one ended."""
    session = viewing(session)
    view = session.run or (session.finished_runs[-1] if session.finished_runs else None)
    if view is None:  # nothing to show; a generator that yields nothing would blank every output
        yield {w.status: gr.update()}
        return
    if view.ended_at is None:
        yield run_update(w, progress_text(view), loss_frame(view.losses, view.readings), newest_first(view), running=True, clear=True)
    yield from follow(w, view, session)


def resume(w: RunWidgets, session: Session | None):
    """Go on with the interrupted run from its latest checkpoint, streaming it like a new run."""
    session = viewing(session)
    hide = {w.resume_box: gr.update(visible=False)}
    if not session.interrupted:
        yield run_update(w, failed(ValueError("there is no interrupted run to resume in this session"), "Nothing to resume")) | hide
        return
    try:
        saved = session.interrupted[-1]
        view = session.start(saved.config.steps, form_of(saved.config))
    except ValueError as err:
        yield run_update(w, failed(err, "Not resumed"))
        return
    session.interrupted.pop()
    (saved.folder / STOP_FILE).unlink(missing_ok=True)  # left by the shutdown that interrupted it

    def begin() -> None:
        start_run(session, view, saved.images(), saved.config, saved.folder, saved.state())

    for update in start_and_follow(w, session, view, begin, "resuming the run"):
        yield update | hide


def form_of(config: TrainConfig) -> dict:
    """The Train form, by field name, that a run's config came from (its name is its keyword's)."""
    return dict(name=concept_name(config.token).replace("-", " "), keyword=config.token,
                concept_type=config.concept_type, init_word=config.init_word or "", steps=config.steps,
                lr=config.learning_rate, vectors=config.num_vectors, batch_size=config.batch_size,
                resolution=config.resolution, seed=config.seed, flip=config.flip, schedule=config.lr_schedule,
                preview_prompt=config.preview_prompt, preview_every=config.preview_every,
                stop_when_learned=config.stop_when_learned)
