"""The Train tab: images in, a keyword's vectors out.

`build` lays the tab out and returns its components as a `TrainTab`; `wire` connects them, once
every tab is built, to the handlers here and in `training.py` (a run, from its start to its
downloads). The Train button's inputs go by name: `TrainForm`'s fields are the parameters of
`forms.train_request` and of the `/train` endpoint.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr

from .. import toyworld
from ..concepts import concept_name
from ..images import MAX_IMAGES
from ..models import BaseModel
from . import estimate, forms, messages, training, uploads
from .context import SERVER, model, own, viewing
from .fields import MAX_KEYWORD_CHARS, FieldError
from .keywords import default_preview_prompt, suggest_keyword
from .notices import warn
from .session import Session
from .settings import EXAMPLES_DIR
from .shell import Shell
from .uploads import MAX_UPLOAD_BYTES
from .views import trained_runs
from .widgets import as_sent, by_name, number_box, number_choices, slider, textbox

if TYPE_CHECKING:  # the other tabs' records, which `wire` links to
    from .generate_tab import GenerateTab
    from .hub_tab import HubTab

log = logging.getLogger("textinv.app")


@dataclass
class TrainForm:
    """What the Train button sends, by the names `forms.train_request` and `/train` take."""

    name: gr.Textbox
    keyword: gr.Textbox
    concept_type: gr.Radio
    init_word: gr.Textbox
    steps: gr.Number
    lr: gr.Number
    vectors: gr.Slider
    batch_size: gr.Slider
    resolution: gr.Dropdown
    seed: gr.Number
    flip: gr.Checkbox
    schedule: gr.Radio
    preview_prompt: gr.Textbox
    preview_every: gr.Number
    stop_when_learned: gr.Checkbox


@dataclass
class TrainTab:
    form: TrainForm
    examples: list[tuple[gr.Button, dict]]
    upload: gr.File
    thumbs: gr.Gallery
    image_notes: gr.Markdown
    image_pick: gr.Dropdown
    remove_btn: gr.Button
    clear_btn: gr.Button
    estimate: gr.Markdown
    train_btn: gr.Button
    stop_btn: gr.Button
    status: gr.Markdown
    loss_plot: gr.LinePlot
    previews: gr.Gallery
    resume_box: gr.Column
    resume_md: gr.Markdown
    resume_btn: gr.Button
    resume_dl: gr.DownloadButton
    result_box: gr.Column
    result_md: gr.Markdown
    dl_diffusers: gr.DownloadButton
    dl_a1111: gr.DownloadButton
    dl_all: gr.DownloadButton
    to_generate: gr.Button
    to_hub: gr.Button

    def image_outputs(self) -> list:
        """What `image_views` fills: thumbnails, notes, the emptied upload box, the image picker."""
        return [self.thumbs, self.image_notes, self.upload, self.image_pick]


def build(base: BaseModel) -> TrainTab:
    with gr.Tab("Train", id="train"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=5):
                gr.Markdown(f"### 1 · Your images\nDrop 3–5 images below (up to {MAX_IMAGES}, "
                            f"{MAX_UPLOAD_BYTES // 2**20} MB each).")
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
                image_notes = gr.Markdown(uploads.notes([]), elem_id="image-notes")
                with gr.Row(equal_height=False, elem_id="image-actions"):
                    image_pick = as_sent(gr.Dropdown([], label="Image", info="Click a thumbnail to pick it",
                                                     elem_id="image-pick", scale=3))
                    remove_btn = gr.Button("Remove this image", size="sm", variant="secondary", scale=1)
                    clear_btn = gr.Button("Remove all images", size="sm", variant="secondary", scale=1)
                gr.Markdown(
                    "**What works best**\n"
                    "- the concept itself, large in the frame, in every image\n"
                    "- different backgrounds, angles and lighting (a style: different subjects)\n"
                    f"- {photo_tip(base)}; no text or watermarks\n\n"
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
                        resolution = number_choices(gr.Dropdown(SERVER.resolutions, value=base.resolution,
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
                color_map={training.TRAINING_LOSS: "#c5cae9", training.AVERAGE: "#7986cb", training.EVALUATION: "#d84315"},
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
                dl_diffusers = gr.DownloadButton("⬇ diffusers (learned_embeds.safetensors, zipped)", variant="secondary",
                                                 elem_id="download-diffusers")
                dl_a1111 = gr.DownloadButton("⬇ AUTOMATIC1111 / ComfyUI (.pt)" if not base.family.is_sdxl else "⬇ AUTOMATIC1111 / ComfyUI (.safetensors)", variant="secondary",
                                             elem_id="download-a1111")
                dl_all = gr.DownloadButton("⬇ everything (.zip)", variant="secondary", elem_id="download-all")
            with gr.Row():
                to_generate = gr.Button("Use it in Generate →", variant="primary")
                to_hub = gr.Button("Share it on the Hub →")

    form = TrainForm(name=name, keyword=keyword, concept_type=concept_type, init_word=init_word, steps=steps, lr=lr,
                     vectors=vectors, batch_size=batch_size, resolution=resolution, seed=seed, flip=flip,
                     schedule=schedule, preview_prompt=preview_prompt, preview_every=preview_every,
                     stop_when_learned=stop_when_learned)
    return TrainTab(
        form=form, examples=example_buttons, upload=upload, thumbs=thumbs, image_notes=image_notes,
        image_pick=image_pick, remove_btn=remove_btn, clear_btn=clear_btn, estimate=estimate_md,
        train_btn=train_btn, stop_btn=stop_btn, status=train_status, loss_plot=loss_plot, previews=previews,
        resume_box=resume_box, resume_md=resume_md, resume_btn=resume_btn, resume_dl=resume_dl,
        result_box=result_box, result_md=result_md, dl_diffusers=dl_diffusers, dl_a1111=dl_a1111, dl_all=dl_all,
        to_generate=to_generate, to_hub=to_hub,
    )


def photo_tip(base: BaseModel) -> str:
    """The size of picture that trains well on this model, from the model itself."""
    if toyworld.vocabulary(base) is not None:
        return (f"pictures of its own toy world (it draws {base.resolution} px); photos of real things need a "
                "real Stable Diffusion model")
    return f"sharp photos of {base.resolution} px or more"


# -- handlers -----------------------------------------------------------------------------------


def image_views(session: Session, not_added: list[str] = ()):
    """The tab's thumbnails, image notes, the emptied upload box and the image picker."""
    items = [(u.thumb if u.thumb is not None else uploads.refused_thumbnail(), u.caption) for u in session.uploads]
    names = [u.name for u in session.uploads]
    notes = uploads.notes(session.uploads, list(not_added)) + world_note(model(), session.uploads)
    return items, notes, None, gr.update(choices=names, value=None)


def world_note(base: BaseModel, images: list[uploads.Upload]) -> str:
    """On the toy-world model, a note (not a refusal) under photos that can't be of its world:
    its pictures are small drawings, and it can't learn what it has never drawn."""
    if toyworld.vocabulary(base) is None:
        return ""
    photos = [u.name for u in images if u.item is not None and max(u.item.image.size) > 4 * base.resolution]
    if not photos:
        return ""
    return (f"\n- ℹ {uploads.escape(uploads.listed(photos))}: this demo model only draws its own toy world of "
            f"{base.resolution} px pictures, so it can train on {'these' if len(photos) > 1 else 'this'} but can't "
            "learn a real photo's subject; for real photos, run the app on a Stable Diffusion model "
            "(`TEXTINV_MODEL`).")


def refuse_while_training(session: Session, action: str) -> bool:
    """A running run keeps the images and form it started with: say so instead of changing them
    (another page of the same visitor may not show the run)."""
    if not session.training:
        return False
    keyword = session.run.keyword or "your concept"
    warn("A run is going", f"{keyword} is training on these images: {action} once it has ended, or stop it first.")
    return True


def add_images(files, session: Session | None):
    session = own(session)
    if refuse_while_training(session, "add images"):
        return (*image_views(session), session)
    paths = [(str(f), Path(str(f)).name) for f in (files or [])]
    return (*image_views(session, session.add_images(paths, model().resolution)), session)


def clear_images(session: Session | None):
    session = viewing(session)
    if not refuse_while_training(session, "remove images"):
        session.clear_images()
    return image_views(session)


def remove_image(name, session: Session):
    """Remove one image, picked by clicking its thumbnail (or by name through the API)."""
    session = viewing(session)
    if refuse_while_training(session, "remove images"):
        pass
    elif not name:
        warn("Nothing picked", "click a thumbnail first to pick the image to remove.")
    elif not session.remove_image(str(name)):
        warn("Not found", f"there is no image called {name} here.")
    return image_views(session)


def pick_image(session: Session, evt: gr.SelectData):
    """A click on a thumbnail picks that image for "Remove this image"."""
    session = viewing(session)
    index = evt.index if isinstance(evt.index, int) else None
    if index is None or not 0 <= index < len(session.uploads):
        return gr.update()
    return gr.update(value=session.uploads[index].name)


def follow_name(name: str, keyword: str, session: Session):
    """Follow the concept name with `<name>` until the visitor edits the keyword themselves."""
    session = viewing(session)
    suggestion = suggest_keyword(name)
    previous = session.suggested
    session.suggested = suggestion
    if not keyword or keyword == previous:
        return suggestion
    return gr.update()


def show_estimate(steps, batch_size, resolution, preview_every, stop_when_learned=False):
    """How long these settings should take (with stop when learned: at most), or, while a field is
    not valid, what is wrong with it."""
    try:
        values = [forms.STEPS.parse(steps), forms.BATCH_SIZE.parse(batch_size),
                  forms.resolution_field(SERVER.resolutions).parse(resolution), forms.PREVIEW_EVERY.parse(preview_every),
                  forms.STOP_WHEN_LEARNED.parse(stop_when_learned)]
    except FieldError as err:
        return f"✖ {messages.for_markdown(str(err))}"
    try:
        steps, batch_size, resolution, preview_every, stop_when_learned = values
        return estimate.estimate_training(model(), steps, batch_size, 1, resolution, preview_every,
                                          stop_when_learned=stop_when_learned).describe()
    except Exception as err:  # the estimate must never break the page
        log.warning("estimate failed: %s", err)
        return ""


def example_sets(base: BaseModel) -> list[dict]:
    """The example concept sets made for this model (`examples/*/concept.json`)."""
    sets = []
    for meta_file in sorted(EXAMPLES_DIR.glob("*/concept.json")):
        meta = json.loads(meta_file.read_text())
        if meta.get("model") == base.spec:
            sets.append(meta | {"folder": meta_file.parent})
    return sets


def load_example(example: dict, session: Session):
    """Put an example set's images in the tab and fill in its name, keyword and word."""
    session = own(session)
    if refuse_while_training(session, "load an example set"):
        return (*image_views(session), *(gr.update() for _ in range(4)), session)
    session.clear_images()
    files = sorted(p for p in example["folder"].iterdir() if p.suffix == ".png")
    not_added = session.add_images([(str(p), p.name) for p in files], model().resolution)
    name = example["folder"].name.replace("-", " ")
    return (*image_views(session, not_added), name, example["token"], example["init_word"], example["concept"], session)


def stop(session: Session | None):
    if viewing(session).stop():
        return "■ Stopping after the current step; what was learned so far is kept…"
    return gr.update()


def use_in_generate(session: Session | None):
    session = viewing(session)
    run = session.finished_runs[-1] if session.finished_runs else None
    if run is None:
        return gr.Tabs(), gr.update(), gr.update()
    concept = session.concepts.get(run.keyword.lower())
    prompt = default_preview_prompt(run.keyword, concept.concept_type if concept else "object")
    return gr.Tabs(selected="generate"), prompt, gr.update(value=run.keyword)


def go_push(session: Session | None):
    session = viewing(session)
    run = session.finished_runs[-1] if session.finished_runs else None
    name = concept_name(run.keyword) if run else ""
    return gr.Tabs(selected="hub"), trained_runs(session), name


# -- wiring ---------------------------------------------------------------------------------------


def run_widgets(tab: TrainTab, shell: Shell, generate: GenerateTab, hub: HubTab) -> training.RunWidgets:
    """What a run's updates fill. Locked while it trains: the buttons that would change its images
    or form (the example sets, removing images); uploads are refused by `add_images` then (the
    upload box stays out of the outputs, which API callers of /train receive)."""
    return training.RunWidgets(
        status=tab.status, loss_plot=tab.loss_plot, previews=tab.previews, result_box=tab.result_box,
        result_md=tab.result_md, downloads={"diffusers": tab.dl_diffusers, "a1111": tab.dl_a1111, "everything": tab.dl_all},
        train_btn=tab.train_btn, stop_btn=tab.stop_btn,
        locked=[tab.remove_btn, tab.clear_btn, *(button for button, _ in tab.examples)],
        concept_table=generate.concept_table, concept_pick=generate.concept_pick, push_run=hub.push_run,
        resume_box=tab.resume_box, session=shell.session,
    )


def show_run_form(session: Session | None) -> tuple:
    """A reopened page shows the form as it was for the session's latest run, so the name, keyword
    and settings beside its progress or result are that run's."""
    form = viewing(session).run_form
    if not form:
        return tuple(gr.update() for _ in fields(TrainForm))
    return tuple(form.get(f.name, gr.update()) for f in fields(TrainForm))


def wire(tab: TrainTab, shell: Shell, generate: GenerateTab, hub: HubTab) -> None:
    session, form = shell.session, tab.form
    images = tab.image_outputs()
    tab.upload.upload(add_images, [tab.upload, session], [*images, session], api_name="add_images")
    tab.clear_btn.click(clear_images, [session], images, api_name="clear_images")
    tab.remove_btn.click(remove_image, [tab.image_pick, session], images, api_name="remove_image")
    tab.thumbs.select(pick_image, [session], [tab.image_pick], api_visibility="private")
    for button, example in tab.examples:
        button.click(lambda s, ex=example: load_example(ex, s), [session],
                     [*images, form.name, form.keyword, form.init_word, form.concept_type, session],
                     api_name=f"example_{concept_name(example['token']).replace('-', '_')}")
    form.name.change(follow_name, [form.name, form.keyword, session], [form.keyword], api_visibility="private")

    # One at a time and in order, so a slow first measurement can't overwrite a newer estimate.
    in_order = dict(concurrency_limit=1, concurrency_id="estimate", trigger_mode="always_last")
    estimate_inputs = [form.steps, form.batch_size, form.resolution, form.preview_every, form.stop_when_learned]
    shell.demo.load(show_estimate, estimate_inputs, [tab.estimate], api_name="estimate", **in_order)
    for widget in estimate_inputs:
        widget.change(show_estimate, estimate_inputs, [tab.estimate], api_visibility="private", **in_order)
    form.concept_type.change(lambda kw, t: gr.update(placeholder=default_preview_prompt(kw or "<keyword>", t)),
                             [form.keyword, form.concept_type], [form.preview_prompt], api_visibility="private")

    # Train only watches the run (the runner limits how many train at once), so it needs no slot of its own.
    widgets = run_widgets(tab, shell, generate, hub)
    tab.train_btn.click(
        partial(training.train, widgets), [session], widgets.outputs(), inputs_kwargs=by_name(form), api_name="train",
        show_progress="hidden", concurrency_limit=None,
    ).then(show_estimate, estimate_inputs, [tab.estimate], api_visibility="private", **in_order)  # now learned
    tab.resume_btn.click(partial(training.resume, widgets), [session], [*widgets.outputs(), tab.resume_box],
                         api_name="resume", show_progress="hidden", concurrency_limit=None)
    tab.stop_btn.click(stop, [session], [tab.status], api_name="stop", concurrency_limit=None)
    tab.to_generate.click(use_in_generate, [session], [shell.tabs, generate.prompt, generate.concept_pick],
                          api_visibility="private")
    tab.to_hub.click(go_push, [session], [shell.tabs, hub.push_run, hub.repo_name], api_visibility="private")
