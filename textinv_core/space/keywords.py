"""Keywords as the page handles them: suggested from a name, compared, found in prompts."""

from __future__ import annotations

import re

from ..concepts import Concept
from ..prompts import keyword_pattern, missing_keywords
from .uploads import escape


def bare_keyword(keyword: str) -> str:
    """`<Cat-Toy>` -> `cat-toy`: how keywords are compared when one may lack its brackets."""
    return keyword.strip().strip("<>").lower()


def suggest_keyword(name: str) -> str:
    """`Red Robot` -> `<red-robot>`: a keyword no tokenizer knows as one word."""
    slug = re.sub(r"[^a-z0-9]+", "-", (name or "").strip().strip("<>").lower()).strip("-")
    return f"<{slug}>" if slug else ""


def default_preview_prompt(keyword: str, concept_type: str) -> str:
    if concept_type == "style":
        return f"a painting of a house in the style of {keyword}"
    return f"a photo of {keyword}"


def keywords_in(prompts: list[str], concepts: list[Concept], refused: dict[str, str]) -> tuple[list[str], list[str]]:
    """(keywords of `concepts` used in `prompts`, keyword-like words no concept provides), each
    once, in order, as Markdown. A missing word that names a refused file or Hub concept says so."""
    text = "\n".join(prompts)
    pattern = keyword_pattern(concepts)
    used = [f"`{word}`" for word in dict.fromkeys(pattern.findall(text))] if pattern else []
    missing = []
    for word in missing_keywords(text, concepts, expected=refused):
        source = refused.get(bare_keyword(word))
        missing.append(f"`{word}`" + (f" ({escape(source)} could not be loaded)" if source else ""))
    return used, missing

