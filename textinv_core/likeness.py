"""How much a keyword's pictures look like the visitor's images: the readout's image measure.

The denoising loss says how well the keyword explains the images, not what the model draws with it:
a face explained a little better is still drawn as a toy. So where an image encoder is at hand,
the readout draws a few pictures with the keyword and a few with its starting word, embeds them
with the encoder, and places the keyword's likeness to the training images between two anchors
measured the same way: the starting word's pictures (the floor: nothing learned) and the training
images against each other (the ceiling: as alike as pictures of this concept get).

The encoders:
- SD 1.x pipelines that ship a safety checker: its vision tower is a CLIP ViT-L/14 with projection.
  Only `vision_model` and `visual_projection` are used, with the pipeline's own `feature_extractor`;
  the checker's `forward()` (which blanks pictures it flags) is never called, and nothing is downloaded.
- The toy world: its attribute checker's feature layer, which plays CLIP's part for that world.
- Anything else (SD 2.x, SDXL): none; the readout rests on the loss alone and says so.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from PIL import Image, ImageOps

from .concepts import Concept
from .generate import generate
from .models import BaseModel
from .templates import templates_for

PICTURES = 8  # per side (keyword, starting word): enough to steady the mean on the toy world
PICTURE_STEPS = 20
PICTURE_SEED = 7001  # fixed, so two runs of the same concept are compared on the same noises
FOLDER = "readout"  # in a run's output folder: the pictures the verdict saw, for a person to see too
SIDES = ("learned", "start")


@dataclass
class ImageTower:
    """An image encoder: `embed` maps pictures to unit-length rows."""

    name: str
    embed: Callable[[Sequence[Image.Image]], torch.Tensor]


def image_tower(model: BaseModel) -> ImageTower | None:
    """The image encoder the model brings with it, or None."""
    checker_file = _toyworld_checker(model)
    if checker_file is not None:
        return _toyworld_tower(checker_file.parent)
    parts = _clip_parts(model)
    return _clip_tower(*parts) if parts else None


def has_image_tower(model: BaseModel) -> bool:
    """Whether the readout will draw and compare pictures (without loading anything)."""
    return _toyworld_checker(model) is not None or _clip_parts(model) is not None


def _toyworld_checker(model: BaseModel) -> Path | None:
    from .toyworld import model_folder  # the toy world knows its own files
    from .toyworld.checker import FILE_NAME

    folder = model_folder(model)
    return folder / FILE_NAME if folder is not None and (folder / FILE_NAME).is_file() else None


def _toyworld_tower(folder: Path) -> ImageTower:
    from .toyworld import checker as attribute_checker

    net = attribute_checker.load(folder)

    @torch.no_grad()
    def embed(images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.nn.functional.normalize(net.features(attribute_checker.to_pixels(list(images))), dim=1)

    return ImageTower("the toy world's attribute checker (its feature layer)", embed)


def _clip_parts(model: BaseModel) -> tuple | None:
    """(vision model, projection, image processor) of an SD 1.x pipeline's safety checker."""
    pipe = model.pipe
    checker, processor = getattr(pipe, "safety_checker", None), getattr(pipe, "feature_extractor", None)
    vision, projection = getattr(checker, "vision_model", None), getattr(checker, "visual_projection", None)
    if vision is None or projection is None or processor is None:
        return None
    return vision, projection, processor


def _clip_tower(vision, projection, processor) -> ImageTower:
    @torch.no_grad()
    def embed(images: Sequence[Image.Image]) -> torch.Tensor:
        pixels = processor(images=[img.convert("RGB") for img in images], return_tensors="pt").pixel_values
        param = next(vision.parameters())
        pooled = vision(pixels.to(param.device, param.dtype))[1]  # the pooled output, as the checker takes it
        return torch.nn.functional.normalize(projection(pooled).float(), dim=1).cpu()

    return ImageTower("CLIP ViT-L/14 image embeddings (the pipeline's safety-checker tower)", embed)


@dataclass
class Likeness:
    """Mean cosine similarities to the training images, in the tower's embedding space."""

    learned: float  # the keyword's pictures
    floor: float  # the starting word's pictures
    ceiling: float  # the training images against each other
    tower: str
    learned_each: list[float] = field(default_factory=list)  # per picture, so the spread of pictures is known
    floor_each: list[float] = field(default_factory=list)

    @property
    def score(self) -> float:
        """Where the keyword's pictures sit from floor (0) to ceiling (1); above 1 is possible.

        Where the span is narrower than the spread of the starting word's pictures (a style: its
        images differ in what they show, so they are little more alike than any pictures are), the
        spread is the scale instead, so that a seed's luck is never read as progress."""
        spread = statistics.pstdev(self.floor_each) if len(self.floor_each) > 1 else 0.0
        return (self.learned - self.floor) / max(self.ceiling - self.floor, spread, 1e-6)


def picture_prompt(concept_type: str) -> str:
    """The plain sentence the readout draws with (`{}` is the keyword or the starting word)."""
    return templates_for(concept_type)[0]


def draw(model: BaseModel, words: str, concepts: Sequence[Concept], concept_type: str, count: int = PICTURES,
         guidance: float = 7.5) -> list[Image.Image]:
    """The readout's pictures of `words` (a keyword or a starting word), on fixed noises."""
    return generate(model, picture_prompt(concept_type).format(words), concepts, steps=PICTURE_STEPS,
                    guidance=guidance, seed=PICTURE_SEED, num_images=count)


def likeness(tower: ImageTower, training: Sequence[Image.Image], learned: Sequence[Image.Image],
             start: Sequence[Image.Image]) -> Likeness:
    """Place the keyword's pictures between the starting word's and the training images' own."""
    train = tower.embed(training)
    if len(training) == 1:  # no pair to compare: the image against its mirror stands in
        pairs = train @ tower.embed([ImageOps.mirror(training[0])]).T
    else:
        pairs = (train @ train.T)[~torch.eye(len(training), dtype=torch.bool)]
    learned_each, floor_each = [(tower.embed(pictures) @ train.T).mean(dim=1) for pictures in (learned, start)]
    return Likeness(learned_each.mean().item(), floor_each.mean().item(), pairs.mean().item(), tower.name,
                    learned_each.tolist(), floor_each.tolist())


def save_pictures(output_dir: Path, pictures: dict[str, Sequence[Image.Image]]) -> None:
    """Keep the readout's pictures (`SIDES` -> images) beside `quality.json`."""
    folder = Path(output_dir) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for side in SIDES:
        for i, image in enumerate(pictures[side]):
            image.save(folder / f"{side}-{i}.png")


def saved_pictures(output_dir: Path, side: str) -> list[Path]:
    """A run's readout pictures of one side, in order (none if it measured no pictures)."""
    folder = Path(output_dir) / FOLDER
    return sorted(folder.glob(f"{side}-*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
