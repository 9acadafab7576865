"""The page around the tabs: its header (and the demo model's banner), the visitor's session, and
what happens when a page opens (its session is found, and a run it had going is streamed again)."""

from __future__ import annotations

from functools import partial

import gradio as gr

from .. import toyworld
from ..models import BaseModel
from . import estimate, refusals, visitors
from .context import VISITORS, model, viewing
from .generate_tab import GenerateTab
from .hub_tab import HubTab
from .session import Session
from .settings import OAUTH, SESSION_TTL
from .shell import Shell
from .train_tab import TrainTab, image_views, run_widgets, show_run_form
from .training import resume_offer, watch_run
from .views import concept_views, trained_runs
from .widgets import by_name


def build(demo: gr.Blocks, base: BaseModel, fallback: str | None) -> Shell:
    """The header and the page's state; the tabs are built inside `Shell.tabs` next."""
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
        headline, details = demo_banner(base, fallback)
        with gr.Accordion(headline, open=False, elem_classes="demo-banner", elem_id="demo-banner"):
            gr.Markdown(details)
    device = estimate.device_name(base.placement.device.type)
    gr.Markdown(f"Model: `{base.spec}` · {base.family.name} · {base.resolution} px · running on {device}",
                elem_classes="model-line")
    return Shell(demo=demo, tabs=gr.Tabs(), session=session, visitor=visitor)


def demo_banner(base: BaseModel, fallback: str | None) -> tuple[str, str]:
    """What the built-in model can and cannot do, said before anything else on the page: a line
    that stays in view, and the rest folded under it (on a phone, the Train tab must not start
    screens below)."""
    reason = f"{fallback}, so this app runs on `{base.spec}` instead. " if fallback else ""
    vocab = toyworld.vocabulary(base)
    if vocab is None:
        return (f"⚠ Demo mode: {base.spec} has random weights, so its pictures are noise (open for more)",
                f"{reason}Every step works end to end (training, previews, downloads, the Hub), but nothing this "
                "tiny built-in model draws means anything. Set `TEXTINV_MODEL` to a Stable Diffusion model for "
                "real results.")
    prompts = " · ".join(f"`{p}`" for p in vocab["example_prompts"])
    return (f"🧸 Demo mode: {base.spec}, a small model of a toy world, not Stable Diffusion (open for what it draws)",
            f"{reason}This project trained it on a toy world of {vocab['size']} px pictures. It draws "
            f"{toyworld.summary(vocab)}. Try {prompts}. It can also draw things it has **no word for**: teach it one "
            "from an example set in the Train tab. It only draws its own world: for real photos, set "
            "`TEXTINV_MODEL` to a Stable Diffusion model.")


def attach(stored: str, profile: gr.OAuthProfile | None = None):
    """A page opens: its visitor's session (a first visit gets an id that the browser keeps)."""
    visitor = VISITORS.identity(stored, profile.username if profile else None)
    return VISITORS.attach(visitor, model()), (stored if visitor.startswith("hf:") else visitor)


def attach_page(stored: str):
    """`attach` where there is no Hub login (gradio asks for a profile only where OAuth is set up)."""
    return attach(stored)


def show_session(session: Session | None):
    """What a reloaded page shows of its session: images, concepts, pushable runs and, after a
    restart, the run that was cut short."""
    session = viewing(session)
    return (*image_views(session), *concept_views(session), trained_runs(session), *resume_offer(session))


def wire(shell: Shell, train: TrainTab, generate: GenerateTab, hub: HubTab) -> None:
    """A page opens: find its session, show what it holds, and stream a run it has going."""
    session = shell.session
    page = shell.demo.load(attach if OAUTH else attach_page, [shell.visitor], [session, shell.visitor],
                           api_visibility="private")
    page = page.then(show_session, [session],
                     [*train.image_outputs(), generate.concept_table, generate.concept_pick, hub.push_run,
                      train.resume_box, train.resume_md, train.resume_dl], api_visibility="private")
    page = page.then(show_run_form, [session], list(by_name(train.form).values()), api_visibility="private")
    widgets = run_widgets(train, shell, generate, hub)
    page.then(partial(watch_run, widgets), [session], widgets.outputs(), api_visibility="private",
              show_progress="hidden")
    VISITORS.watch(shell.demo, session)  # an API caller's session ends with its connection
    refusals.refuse_quietly(shell.demo)  # a bad file in a request: one log line, not a traceback
