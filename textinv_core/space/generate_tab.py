"""The Generate tab: pictures from a prompt, with the session's concepts in it.

`build` lays the tab out and returns its components as a `GenerateTab`; `wire` connects them to
the handlers below. The Generate button's inputs go by name: `GenerateForm`'s fields are the
parameters of `forms.generate_request` and of the `/generate` endpoint.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from ..models import BaseModel
from . import estimate, forms
from .context import model, own, viewing
from .fields import MAX_KEYWORD_CHARS
from .gpu import generate_on_gpu
from .keywords import keywords_in
from .notices import failed, ok, unexpected, warn
from .session import Session
from .settings import DEFAULT_MODEL, EMBEDDING_TYPES, GENERATE_CONCURRENCY
from .shell import Shell
from .uploads import MAX_UPLOAD_BYTES
from .views import concept_rows, concept_views
from .widgets import by_name, number_box, slider, textbox


@dataclass
class GenerateForm:
    """What the Generate button sends, by the names `forms.generate_request` and `/generate` take."""

    prompt: gr.Textbox
    negative: gr.Textbox
    steps: gr.Slider
    guidance: gr.Slider
    width: gr.Slider
    height: gr.Slider
    seed: gr.Number
    num_images: gr.Slider


@dataclass
class GenerateTab:
    form: GenerateForm
    generate_btn: gr.Button
    status: gr.Markdown
    gallery: gr.Gallery
    concept_table: gr.Dataframe
    concept_pick: gr.Dropdown
    insert_pos: gr.Button
    insert_neg: gr.Button
    emb_keyword: gr.Textbox
    emb_file: gr.File
    emb_status: gr.Markdown

    @property
    def prompt(self) -> gr.Textbox:
        return self.form.prompt


def demo_files_note(base: BaseModel) -> str:
    """On a demo model, said where files are loaded: real community files can't fit it."""
    if not base.is_demo:
        return ""
    return (f"\n\nThis app runs the built-in demo model, so only concepts trained on it load here; real "
            f"community files need a Stable Diffusion model (run the app with `TEXTINV_MODEL={DEFAULT_MODEL}`).")


def build(base: BaseModel) -> GenerateTab:
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
                    sizes = forms.image_sizes(base.resolution, base.is_demo)
                    width = slider(forms.size_field("Width", sizes), base.resolution, step=8)
                    height = slider(forms.size_field("Height", sizes), base.resolution, step=8)
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
                concept_table = gr.Dataframe(concept_rows(Session()), interactive=False, max_height=220,
                                             elem_id="concept-table")
                with gr.Row():
                    concept_pick = gr.Dropdown([], label="Keyword", scale=2, allow_custom_value=True)
                    insert_pos = gr.Button("Insert in prompt", size="sm", scale=1)
                    insert_neg = gr.Button("Insert in negative", size="sm", scale=1)
            with gr.Column(scale=2):
                gr.Markdown("### Load an embedding file\n.pt, .bin or .safetensors from A1111, ComfyUI or "
                            "diffusers, or an A1111 embedding image (PNG or WebP), up to "
                            f"{MAX_UPLOAD_BYTES // 2**20} MB. It loads as soon as you choose it."
                            + demo_files_note(base), elem_id="embedding-help")
                emb_keyword = gr.Textbox(label=forms.OPTIONAL_KEYWORD, placeholder="keep the file's",
                                         max_length=MAX_KEYWORD_CHARS, elem_id="embedding-keyword",
                                         info="Press Enter to load the chosen file again under this keyword")
                emb_file = gr.File(label="Embedding file", elem_id="embedding-file", height=140,
                                   file_types=EMBEDDING_TYPES)
                emb_status = gr.Markdown(elem_classes="status-box", elem_id="embedding-status")

    form = GenerateForm(prompt=prompt, negative=negative, steps=gen_steps, guidance=guidance, width=width,
                        height=height, seed=gen_seed, num_images=num_images)
    return GenerateTab(form=form, generate_btn=gen_btn, status=gen_status, gallery=gallery,
                       concept_table=concept_table, concept_pick=concept_pick, insert_pos=insert_pos,
                       insert_neg=insert_neg, emb_keyword=emb_keyword, emb_file=emb_file, emb_status=emb_status)


# -- handlers -----------------------------------------------------------------------------------


def pick_seed(seed: int) -> int:
    """A negative seed means random."""
    return random.randrange(2**31) if seed < 0 else seed


def run_generate(session: Session | None, **form):
    """Draw the form's pictures with this session's concepts; `form` by field name (`GenerateForm`)."""
    session = viewing(session)
    try:
        request = forms.generate_request(forms.image_sizes(model().resolution, model().is_demo), **form)
        seed = pick_seed(request.seed)
        begin = time.monotonic()
        images = generate_on_gpu(request.prompt, session.concept_list(), request.negative, request.steps,
                                 request.guidance, seed, request.num_images, request.width, request.height)
    except ValueError as err:
        return gr.update(), failed(err, "No pictures drawn")
    except Exception as err:
        return gr.update(), unexpected(err, "generation")
    used, missing = keywords_in([request.prompt, request.negative], session.concept_list(), session.refused)
    concepts = f" · concepts: {', '.join(used)}" if used else ""
    took = estimate.format_duration(time.monotonic() - begin)
    status = ok(f"{len(images)} image{'s' if len(images) != 1 else ''} in {took} · seed {seed}{concepts}")
    if far := forms.size_warning(request.width, request.height, model().resolution):
        status += f"\n\n⚠ {far}."
    if missing:
        warning = f"Not found, so read as plain words: {', '.join(missing)}. Only the concepts listed in this tab apply: train or load one first."
        warn("Keyword not found", warning)
        status += f"\n\n⚠ {warning}"
    return images, status


def insert_keyword(text: str, keyword: str | None):
    if not keyword:
        return gr.update()
    text = (text or "").rstrip()
    return f"{text} {keyword}".strip() if text else keyword


def load_embedding(file, keyword, session: Session):
    """Load the chosen file at once (and again, replacing it, when the keyword is changed)."""
    session = own(session)
    try:
        if not file:
            raise ValueError("choose an embedding file first (.pt, .bin, .safetensors, or an A1111 .png / .webp)")
        keyword = forms.optional_keyword(keyword)
        name = Path(str(file)).name  # gradio keeps the visitor's file name as the last part
        token, notes = session.load_file(model(), str(file), name, keyword)
    except ValueError as err:
        return (*concept_views(session), failed(err, "File not loaded"), session)
    except Exception as err:
        return (*concept_views(session), unexpected(err, "loading the file"), session)
    extra = "; ".join(notes)
    message = ok(f"loaded `{token}` from {name}" + (f" ({extra})" if extra else ""))
    return (*concept_views(session, token), message, session)


# -- wiring ---------------------------------------------------------------------------------------


def wire(tab: GenerateTab, shell: Shell) -> None:
    session = shell.session
    generation = dict(concurrency_limit=GENERATE_CONCURRENCY, concurrency_id="generate")
    inputs = dict(inputs=[session], inputs_kwargs=by_name(tab.form), outputs=[tab.gallery, tab.status])
    tab.generate_btn.click(run_generate, **inputs, api_name="generate", **generation)
    tab.prompt.submit(run_generate, **inputs, api_visibility="private", **generation)
    tab.insert_pos.click(insert_keyword, [tab.prompt, tab.concept_pick], [tab.prompt], api_visibility="private")
    tab.insert_neg.click(insert_keyword, [tab.form.negative, tab.concept_pick], [tab.form.negative],
                         api_visibility="private")
    outputs = [tab.concept_table, tab.concept_pick, tab.emb_status, session]
    tab.emb_file.upload(load_embedding, [tab.emb_file, tab.emb_keyword, session], outputs, api_name="load_embedding")
    tab.emb_keyword.submit(load_embedding, [tab.emb_file, tab.emb_keyword, session], outputs, api_visibility="private")
    shell.demo.load(concept_views, [session], [tab.concept_table, tab.concept_pick], api_name="concepts")
