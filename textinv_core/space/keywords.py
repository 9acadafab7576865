"""Keywords as the page handles them: suggested from a name, compared, found in prompts."""

from __future__ import annotations

import re
import unicodedata

from ..concepts import Concept
from ..prompts import keyword_pattern, missing_keywords
from .fields import MAX_KEYWORD_CHARS
from .uploads import escape


def bare_keyword(keyword: str) -> str:
    """`<Cat-Toy>` -> `cat-toy`: how keywords are compared when one may lack its brackets."""
    return keyword.strip().strip("<>").lower()


# Latin letters that Unicode does not split into a base letter and an accent.
_UNDECOMPOSED = str.maketrans({"æ": "ae", "ø": "o", "ß": "ss", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th",
                               "ı": "i"})


def suggest_keyword(name: str) -> str:
    """`Red Robot` -> `<red-robot>`: a keyword no tokenizer knows as one word. Accents are
    dropped, not the letters under them (`café crème` -> `<cafe-creme>`), and a long name is cut
    at a word boundary so the suggestion is one that Train accepts (MAX_KEYWORD_CHARS)."""
    plain = unicodedata.normalize("NFKD", (name or "").lower().translate(_UNDECOMPOSED))
    plain = plain.encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", plain.strip().strip("<>").lower()).strip("-")
    room = MAX_KEYWORD_CHARS - 2  # the brackets
    if len(slug) > room:
        cut = slug[: room + 1].rsplit("-", 1)[0] if "-" in slug[: room + 1] else slug[:room]
        slug = cut[:room].strip("-")
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

