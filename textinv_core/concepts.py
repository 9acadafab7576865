"""A concept: a keyword and the vectors it stands for in each text encoder.

The same object serves a concept being trained (its vectors are float32 leaf tensors with
gradients), one just trained, and one read from somebody's file. Nothing about a concept is ever
written into the shared tokenizer or text encoder: see `prompts.py` for how it reaches a prompt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from .models import BaseModel, TextEncoderSlot

MAX_VECTORS = 16


@dataclass
class Concept:
    token: str  # the keyword used in prompts, e.g. "<cat-toy>"
    vectors: dict[str, torch.Tensor]  # encoder kind ("clip_l", "clip_h", "clip_g") -> [n, D]
    concept_type: str = "object"  # "object" or "style"
    source: str = ""  # where it came from, for display

    @property
    def num_vectors(self) -> int:
        return next(iter(self.vectors.values())).shape[0]

    def detached(self) -> "Concept":
        """A frozen float32 CPU copy: safe to keep, share and save while training goes on."""
        vectors = {k: v.detach().float().cpu().clone() for k, v in self.vectors.items()}
        return Concept(self.token, vectors, self.concept_type, self.source)


def concept_name(token: str) -> str:
    """The file-name form of a keyword: `<cat-toy>` -> `cat-toy` (A1111 users type the file name)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", token.strip().strip("<>")).strip("-.")
    return name or "concept"


def validate_token(token: str, model: BaseModel) -> None:
    """Refuse keywords that would be ambiguous in a prompt: empty, with whitespace, or a word the
    tokenizer already knows as one token (training `cat` would hijack every cat in every prompt)."""
    if not token or not token.strip():
        raise ValueError("the concept keyword is empty: type something like <my-cat>")
    if re.search(r"\s", token):
        raise ValueError(f"the concept keyword {token!r} holds whitespace: use one word like <my-cat>")
    for slot in model.text_encoders:
        ids = slot.tokenizer(token, add_special_tokens=False).input_ids
        if len(ids) == 1 or token in slot.tokenizer.all_special_tokens:
            raise ValueError(
                f"the concept keyword {token!r} already means something to the model's tokenizer: "
                f"pick a new word, for example <{concept_name(token)}-concept>"
            )


def typical_norm(slot: TextEncoderSlot) -> float:
    """Mean norm of the vocabulary's embedding rows: the scale new vectors should live at."""
    return slot.encoder.get_input_embeddings().weight.detach().float().norm(dim=1).mean().item()


def initial_vectors(
    slot: TextEncoderSlot, init_word: str | None, num_vectors: int, generator: torch.Generator
) -> torch.Tensor:
    """Starting point for the trained vectors, [n, D] float32 on CPU.

    An initializer word or phrase is tokenized; its token embeddings are spread over the vectors
    in order and cycled when there are more vectors than tokens (`red robot` over 3 vectors gives
    red, robot, red), so a multi-vector concept starts as a repeated description of itself.
    Without one, random directions scaled to the vocabulary's typical norm.
    """
    table = slot.encoder.get_input_embeddings().weight.detach().float().cpu()
    if init_word and init_word.strip():
        ids = slot.tokenizer(init_word.strip(), add_special_tokens=False).input_ids
        if not ids:
            raise ValueError(f"the initializer word {init_word!r} tokenizes to nothing: use a plain word")
        return torch.stack([table[ids[i % len(ids)]] for i in range(num_vectors)]).clone()
    random = torch.randn(num_vectors, table.shape[1], generator=generator)
    return random / random.norm(dim=1, keepdim=True) * typical_norm(slot)


def new_concept(
    model: BaseModel,
    token: str,
    init_word: str | None,
    num_vectors: int,
    concept_type: str,
    seed: int,
) -> Concept:
    """A fresh trainable concept for `model`, after checking the keyword and vector count.
    Its vectors live on the model's device, so the optimizer step never crosses to the CPU."""
    validate_token(token, model)
    if not 1 <= num_vectors <= MAX_VECTORS:
        raise ValueError(f"vectors per concept must be between 1 and {MAX_VECTORS}, not {num_vectors}")
    if concept_type not in ("object", "style"):
        raise ValueError(f"concept type must be 'object' or 'style', not {concept_type!r}")
    generator = torch.Generator().manual_seed(seed)
    vectors = {
        slot.kind: initial_vectors(slot, init_word, num_vectors, generator).to(model.device).requires_grad_(True)
        for slot in model.text_encoders
    }
    return Concept(token, vectors, concept_type, source="trained")
