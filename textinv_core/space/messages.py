"""What a visitor reads when something is refused: their file's name, never the server's insides.

The library's messages are written for the command line, where a full path is what its user typed.
In the web app the same message would show the server's temp folder (`/tmp/gradio/1b79…/x.pt`)
and, here and there, a Python class name. `for_visitor()` rewrites any message for the page: every
server path becomes the file name the visitor knows, class names in parentheses are dropped, and
`for_toast()` also drops the Markdown backticks that a toast would show literally.

`demo_refusal()` explains the one refusal that reads like a contradiction on the built-in demo
model: no real community embedding fits its small text encoder, so it says that, and what would.
"""

from __future__ import annotations

import html
import re
from typing import Iterable

from ..readers import family_of_width

# An absolute path that stands alone (not inside a URL or a repo id): /a/b/c.pt -> c.pt
_SERVER_PATH = re.compile(r"(?<![\w:/.~-])/(?:[^\s'\"/:]+/)+([^\s'\"/]+)")
# Python exception names the library sometimes gives as a reason: "(UnidentifiedImageError)"
_CLASS_NAME = re.compile(r"\s*\((?:[a-z_]+\.)*[A-Z][A-Za-z]*(?:Error|Exception|Timeout|Warning)\)")

# What to run the app with to use files made for each family.
MODEL_FOR_FAMILY = {
    "SD 1.x": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "SD 2.x": "stabilityai/stable-diffusion-2-1-base",
    "SDXL": "stabilityai/stable-diffusion-xl-base-1.0",
}


def for_visitor(text: str, names: dict[str, str] | None = None) -> str:
    """`text` with each server path in `names` (path -> the name the visitor gave it) replaced,
    any other absolute path cut to its last part, and exception class names removed."""
    for path, name in (names or {}).items():
        text = text.replace(path, name)
    text = _SERVER_PATH.sub(lambda match: match.group(1), text)
    return _CLASS_NAME.sub("", text)


def for_toast(text: str) -> str:
    """A message for a toast, which shows HTML but not Markdown: escaped, without backticks."""
    return html.escape(text.replace("`", ""), quote=False)


def for_markdown(text: str) -> str:
    """A message for a Markdown status box: keywords like <cat-toy> escaped so they don't read as
    HTML tags, except inside `code`, where Markdown shows them as they are."""
    parts = text.split("`")
    for i, part in enumerate(parts):
        in_code = i % 2 == 1 and i < len(parts) - 1  # between two backticks
        parts[i] = part if in_code else html.escape(part, quote=False)
    return "`".join(parts)


def file_family(widths: dict[str, int]) -> str:
    """The family an embedding's widths (per encoder kind, or `single`) were made for."""
    if set(widths) == {"clip_l", "clip_g"}:
        return "SDXL"
    return family_of_width(next(iter(widths.values())))


def demo_refusal(file_name: str, widths: dict[str, int], model_spec: str, model_widths: Iterable[int]) -> str | None:
    """Why a file can't be used on the built-in demo model, in words; None when it fits (a concept
    trained on the demo model itself)."""
    if set(widths.values()) & set(model_widths):
        return None
    family = file_family(widths)
    real_model = MODEL_FOR_FAMILY.get(family, MODEL_FOR_FAMILY["SD 1.x"])
    return (
        f"{file_name} is an embedding for {family} models, but this app is running its built-in demo model "
        f"({model_spec}), a toy with its own small text encoder: real embedding files never fit it, only "
        f"concepts trained on this demo. To use real files, run the app with TEXTINV_MODEL={real_model} "
        f"(or another {family} model)."
    )
