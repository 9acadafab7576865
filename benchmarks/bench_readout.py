#!/usr/bin/env python3
"""Does the readout's verdict agree with the pictures? A spread of runs on `builtin:toyworld`.

Each example concept is trained several ways: well (the defaults, with and without stop when
learned), partly (a handful of steps), broken (learning rate 1e-9) and from a poor starting word.
After each run the trainer's own readout gives its verdict (`quality.Readout`: by the pictures, with
the toy world's image tower, and by the loss alone, as SD 2.x / SDXL get it). Then the attribute
checker reads 16 fresh pictures of the keyword (four other prompt templates, four seeds each, none
of them the readout's) and says what they show:

- learned: the concept's attributes (kind and colour, or style) in at least 60 % of them;
- barely: in under 25 %, or in fewer than 20 points more than the starting word's pictures;
- partly: anything between.

A verdict agrees when "learned well" / "learned somewhat" / "barely changed" meets learned / partly /
barely. The table prints both measures' agreement in the same process; the loss-only one is the
baseline (the readout before pictures). Rows go to a JSON file as each run finishes and a rerun
skips those already there; `--report` prints from the JSON with the thresholds in `quality.py`.

    python benchmarks/bench_readout.py                 # 18 runs, about 15 CPU-minutes
    python benchmarks/bench_readout.py --seed 1 --json benchmarks/results-readout-seed1.json
    python benchmarks/bench_readout.py --report
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from textinv_core.generate import generate  # noqa: E402
from textinv_core.images import load_images  # noqa: E402
from textinv_core.likeness import Likeness  # noqa: E402
from textinv_core.models import load_base_model  # noqa: E402
from textinv_core.quality import Readout  # noqa: E402
from textinv_core.templates import templates_for  # noqa: E402
from textinv_core.toyworld import checker as attribute_checker  # noqa: E402
from textinv_core.toyworld import measure  # noqa: E402
from textinv_core.train import Finished, TrainConfig, Trainer  # noqa: E402

MODEL = "builtin:toyworld"
DEFAULT_JSON = REPO / "benchmarks" / "results-readout.json"
CONCEPTS = ("red-rocket", "teal-mug", "blocky-style")
POOR_START = {"red-rocket": "snow", "teal-mug": "night", "blocky-style": "fish"}
# name -> (what the run is meant to be, TrainConfig overrides)
RUNS = {
    "stop when learned": ("good", {"stop_when_learned": True}),
    "500 steps": ("good", {}),
    "3 steps": ("partial", {"steps": 3, "warmup_steps": 0}),
    "10 steps": ("partial", {"steps": 10, "warmup_steps": 0}),
    "lr 1e-9": ("broken", {"steps": 100, "learning_rate": 1e-9}),
    "poor start 150 steps": ("poor start", {"steps": 150}),
}
TRUTH_TEMPLATES = (1, 3, 6, 8)  # not template 0, which the readout draws with
TRUTH_SEEDS = (11, 12, 13, 14)
LEARNED_SHARE, BARELY_SHARE, BARELY_LIFT = 0.6, 0.25, 0.2
LEVEL_OF_TRUTH = {"learned": "well", "partly": "somewhat", "barely": "barely"}


def checker_share(model, checker, concept, attributes: dict, concept_type: str) -> float:
    """The share of 16 fresh pictures of `concept` that show all of `attributes`."""
    readings = []
    for template in TRUTH_TEMPLATES:
        prompt = templates_for(concept_type)[template].format(concept.token)
        for seed in TRUTH_SEEDS:
            readings += attribute_checker.read(checker, generate(model, prompt, [concept], steps=20, seed=seed))
    return sum(all(r[k] == v for k, v in attributes.items()) for r in readings) / len(readings)


def truth(share: float, start_share: float) -> str:
    if share < BARELY_SHARE or share - start_share < BARELY_LIFT:
        return "barely"
    return "learned" if share >= LEARNED_SHARE else "partly"


def run_one(model, checker, concept_name: str, run_name: str, seed: int) -> dict:
    folder = REPO / "examples" / concept_name
    info = json.loads((folder / "concept.json").read_text())
    intent, overrides = RUNS[run_name]
    init_word = POOR_START[concept_name] if intent == "poor start" else info["init_word"]
    config = TrainConfig(token=info["token"], init_word=init_word, concept_type=info["concept"], seed=seed,
                         **overrides)
    begin = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-readout-") as out:
        trainer = Trainer(model, load_images([folder]), config, Path(out))
        finished = next(e for e in trainer.run() if isinstance(e, Finished))
        seconds = time.perf_counter() - begin
    readout = finished.readout
    share = checker_share(model, checker, finished.concept, info["attributes"], info["concept"])
    start_share = checker_share(model, checker, trainer.start, info["attributes"], info["concept"])
    return {"concept": concept_name, "run": run_name, "intent": intent, "seed": seed, "init_word": init_word,
            "steps": finished.step, "kept_step": finished.learned_at or finished.step, "train_seconds": seconds,
            "start_loss": readout.start_loss, "learned_loss": readout.learned_loss,
            "likeness": vars(readout.likeness), "share": share, "start_share": start_share}


def judged(row: dict) -> dict:
    """A row's verdicts with today's thresholds, and what the checker saw."""
    likeness = Likeness(**row["likeness"])
    by_pictures = Readout(row["start_loss"], row["learned_loss"], likeness)
    by_loss = Readout(row["start_loss"], row["learned_loss"])
    seen = truth(row["share"], row["start_share"])
    return {"seen": seen, "pictures": by_pictures.level, "loss": by_loss.level, "score": likeness.score,
            "improvement": by_loss.improvement}


def report(rows: list[dict]) -> None:
    print(f"{'concept':13} {'run':28} {'steps':>5} {'checker':>11} {'seen':>8} {'score':>6} {'by pictures':>12} "
          f"{'loss %':>7} {'by loss':>8}")
    agree = {"pictures": 0, "loss": 0}
    for row in rows:
        j = judged(row)
        marks = {m: "" if LEVEL_OF_TRUTH[j["seen"]] == j[m] else " ✗" for m in agree}
        for m in agree:
            agree[m] += not marks[m]
        print(f"{row['concept']:13} {row['run']:28} {row['kept_step']:>5} "
              f"{100 * row['share']:>4.0f}% ({100 * row['start_share']:>2.0f}%) {j['seen']:>8} {j['score']:>6.2f} "
              f"{j['pictures'] + marks['pictures']:>12} {100 * j['improvement']:>7.2f} {j['loss'] + marks['loss']:>8}")
    n = len(rows)
    print(f"\nagreement with the checker over {n} runs: by pictures {agree['pictures']}/{n} "
          f"({100 * agree['pictures'] / n:.0f} %), by loss alone {agree['loss']}/{n} ({100 * agree['loss'] / n:.0f} %); "
          f"ratio {agree['pictures'] / max(1, agree['loss']):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concepts", default=",".join(CONCEPTS))
    parser.add_argument("--runs", default=",".join(RUNS), help="comma-separated run names (see RUNS)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--report", action="store_true", help="only print the table from the JSON")
    args = parser.parse_args()
    rows = json.loads(args.json.read_text()) if args.json.exists() else []
    if not args.report:
        model = load_base_model(MODEL)
        checker = measure.load_checker(model)
        for concept_name in args.concepts.split(","):
            for run_name in args.runs.split(","):
                if any(r["concept"] == concept_name and r["run"] == run_name and r["seed"] == args.seed for r in rows):
                    continue
                rows.append(run_one(model, checker, concept_name, run_name, args.seed))
                args.json.write_text(json.dumps(rows, indent=1))
                print(f"done: {concept_name} / {run_name}", flush=True)
    report([r for r in rows if r["seed"] == args.seed])


if __name__ == "__main__":
    main()
