#!/usr/bin/env python3
"""How faithfully `builtin:toyworld` draws what a prompt asks, and how fast it is. (How well
concepts are learned on it, against the reference recipes: `bench_quality.py`.)

Base model: for prompts in the world's vocabulary ("a red robot on the beach", every object with
several colours and backgrounds, and every named style), pictures are generated and read by the
attribute checker; the table gives the share that shows each asked attribute, next to the
checker's own accuracy on rendered scenes (its ceiling) and the rate a blind guess would reach.

    python benchmarks/bench_toyworld.py                 # 4 pictures per prompt, guidance 5
    python benchmarks/bench_toyworld.py --per-prompt 8 --guidance 3 5 7.5
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from textinv_core.generate import generate  # noqa: E402
from textinv_core.models import load_base_model  # noqa: E402
from textinv_core.toyworld import checker as attribute_checker  # noqa: E402
from textinv_core.toyworld import measure, world  # noqa: E402


def checker_accuracy(checker, count: int = 512) -> dict[str, float]:
    """The checker on rendered scenes it never saw (another seed): the ceiling of every rate below."""
    found = world.scenes(424242, count)
    readings = attribute_checker.read(checker, world.to_array([world.render(s) for s in found]))
    return {name: sum(r[name] == getattr(s, name) for r, s in zip(readings, found)) / count
            for name in attribute_checker.HEADS}


def attribute_rates(model, checker, per_prompt: int, guidance: float) -> dict[str, float]:
    """The share of generated pictures that show the asked kind, colour, background and style."""
    hits = {"kind": [], "color": [], "background": [], "style": []}
    for i, asked in enumerate(measure.prompt_grid()):
        got = measure.readings(model, checker, measure.ask(asked), count=per_prompt, seed=i, guidance=guidance)
        for name in ("kind", "color", "background"):
            hits[name] += [r[name] == asked[name] for r in got]
    for i, style in enumerate(world.STYLES):
        for kind in world.OBJECTS[:3]:
            got = measure.readings(model, checker, f"a {kind}, {style} style", count=per_prompt, seed=100 + i,
                                   guidance=guidance)
            hits["style"] += [r["style"] == style for r in got]
    return {name: sum(v) / len(v) for name, v in hits.items()}


def timings(model) -> dict[str, float]:
    started = time.perf_counter()
    load_base_model("builtin:toyworld")
    loaded = time.perf_counter() - started
    generate(model, "a red robot", steps=20, seed=0)  # warm-up
    started = time.perf_counter()
    for seed in range(3):
        generate(model, "a red robot on the beach", steps=20, seed=seed)
    return {"load_s": loaded, "image_20_steps_s": (time.perf_counter() - started) / 3}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-prompt", type=int, default=4)
    parser.add_argument("--guidance", type=float, nargs="+", default=[5.0])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = load_base_model("builtin:toyworld")
    checker = measure.load_checker(model)
    ceiling = checker_accuracy(checker)
    chance = {name: 1 / len(values) for name, values in attribute_checker.HEADS.items()}
    chance["style"] = 1 / (len(world.STYLES) + 1)
    results = {"checker_on_renders": ceiling, "chance": chance, "timings": timings(model), "rates": {}}
    print(f"load {results['timings']['load_s']:.2f} s · one 64 px image, 20 steps: "
          f"{results['timings']['image_20_steps_s']:.2f} s")
    print("\n| attribute | chance | checker on renders | " + " | ".join(f"generated, guidance {g}" for g in args.guidance) + " |")
    print("|---|---|---|" + "---|" * len(args.guidance))
    for g in args.guidance:
        results["rates"][str(g)] = attribute_rates(model, checker, args.per_prompt, g)
    for name in ("kind", "color", "background", "style"):
        cells = " | ".join(f"{results['rates'][str(g)][name]:.0%}" for g in args.guidance)
        print(f"| {name} | {results['chance'][name]:.0%} | {results['checker_on_renders'][name]:.0%} | {cells} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
