"""Writing a concept in the formats other tools read (layouts: shared formats notes, README).

One folder gets every file a user might need, so a diffusers user, an A1111 user and a ComfyUI user
can each take theirs: the diffusers/concepts-library files, plus a file named after the concept
(A1111 and ComfyUI take the file name as the keyword).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from .concepts import Concept, concept_name
from .models import BaseModel


def write_concept_files(concept: Concept, folder: Path, model: BaseModel, step: int = 0) -> list[Path]:
    """Write all files for `concept` into `folder`; returns the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    name = concept_name(concept.token)
    written = [
        _text(folder / "token_identifier.txt", concept.token),
        _text(folder / "type_of_concept.txt", concept.concept_type),
    ]
    if model.family.is_sdxl:
        written += write_diffusers_sdxl(concept, folder)
        written.append(write_sdxl(concept, folder / f"{name}.safetensors"))
    else:
        written.append(write_diffusers(concept, folder / "learned_embeds.safetensors"))
        written.append(write_a1111(concept, folder / f"{name}.pt", step=step, checkpoint_name=model.spec))
        written.append(write_emb_params(concept, folder / f"{name}.safetensors"))
    return written


def _text(path: Path, content: str) -> Path:
    path.write_text(content + "\n")
    return path


def _single(concept: Concept) -> torch.Tensor:
    if len(concept.vectors) != 1:
        raise ValueError(f"{concept.token} has vectors for {len(concept.vectors)} encoders: use an SDXL format")
    return next(iter(concept.vectors.values())).detach().float().cpu().contiguous()


def write_diffusers(concept: Concept, path: Path, kind: str | None = None) -> Path:
    """`{token: [n, D]}` safetensors with `{"format": "pt"}`, as diffusers' `load_textual_inversion` reads."""
    vectors = concept.vectors[kind].detach().float().cpu().contiguous() if kind else _single(concept)
    save_file({concept.token: vectors}, str(path), metadata={"format": "pt"})
    return path


def write_diffusers_sdxl(concept: Concept, folder: Path) -> list[Path]:
    """The diffusers SDXL pair: the same token in two files, one per encoder."""
    return [
        write_diffusers(concept, folder / "learned_embeds.safetensors", kind="clip_l"),
        write_diffusers(concept, folder / "learned_embeds_2.safetensors", kind="clip_g"),
    ]


def write_a1111(concept: Concept, path: Path, step: int = 0, checkpoint_name: str | None = None) -> Path:
    """A1111's `.pt` layout; 265 is the id A1111 itself writes for its `*` placeholder."""
    data = {
        "string_to_token": {"*": 265},
        "string_to_param": {"*": _single(concept)},
        "name": concept_name(concept.token),
        "step": step,
        "sd_checkpoint": None,
        "sd_checkpoint_name": checkpoint_name,
    }
    torch.save(data, path)
    return path


def write_emb_params(concept: Concept, path: Path) -> Path:
    save_file({"emb_params": _single(concept)}, str(path))
    return path


def write_sdxl(concept: Concept, path: Path) -> Path:
    """`{"clip_l": [n, 768], "clip_g": [n, 1280]}`: what A1111, ComfyUI and InvokeAI read for SDXL."""
    tensors = {k: concept.vectors[k].detach().float().cpu().contiguous() for k in ("clip_l", "clip_g")}
    save_file(tensors, str(path))
    return path


def write_concept_images(images: list, folder: Path, max_side: int = 512) -> list[Path]:
    """Keep a copy of the training images beside the concept (the Hub repo shows them).

    Re-encoded from pixels as PNG, so camera EXIF (GPS position, device, owner) never leaves the
    machine, and shrunk to `max_side` so the repo stays small.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i, item in enumerate(images):
        image = item.image.copy()
        image.thumbnail((max_side, max_side))
        path = folder / f"{i:02d}.png"
        image.save(path, format="PNG")
        written.append(path)
    return written
