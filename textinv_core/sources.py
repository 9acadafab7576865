"""Concepts from anywhere: a trained output folder, an embedding file, or the Hub.

Reading a file (`readers.py`) says what the file holds; this module decides whether and how it
fits the loaded model, which keyword it answers to, and keeps keywords in one request distinct.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from huggingface_hub import HfApi

from .concepts import Concept
from .hub import CONCEPTS_LIBRARY, download_concept, parse_reference
from .models import BaseModel
from .readers import EmbeddingFile, family_of_width, read_embedding


def fit_embedding(file: EmbeddingFile, model: BaseModel) -> tuple[Concept, list[str]]:
    """Match a file's vectors to the model's text encoders by width, or refuse saying which
    family the file is for and which the model is. Returns the concept and notes for the user."""
    slots = model.text_encoders
    notes: list[str] = []
    if file.snapshot:
        used, count = file.snapshot
        progression = f"{count} snapshots of one embedding during training"
        notes.append(f"{file.source}: {progression}; using snapshot {used} (the last)")
    if "single" in file.vectors:
        single = file.vectors["single"]
        width = single.shape[1]
        if len(slots) == 1 and slots[0].width == width:
            return _concept(file, {slots[0].kind: single}), notes
        raise ValueError(_mismatch(file, model, f"{family_of_width(width)} ({width}-wide)"))
    by_kind = {slot.kind: slot for slot in slots}
    if all(k in by_kind and by_kind[k].width == v.shape[1] for k, v in file.vectors.items()) and len(by_kind) == len(file.vectors):
        return _concept(file, dict(file.vectors)), notes
    clip_l = file.vectors.get("clip_l")
    if len(slots) == 1 and clip_l is not None and slots[0].width == clip_l.shape[1]:
        notes.append(f"{file.source}: an SDXL embedding; using its clip_l part on this {model.family.name} model")
        return _concept(file, {slots[0].kind: clip_l}), notes
    widths = " + ".join(f"{k} {v.shape[1]}-wide" for k, v in file.vectors.items())
    raise ValueError(_mismatch(file, model, f"SDXL ({widths})"))


def _concept(file: EmbeddingFile, vectors: dict) -> Concept:
    return Concept(file.token, vectors, _concept_type(Path(file.source)), file.source)


def _concept_type(path: Path) -> str:
    """A concepts-library repo says `object` or `style` in type_of_concept.txt beside the file."""
    folder = path if path.is_dir() else path.parent
    marker = folder / "type_of_concept.txt"
    if marker.is_file() and marker.stat().st_size < 100:
        text = marker.read_text(errors="replace").strip().lower()
        if text in ("object", "style"):
            return text
    return "object"


def _mismatch(file: EmbeddingFile, model: BaseModel, made_for: str) -> str:
    widths = ", ".join(f"{s.kind} {s.width}-wide" for s in model.text_encoders)
    return f"{file.source}: made for {made_for}; this model ({model.spec}) is {model.family.name} ({widths}), so it can't be used here"


def load_concept(
    source: str | Path,
    model: BaseModel,
    keyword: str | None = None,
    api: HfApi | None = None,
    allow_local: bool = True,
    library: str = CONCEPTS_LIBRARY,
) -> tuple[Concept, list[str]]:
    """Load one concept by local path or Hub reference, renamed to `keyword` if given; a bare
    keyword names a repo of `library`.

    `allow_local=False` is for sources typed by a web visitor: they must never name files on the
    server, so only Hub references are accepted.
    """
    text = str(source)
    local = Path(text).expanduser()
    if allow_local and local.exists():
        path = local
    else:
        path = download_concept(parse_reference(text, library), api)
    concept, notes = fit_embedding(read_embedding(path), model)
    if keyword and keyword.strip():
        concept.token = keyword.strip()
    if not allow_local or not local.exists():
        concept.source = text
    return concept, notes


def unique_keyword(token: str, taken: set[str]) -> str:
    """`token`, or `token-2`, `token-3`... (inside any closing `>`) when it is already used."""
    if token.lower() not in taken:
        return token
    stem, close = (token[:-1], ">") if token.endswith(">") else (token, "")
    n = 2
    while f"{stem}-{n}{close}".lower() in taken:
        n += 1
    return f"{stem}-{n}{close}"


def load_concepts(
    sources: Sequence[str], model: BaseModel, api: HfApi | None = None
) -> tuple[list[Concept], list[str]]:
    """Load several concepts for one request; a clashing keyword gets a suffix, and a note says so."""
    concepts: list[Concept] = []
    all_notes: list[str] = []
    for source in sources:
        concept, notes = load_concept(source, model, api=api)
        unique = unique_keyword(concept.token, {c.token.lower() for c in concepts})
        if unique != concept.token:
            notes.append(f"keyword {concept.token} is already used; {source} is {unique} here")
            concept.token = unique
        concepts.append(concept)
        all_notes += notes
    return concepts, all_notes
