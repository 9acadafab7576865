"""The denoising loss of the frozen model with concepts applied: what training minimizes and what
the quality measure reads on a fixed evaluation set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.training_utils import compute_snr

from .concepts import Concept
from .models import BaseModel
from .prompts import EncoderTokens, encode_tokens


@dataclass
class Batch:
    latents: torch.Tensor
    noise: torch.Tensor
    timesteps: torch.Tensor
    tokens: list[EncoderTokens]
    time_ids: torch.Tensor


def denoising_loss(
    model: BaseModel,
    concepts: Sequence[Concept],
    batch: Batch,
    noise_scheduler: DDPMScheduler,
    min_snr_gamma: float | None = None,
) -> torch.Tensor:
    """Mean diffusion loss of the frozen model on `batch` with `concepts` applied (float32 scalar)."""
    device, dtype = model.device, model.placement.dtype
    latents, noise, timesteps = (t.to(device) for t in (batch.latents, batch.noise, batch.timesteps))
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    if model.prediction_type == "v_prediction":
        target = noise_scheduler.get_velocity(latents, noise, timesteps)
    else:
        target = noise
    cond = encode_tokens(model, batch.tokens, concepts).to(dtype)
    extra = model.family.unet_kwargs(cond, batch.time_ids.to(device, dtype))
    pred = model.pipe.unet(noisy.to(dtype), timesteps, cond.prompt_embeds, **extra).sample
    per_sample = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    if min_snr_gamma:
        snr = compute_snr(noise_scheduler, timesteps)
        weight = torch.clamp(snr, max=min_snr_gamma) / (snr + 1 if model.prediction_type == "v_prediction" else snr)
        per_sample = per_sample * weight
    return per_sample.mean()
