"""Loading a frozen base model, and the one place where SD 1.x, SD 2.x and SDXL differ.

Everything else (training loop, generation, file fitting) asks the `Family` instead of branching on
the model type itself; the reference scripts kept a separate SDXL copy of their loop, which drifted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import DiffusionPipeline
from transformers import CLIPTextModel, CLIPTokenizer

from .builtin import BUILTIN_PREFIX, RANDOM_MODELS, builtin_path
from .devices import Placement, choose_placement


@dataclass(frozen=True)
class TextEncoderSlot:
    """A tokenizer and its text encoder, named by the key embedding files use for it."""

    kind: str  # "clip_l" (SD 1.x, SDXL first), "clip_h" (SD 2.x), "clip_g" (SDXL second)
    tokenizer: CLIPTokenizer
    encoder: CLIPTextModel

    @property
    def width(self) -> int:
        return self.encoder.config.hidden_size


@dataclass
class Conditioning:
    """What the U-Net is conditioned on for a batch of prompts."""

    prompt_embeds: torch.Tensor  # [B, 77, cross-attention width]
    pooled: torch.Tensor | None = None  # [B, D] SDXL's pooled text embedding; None elsewhere

    def to(self, dtype: torch.dtype) -> "Conditioning":
        pooled = None if self.pooled is None else self.pooled.to(dtype)
        return Conditioning(self.prompt_embeds.to(dtype), pooled)


@dataclass(frozen=True)
class Family:
    name: str  # "SD 1.x", "SD 2.x", "SDXL"
    kinds: tuple[str, ...]

    @property
    def is_sdxl(self) -> bool:
        return self.name == "SDXL"

    def conditioning(self, outputs: list) -> Conditioning:
        """Turn the text encoders' outputs into U-Net conditioning, as each family's pipeline does:
        SD 1.x/2.x use the final hidden state; SDXL concatenates both encoders' penultimate hidden
        states and adds the second encoder's projected pooled output (taken at the end-of-text token)."""
        if not self.is_sdxl:
            return Conditioning(outputs[0].last_hidden_state)
        embeds = torch.cat([out.hidden_states[-2] for out in outputs], dim=-1)
        return Conditioning(embeds, pooled=outputs[-1].text_embeds)

    def unet_kwargs(self, cond: Conditioning, time_ids: torch.Tensor | None) -> dict:
        """Extra U-Net inputs: SDXL also takes the pooled embedding and the size/crop ids
        (original h, w, crop top, left, target h, w) per sample."""
        if not self.is_sdxl:
            return {}
        return {"added_cond_kwargs": {"text_embeds": cond.pooled, "time_ids": time_ids}}

    def pipeline_kwargs(self, cond: Conditioning, negative: Conditioning) -> dict:
        kwargs = {"prompt_embeds": cond.prompt_embeds, "negative_prompt_embeds": negative.prompt_embeds}
        if self.is_sdxl:
            kwargs |= {"pooled_prompt_embeds": cond.pooled, "negative_pooled_prompt_embeds": negative.pooled}
        return kwargs


SD1 = Family("SD 1.x", ("clip_l",))
SD2 = Family("SD 2.x", ("clip_h",))
SDXL = Family("SDXL", ("clip_l", "clip_g"))


def detect_family(pipe: DiffusionPipeline) -> Family:
    """Read the family from the model itself: a second text encoder means SDXL; a 1024-wide
    encoder (OpenCLIP ViT-H) means SD 2.x; anything else single-encoder behaves as SD 1.x."""
    if getattr(pipe, "text_encoder_2", None) is not None:
        return SDXL
    return SD2 if pipe.text_encoder.config.hidden_size == 1024 else SD1


@dataclass
class BaseModel:
    """A loaded, frozen pipeline plus what the rest of the library needs to know about it."""

    pipe: DiffusionPipeline
    spec: str  # what the user asked for: Hub id, folder or builtin:NAME
    family: Family
    placement: Placement

    @property
    def is_demo(self) -> bool:
        """A built-in model: small and fast, and never a real Stable Diffusion."""
        return self.spec.startswith(BUILTIN_PREFIX)

    @property
    def is_random(self) -> bool:
        """Random weights: the images are noise, and nothing learned on it means anything."""
        return self.spec.removeprefix(BUILTIN_PREFIX) in RANDOM_MODELS and self.is_demo

    @property
    def label(self) -> str:
        if self.is_random:
            note = " — built-in demo model with random weights; its images are noise"
        elif self.is_demo:
            note = " — built-in toy-world demo model: it draws a small world of objects, colours and styles"
        else:
            note = ""
        return f"{self.spec} ({self.family.name}, {self.prediction_type}){note}"

    @property
    def text_encoders(self) -> list[TextEncoderSlot]:
        pipe = self.pipe
        if self.family.is_sdxl:
            return [
                TextEncoderSlot("clip_l", pipe.tokenizer, pipe.text_encoder),
                TextEncoderSlot("clip_g", pipe.tokenizer_2, pipe.text_encoder_2),
            ]
        return [TextEncoderSlot(self.family.kinds[0], pipe.tokenizer, pipe.text_encoder)]

    @property
    def prediction_type(self) -> str:
        return self.pipe.scheduler.config.get("prediction_type", "epsilon")

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.pipe.vae.config.block_out_channels) - 1)

    @property
    def resolution(self) -> int:
        """The resolution the model was trained at (512 for SD 1.5, 768 for SD 2.1, 1024 for SDXL)."""
        return self.pipe.unet.config.sample_size * self.vae_scale_factor

    @property
    def device(self) -> torch.device:
        return self.placement.device


def resolve_model_path(spec: str) -> str:
    """A Hub id or a local folder goes to diffusers unchanged; builtin:NAME becomes its cached folder."""
    if spec.startswith(BUILTIN_PREFIX):
        return str(builtin_path(spec[len(BUILTIN_PREFIX) :]))
    return spec


def placement_for(spec: str, device: str | None = None, dtype: str | None = None) -> Placement:
    """`devices.choose_placement` for the model `spec` names: the built-in models are small."""
    return choose_placement(device, dtype, small_model=spec.startswith(BUILTIN_PREFIX))


def load_base_model(spec: str, placement: Placement | None = None) -> BaseModel:
    """Load any diffusers SD 1.x / 2.x / SDXL pipeline and freeze it.

    Frozen means: every weight has requires_grad=False and the modules are in eval mode; training
    only ever adds vectors beside the model, so one loaded model can serve many users at once.
    """
    placement = placement or placement_for(spec)
    path = resolve_model_path(spec)
    if not spec.startswith(BUILTIN_PREFIX) and Path(spec).exists() and not (Path(spec) / "model_index.json").exists():
        raise ValueError(f"model folder {spec} has no model_index.json: it is not a diffusers pipeline folder")
    try:
        pipe = DiffusionPipeline.from_pretrained(path, dtype=placement.dtype)
    except OSError as err:
        raise ValueError(
            f"could not load model {spec!r}: {err}. Give a Hub id like "
            "'stable-diffusion-v1-5/stable-diffusion-v1-5', a local diffusers folder, or builtin:toyworld"
        ) from None
    if not hasattr(pipe, "text_encoder") or not hasattr(pipe, "unet"):
        raise ValueError(f"model {spec!r} is a {type(pipe).__name__}, not a Stable Diffusion 1.x/2.x/XL pipeline")
    pipe.to(placement.device)
    for name, module in pipe.components.items():
        if isinstance(module, torch.nn.Module):
            module.requires_grad_(False)
            module.eval()
    pipe.set_progress_bar_config(disable=True)
    return BaseModel(pipe=pipe, spec=spec, family=detect_family(pipe), placement=placement)
