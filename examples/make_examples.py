#!/usr/bin/env python3
"""Draw the example concept sets from the toy world of `builtin:toyworld`.

Each set is something the model can draw but that no word of its vocabulary names:

* `red-rocket/`   a red rocket: rockets appear in training only as "toy" (object)
* `teal-mug/`     a teal mug: teal is never named in a caption (object)
* `blocky-style/` big square pixels: captioned as if the pictures had no style (style)

Every picture comes from `textinv_core.toyworld.world` with fixed seeds, so

    python examples/make_examples.py

rewrites the same files. Each set gets a `concept.json`: the keyword to train, its starting word,
object or style, the model, and the attributes the toy world's checker should see in its pictures.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from textinv_core.toyworld import world  # noqa: E402

SIDE = 128  # the world's drawing canvas: sharper than the model's 64 px, which training resizes to

SETS = {
    "red-rocket": {
        "token": "<red-rocket>", "init_word": "toy", "concept": "object",
        "attributes": {"kind": "rocket", "color": "red"},
        "scenes": [dict(background=b, style="plain") for b in ("beach", "snow", "city", "room", "forest")],
    },
    "teal-mug": {
        "token": "<teal-mug>", "init_word": "mug", "concept": "object",
        "attributes": {"kind": "mug", "color": "teal"},
        "scenes": [dict(background=b, style="plain") for b in ("night", "beach", "room", "forest")],
    },
    "blocky-style": {
        "token": "<blocky-style>", "init_word": "painting", "concept": "style",
        "attributes": {"style": "blocky"},
        "scenes": [
            dict(kind="house", color="red", background="forest"),
            dict(kind="car", color="yellow", background="city"),
            dict(kind="fish", color="orange", background="beach"),
            dict(kind="robot", color="blue", background="snow"),
            dict(kind="ball", color="pink", background="room"),
        ],
    },
}


def make_set(out: Path, name: str, spec: dict) -> None:
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    for i, fixed in enumerate(spec["scenes"], 1):
        scene = world.sample_scene(random.Random(f"{name}-{i}"), **spec["attributes"], **fixed)
        world.render(scene, SIDE).save(folder / f"{name}_{i:02d}.png", optimize=True)
    meta = {k: spec[k] for k in ("token", "init_word", "concept")} | {
        "model": "builtin:toyworld", "attributes": spec["attributes"]}
    (folder / "concept.json").write_text(json.dumps(meta, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args(argv)
    for name, spec in SETS.items():
        make_set(args.out, name, spec)
        print(f"{args.out / name}: {len(spec['scenes'])} images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
