"""The page around the tabs: its header (and the demo model's banner), the visitor's session, and
what happens when a page opens (its session is found, and a run it had going is streamed again)."""

from __future__ import annotations

import gradio as gr

from .. import toyworld
from ..models import BaseModel
from . import estimate, visitors
from .context import VISITORS, model, viewing
from .generate_tab import GenerateTab
from .hub_tab import HubTab
from .session import Session
from .settings import OAUTH, SESSION_TTL
from .shell import Shell
from .train_tab import TrainTab, image_views, run_outputs
from .training import resume_offer, watch_run
from .views import concept_views, trained_runs


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
        gr.Markdown(demo_banner(base, fallback), elem_classes="demo-banner", elem_id="demo-banner", container=False)
    device = estimate.device_name(base.placement.device.type)
    gr.Markdown(f"Model: `{base.spec}` · {base.family.name} · {base.resolution} px · running on {device}",
                elem_classes="model-line")
    return Shell(demo=demo, tabs=gr.Tabs(), session=session, visitor=visitor)


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
    page.then(watch_run, [session], run_outputs(train, generate, hub), api_visibility="private",
              show_progress="hidden")
