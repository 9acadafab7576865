"""The toy world and `builtin:toyworld`, the small model of it that this project trains itself.

`world` draws and captions the scenes, `build` trains the model on them, `checker` reads what a
picture shows, and `measure` turns that into rates. A model folder is a toy world when it holds
`world.json` (its vocabulary) beside the diffusers pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..models import BaseModel

WORLD_FILE = "world.json"


def model_folder(model: BaseModel) -> Path | None:
    """The folder of a toy-world model, None for any other model."""
    folder = model.pipe.config.get("_name_or_path")
    if folder and (Path(folder) / WORLD_FILE).exists():
        return Path(folder)
    return None


def vocabulary(model: BaseModel) -> dict | None:
    """The words a toy-world model knows (`world.json`), None for any other model."""
    folder = model_folder(model)
    return json.loads((folder / WORLD_FILE).read_text()) if folder else None


def plural(word: str) -> str:
    """English plurals of the world's object words (a fish, two fish)."""
    return word if word in ("fish", "sheep") else word + "es" if word.endswith(("s", "sh", "ch", "x")) else word + "s"


def summary(vocab: dict) -> str:
    """What the world holds, in one sentence for people."""
    phrases = list(vocab["background_phrases"].values())
    return (f"{', '.join(plural(o) for o in vocab['objects'][:-1])} and toys, in {len(vocab['colors'])} colours "
            f"({', '.join(vocab['colors'])}), {', '.join(phrases[:-1])} or {phrases[-1]}, plain or in "
            f"{', '.join(vocab['styles'])} style")
