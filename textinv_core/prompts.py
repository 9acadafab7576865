"""The one mechanism that applies concepts to a prompt, used by training and generation alike.

The shared tokenizer and text encoder are never changed. Instead, each keyword in the prompt is
tokenized as n placeholder ids, and a forward hook on the encoder's token-embedding table replaces
the rows at those positions with the concept's vectors. Which positions and vectors apply is held
in a ContextVar, so every thread (every visitor of a Space) sees only its own concepts, and a call
with no concepts runs the plain model. Because no ids are added to the vocabulary, the end-of-text
id stays the largest one and CLIP's argmax pooling still lands on it (formats.md, last pitfall).
"""

from __future__ import annotations

import re
import threading
import weakref
from itertools import accumulate
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import torch

from .concepts import Concept
from .models import BaseModel, Conditioning, TextEncoderSlot

# module -> (rows, cols, values) for the forward in progress on this thread
_ACTIVE: ContextVar[dict | None] = ContextVar("textinv_active_substitutions", default=None)
_HOOKED: "weakref.WeakSet[torch.nn.Module]" = weakref.WeakSet()
_HOOK_LOCK = threading.Lock()
# A word written the way keywords are written: `<anything-without-spaces>`.
_KEYWORD_SHAPED = re.compile(r"<[^<>\s]+>")


@dataclass
class EncoderTokens:
    """Token ids for one encoder, plus where each concept vector goes."""

    ids: torch.Tensor  # [B, L] long
    rows: torch.Tensor  # [S] batch index of each placeholder
    cols: torch.Tensor  # [S] sequence position of each placeholder
    sources: torch.Tensor  # [S] index into the concatenated vectors of all concepts

    def select(self, indices: torch.Tensor) -> "EncoderTokens":
        """The sub-batch `indices` (used to pick prompts for a training batch without re-tokenizing)."""
        rows, cols, sources = [], [], []
        for new_row, old_row in enumerate(indices.tolist()):  # a prompt picked twice appears twice
            mask = self.rows == old_row
            rows.append(torch.full((int(mask.sum()),), new_row, dtype=torch.long))
            cols.append(self.cols[mask])
            sources.append(self.sources[mask])
        return EncoderTokens(self.ids[indices], torch.cat(rows), torch.cat(cols), torch.cat(sources))


def keyword_pattern(concepts: Sequence[Concept]) -> re.Pattern | None:
    """Match any concept keyword as a whole word, case-insensitively (CLIP lower-cases prompts),
    longest first so `<cat-toy-2>` is not read as `<cat-toy>` followed by junk. Hyphens count as
    part of a word: `bad-hands` must not fire inside `bad-hands-5`."""
    if not concepts:
        return None
    parts = []
    for token in sorted((c.token for c in concepts), key=len, reverse=True):
        left = r"(?<![\w-])" if re.match(r"\w", token[0]) else ""
        right = r"(?![\w-])" if re.match(r"\w", token[-1]) else ""
        parts.append(left + re.escape(token) + right)
    return re.compile("|".join(parts), re.IGNORECASE)


def missing_keywords(prompt: str, concepts: Sequence[Concept], expected: Iterable[str] = ()) -> list[str]:
    """Keywords in `prompt` that no concept provides, and that would be read as plain text: every
    `<...>` word, and any of `expected` (words known to be meant as keywords, like the names of
    refused files) as a whole word. The concepts' own keywords are taken out first with
    `keyword_pattern`, the pattern tokenizing uses, so what is reported is exactly what gets no
    vectors."""
    pattern = keyword_pattern(concepts)
    rest = pattern.sub(" ", prompt) if pattern else prompt
    found = list(_KEYWORD_SHAPED.finditer(rest))
    for word in expected:
        found += re.finditer(rf"(?<![\w<-])<?{re.escape(word)}>?(?![\w-])", rest, re.IGNORECASE)
    return list(dict.fromkeys(match.group() for match in sorted(found, key=lambda match: match.start())))


def check_keywords(concepts: Sequence[Concept]) -> None:
    seen: dict[str, str] = {}
    for concept in concepts:
        key = concept.token.lower()
        if key in seen:
            raise ValueError(
                f"two concepts use the keyword {concept.token!r} ({seen[key]} and {concept.source}): rename one"
            )
        seen[key] = concept.source


def tokenize(slot: TextEncoderSlot, prompts: Sequence[str], concepts: Sequence[Concept]) -> EncoderTokens:
    """Tokenize like the pipeline does (start, text, end, padding to 77), with each keyword
    becoming as many placeholder ids as its concept has vectors."""
    pattern = keyword_pattern(concepts)
    starts = [0, *accumulate(c.num_vectors for c in concepts)]  # each concept's first row in the vector table
    first_row = {c.token.lower(): (starts[i], c.num_vectors) for i, c in enumerate(concepts)}
    all_ids, rows, cols, sources = [], [], [], []
    for row, prompt in enumerate(prompts):
        ids, slots = _tokenize_one(slot.tokenizer, prompt, pattern, first_row)
        all_ids.append(ids)
        for col, source in slots:
            rows.append(row)
            cols.append(col)
            sources.append(source)
    return EncoderTokens(*(torch.tensor(values, dtype=torch.long) for values in (all_ids, rows, cols, sources)))


def _tokenize_one(
    tokenizer, prompt: str, pattern: re.Pattern | None, first_row: dict[str, tuple[int, int]]
) -> tuple[list[int], list[tuple[int, int]]]:
    """Ids for one prompt and its (position, vector-table row) placeholders, truncated like CLIP."""
    placeholder = tokenizer.bos_token_id  # any id below end-of-text will do: it is replaced
    body: list[int] = []
    slots: list[tuple[int, int]] = []
    pieces = pattern.split(prompt) if pattern else [prompt]
    keywords = pattern.findall(prompt) if pattern else []
    for i, text in enumerate(pieces):
        if text:
            body += tokenizer(text, add_special_tokens=False).input_ids
        if i < len(keywords):
            start, count = first_row[keywords[i].lower()]
            for v in range(count):
                slots.append((len(body) + 1, start + v))  # +1: after the start token
                body.append(placeholder)
    body = body[: tokenizer.model_max_length - 2]
    ids = [tokenizer.bos_token_id, *body, tokenizer.eos_token_id]
    ids += [tokenizer.pad_token_id] * (tokenizer.model_max_length - len(ids))
    return ids, [(col, source) for col, source in slots if col <= len(body)]


def tokenize_all(model: BaseModel, prompts: Sequence[str], concepts: Sequence[Concept]) -> list[EncoderTokens]:
    check_keywords(concepts)
    return [tokenize(slot, prompts, concepts) for slot in model.text_encoders]


def encode_tokens(model: BaseModel, tokens: list[EncoderTokens], concepts: Sequence[Concept]) -> Conditioning:
    """Run each text encoder with the concept vectors in place and combine the outputs the way the
    model's family expects. Gradients flow into the concepts' vectors when they require them."""
    outputs = []
    for slot, enc in zip(model.text_encoders, tokens):
        table = _vector_table(slot, concepts)
        values = table[enc.sources] if len(enc.sources) else table[:0]
        with substituted(slot.encoder.get_input_embeddings(), enc.rows, enc.cols, values):
            outputs.append(slot.encoder(enc.ids.to(model.device), output_hidden_states=model.family.is_sdxl))
    return model.family.conditioning(outputs)


def encode_prompts(model: BaseModel, prompts: Sequence[str], concepts: Sequence[Concept] = ()) -> Conditioning:
    """Prompt embeddings for `prompts` with `concepts` applied: the entry point for generation."""
    return encode_tokens(model, tokenize_all(model, prompts, concepts), concepts)


def _vector_table(slot: TextEncoderSlot, concepts: Sequence[Concept]) -> torch.Tensor:
    if not concepts:
        return torch.zeros(0, slot.width)
    for concept in concepts:
        if slot.kind not in concept.vectors:
            raise ValueError(f"concept {concept.token!r} has no vectors for this model's {slot.kind} text encoder")
    return torch.cat([c.vectors[slot.kind] for c in concepts])


@contextmanager
def substituted(
    embedding: torch.nn.Module, rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor
) -> Iterator[None]:
    """Within this block, on this thread only, `embedding`'s output at (rows, cols) is `values`."""
    _ensure_hook(embedding)
    active = dict(_ACTIVE.get() or {})
    active[embedding] = (rows, cols, values)
    reset = _ACTIVE.set(active)
    try:
        yield
    finally:
        _ACTIVE.reset(reset)


def _ensure_hook(embedding: torch.nn.Module) -> None:
    with _HOOK_LOCK:
        if embedding not in _HOOKED:
            embedding.register_forward_hook(_substitute)
            _HOOKED.add(embedding)


def _substitute(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
    active = _ACTIVE.get()
    if not active or module not in active:
        return output
    rows, cols, values = active[module]
    if len(rows) == 0:
        return output
    device = output.device
    output = output.clone()
    output[rows.to(device), cols.to(device)] = values.to(device=device, dtype=output.dtype)
    return output
