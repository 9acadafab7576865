"""textinv: a Textual Inversion studio in the browser (the Gradio app of the Hugging Face Space).

Three tabs: Train (teach the model a new word from a few images), Generate (use it), Hub (share
it, or load someone else's). This file only assembles the page and launches it: each tab is a
module of `textinv_core/space/` that builds its widgets and wires its handlers, and the library
(`textinv_core`) does the work.

    python app.py                         # the model in $TEXTINV_MODEL, else Stable Diffusion 1.5
    python app.py --model builtin:toyworld # the built-in demo model (offline; draws a toy world)

With no network and no cached weights the app opens on the built-in toy-world model and says so.
"""

from __future__ import annotations

try:  # ZeroGPU: `spaces` must be imported before anything initializes CUDA; elsewhere it is optional
    import spaces  # noqa: F401
except ImportError:
    pass

import argparse
import logging
import signal
import threading

import gradio as gr

from textinv_core.hub import hub_unreachable
from textinv_core.models import BaseModel
from textinv_core.space import context, generate_tab, hub_tab, page, train_tab
from textinv_core.space.context import RUNNER, VISITORS
from textinv_core.space.session import session_root
from textinv_core.space.settings import (
    CACHE_CLEANUP,
    DEMO_MODEL,
    SHUTDOWN_SECONDS,
    SWEEP_SECONDS,
    UPLOAD_HARD_LIMIT,
)
from textinv_core.space.startup import load_model
from textinv_core.space.widgets import CSS, HEAD

__all__ = ["DEMO_MODEL", "build_app", "launch", "main"]

log = logging.getLogger("textinv.app")
_SWEEPER: list[threading.Thread] = []  # one sweeper per process, however many times the page is built


def build_app(model_spec: str | BaseModel | None = None, hub_endpoint: str | None = None,
              library_author: str | None = None) -> gr.Blocks:
    """The Blocks of the app. `model_spec`: a loaded model, a spec, or None for $TEXTINV_MODEL.
    `hub_endpoint`, `library_author`: None reads $TEXTINV_HUB_ENDPOINT / $TEXTINV_LIBRARY_AUTHOR
    at each request (the Hub and the sd-concepts-library when unset)."""
    if isinstance(model_spec, BaseModel):
        base, fallback = model_spec, None
    else:
        base, fallback = load_model(model_spec)
    context.configure(base, hub_endpoint, library_author)
    if not _SWEEPER:  # at start-up, then every few minutes: session folders nobody owns any more
        _SWEEPER.append(VISITORS.sweep_every(SWEEP_SECONDS))
    # Ask the Hub now, so the Hub tab can say at once whether it is there.
    threading.Thread(target=hub_unreachable, args=(context.hub_api(False).endpoint,), name="hub-probe",
                     daemon=True).start()

    with gr.Blocks(title="textinv · Textual Inversion studio", delete_cache=CACHE_CLEANUP) as demo:
        shell = page.build(demo, base, fallback)
        with shell.tabs:  # build every tab, then wire every tab: links between tabs find their targets built
            train = train_tab.build(base)
            generate = generate_tab.build(base)
            hub = hub_tab.build(base)
        page.wire(shell, train=train, generate=generate, hub=hub)
        train_tab.wire(train, shell, generate=generate, hub=hub)
        generate_tab.wire(generate, shell)
        hub_tab.wire(hub, shell, generate=generate)
    return demo


def launch_options() -> dict:
    """What `launch()` needs besides the Blocks (gradio 6 takes theme and css here)."""
    return dict(
        theme=gr.themes.Soft(primary_hue="indigo", secondary_hue="slate"),
        css=CSS,
        head=HEAD,
        max_file_size=UPLOAD_HARD_LIMIT,
        allowed_paths=[str(session_root())],
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
