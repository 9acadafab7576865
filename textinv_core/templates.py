"""Prompt templates: the sentences a concept's keyword is trained inside.

Varied sentences keep the vector from absorbing the wording of any one caption; the object set
describes a thing in a scene, the style set describes pictures made in a manner. `{}` marks the keyword.
"""

from __future__ import annotations

OBJECT_TEMPLATES = (
    "a photo of a {}",
    "a close-up photo of a {}",
    "a snapshot of the {}",
    "a bright photo of the {}",
    "a dim photo of a {}",
    "a cropped photo of the {}",
    "a photo of my {}",
    "a photo of a small {}",
    "a photo of a large {}",
    "a photo of the {} on a table",
    "the {} in a room",
    "a picture of one {}",
    "a clean picture of the {}",
    "a blurry photo of a {}",
    "a good photo of the {}",
    "a photo of a nice {}",
    "a rendering of a {}",
    "an image showing the {}",
    "a {} seen from the side",
    "a {} in soft light",
    "a photo of a {} outdoors",
    "a studio photo of the {}",
    "the {} in the middle of the picture",
    "a photo of a cool {}",
)

STYLE_TEMPLATES = (
    "a painting in the style of {}",
    "a picture in the style of {}",
    "an artwork in the style of {}",
    "a drawing in the style of {}",
    "a rendering in the style of {}",
    "a small picture in the style of {}",
    "a large painting in the style of {}",
    "a bright painting in the style of {}",
    "a dark picture in the style of {}",
    "a cropped painting in the style of {}",
    "a close-up painting in the style of {}",
    "a nice picture in the style of {}",
    "a beautiful painting in the style of {}",
    "a house painted in the style of {}",
    "a landscape in the style of {}",
    "a portrait in the style of {}",
    "a still life in the style of {}",
    "a scene made in the style of {}",
    "an illustration, {} style",
    "a picture with the look of {}",
    "an image made in the manner of {}",
    "a sketch in the style of {}",
    "a poster in the style of {}",
    "art by {}",
)

TEMPLATES = {"object": OBJECT_TEMPLATES, "style": STYLE_TEMPLATES}


def templates_for(concept_type: str) -> tuple[str, ...]:
    if concept_type not in TEMPLATES:
        raise ValueError(f"concept type must be 'object' or 'style', not {concept_type!r}")
    return TEMPLATES[concept_type]
