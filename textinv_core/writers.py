"""Writing a concept in the files each tool reads, as each tool's own loading code checks them.

One output folder holds a file for every tool (README: "which file goes where"):

- `learned_embeds.safetensors` `{token: [n, D]}`: diffusers' own format, the file its
  `load_textual_inversion` picks by default (SDXL adds `learned_embeds_2.safetensors`);
- `NAME.pt` (A1111's layout; SD 1/2) and `NAME.safetensors` (`emb_params`, or `clip_l` + `clip_g` for
  SDXL): A1111, ComfyUI and InvokeAI take these by file name, so NAME is the keyword there.
- A Hub push adds `learned_embeds.bin` for InvokeAI's install-by-repo-id (see
  `write_learned_embeds_bin`).

Every pickle is written so A1111's safe unpickler accepts it (see `_torch_bytes`), the container
always matches the file's extension (the tools pick their loader by extension), and every file is
readable by all (0644), since the UI reading it often runs as another user.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import save as safetensors_bytes

from .concepts import Concept, concept_name
from .models import BaseModel

READABLE = 0o644
SDXL_KINDS = ("clip_l", "clip_g")
# The zip entries A1111's modules/safe.py allows in a .pt: DIR/data.pkl, DIR/version, DIR/data/N.
# torch 2.x adds DIR/.format_version, DIR/.storage_alignment, DIR/byteorder and
# DIR/.data/serialization_id, which it refuses ("bad file inside ..."); torch.load needs none of them.
_A1111_ZIP_ENTRY = re.compile(r"^[^/]+/(data\.pkl|version|data/\d+)$")
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the same concept always gives the same bytes


def write_concept_files(concept: Concept, folder: Path, model: BaseModel, step: int = 0) -> list[Path]:
    """Write all files for `concept`, trained on `model`, into `folder`; returns the paths written."""
    return write_concept_folder(concept, folder, step=step, base_model=model.spec)


def write_concept_folder(concept: Concept, folder: Path, step: int = 0, base_model: str | None = None) -> list[Path]:
    """The output folder's files for `concept` (SDXL when it has vectors for both SDXL encoders)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = concept_name(concept.token)
    written = [
        _text(folder / "token_identifier.txt", concept.token),
        _text(folder / "type_of_concept.txt", concept.concept_type),
    ]
    if is_sdxl(concept):
        written += write_diffusers_sdxl(concept, folder)
        written.append(write_sdxl(concept, folder / f"{name}.safetensors"))
    else:
        written.append(write_diffusers(concept, folder / "learned_embeds.safetensors"))
        written.append(write_a1111(concept, folder / f"{name}.pt", step=step, checkpoint_name=base_model))
        written.append(write_emb_params(concept, folder / f"{name}.safetensors"))
    return written


def is_sdxl(concept: Concept) -> bool:
    return set(SDXL_KINDS) <= concept.vectors.keys()


def _text(path: Path, content: str) -> Path:
    _write_bytes(path, (content + "\n").encode())
    return path


def _single(concept: Concept) -> torch.Tensor:
    if len(concept.vectors) != 1:
        raise ValueError(f"{concept.token} has vectors for {len(concept.vectors)} encoders: use an SDXL format")
    return _rows(next(iter(concept.vectors.values())))


def _rows(vectors: torch.Tensor) -> torch.Tensor:
    return vectors.detach().float().cpu().contiguous()


def write_diffusers(concept: Concept, path: Path, kind: str | None = None) -> Path:
    """`{token: [n, D]}`, as diffusers' `load_textual_inversion` reads (it takes the stored token)."""
    vectors = _rows(concept.vectors[kind]) if kind else _single(concept)
    return _write_tensors(path, {concept.token: vectors}, metadata={"format": "pt"})


def write_diffusers_sdxl(concept: Concept, folder: Path) -> list[Path]:
    """The diffusers SDXL pair: the same token in two files, one per encoder."""
    return [
        write_diffusers(concept, folder / "learned_embeds.safetensors", kind="clip_l"),
        write_diffusers(concept, folder / "learned_embeds_2.safetensors", kind="clip_g"),
    ]


def write_a1111(
    concept: Concept, path: Path, step: int = 0, checkpoint_name: str | None = None, name: str | None = None
) -> Path:
    """A1111's `.pt` layout; 265 is the id A1111 itself writes for its `*` placeholder.

    `name` is the stored name (default: the file-name form of the keyword, as A1111 writes it);
    A1111 itself keys a `.pt` by its file name, diffusers by this stored name.
    """
    if path.suffix.lower() == ".safetensors":
        raise ValueError(f"{path.name}: A1111's layout holds more than tensors: write it as .pt, not .safetensors")
    data = {
        "string_to_token": {"*": 265},
        "string_to_param": {"*": _single(concept)},
        "name": name or concept_name(concept.token),
        "step": step,
        "sd_checkpoint": None,
        "sd_checkpoint_name": checkpoint_name,
    }
    _write_bytes(path, _torch_bytes(data))
    return path


def write_emb_params(concept: Concept, path: Path) -> Path:
    """`{"emb_params": [n, D]}`: a layout A1111, ComfyUI and InvokeAI all read for SD 1/2."""
    return _write_tensors(path, {"emb_params": _single(concept)})


def write_sdxl(concept: Concept, path: Path) -> Path:
    """`{"clip_l": [n, 768], "clip_g": [n, 1280]}`: what A1111, ComfyUI and InvokeAI read for SDXL."""
    return _write_tensors(path, {kind: _rows(concept.vectors[kind]) for kind in SDXL_KINDS})


def write_learned_embeds_bin(concept: Concept, path: Path, step: int = 0, checkpoint_name: str | None = None) -> Path:
    """The `learned_embeds.bin` of a Hub repo, for InvokeAI: installing by repo id it downloads only
    `*learned_embeds.bin` (and text files), and its probe takes a `{token: [n, D]}` file's first
    dimension as the width, so this holds a layout it probes by key instead: A1111's, whose stored
    name is the keyword (diffusers reads that name if pointed at this file), or SDXL's two keys.
    diffusers itself prefers `learned_embeds.safetensors` and never falls back to this file.
    """
    if is_sdxl(concept):
        return write_sdxl(concept, path)
    return write_a1111(concept, path, step=step, checkpoint_name=checkpoint_name, name=concept.token)


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    """Tensors in the container the extension names: every tool picks its loader by extension."""
    if path.suffix.lower() == ".safetensors":
        data = safetensors_bytes(tensors, metadata=metadata)
    else:
        data = _torch_bytes(tensors)
    _write_bytes(path, data)
    return path


def _torch_bytes(obj: object) -> bytes:
    """torch.save's zip, keeping only the entries A1111's safe unpickler allows (data.pkl, data/N,
    version: the entries every community .pt has). torch.load(weights_only=True) reads it as before;
    the pickle itself only names globals A1111 allows (tensor rebuilding, FloatStorage, OrderedDict)."""
    saved = io.BytesIO()
    torch.save(obj, saved)
    kept = io.BytesIO()
    with zipfile.ZipFile(saved) as source, zipfile.ZipFile(kept, "w", zipfile.ZIP_STORED) as target:
        for entry in source.infolist():
            if _A1111_ZIP_ENTRY.match(entry.filename):
                target.writestr(zipfile.ZipInfo(entry.filename, _FIXED_ZIP_TIME), source.read(entry))
    return kept.getvalue()


def _write_bytes(path: Path, data: bytes) -> None:
    """Write through a hidden temporary file and rename it into place, so a UI rescanning the folder
    mid-write never reads half a file; 0644 whatever the umask (safetensors' own writer makes 0600)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.chmod(temporary, READABLE)
    os.replace(temporary, path)


def write_concept_images(images: list, folder: Path, short_side: int = 512) -> list[Path]:
    """Keep a copy of the training images beside the concept (the Hub repo shows them, and a
    resumed run trains on them again).

    Re-encoded from pixels as PNG, so camera EXIF (GPS position, device, owner) never leaves the
    machine, and shrunk until their short side is `short_side` so the repo stays small: pass the
    training resolution or more, since training crops a square of that side from the short side.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i, item in enumerate(images):
        image, scale = item.image, short_side / min(item.image.size)
        if scale < 1:
            size = (max(short_side, round(image.width * scale)), max(short_side, round(image.height * scale)))
            image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        path = folder / f"{i:02d}.png"
        image.save(path, format="PNG")
        os.chmod(path, READABLE)
        written.append(path)
    return written
