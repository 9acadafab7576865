"""The built-in models, which need no download.

- `toyworld`: a small Stable Diffusion pipeline trained by this project on a procedural world of
  objects, colours, backgrounds and styles (`textinv_core/toyworld`). Its images mean something, so
  it is the offline demo and the model every claim about learning is measured on. Its weights ship
  in the repository.
- `tiny-sd`, `tiny-sdxl`: tiny random-weight pipelines made in code, for fast tests where meaning
  does not matter. Their images are noise. Each is built once, seeded, saved to a cache folder.

All of them load through the same `from_pretrained` path as a real model, so the real loading code is
what runs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

from .templates import OBJECT_TEMPLATES, STYLE_TEMPLATES

BUILTIN_PREFIX = "builtin:"
BUILTIN_MODELS = ("toyworld", "tiny-sd", "tiny-sdxl")
RANDOM_MODELS = ("tiny-sd", "tiny-sdxl")  # random weights: their images are noise
TOYWORLD_DIR = Path(__file__).parent / "toyworld" / "model"
_VERSION = "v1"  # bump when a builder changes, so stale caches are rebuilt

_EXTRA_WORDS = (
    "cat dog robot toy mug cup car house tree boat face mountain person man woman red blue green "
    "yellow white black painting sketch watercolor oil photo style art object thing animal bird "
    "flower sky sea city street forest beach sculpture statue"
)


def cache_root() -> Path:
    """`TEXTINV_CACHE`, else ~/.cache/textinv: demo models and downloads of our own live here."""
    return Path(os.environ.get("TEXTINV_CACHE") or Path.home() / ".cache" / "textinv")


def builtin_path(name: str) -> Path:
    """The folder of a built-in model, building the random ones on first use."""
    if name not in BUILTIN_MODELS:
        raise ValueError(f"unknown built-in model {name!r}; choose one of: {', '.join(BUILTIN_MODELS)}")
    if name == "toyworld":
        if not (TOYWORLD_DIR / "model_index.json").exists():
            raise ValueError(f"the toy-world weights are missing from {TOYWORLD_DIR}: rebuild them with "
                             "`python -m textinv_core.toyworld.build` (about an hour on a CPU)")
        return TOYWORLD_DIR
    folder = cache_root() / "builtin" / f"{name}-{_VERSION}"
    if not (folder / "model_index.json").exists():
        _build_into(folder, name)
    return folder


def _build_into(folder: Path, name: str) -> None:
    """Build in a temp folder and rename, so a concurrent or interrupted build never leaves half a model."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{name}-"))
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            pipe = _tiny_sd() if name == "tiny-sd" else _tiny_sdxl()
        pipe.save_pretrained(tmp)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished first
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def tiny_tokenizer() -> CLIPTokenizer:
    """The random demo models' tokenizer: the templates' words and a few dozen common ones."""
    words = " ".join(OBJECT_TEMPLATES + STYLE_TEMPLATES).replace("{}", " ").replace(",", " ").split()
    return word_tokenizer(words + _EXTRA_WORDS.split())


def word_tokenizer(words: list[str]) -> CLIPTokenizer:
    """A CLIP BPE tokenizer with a small vocabulary: every byte, plus whole-word merges for `words`,
    so those are single tokens (as common words are in the real one) and anything else still
    tokenizes, letter by letter. Like CLIP's, the start and end tokens are the last two ids, so the
    end-of-text id is the largest and CLIP's argmax pooling finds it.
    """
    base = list(bytes_to_unicode().values())
    merges = _learn_bpe(sorted(set(words)))
    vocab_list = base + [c + "</w>" for c in base] + ["".join(pair) for pair in merges]
    vocab_list = list(dict.fromkeys(vocab_list)) + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(vocab_list)}
    return CLIPTokenizer(
        vocab=vocab,
        merges=merges,
        model_max_length=77,
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )


def _learn_bpe(words: list[str]) -> list[tuple[str, str]]:
    """Plain BPE training: merge the most frequent adjacent pair until every word is one token.
    Encoding replays merges in this order, so each word comes back as exactly one token."""
    corpus = [list(word[:-1]) + [word[-1] + "</w>"] for word in words]
    merges: list[tuple[str, str]] = []
    while True:
        counts: dict[tuple[str, str], int] = {}
        for pieces in corpus:
            for pair in zip(pieces, pieces[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            return merges
        best = max(sorted(counts), key=counts.__getitem__)
        merges.append(best)
        for pieces in corpus:
            i = 0
            while i < len(pieces) - 1:
                if (pieces[i], pieces[i + 1]) == best:
                    pieces[i : i + 2] = ["".join(best)]
                i += 1


def text_config(tokenizer: CLIPTokenizer, width: int, layers: int = 2, **extra) -> CLIPTextConfig:
    """A small CLIP text encoder's config for `tokenizer`."""
    # eos_token_id=2 copies the real SD configs, whose pooled output uses argmax(input_ids): the demo
    # models then show the same pooling behaviour our concept mechanism has to survive.
    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=width,
        intermediate_size=2 * width,
        num_hidden_layers=layers,
        num_attention_heads=4,
        max_position_embeddings=77,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=2,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )


def _tiny_vae() -> AutoencoderKL:
    return AutoencoderKL(
        block_out_channels=(32, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        sample_size=64,
    )


def _scheduler_kwargs() -> dict:
    return dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", prediction_type="epsilon")


def _tiny_unet(**extra) -> UNet2DConditionModel:
    """Two resolution levels, cross-attention in the lower one: 64 px images in well under a second."""
    return UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        **extra,
    )


def _tiny_sd() -> StableDiffusionPipeline:
    tokenizer = tiny_tokenizer()
    unet = _tiny_unet(cross_attention_dim=32)
    return StableDiffusionPipeline(
        vae=_tiny_vae(),
        text_encoder=CLIPTextModel(text_config(tokenizer, 32)),
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DDIMScheduler(clip_sample=False, set_alpha_to_one=False, steps_offset=1, **_scheduler_kwargs()),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _tiny_sdxl() -> StableDiffusionXLPipeline:
    """Two encoders of different widths (32 and 48), so a mix-up between them fails loudly."""
    tokenizer = tiny_tokenizer()
    unet = _tiny_unet(
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=6 * 8 + 48,
        cross_attention_dim=32 + 48,
    )
    return StableDiffusionXLPipeline(
        vae=_tiny_vae(),
        text_encoder=CLIPTextModel(text_config(tokenizer, 32)),
        text_encoder_2=CLIPTextModelWithProjection(text_config(tokenizer, 48, projection_dim=48)),
        tokenizer=tokenizer,
        tokenizer_2=tiny_tokenizer(),
        unet=unet,
        scheduler=EulerDiscreteScheduler(timestep_spacing="leading", steps_offset=1, **_scheduler_kwargs()),
        force_zeros_for_empty_prompt=True,
    )
