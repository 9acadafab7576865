"""textinv: a Textual Inversion studio in the browser (the Gradio app of the Hugging Face Space).

Three tabs: Train (teach the model a new word from a few images), Generate (use it), Hub (share
it, or load someone else's). This file only wires widgets to `textinv_core`; the per-visitor logic
lives in `textinv_core/session.py`.

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
import time
from pathlib import Path

import gradio as gr
import pandas as pd
from huggingface_hub import HfApi

from textinv_core import estimate, publish, readers, sources, toyworld
from textinv_core import session as ts
from textinv_core.concepts import concept_name, new_concept
from textinv_core.generate import generate
from textinv_core.hub import CONCEPTS_LIBRARY, search_concepts
from textinv_core.images import MAX_IMAGES
from textinv_core.models import BaseModel, load_base_model
from textinv_core.prompts import keyword_pattern
from textinv_core.train import DEFAULT_LR, DEFAULT_STEPS, TrainConfig

log = logging.getLogger("textinv.app")

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEMO_MODEL = "builtin:toyworld"
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
MOCK_OAUTH_TOKEN = "mock-oauth-token-for-local-dev"  # what gradio hands out locally: not a real token
ON_SPACE = bool(os.environ.get("SPACE_ID"))
ZERO_GPU = bool(os.environ.get("SPACES_ZERO_GPU"))
GPU_CONCURRENCY = int(os.environ.get("TEXTINV_GPU_CONCURRENCY", "2"))
ZERO_GPU_CALL_SECONDS = int(os.environ.get("TEXTINV_GPU_SECONDS", "110"))  # one ZeroGPU call at most
MAX_FILE_SIZE = "50mb"  # photos and embedding files (readers.MAX_BYTES is 50 MB too)
CACHE_CLEANUP = (3600, 6 * 3600)  # every hour, delete uploads and outputs older than 6 hours

CSS = """
.demo-banner { background: #fff4e5; border: 1px solid #f0b35b; border-radius: 8px; padding: 10px 16px !important; }
.demo-banner p { margin: 0; }
.model-line { opacity: 0.8; font-size: 0.92em; }
.status-box { min-height: 2.2em; }
.tips { font-size: 0.92em; opacity: 0.85; margin-top: 12px !important; }
.estimate-box { border-left: 3px solid #8c9eff; padding-left: 10px !important; }
footer { display: none !important; }
"""

# Filled by build_app(): the one frozen model every visitor shares, and where the Hub is.
APP: dict = {}


# -- start-up -------------------------------------------------------------------------------------


def load_model(spec: str | None = None) -> tuple[BaseModel, str | None]:
    """The model asked for (argument, $TEXTINV_MODEL, else SD 1.5), or the demo model with the
    reason when it can't be loaded (offline with nothing cached, typically)."""
    spec = spec or os.environ.get("TEXTINV_MODEL") or DEFAULT_MODEL
    try:
        return load_base_model(spec), None
    except (ValueError, OSError) as err:
        if spec.startswith("builtin:"):
            raise
        log.warning("could not load %s, falling back to the demo model: %s", spec, err)
        return load_base_model(DEMO_MODEL), f"`{spec}` could not be loaded (no network, and no copy in the local cache)"


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
    """A user-facing error as a toast and as the text of a status box."""
    message = html.escape(str(err), quote=False)  # keywords like <cat-toy> must not read as HTML
    gr.Warning(message, duration=8)
    return f"✖ {message}"


def unexpected(err: Exception, what: str) -> str:
    log.exception("%s failed", what)  # the traceback goes to the server log, never to the page
    return failed(ValueError(f"{what} failed unexpectedly ({type(err).__name__}); please try again"))


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
    if typed and typed.strip():
        return typed.strip()
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


def concept_views(session: ts.Session, selected: str | None = None):
    """The Generate tab's concept table and keyword picker."""
    keywords = [c.token for c in session.concept_list()]
    value = selected if selected in keywords else (keywords[-1] if keywords else None)
    return concept_rows(session), gr.update(choices=keywords, value=value)


def trained_runs(session: ts.Session):
    """The Hub tab's 'concept to push' choices: finished runs of this session."""
    choices = [(f"{run.keyword} ({Path(run.output_dir).name})", str(run.output_dir)) for run in session.finished_runs]
    return gr.update(choices=choices, value=choices[-1][1] if choices else None)


def thumbnails(session: ts.Session):
    items = [(u.thumb if u.thumb is not None else ts.refused_thumbnail(), u.caption) for u in session.uploads]
    return items


def image_report(session: ts.Session, extra: list[str] = ()) -> str:
    usable = len(session.usable_images())
    lines = []
    if not session.uploads:
        return "Drop **3 to 5 images** of your concept above: different backgrounds, angles and lighting."
    head = f"**{usable} image{'s' if usable != 1 else ''} ready.**"
    if usable and usable < 3:
        head += " Add a few more if you can: 3 to 5 usually work best."
    lines.append(head)
    for u in session.uploads:
        if u.error:
            lines.append(f"- ✖ {html.escape(u.error, quote=False)}")
        for _, text in u.warnings:
            lines.append(f"- ⚠ {html.escape(text, quote=False)}")
    lines += [f"- ✖ {html.escape(note, quote=False)}" for note in extra]
    return "\n".join(lines)


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


def progress_text(view: ts.RunView) -> str:
    if view.phase == "preparing":
        return "Preparing: encoding your images…"
    elapsed = estimate.format_duration(time.monotonic() - view.started)
    if view.phase in ("finished", "stopped"):
        verb = "Finished" if view.phase == "finished" else "Stopped early, keeping what was learned"
        return f"✔ **{verb}**: {view.step} / {view.total} steps in {elapsed}."
    eta = view.eta
    left = f" · about {estimate.format_duration(eta)} left" if eta is not None else ""
    loss = f" · loss {view.losses[-1][1]:.4f}" if view.losses else ""
    state = "■ Stopping after this step…" if view.phase == "stopping" else "▶ Training"
    return f"{state} · step **{view.step} / {view.total}**{loss}{left} · {elapsed} so far"


def default_preview_prompt(keyword: str, concept_type: str) -> str:
    if concept_type == "style":
        return f"a painting of a house in the style of {keyword}"
    return f"a photo of {keyword}"


def resolution_choices(native: int) -> list[int]:
    choices = {native}
    for factor in (0.5, 0.75, 1.25, 1.5):
        size = int(native * factor) // 8 * 8
        if size >= 64 and size <= 1536:
            choices.add(size)
    return sorted(choices)


# -- handlers: Train ------------------------------------------------------------------------------


def add_images(files, session: ts.Session):
    paths = [(str(f), Path(str(f)).name) for f in (files or [])]
    notes = session.add_images(paths, model().resolution)
    return thumbnails(session), image_report(session, notes), None


def clear_images(session: ts.Session):
    session.clear_images()
    return [], image_report(session), None


def suggest_keyword(name: str, keyword: str, session: ts.Session):
    """Follow the concept name with `<name>` until the visitor edits the keyword themselves."""
    suggestion = ts.suggest_keyword(name)
    previous = getattr(session, "suggested", "")
    session.suggested = suggestion
    if not keyword or keyword == previous:
        return suggestion
    return gr.update()


def show_estimate(steps, batch_size, resolution, preview_every):
    try:
        est = estimate.estimate_training(
            model(), int(steps or 1), int(batch_size or 1), 1, int(resolution or model().resolution),
            int(preview_every or 0), zero_gpu_chunk_steps=0,
        )
        return est.describe()
    except Exception as err:  # the estimate must never break the page
        log.warning("estimate failed: %s", err)
        return ""


def _config(name, keyword, concept_type, init_word, steps, lr, vectors, batch_size, resolution, seed, flip,
            schedule, preview_prompt, preview_every) -> TrainConfig:
    keyword = (keyword or "").strip() or ts.suggest_keyword(name)
    if not keyword:
        raise ValueError("give your concept a name (or a keyword like <my-cat>) first")
    preview_every = int(preview_every or 0)
    return TrainConfig(
        token=keyword,
        init_word=(init_word or "").strip() or None,
        num_vectors=int(vectors),
        concept_type=concept_type,
        steps=int(steps),
        learning_rate=float(lr),
        lr_schedule=schedule,
        batch_size=int(batch_size),
        resolution=int(resolution) if resolution else None,
        seed=int(seed or 0),
        flip=bool(flip),
        preview_every=preview_every,
        preview_prompt=(preview_prompt or "").strip() or default_preview_prompt(keyword, concept_type),
        preview_seed=int(seed or 0),
    )


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
          schedule, preview_prompt, preview_every, session: ts.Session):
    """Stream a training run: progress, loss curve, previews, then the downloads."""
    try:
        config = _config(name, keyword, concept_type, init_word, steps, lr, vectors, batch_size, resolution,
                         seed, flip, schedule, preview_prompt, preview_every)
        images = session.usable_images()
        if not images:
            raise ValueError("add 3 to 5 images of your concept first (drop them in the box above)")
        config.check()  # and the keyword, initializer word and vectors, before anything is written:
        new_concept(model(), config.token, config.init_word, config.num_vectors, config.concept_type, config.seed)
        view = session.start(config.steps)
    except ValueError as err:
        yield train_update(failed(err))
        return
    output_dir = session.new_run_folder(config.token)
    yield train_update(progress_text(view), plot=gr.update(value=None), previews=[], running=True, clear=True)
    last, shown_previews = 0.0, 0
    try:
        for _ in ts.run_training(images, config, output_dir, train_on_gpu, zero_gpu_chunk_steps(config), view):
            now = time.monotonic()
            new_previews = len(view.previews) != shown_previews
            if view.finished is None and now - last < 0.5 and view.step not in (1, view.total) and not new_previews:
                continue  # at most two page updates a second, but every preview at once
            last, shown_previews = now, len(view.previews)
            yield train_update(progress_text(view), loss_frame(view.losses), view.previews if new_previews else None,
                               running=True)
    except ValueError as err:
        yield train_update(failed(err))
        return
    except Exception as err:
        yield train_update(unexpected(err, "training"))
        return
    finally:  # also when the visitor leaves mid-run (the generator is closed): the tab may train again
        if view.finished is None:
            view.phase = "failed"
            (output_dir / ts.STOP_FILE).touch()
    if view.finished is None:  # the run ended without a result (should not happen)
        yield train_update("✖ training ended without a result; please try again")
        return
    concept = view.finished.concept
    concept.source = f"trained here ({view.step} steps)"
    keyword, note = session.add_concept(concept, replace=True)
    session.finished_runs.append(view)
    example = default_preview_prompt(keyword, config.concept_type)
    result = f"### ✔ `{keyword}` is ready\nUse it in a prompt, for example `{example}`" + (f"\n\n({note})" if note else "")
    if view.finished.readout:
        result += f"\n\n**How well it learned:** {view.finished.readout.summary()}"
    yield train_update(progress_text(view), loss_frame(view.losses), view.previews,
                       files=ts.download_files(output_dir, model().family.is_sdxl), session=session, keyword=keyword,
                       result=result)


def stop(session: ts.Session):
    if session.stop():
        return "■ Stopping after the current step; what was learned so far is kept…"
    return gr.update()


def use_in_generate(session: ts.Session):
    run = session.finished_runs[-1] if session.finished_runs else None
    if run is None:
        return gr.Tabs(), gr.update(), gr.update()
    concept = session.concepts.get(run.keyword.lower())
    prompt = default_preview_prompt(run.keyword, concept.concept_type if concept else "object")
    return gr.Tabs(selected="generate"), prompt, gr.update(value=run.keyword)


def go_push(session: ts.Session):
    run = session.finished_runs[-1] if session.finished_runs else None
    name = concept_name(run.keyword) if run else ""
    return gr.Tabs(selected="hub"), trained_runs(session), name


# -- handlers: Generate ---------------------------------------------------------------------------


def run_generate(prompt, negative, steps, guidance, width, height, seed, num_images, session: ts.Session):
    try:
        if not prompt or not prompt.strip():
            raise ValueError("the prompt is empty: describe the image you want, using a concept's keyword if you like")
        for size in (width, height):
            if int(size) % 8:
                raise ValueError(f"width and height must be multiples of 8, not {int(size)}")
        seed = ts.pick_seed(seed)
        begin = time.monotonic()
        images = generate_on_gpu(prompt, session.concept_list(), negative or "", int(steps), float(guidance), seed,
                                 int(num_images), int(width), int(height))
    except ValueError as err:
        return gr.update(), failed(err)
    except Exception as err:
        return gr.update(), unexpected(err, "generation")
    pattern = keyword_pattern(session.concept_list())
    used = list(dict.fromkeys(pattern.findall(f"{prompt} {negative}"))) if pattern else []
    concepts = f" · concepts: {', '.join(f'`{k}`' for k in used)}" if used else ""
    took = estimate.format_duration(time.monotonic() - begin)
    return images, ok(f"{len(images)} image{'s' if len(images) != 1 else ''} in {took} · seed {seed}{concepts}")


def insert_keyword(text: str, keyword: str | None):
    if not keyword:
        return gr.update()
    text = (text or "").rstrip()
    return f"{text} {keyword}".strip() if text else keyword


def load_embedding(file, keyword, session: ts.Session):
    try:
        if not file:
            raise ValueError("choose an embedding file first (.pt, .bin or .safetensors)")
        path = Path(str(file))
        embedding = readers.read_embedding(path)
        concept, notes = sources.fit_embedding(embedding, model())
        concept.source = f"file {path.name}"
        if keyword and keyword.strip():
            concept.token = keyword.strip()
        token, note = session.add_concept(concept)
    except ValueError as err:
        return (*concept_views(session), failed(err))
    extra = "; ".join(notes + ([note] if note else []))
    return (*concept_views(session, token), ok(f"loaded `{token}` from {path.name}" + (f" ({extra})" if extra else "")))


# -- handlers: Hub --------------------------------------------------------------------------------


def own_namespace(api: HfApi) -> str:
    """The token owner's user name, or the reason there is none (not logged in, bad token, offline)."""
    try:
        return api.whoami()["name"]
    except Exception:
        publish.check_can_push(api, "")  # raises the explanation
        raise ValueError("could not find your user name on the Hub: fill in the namespace") from None


def push(run_dir, name, namespace, private, license, token_text, session: ts.Session,
         oauth_token: gr.OAuthToken | None = None):
    try:
        runs = {str(run.output_dir): run for run in session.finished_runs}
        if not runs:
            raise ValueError("train a concept first (Train tab): pushing shares a concept trained in this tab")
        run = runs.get(str(run_dir)) or session.finished_runs[-1]
        api = hub_api(visitor_token(oauth_token, token_text))
        namespace = (namespace or "").strip() or own_namespace(api)
        repo_id = publish.repo_id_for(namespace, name or concept_name(run.keyword))
        url = publish.push_concept(run.output_dir, repo_id, api, private=bool(private), license=license)
    except ValueError as err:
        return failed(err)
    except Exception as err:
        return unexpected(err, "the push")
    return ok(f"pushed to [{repo_id}]({url}){' (private)' if private else ''}. Others can load it here by typing `{repo_id}`.")


def search(query, token_text, session: ts.Session, oauth_token: gr.OAuthToken | None = None):
    try:
        api = hub_api(visitor_token(oauth_token, token_text))
        results = search_concepts((query or "").strip(), api=api, author=concepts_library(), limit=24)
    except ValueError as err:
        return gr.update(choices=[], value=None), [], failed(err)
    session.search_results = {r.repo_id: r for r in results}
    if not results:
        return gr.update(choices=[], value=None), [], f"No concepts found for “{query}” in {concepts_library()}."
    choices = [(f"{r.keyword} — {r.repo_id}" + (f" ({r.concept_type})" if r.concept_type else ""), r.repo_id) for r in results]
    first = results[0]
    return gr.update(choices=choices, value=first.repo_id), ts.fetch_previews(first, api), describe_result(first, len(results))


def describe_result(result, count: int | None = None) -> str:
    head = f"Found {count} concept{'s' if count != 1 else ''}. " if count else ""
    kind = result.concept_type or "unknown type"
    previews = "" if result.preview_urls else " This repo has no preview images."
    return f"{head}`{result.keyword}` · {kind} · `{result.repo_id}`.{previews}"


def show_result(repo_id, token_text, session: ts.Session, oauth_token: gr.OAuthToken | None = None):
    result = session.search_results.get(repo_id)
    if result is None:
        return [], gr.update()
    return ts.fetch_previews(result, hub_api(visitor_token(oauth_token, token_text))), describe_result(result)


def load_from_hub(source, keyword, token_text, session: ts.Session, oauth_token: gr.OAuthToken | None = None):
    try:
        if not source or not source.strip():
            raise ValueError("type a concept keyword (cat-toy), a repo id (user/name) or a Hub link first")
        api = hub_api(visitor_token(oauth_token, token_text))
        concept, notes = sources.load_concept(
            source, model(), keyword=keyword, api=api, allow_local=False, library=concepts_library()
        )
        token, note = session.add_concept(concept)
    except ValueError as err:
        return (*concept_views(session), failed(err))
    except Exception as err:
        return (*concept_views(session), unexpected(err, "loading the concept"))
    extra = "; ".join(notes + ([note] if note else []))
    message = f"loaded `{token}` ({concept.concept_type}) from {source.strip()}; it is listed in the Generate tab"
    return (*concept_views(session, token), ok(message + (f" ({extra})" if extra else "")))


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
    session.clear_images()
    files = sorted(p for p in example["folder"].iterdir() if p.suffix == ".png")
    notes = session.add_images([(str(p), p.name) for p in files], model().resolution)
    name = example["folder"].name.replace("-", " ")
    return (thumbnails(session), image_report(session, notes), None, name, example["token"], example["init_word"],
            example["concept"])


# -- the page -------------------------------------------------------------------------------------


def build_app(model_spec: str | BaseModel | None = None, hub_endpoint: str | None = None,
              library_author: str | None = None) -> gr.Blocks:
    """The Blocks of the app. `model_spec`: a loaded model, a spec, or None for $TEXTINV_MODEL."""
    if isinstance(model_spec, BaseModel):
        base, fallback = model_spec, None
    else:
        base, fallback = load_model(model_spec)
    APP.update(
        model=base,
        hub_endpoint=hub_endpoint,  # None: $TEXTINV_HUB_ENDPOINT (read at each request), else the Hub
        library_author=library_author,  # None: $TEXTINV_LIBRARY_AUTHOR (read at each request), else the library
    )
    native = base.resolution
    device = estimate.device_name(base.placement.device.type)

    with gr.Blocks(title="textinv · Textual Inversion studio", delete_cache=CACHE_CLEANUP) as demo:
        session = gr.State(ts.Session, delete_callback=lambda s: s.cleanup())
        gr.Markdown(
            "# textinv · teach Stable Diffusion a new word\n"
            "Drop a few photos of an object or a style, train a keyword for it, then use the keyword in prompts, "
            "download it for AUTOMATIC1111 / ComfyUI / diffusers, or share it on the Hugging Face Hub."
        )
        if base.is_demo:
            gr.Markdown(demo_banner(base, fallback), elem_classes="demo-banner", elem_id="demo-banner")
        gr.Markdown(f"Model: `{base.spec}` · {base.family.name} · {base.resolution} px · running on {device}",
                    elem_classes="model-line")

        with gr.Tabs() as tabs:
            # ---------------------------------------------------------------- Train
            with gr.Tab("Train", id="train"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=5):
                        gr.Markdown("### 1 · Your images")
                        example_buttons = []
                        if examples := example_sets(base):
                            with gr.Row(elem_id="example-sets"):
                                gr.Markdown("**Try an example:**")
                                example_buttons = [(gr.Button(ex["token"], size="sm"), ex) for ex in examples]
                        upload = gr.File(
                            label=f"Drop 3–5 images here (up to {MAX_IMAGES})", file_count="multiple", elem_id="train-images",
                            height=120,
                        )
                        thumbs = gr.Gallery(
                            label="Training images", columns=5, height=220, object_fit="cover", elem_id="thumbnails",
                            allow_preview=False, show_label=False,
                        )
                        image_notes = gr.Markdown(
                            "Drop **3 to 5 images** of your concept above: different backgrounds, angles and lighting.",
                            elem_id="image-notes",
                        )
                        clear_btn = gr.Button("Remove all images", size="sm", variant="secondary")
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
                        name = gr.Textbox(label="Concept name", placeholder="e.g. red robot", elem_id="concept-name")
                        with gr.Row():
                            keyword = gr.Textbox(
                                label="Keyword", placeholder="<red-rocket>", elem_id="keyword",
                                info="The new word you will type in prompts",
                            )
                            init_word = gr.Textbox(
                                label="Starts from the word", placeholder="e.g. robot", elem_id="init-word",
                                info="A word close to your concept",
                            )
                        concept_type = gr.Radio(
                            ["object", "style"], value="object", label="What is it?",
                            info="object: a thing or a character · style: the look of images",
                        )
                        gr.Dropdown([base.spec], value=base.spec, label="Base model", interactive=False,
                                    info="Set by whoever runs this app ($TEXTINV_MODEL)")
                        with gr.Row():
                            steps = gr.Slider(1, 5000, value=DEFAULT_STEPS, step=1, label="Steps", elem_id="steps",
                                              info="~1000 for an object, ~2000 for a style", scale=2)
                            lr = gr.Number(value=DEFAULT_LR, label="Learning rate", step=0.0005, minimum=0.00001,
                                           maximum=0.5, info="the method's default", scale=1)
                        with gr.Accordion("Advanced", open=False):
                            with gr.Row():
                                vectors = gr.Slider(1, 16, value=1, step=1, label="Vectors per keyword",
                                                    info="More can hold more detail but overfits sooner")
                                batch_size = gr.Slider(1, 8, value=1, step=1, label="Batch size")
                            with gr.Row():
                                resolution = gr.Dropdown(resolution_choices(native), value=native,
                                                         label="Training resolution (px)")
                                seed = gr.Number(value=0, precision=0, label="Seed")
                            with gr.Row():
                                schedule = gr.Radio(["constant", "cosine"], value="constant",
                                                    label="Learning-rate schedule")
                                flip = gr.Checkbox(value=True, label="Mirror images at random",
                                                   info="Turn off for text, logos or anything one-sided")
                            with gr.Row():
                                preview_prompt = gr.Textbox(label="Preview prompt",
                                                            placeholder="default: a photo of <keyword>")
                                preview_every = gr.Number(value=100, precision=0, minimum=0, elem_id="preview-every",
                                                          label="Preview every N steps (0: never)")
                        estimate_md = gr.Markdown(elem_classes="estimate-box", elem_id="estimate")
                        with gr.Row():
                            train_btn = gr.Button("Train", variant="primary", size="lg")
                            stop_btn = gr.Button("Stop", variant="stop", size="lg", interactive=False)
                gr.Markdown("### 3 · Training")
                train_status = gr.Markdown("Not started yet.", elem_classes="status-box", elem_id="train-status")
                with gr.Row(equal_height=False):
                    loss_plot = gr.LinePlot(
                        x="step", y="loss", color="series", label="Loss", elem_id="loss-plot",
                        x_title="step", y_title="loss", scale=3,
                        color_map={"loss": "#c5cae9", "average": "#3949ab"},
                    )
                    previews = gr.Gallery(label="Previews", columns=3, height=300, scale=2, object_fit="contain", elem_id="previews")
                with gr.Column(visible=False) as result_box:
                    result_md = gr.Markdown()
                    with gr.Row():
                        dl_diffusers = gr.DownloadButton("⬇ diffusers (.safetensors)", variant="secondary")
                        dl_a1111 = gr.DownloadButton("⬇ AUTOMATIC1111 / ComfyUI", variant="secondary")
                        dl_all = gr.DownloadButton("⬇ everything (.zip)", variant="secondary")
                    with gr.Row():
                        to_generate = gr.Button("Use it in Generate →", variant="primary")
                        to_hub = gr.Button("Share it on the Hub →")

            # ---------------------------------------------------------------- Generate
            with gr.Tab("Generate", id="generate"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3):
                        prompt = gr.Textbox(label="Prompt", lines=2, elem_id="prompt",
                                            placeholder="a photo of <your-keyword> on a beach")
                        negative = gr.Textbox(label="Negative prompt", lines=1, elem_id="negative",
                                              placeholder="what to avoid; negative embeddings' keywords go here")
                        with gr.Row():
                            gen_steps = gr.Slider(1, 100, value=30, step=1, label="Steps")
                            guidance = gr.Slider(1, 20, value=7.5, step=0.5, label="Guidance")
                        with gr.Row():
                            width = gr.Slider(64, 1536, value=native, step=8, label="Width")
                            height = gr.Slider(64, 1536, value=native, step=8, label="Height")
                        with gr.Row():
                            gen_seed = gr.Number(value=-1, precision=0, label="Seed (-1: random)")
                            num_images = gr.Slider(1, 4, value=1, step=1, label="Images")
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
                        gr.Markdown(f"### Load an embedding file\n.pt, .bin or .safetensors from A1111, ComfyUI or "
                                    f"diffusers, up to {readers.MAX_BYTES // 2**20} MB.")
                        emb_file = gr.File(label="Embedding file", elem_id="embedding-file", height=140,
                                           file_types=[".pt", ".bin", ".safetensors", ".png", ".webp"])
                        with gr.Row():
                            emb_keyword = gr.Textbox(label="Keyword (optional)", placeholder="keep the file's", scale=2)
                            emb_btn = gr.Button("Load file", scale=1)
                        emb_status = gr.Markdown()

            # ---------------------------------------------------------------- Hub
            with gr.Tab("Hub", id="hub"):
                with gr.Row(equal_height=False):
                    with gr.Column():
                        gr.Markdown("### Your account")
                        account_md = gr.Markdown(account_status())
                        if OAUTH:
                            gr.LoginButton()
                        token_box = gr.Textbox(
                            label="Hugging Face token", type="password", placeholder="hf_…", elem_id="token",
                            info="Used for this tab's requests only; never stored or shown", visible=not OAUTH,
                        )
                        gr.Markdown("### Share a concept you trained")
                        push_run = gr.Dropdown([], label="Concept", info="Concepts trained in this tab", allow_custom_value=True)
                        with gr.Row():
                            repo_name = gr.Textbox(label="Repo name", placeholder="red-rocket")
                            namespace = gr.Textbox(label="Namespace", placeholder="your user name", elem_id="namespace",
                                                   info="Empty: your account; or an organization of yours")
                        with gr.Row():
                            license_ = gr.Dropdown(list(publish.LICENSES), value=publish.LICENSES[0], label="License")
                            private = gr.Checkbox(label="Private repo", value=False)
                        push_btn = gr.Button("Push to the Hub", variant="primary")
                        push_status = gr.Markdown(elem_classes="status-box", elem_id="push-status")
                    with gr.Column():
                        gr.Markdown(f"### Find community concepts\nSearch the `{concepts_library()}` library.")
                        with gr.Row():
                            query = gr.Textbox(label="Search", placeholder="cat, watercolor, robot…", scale=3,
                                               elem_id="search")
                            search_btn = gr.Button("Search", scale=1)
                        results = gr.Dropdown([], label="Results", allow_custom_value=True)
                        search_md = gr.Markdown(elem_id="search-status")
                        result_previews = gr.Gallery(label="Preview images", columns=4, height=180,
                                                     object_fit="cover")
                        load_selected = gr.Button("Load selected concept", variant="primary")
                        gr.Markdown("Or load any concept by keyword (`cat-toy`), repo (`user/name`) or Hub link:")
                        with gr.Row():
                            hub_source = gr.Textbox(label="Concept", placeholder="cat-toy", scale=3)
                            hub_keyword = gr.Textbox(label="Keyword (optional)", placeholder="keep its own", scale=2)
                            hub_load_btn = gr.Button("Load", scale=1)
                        hub_status = gr.Markdown(elem_classes="status-box", elem_id="hub-status")

        # ---------------------------------------------------------------- wiring
        gpu_queue = dict(concurrency_limit=GPU_CONCURRENCY, concurrency_id="gpu")
        upload.upload(add_images, [upload, session], [thumbs, image_notes, upload], api_name="add_images")
        clear_btn.click(clear_images, [session], [thumbs, image_notes, upload], api_name="clear_images")
        for button, example in example_buttons:
            button.click(lambda s, ex=example: load_example(ex, s), [session],
                         [thumbs, image_notes, upload, name, keyword, init_word, concept_type],
                         api_name=f"example_{concept_name(example['token']).replace('-', '_')}")
        name.change(suggest_keyword, [name, keyword, session], [keyword], api_visibility="private")
        # One at a time and in order, so a slow first measurement can't overwrite a newer estimate.
        in_order = dict(concurrency_limit=1, concurrency_id="estimate", trigger_mode="always_last")
        demo.load(show_estimate, [steps, batch_size, resolution, preview_every], [estimate_md], api_name="estimate",
                  **in_order)
        for widget in (steps, batch_size, resolution, preview_every):
            widget.change(show_estimate, [steps, batch_size, resolution, preview_every], [estimate_md],
                          api_visibility="private", **in_order)
        concept_type.change(lambda kw, t: gr.update(placeholder=default_preview_prompt(kw or "<keyword>", t)),
                            [keyword, concept_type], [preview_prompt], api_visibility="private")

        train_outputs = [train_status, loss_plot, previews, result_box, dl_diffusers, dl_a1111, dl_all, train_btn,
                         stop_btn, concept_table, concept_pick, push_run, result_md]
        train_btn.click(
            train,
            [name, keyword, concept_type, init_word, steps, lr, vectors, batch_size, resolution, seed, flip,
             schedule, preview_prompt, preview_every, session],
            train_outputs, api_name="train", show_progress="hidden", **gpu_queue,
        )
        stop_btn.click(stop, [session], [train_status], api_name="stop", concurrency_limit=None)
        to_generate.click(use_in_generate, [session], [tabs, prompt, concept_pick], api_visibility="private")
        to_hub.click(go_push, [session], [tabs, push_run, repo_name], api_visibility="private")

        gen_btn.click(run_generate, [prompt, negative, gen_steps, guidance, width, height, gen_seed, num_images, session],
                      [gallery, gen_status], api_name="generate", **gpu_queue)
        prompt.submit(run_generate, [prompt, negative, gen_steps, guidance, width, height, gen_seed, num_images, session],
                      [gallery, gen_status], api_visibility="private", **gpu_queue)
        insert_pos.click(insert_keyword, [prompt, concept_pick], [prompt], api_visibility="private")
        insert_neg.click(insert_keyword, [negative, concept_pick], [negative], api_visibility="private")
        emb_btn.click(load_embedding, [emb_file, emb_keyword, session], [concept_table, concept_pick, emb_status],
                      api_name="load_embedding")
        demo.load(concept_views, [session], [concept_table, concept_pick], api_name="concepts")

        push_btn.click(push, [push_run, repo_name, namespace, private, license_, token_box, session], [push_status],
                       api_name="push")
        search_btn.click(search, [query, token_box, session], [results, result_previews, search_md], api_name="search")
        query.submit(search, [query, token_box, session], [results, result_previews, search_md],
                     api_visibility="private")
        results.input(show_result, [results, token_box, session], [result_previews, search_md], api_visibility="private")
        load_selected.click(load_from_hub, [results, hub_keyword, token_box, session],
                            [concept_table, concept_pick, hub_status], api_visibility="private")
        hub_load_btn.click(load_from_hub, [hub_source, hub_keyword, token_box, session],
                           [concept_table, concept_pick, hub_status], api_name="load_concept")
        if OAUTH:
            demo.load(account_status, None, [account_md], api_visibility="private")
    return demo


def launch_options() -> dict:
    """What `launch()` needs besides the Blocks (gradio 6 takes theme and css here)."""
    return dict(
        theme=gr.themes.Soft(primary_hue="indigo", secondary_hue="slate"),
        css=CSS,
        max_file_size=MAX_FILE_SIZE,
        allowed_paths=[str(ts.session_root())],
    )


def launch(demo: gr.Blocks, **kwargs):
    """Queue and launch with the app's options; `kwargs` override them (tests: prevent_thread_lock)."""
    demo.queue(default_concurrency_limit=GPU_CONCURRENCY)
    return demo.launch(**(launch_options() | kwargs))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="textinv: the Textual Inversion studio (Gradio app)")
    parser.add_argument("--model", help="Hub id, local diffusers folder or builtin:toyworld (default $TEXTINV_MODEL)")
    parser.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1; 0.0.0.0 to share)")
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    demo = build_app(args.model)
    launch(demo, server_name=args.host, server_port=args.port)


if __name__ == "__main__":
    main()
