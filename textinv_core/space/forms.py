"""The web app's forms: every field a visitor fills in, declared once, and checked as a whole.

The app builds its widgets from these declarations (labels, ranges, defaults, length limits) and
hands whatever arrives, from the page or the API, to `train_request` / `generate_request` /
`text`, which return checked values or raise `FieldError` naming the first bad field. Nothing
reaches the library unchecked: an empty learning rate, a seed of 2**63, a string for the
resolution or a million-character prompt each get a sentence, not a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..concepts import MAX_VECTORS
from ..train import DEFAULT_BATCH, DEFAULT_LR, DEFAULT_STEPS
from .fields import ChoiceField, FlagField, NumberField, TextField, parse_keyword

MAX_SEED = 2**32 - 1
MAX_PROMPT_CHARS = 2000  # CLIP reads 77 tokens (~300 characters); this leaves room for pasted prompts

# Train tab
NAME = TextField("Concept name", 100)
INIT_WORD = TextField("Starts from the word", 100)
PREVIEW_PROMPT = TextField("Preview prompt", MAX_PROMPT_CHARS)
CONCEPT_TYPE = ChoiceField("What is it?", ("object", "style"))
STEPS = NumberField("Steps", 1, 5000, DEFAULT_STEPS, integer=True)
LEARNING_RATE = NumberField("Learning rate", 0.00001, 0.5, DEFAULT_LR)
VECTORS = NumberField("Vectors per keyword", 1, MAX_VECTORS, 1, integer=True)
BATCH_SIZE = NumberField("Batch size", 1, 8, DEFAULT_BATCH, integer=True)
TRAIN_SEED = NumberField("Seed", 0, MAX_SEED, 0, integer=True)
FLIP = FlagField("Mirror images at random")
STOP_WHEN_LEARNED = FlagField("Stop when learned")
SCHEDULE = ChoiceField("Learning-rate schedule", ("constant", "cosine"))
PREVIEW_EVERY = NumberField("Preview every N steps", 0, 5000, 100, integer=True)

# Generate tab
PROMPT = TextField("Prompt", MAX_PROMPT_CHARS, required=True,
                   why="describe the image you want, using a concept's keyword if you like")
NEGATIVE = TextField("Negative prompt", MAX_PROMPT_CHARS)
GEN_STEPS = NumberField("Steps", 1, 100, 30, integer=True)
GUIDANCE = NumberField("Guidance", 1, 20, 7.5)
ANY_SIZE = (64, 1536)  # the widest bounds; the page offers the model's own (`image_sizes`)
GEN_SEED = NumberField("Seed", -1, MAX_SEED, -1, integer=True, empty=-1)
NUM_IMAGES = NumberField("Images", 1, 4, 1, integer=True)

# Hub tab and file loading
OPTIONAL_KEYWORD = "Keyword (optional)"
SEARCH = TextField("Search", 200)
HUB_SOURCE = TextField("Concept", 500, required=True,
                       why="type a concept keyword (cat-toy), a repo id (user/name) or a Hub link first")
REPO_NAME = TextField("Repo name", 96)
NAMESPACE = TextField("Namespace", 96)
TOKEN = TextField("Hugging Face token", 400)


def resolution_field(choices: list[int]) -> ChoiceField:
    """The training resolutions offered for this model (see app.resolution_choices)."""
    return ChoiceField("Training resolution (px)", tuple(choices))


@dataclass(frozen=True)
class TrainRequest:
    """A Train click, checked: everything `TrainConfig` needs from the form."""

    name: str
    keyword: str
    concept_type: str
    init_word: str
    steps: int
    learning_rate: float
    vectors: int
    batch_size: int
    resolution: int
    seed: int
    flip: bool
    schedule: str
    preview_prompt: str
    preview_every: int
    stop_when_learned: bool = True


def train_request(resolutions: list[int], *, name: Any, keyword: Any, concept_type: Any, init_word: Any, steps: Any,
                  lr: Any, vectors: Any, batch_size: Any, resolution: Any, seed: Any, flip: Any, schedule: Any,
                  preview_prompt: Any, preview_every: Any, stop_when_learned: Any = True) -> TrainRequest:
    """Check every Train field, each by its name: the `/train` endpoint's parameters, in the
    order the page shows them (`train_tab.TrainForm` has the same fields)."""
    return TrainRequest(
        name=NAME.parse(name),
        keyword=parse_keyword(keyword, "Keyword", required=False),
        concept_type=CONCEPT_TYPE.parse(concept_type),
        init_word=INIT_WORD.parse(init_word),
        steps=STEPS.parse(steps),
        learning_rate=LEARNING_RATE.parse(lr),
        vectors=VECTORS.parse(vectors),
        batch_size=BATCH_SIZE.parse(batch_size),
        resolution=resolution_field(resolutions).parse(resolution),
        seed=TRAIN_SEED.parse(seed),
        flip=FLIP.parse(flip),
        schedule=SCHEDULE.parse(schedule),
        preview_prompt=PREVIEW_PROMPT.parse(preview_prompt),
        preview_every=PREVIEW_EVERY.parse(preview_every),
        stop_when_learned=STOP_WHEN_LEARNED.parse(stop_when_learned),
    )


@dataclass(frozen=True)
class GenerateRequest:
    prompt: str
    negative: str
    steps: int
    guidance: float
    width: int
    height: int
    seed: int  # -1: random
    num_images: int


def image_sizes(native: int, is_demo: bool) -> tuple[int, int]:
    """The picture sizes a model can draw: the built-in demo models x1 to x2 of their size (a
    64 px model asked for 256 px tiles its canvas with tiny copies); a real one half to twice its
    native size, as SD is used (SD 1.5: 256-1024, SDXL: 512-2048)."""
    if is_demo:
        return native, 2 * native
    return max(64, native // 2 // 8 * 8), min(2048, 2 * native)


def size_field(label: str, sizes: tuple[int, int]) -> NumberField:
    return NumberField(label, sizes[0], sizes[1], integer=True, multiple_of=8)


def generate_request(sizes: tuple[int, int] = ANY_SIZE, *, prompt: Any, negative: Any, steps: Any, guidance: Any,
                     width: Any, height: Any, seed: Any, num_images: Any) -> GenerateRequest:
    """Check every Generate field, each by its name: the `/generate` endpoint's parameters, in
    the order the page shows them (`generate_tab.GenerateForm` has the same fields); `sizes`:
    the model's (`image_sizes`)."""
    return GenerateRequest(
        PROMPT.parse(prompt), NEGATIVE.parse(negative), GEN_STEPS.parse(steps), GUIDANCE.parse(guidance),
        size_field("Width", sizes).parse(width), size_field("Height", sizes).parse(height), GEN_SEED.parse(seed),
        NUM_IMAGES.parse(num_images),
    )


def size_warning(width: int, height: int, native: int) -> str | None:
    """Said with pictures far from the model's own size, where it tiles or blurs what it draws."""
    far = [side for side in (width, height) if not 0.75 * native <= side <= 1.5 * native]
    if not far:
        return None
    return (f"{width} × {height} is far from this model's own {native} × {native} px: it may repeat or tile what it "
            "draws, or lose detail; its own size gives its best pictures")


def optional_keyword(raw: Any) -> str:
    """The 'Keyword (optional)' boxes that rename a loaded concept: empty keeps its own."""
    return parse_keyword(raw, OPTIONAL_KEYWORD, required=False)

