"""Encode every training image (and its mirror image) with the VAE once, before training.

The reference recipe runs the VAE encoder on every batch; it is the most expensive module after
the U-Net and its output for a given image never changes. We keep each image's latent
distribution (mean and std) and sample from it each step, which is exactly what encoding anew
would do, without the encoder.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from PIL import ImageOps

from .images import TrainingImage, square_crop, to_tensor
from .models import BaseModel


@dataclass
class LatentCache:
    mean: torch.Tensor  # [N, V, C, h, w], V = 2 (plain, mirrored) or 1
    std: torch.Tensor  # same shape
    time_ids: torch.Tensor  # [N, 6] SDXL size/crop conditioning: original h, w, crop top, left, target h, w
    scaling_factor: float

    def __len__(self) -> int:
        return self.mean.shape[0]

    def sample(self, index: torch.Tensor, variant: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Draw latents for images `index` (mirrored where `variant` is 1), already scaled for the U-Net."""
        mean, std = self.mean[index, variant], self.std[index, variant]
        return (mean + std * torch.randn(mean.shape, generator=generator)) * self.scaling_factor


@torch.no_grad()
def encode_images(model: BaseModel, images: list[TrainingImage], resolution: int, flip: bool) -> LatentCache:
    vae = model.pipe.vae
    if model.placement.dtype == torch.float16 and vae.config.get("force_upcast", False):
        vae = copy.deepcopy(vae).float()  # SDXL's VAE overflows in fp16; a private fp32 copy, used once
    means, stds, time_ids = [], [], []
    for item in images:
        crop, (top, left) = square_crop(item.image, resolution)
        variants = [crop, ImageOps.mirror(crop)] if flip else [crop]
        pixels = torch.stack([to_tensor(v) for v in variants]).to(model.device, vae.dtype)
        dist = vae.encode(pixels).latent_dist
        means.append(dist.mean.float().cpu())
        stds.append(dist.std.float().cpu())
        time_ids.append(torch.tensor([item.image.height, item.image.width, top, left, resolution, resolution]))
    return LatentCache(
        mean=torch.stack(means),
        std=torch.stack(stds),
        time_ids=torch.stack(time_ids).float(),
        scaling_factor=vae.config.scaling_factor,
    )
