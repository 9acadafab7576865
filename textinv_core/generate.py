"""Generating images with concepts, per request, from a shared model.

A diffusers pipeline object keeps per-call state (its scheduler's timesteps, guidance scale), so two
visitors generating through one pipeline at once would corrupt each other's runs. Each call builds
its own light pipeline around the shared, frozen modules (no weights are copied) with its own
scheduler, and passes prompt embeddings computed with its own concepts.
"""

from __future__ import annotations

import inspect
from typing import Sequence

import torch
from diffusers import DiffusionPipeline
from PIL import Image

from .concepts import Concept
from .models import BaseModel, Conditioning
from .prompts import encode_prompts


def request_pipeline(model: BaseModel) -> DiffusionPipeline:
    """A pipeline for one request: shared modules, private scheduler and call state."""
    cls = type(model.pipe)
    kwargs = dict(model.pipe.components)
    kwargs["scheduler"] = type(model.pipe.scheduler).from_config(model.pipe.scheduler.config)
    options = inspect.signature(cls.__init__).parameters  # e.g. requires_safety_checker, force_zeros_...
    kwargs |= {k: v for k, v in model.pipe.config.items() if k in options and k not in kwargs}
    pipe = cls(**kwargs)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def negative_conditioning(model: BaseModel, negative_prompt: str, concepts: Sequence[Concept]) -> Conditioning:
    """SDXL models trained with zeroed empty prompts expect zeros for an empty negative prompt,
    as their pipeline does; everything else encodes the (possibly empty) text."""
    cond = encode_prompts(model, [negative_prompt], concepts)
    if not negative_prompt and model.family.is_sdxl and model.pipe.config.get("force_zeros_for_empty_prompt", False):
        return Conditioning(torch.zeros_like(cond.prompt_embeds), torch.zeros_like(cond.pooled))
    return cond


@torch.no_grad()
def generate(
    model: BaseModel,
    prompt: str,
    concepts: Sequence[Concept] = (),
    negative_prompt: str = "",
    steps: int = 30,
    guidance: float = 7.5,
    seed: int | None = None,
    num_images: int = 1,
    width: int | None = None,
    height: int | None = None,
) -> list[Image.Image]:
    """Images for `prompt`, with any mix of trained and loaded concepts usable in both prompts."""
    if not prompt or not prompt.strip():
        raise ValueError("the prompt is empty: describe the image, using a concept's keyword if you like")
    dtype = model.placement.dtype
    cond = encode_prompts(model, [prompt], concepts).to(dtype)
    negative = negative_conditioning(model, negative_prompt, concepts).to(dtype)
    generator = torch.Generator().manual_seed(seed if seed is not None else torch.seed() % 2**32)
    return request_pipeline(model)(
        **model.family.pipeline_kwargs(cond, negative),
        num_inference_steps=steps,
        guidance_scale=guidance,
        num_images_per_prompt=num_images,
        generator=generator,
        width=width or model.resolution,
        height=height or model.resolution,
    ).images
