#!/usr/bin/env python3
"""Time to a learned concept: quality against optimizer steps, image-steps and seconds, for our
trainer and for the reference Textual Inversion recipe, on `builtin:toyworld`.

Quality is measured the same way for every recipe, on the fp32 model: the share of the gap between
the starting word's loss and the best plain wording's loss (the oracle) that the learned vectors
close, on the concept's fixed evaluation set (`quality.evaluation_set`); at the end also what the
attribute checker sees in generated pictures: fidelity ("a photo of <keyword>" shows the concept's
kind and colour, or a style concept its style) and editability (composed prompts keep the asked
background).

Recipes (see RECIPES): ours at its defaults and variations of it; the reference algorithm
(`bench_train.ReferenceLoop`: the whole token table trained by AdamW with weight decay, the other
rows copied back every step, the VAE encoding every batch) at its README recipe and at its script
defaults. All run in one process, one after another, each concept in turn, so the ratio is taken
side by side on the same machine.

Seconds are the training thread's CPU time with torch on one thread (`--threads`), so another job on
the machine does not inflate them; evaluation pauses the clock. Results go to a JSON file as each run
finishes, and a rerun skips the runs already there, so a long benchmark survives being stopped.

    python benchmarks/bench_quality.py                               # the main table (about 40 CPU-minutes a seed)
    python benchmarks/bench_quality.py --set variations              # ours: lr, batch, vectors, init, ...
    python benchmarks/bench_quality.py --recipes ours,batch4-250 --concepts red-rocket --seeds 0,1
    python benchmarks/bench_quality.py --report                      # tables from the JSON only
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import torch  # noqa: E402

from textinv_core.concepts import Concept  # noqa: E402
from textinv_core.devices import choose_placement  # noqa: E402
from textinv_core.images import load_images  # noqa: E402
from textinv_core.latents import encode_images  # noqa: E402
from textinv_core.models import load_base_model  # noqa: E402
from textinv_core.quality import evaluation_loss, evaluation_set  # noqa: E402
from textinv_core.toyworld import checker as attribute_checker  # noqa: E402
from textinv_core.toyworld import measure  # noqa: E402
from textinv_core.train import DEFAULT_BATCH, DEFAULT_LR, DEFAULT_STEPS, TrainConfig, Trainer  # noqa: E402

MODEL = "builtin:toyworld"
DEFAULT_JSON = REPO / "benchmarks" / "results-quality.json"
EVAL_POINTS = 24  # the loss gap is read this many times per run, evenly in image-steps, and at step 0
CHECKER_POINTS = (3, 6, 12, 24)  # ... and the checker's rates at these of them (generating is slower)


@dataclass(frozen=True)
class Recipe:
    """One way to train. `algorithm` is ours (textinv_core.train.Trainer) or reference."""

    name: str
    algorithm: str = "ours"
    steps: int = DEFAULT_STEPS
    batch: int = 1
    accum: int = 1
    lr: float = DEFAULT_LR
    warmup: int | None = None  # None: ours takes 5 % of the steps
    schedule: str = "constant"
    weight_decay: float = 0.0  # reference only (ours trains the vectors without decay)
    vectors: int = 1
    init: str = "word"  # word, phrase (the concept's `phrase`) or random
    min_snr: float | None = None
    norm_weight: float = 0.0
    dtype: str = "fp32"  # the frozen modules' precision while training (evaluation is always fp32)
    max_image_steps: int | None = None  # cut a very long recipe short; its curve says where
    stop_when_learned: bool = False  # ours only: the plateau rule decides the end (one point at the end)

    @property
    def image_steps(self) -> int:
        return self.steps * self.batch * self.accum


# The diffusers README recipe: batch 1, accumulation 4, lr 5e-4 scaled by 4 (--scale_lr), constant,
# no warm-up, 3000 steps. The script's defaults: batch 16, lr 1e-4 scaled by 16, 500 warm-up steps,
# 5000 steps (80,000 image-steps: cut at 16,000 here; the whole schedule is ~26 CPU-minutes a concept).
REFERENCE_README = Recipe("reference-readme", "reference", steps=3000, accum=4, lr=2e-3, warmup=0, weight_decay=1e-2)
REFERENCE_SCRIPT = Recipe("reference-script", "reference", steps=5000, batch=16, lr=1.6e-3, warmup=500,
                          weight_decay=1e-2, max_image_steps=16_000)
OURS = Recipe("ours", steps=DEFAULT_STEPS, batch=DEFAULT_BATCH)  # today's defaults: 500 steps of 4 images
OLD = Recipe("1000x1", steps=1000, batch=1)  # the defaults before these measurements; the variations vary it
RECIPES = {r.name: r for r in [
    OURS, REFERENCE_README, REFERENCE_SCRIPT, OLD,
    replace(OURS, name="ours-stop", stop_when_learned=True),
    replace(OLD, name="500x1", steps=500),
    replace(OLD, name="2000x1", steps=2000),
    replace(OLD, name="250x4", steps=250, batch=4),
    replace(OLD, name="1000x1-lr1e-3", lr=1e-3),
    replace(OLD, name="1000x1-lr2e-2", lr=2e-2),
    replace(OLD, name="1000x1-cosine", schedule="cosine"),
    replace(OLD, name="1000x1-vectors4", vectors=4),
    replace(OLD, name="1000x1-init-phrase", init="phrase"),
    replace(OLD, name="1000x1-init-random", init="random"),
    replace(OLD, name="1000x1-min-snr5", min_snr=5.0),
    replace(OLD, name="1000x1-norm-pull", norm_weight=1e-3),
    replace(OLD, name="1000x1-bf16", dtype="bf16"),
    replace(OURS, name="ours-bf16", dtype="bf16"),
]}
SETS = {
    "main": ["ours", "ours-stop", "reference-readme", "reference-script"],
    "variations": ["1000x1", "500x1", "2000x1", "250x4", "ours", "1000x1-lr1e-3", "1000x1-lr2e-2", "1000x1-cosine",
                   "1000x1-vectors4", "1000x1-init-phrase", "1000x1-init-random", "1000x1-min-snr5",
                   "1000x1-norm-pull", "1000x1-bf16", "ours-bf16"],
}


@dataclass
class ConceptSet:
    """An example set from examples/ and what the benchmark needs to know about it."""

    name: str
    token: str
    init_word: str
    phrase: str  # a longer starting description, for the init-phrase variation
    concept_type: str
    attributes: dict = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return REPO / "examples" / self.name


def example_sets() -> dict[str, ConceptSet]:
    phrases = {"red-rocket": "red toy", "teal-mug": "blue mug", "blocky-style": "sketch painting"}
    sets = {}
    for meta_file in sorted((REPO / "examples").glob("*/concept.json")):
        meta = json.loads(meta_file.read_text())
        name = meta_file.parent.name
        sets[name] = ConceptSet(name, meta["token"], meta["init_word"], phrases.get(name, meta["init_word"]),
                                meta["concept"], meta["attributes"])
    return sets


# -- one run ----------------------------------------------------------------------------------------


class Bench:
    """The fp32 model every run is measured on, and per concept its evaluation set and oracle."""

    def __init__(self, per_prompt: int):
        self.model = load_base_model(MODEL, choose_placement("cpu", "fp32"))
        self.checker = measure.load_checker(self.model)
        self.per_prompt = per_prompt
        self._models = {"fp32": self.model}
        self._concepts: dict[str, tuple] = {}

    def training_model(self, dtype: str):
        if dtype not in self._models:
            self._models[dtype] = load_base_model(MODEL, choose_placement("cpu", dtype))
        return self._models[dtype]

    def concept_data(self, concept: ConceptSet) -> tuple:
        """(images, evaluation set, the starting word's loss, oracle) for a concept, computed once.
        Every recipe's gap is measured from the plain starting word, whatever it starts from."""
        if concept.name not in self._concepts:
            images = load_images([concept.folder])
            cache = encode_images(self.model, images, self.model.resolution, flip=True)
            evalset = evaluation_set(self.model, cache, concept.concept_type)
            start = evaluation_loss(self.model, evalset, concept.init_word)
            oracle = measure.oracle(self.model, evalset, concept.concept_type)
            self._concepts[concept.name] = (images, evalset, start, oracle)
        return self._concepts[concept.name]

    def loss(self, concept: ConceptSet, learned: Concept) -> float:
        return evaluation_loss(self.model, self.concept_data(concept)[1], learned.token, [learned])

    def checker_rates(self, concept: ConceptSet, learned: Concept) -> dict:
        """Fidelity and editability as the attribute checker sees them, on the fp32 model."""
        token, n = learned.token, self.per_prompt
        attrs = concept.attributes
        if concept.concept_type == "style":
            fidelity_prompt = f"a painting in the style of {token}"
            composed = [(f"a red car on the beach in the style of {token}", "beach"),
                        (f"a blue robot in the snow in the style of {token}", "snow")]
        else:
            fidelity_prompt = f"a photo of {token}"
            composed = [(f"a photo of {token} on the beach", "beach"), (f"a photo of {token} at night", "night")]
        seen = measure.readings(self.model, self.checker, fidelity_prompt, [learned], 2 * n, seed=1)
        shows = [all(r[k] == v for k, v in attrs.items()) for r in seen]
        kept = []
        for i, (prompt, background) in enumerate(composed):
            got = measure.readings(self.model, self.checker, prompt, [learned], n, seed=10 + i)
            kept += [r["background"] == background and all(r[k] == v for k, v in attrs.items() if k != "background")
                     for r in got]
        return {"fidelity": sum(shows) / len(shows), "editability": sum(kept) / len(kept),
                "attributes": attribute_checker.agreement(seen, **attrs)}


def eval_marks(recipe: Recipe) -> dict[int, bool]:
    """Optimizer steps after which quality is read, evenly spread in image-steps up to the last,
    each with whether the checker reads generated pictures there too."""
    total = min(recipe.image_steps, recipe.max_image_steps or recipe.image_steps)
    per_step = recipe.batch * recipe.accum
    marks: dict[int, bool] = {}
    for k in range(1, EVAL_POINTS + 1):
        step = max(1, round(total * k / EVAL_POINTS / per_step))
        marks[step] = marks.get(step, False) or k in CHECKER_POINTS
    return marks


def start_words(recipe: Recipe, concept: ConceptSet) -> str | None:
    return {"word": concept.init_word, "phrase": concept.phrase, "random": None}[recipe.init]


def ours_loop(bench: Bench, recipe: Recipe, concept: ConceptSet, seed: int, out: Path):
    """(step function, current learned concept, starting concept) for our trainer."""
    config = TrainConfig(
        token=concept.token, init_word=start_words(recipe, concept), num_vectors=recipe.vectors,
        concept_type=concept.concept_type, steps=recipe.steps, learning_rate=recipe.lr,
        lr_schedule=recipe.schedule, warmup_steps=recipe.warmup, batch_size=recipe.batch, grad_accum=recipe.accum,
        seed=seed, min_snr_gamma=recipe.min_snr, norm_weight=recipe.norm_weight, evaluate=False,
        stop_when_learned=recipe.stop_when_learned,
    )
    images = bench.concept_data(concept)[0]
    trainer = Trainer(bench.training_model(recipe.dtype), images, config, out)
    if recipe.stop_when_learned:  # the whole run is one "step": the rule's own readings are part of its cost
        return lambda: list(trainer.run()), trainer.concept.detached, trainer.start, lambda: trainer.step
    return trainer.train_step, trainer.concept.detached, trainer.start, None


def reference_loop(bench: Bench, recipe: Recipe, concept: ConceptSet, seed: int):
    """The same for the reference algorithm, on its own copy of the pipeline (it grows the table)."""
    from diffusers import DiffusionPipeline

    from bench_train import Case, ReferenceLoop, ReferenceRecipe, place_like_reference
    from textinv_core.devices import DTYPES
    from textinv_core.models import resolve_model_path

    pipe = DiffusionPipeline.from_pretrained(resolve_model_path(MODEL))
    pipe.set_progress_bar_config(disable=True)
    place_like_reference(pipe, torch.device("cpu"), DTYPES[recipe.dtype])
    case = Case(MODEL, bench.model.resolution, recipe.batch, recipe.dtype, 0, recipe.steps)
    settings = ReferenceRecipe(concept.token, concept.init_word, concept.concept_type, recipe.lr,
                               recipe.weight_decay, recipe.warmup or 0, recipe.steps, recipe.accum, seed)
    loop = ReferenceLoop(pipe, bench.concept_data(concept)[0], case, torch.device("cpu"), settings)
    kind = bench.model.text_encoders[0].kind

    def learned() -> Concept:
        return Concept(concept.token, {kind: loop.learned_row()}, concept.concept_type)

    return loop.step, learned, learned()


def run_recipe(bench: Bench, recipe: Recipe, concept: ConceptSet, seed: int) -> dict:
    """Train one recipe on one concept and read its quality curve."""
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        if recipe.algorithm == "ours":
            step, learned, start, steps_done = ours_loop(bench, recipe, concept, seed, Path(out))
        else:
            step, learned, start, steps_done = reference_loop(bench, recipe, concept, seed)
        _, _, word_loss, oracle = bench.concept_data(concept)
        start_loss = bench.loss(concept, start)
        curve = [{"step": 0, "image_steps": 0, "seconds": 0.0, "loss": start_loss}]
        marks, seconds, per_step = eval_marks(recipe), 0.0, recipe.batch * recipe.accum
        if recipe.stop_when_learned:
            marks = {1: True}
        last = max(marks)
        for i in range(1, last + 1):
            began = time.thread_time()
            step()
            seconds += time.thread_time() - began
            if i in marks:
                loss = bench.loss(concept, learned())
                done = steps_done() if steps_done else i
                curve.append({"step": done, "image_steps": done * per_step, "seconds": seconds, "loss": loss})
                if marks[i]:
                    curve[-1] |= bench.checker_rates(concept, learned())
                print(f"  {recipe.name} {concept.name} seed {seed}: step {i}/{recipe.steps} "
                      f"{seconds:.0f} s loss {loss:.5f} (start word {word_loss:.5f}, oracle {oracle.loss:.5f})",
                      file=sys.stderr, flush=True)
        vectors = {k: v.tolist() for k, v in learned().vectors.items()}
    final = curve[-1]
    return {"recipe": recipe.name, "concept": concept.name, "seed": seed, "settings": asdict(recipe),
            "oracle": oracle.words, "oracle_loss": oracle.loss, "word_loss": word_loss, "curve": curve,
            "finished": last == recipe.steps or recipe.stop_when_learned, "fidelity": final["fidelity"],
            "editability": final["editability"], "vectors": vectors}


# -- reading the results -----------------------------------------------------------------------------


def improvement(run: dict, point: dict) -> float:
    """How much better than the plain starting word a point of the curve explains the images
    (the readout's measure): defined for every concept, also where no plain wording beats the
    starting word (then the oracle gap is not)."""
    return (run["word_loss"] - point["loss"]) / run["word_loss"]


def gap(run: dict, point: dict) -> float | None:
    """The share of the starting word's loss gap to the oracle that a point closed; None where
    the oracle is the starting word itself."""
    if run["word_loss"] - run["oracle_loss"] < 1e-4 * run["word_loss"]:
        return None
    return measure.gap_closed(run["word_loss"], point["loss"], run["oracle_loss"])


def time_to(run: dict, level: float) -> dict | None:
    """The first point of a run's curve whose improvement reaches `level` (None: never)."""
    return next((p for p in run["curve"] if improvement(run, p) >= level), None)


def summarize(runs: list[dict], reference: str) -> list[dict]:
    """Per recipe (pooled over concepts and seeds): final quality, time to 90 % of its own final
    improvement, and time to the reference's final improvement on the same concept and seed."""
    ref_final = {(r["concept"], r["seed"]): (improvement(r, r["curve"][-1]), r["curve"][-1]["seconds"])
                 for r in runs if r["recipe"] == reference}
    rows = {}
    for run in runs:
        final = run["curve"][-1]
        own = time_to(run, 0.9 * improvement(run, final))
        target = ref_final.get((run["concept"], run["seed"]))
        to_ref = time_to(run, target[0]) if target else None
        to_ref95 = time_to(run, 0.95 * target[0]) if target else None
        row = rows.setdefault(run["recipe"], {"recipe": run["recipe"], "runs": []})
        row["runs"].append({
            "concept": run["concept"], "seed": run["seed"], "improvement": improvement(run, final),
            "gap": gap(run, final), "seconds": final["seconds"], "image_steps": final["image_steps"],
            "fidelity": run["fidelity"], "editability": run["editability"],
            "to_90_seconds": own["seconds"] if own else None, "to_90_steps": own["step"] if own else None,
            "to_ref_seconds": to_ref["seconds"] if to_ref else None,
            "to_ref95_seconds": to_ref95["seconds"] if to_ref95 else None,
            "ref_seconds": target[1] if target else None, "finished": run["finished"],
        })
    return list(rows.values())


def mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _fmt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def print_table(rows: list[dict], reference: str) -> None:
    print(f"\n| recipe | runs | image-steps | CPU s | improvement | oracle gap closed | fidelity | editability | "
          f"s to 90 % of own | s to 95 % of {reference}'s final | s to {reference}'s final | "
          f"speed-up to it vs {reference}'s whole run |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        runs = row["runs"]
        reached = [r for r in runs if r["to_ref_seconds"] is not None]
        near = [r for r in runs if r["to_ref95_seconds"] is not None]
        speedups = [r["ref_seconds"] / r["to_ref_seconds"] for r in reached if r["to_ref_seconds"] > 0]
        cut = "" if all(r["finished"] for r in runs) else " (cut short)"
        print(f"| {row['recipe']}{cut} | {len(runs)} | {_fmt(mean([r['image_steps'] for r in runs]), '.0f')} | "
              f"{_fmt(mean([r['seconds'] for r in runs]), '.0f')} | {_fmt(mean([r['improvement'] for r in runs]), '.2%')} | "
              f"{_fmt(mean([r['gap'] for r in runs]), '.2f')} | "
              f"{_fmt(mean([r['fidelity'] for r in runs]), '.0%')} | {_fmt(mean([r['editability'] for r in runs]), '.0%')} | "
              f"{_fmt(mean([r['to_90_seconds'] for r in runs]), '.1f')} | "
              f"{_fmt(mean([r['to_ref95_seconds'] for r in near]), '.1f')} ({len(near)}/{len(runs)} reached) | "
              f"{_fmt(mean([r['to_ref_seconds'] for r in reached]), '.1f')} ({len(reached)}/{len(runs)} reached) | "
              f"{_fmt(mean(speedups), '.0f')}× |")


def print_per_concept(runs: list[dict]) -> None:
    print("\n| recipe | concept | seed | improvement | oracle gap closed | fidelity | editability | CPU s |")
    print("|---|---|---|---|---|---|---|---|")
    for run in runs:
        final = run["curve"][-1]
        print(f"| {run['recipe']} | {run['concept']} | {run['seed']} | {improvement(run, final):.2%} | "
              f"{_fmt(gap(run, final), '.2f')} | {run['fidelity']:.0%} | {run['editability']:.0%} | {final['seconds']:.0f} |")


# -- driver -------------------------------------------------------------------------------------------


def load_runs(path: Path) -> list[dict]:
    """The runs in a results file, each marked with the file it came from."""
    runs = json.loads(path.read_text())["runs"] if path.exists() else []
    return [run | {"file": str(path)} for run in runs]


def save_runs(path: Path, runs: list[dict], environment: dict) -> None:
    path.write_text(json.dumps({"environment": environment, "runs": runs}, indent=1))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", choices=sorted(SETS), default="main", help="a named list of recipes")
    parser.add_argument("--recipes", help=f"comma-separated, instead of --set: {', '.join(RECIPES)}")
    parser.add_argument("--concepts", default="red-rocket,teal-mug,blocky-style")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--reference", default="reference-readme", help="the recipe the speed-up is against")
    parser.add_argument("--per-prompt", type=int, default=4, help="pictures per composed prompt (fidelity: twice)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, nargs="+", default=[DEFAULT_JSON],
                        help="results files: runs are read from all and written to the first")
    parser.add_argument("--report", action="store_true", help="print the tables from --json and run nothing")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs = [run for path in args.json for run in load_runs(path)]
    names = args.recipes.split(",") if args.recipes else SETS[args.set]
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        raise SystemExit(f"unknown recipe(s) {', '.join(unknown)}: choose from {', '.join(RECIPES)}")
    sets = example_sets()
    concepts = [sets[name] for name in args.concepts.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    if not args.report:
        torch.set_num_threads(args.threads)
        environment = {"threads": args.threads, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}
        bench = Bench(args.per_prompt)
        done = {(r["recipe"], r["concept"], r["seed"]) for r in runs}
        # concept by concept, every recipe in turn, so the recipes of one concept run close together
        for concept in concepts:
            for seed in seeds:
                for name in names:
                    if (name, concept.name, seed) in done:
                        continue
                    runs.append(run_recipe(bench, RECIPES[name], concept, seed) | {"file": str(args.json[0])})
                    save_runs(args.json[0], [r for r in runs if r.get("file", str(args.json[0])) == str(args.json[0])],
                              environment)
    unique = {}  # a run repeated in two files (the same recipe, concept and seed) counts once
    for run in runs:
        unique.setdefault((run["recipe"], run["concept"], run["seed"]), run)
    chosen = [r for r in unique.values() if r["recipe"] in names or r["recipe"] == args.reference]
    chosen = [r for r in chosen if r["concept"] in args.concepts.split(",") and r["seed"] in seeds]
    print_table(summarize(chosen, args.reference), args.reference)
    print_per_concept(chosen)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
