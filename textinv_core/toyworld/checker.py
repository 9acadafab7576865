"""The attribute checker: a small classifier that says what a toy-world picture shows.

It is trained on rendered scenes, whose attributes the generator knows, and reads the kind, colour,
background and style of a picture, unnamed ones included (a rocket, teal, blocky). That turns "the
model draws what it is asked" and "the concept was learned" into rates that can be measured on
generated images, instead of something a person has to look at.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from . import world

HEADS = {
    "kind": world.all_kinds(),
    "color": world.all_colors(),
    "background": tuple(world.BACKGROUNDS),
    "style": world.all_styles(),
}
FILE_NAME = "attribute_checker.safetensors"


class AttributeChecker(nn.Module):
    """Four strided conv stages (64 -> 4 px) and one linear head per attribute."""

    def __init__(self, width: int = 24):
        super().__init__()
        layers, channels = [], 3
        for out in (width, 2 * width, 4 * width, 4 * width):
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.GroupNorm(8, out), nn.SiLU(),
                       nn.Conv2d(out, out, 3, padding=1), nn.SiLU()]
            channels = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.heads = nn.ModuleDict({name: nn.Linear(channels, len(values)) for name, values in HEADS.items()})

    def forward(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        """`pixels`: [B, 3, 64, 64] in [-1, 1]; returns logits per attribute."""
        features = self.features(pixels)
        return {name: head(features) for name, head in self.heads.items()}


def to_pixels(images: list[Image.Image] | np.ndarray) -> torch.Tensor:
    """Pictures (PIL or a uint8 [N, H, W, 3] array) as the checker's input."""
    if not isinstance(images, np.ndarray):
        images = world.to_array([img.convert("RGB").resize((world.SIZE, world.SIZE)) for img in images])
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1


def save(checker: AttributeChecker, folder: Path) -> None:
    save_file({k: v.contiguous() for k, v in checker.state_dict().items()}, str(Path(folder) / FILE_NAME))


def load(folder: Path) -> AttributeChecker:
    checker = AttributeChecker()
    checker.load_state_dict(load_file(str(Path(folder) / FILE_NAME)))
    return checker.eval().requires_grad_(False)


@torch.no_grad()
def read(checker: AttributeChecker, images: list[Image.Image] | np.ndarray) -> list[dict[str, str]]:
    """What each picture shows: its most likely value per attribute."""
    logits = checker(to_pixels(images))
    picks = {name: out.argmax(dim=1).tolist() for name, out in logits.items()}
    return [{name: HEADS[name][picks[name][i]] for name in HEADS} for i in range(len(picks["kind"]))]


def agreement(readings: list[dict[str, str]], **expected: str) -> dict[str, float]:
    """The share of pictures that show each expected attribute value, e.g. kind="rocket"."""
    return {name: sum(r[name] == value for r in readings) / max(1, len(readings)) for name, value in expected.items()}
