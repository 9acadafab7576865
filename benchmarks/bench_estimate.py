#!/usr/bin/env python3
"""How far off the Train tab's time estimate is: estimated against actual wall time of runs, as
the app runs them (`driving.train_chunk`: preparing, readings, previews, the readout at the end).

Each case runs in a fresh process, as a new server would: first the estimate it makes before any
run (measured: a few steps, a reading and a preview on a blank image), then that run, timed and
recorded as the app records it, then the *learned* estimate for the next run and that run. A busy
case does the same while another training run goes on in a second process.

    python benchmarks/bench_estimate.py                          # toyworld, idle and busy, app defaults
    python benchmarks/bench_estimate.py --models builtin:tiny-sd --steps 300 --batch 1 --preview-every 0
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

IMAGES = REPO / "examples" / "red-rocket"
LOAD_SETTLE_SECONDS = 20  # the second process loads its model and starts training first


def timed_run(model, images, config) -> tuple[float, object]:
    from textinv_core.space.driving import Timing, train_chunk

    with tempfile.TemporaryDirectory() as out:
        began = time.perf_counter()
        timing = [e for e in train_chunk(model, images, config, Path(out)) if isinstance(e, Timing)][-1]
        return time.perf_counter() - began, timing


def one_case(args: argparse.Namespace) -> list[dict]:
    """A new server's first two runs: the measured, then the learned estimate, each against its run."""
    from textinv_core.images import load_images
    from textinv_core.models import load_base_model
    from textinv_core.space import estimate
    from textinv_core.train import TrainConfig

    model, images = load_base_model(args.one), load_images([IMAGES])
    config = TrainConfig(token="<red-rocket>", init_word="toy", steps=args.steps, batch_size=args.batch,
                         preview_every=args.preview_every, preview_prompt="a photo of <red-rocket>",
                         stop_when_learned=args.stop_when_learned == "on", autosave_seconds=60)
    rows = []
    for kind in ("measured", "learned"):
        est = estimate.estimate_training(model, args.steps, args.batch, 1, model.resolution, args.preview_every,
                                         stop_when_learned=config.stop_when_learned)
        actual, timing = timed_run(model, images, config)
        estimate.record_run(model, model.resolution, args.batch, 1, timing.steps, timing.previews, timing.finish,
                            timing.readings, timing.prepare, config.stop_when_learned)
        rows.append(dict(kind=kind, estimate=est.seconds, actual=actual))
        print(f"{args.one} {'busy' if args.busy else 'idle'}: {kind} estimate {est.seconds:.1f} s, actual {actual:.1f} s",
              file=sys.stderr, flush=True)
    return rows


def busy_load(folder: Path) -> subprocess.Popen:
    """Another training run, in a process of its own, that goes on until it is killed."""
    command = [sys.executable, "-m", "textinv_core", "train", "--model", "builtin:toyworld", "--images", str(IMAGES),
               "--token", "<load>", "--steps", "1000000", "--output", str(folder)]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_case(args: argparse.Namespace, spec: str, busy: bool) -> list[dict]:
    command = [sys.executable, __file__, "--one", spec, "--steps", str(args.steps), "--batch", str(args.batch),
               "--preview-every", str(args.preview_every), "--stop-when-learned", args.stop_when_learned]
    with tempfile.TemporaryDirectory() as folder:
        load = busy_load(Path(folder)) if busy else None
        try:
            if load:
                time.sleep(LOAD_SETTLE_SECONDS)
            out = subprocess.run(command + ["--busy"] * busy, capture_output=True, text=True, check=True).stdout
        finally:
            if load:
                load.kill()
                load.wait()
    return [row | dict(model=spec, load="busy" if busy else "idle") for row in json.loads(out)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="builtin:toyworld")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--preview-every", type=int, default=25)
    parser.add_argument("--stop-when-learned", choices=("on", "off"), default="on",
                        help="the app's default is on; at 150 steps or fewer the rule can't end a run early")
    parser.add_argument("--load", default="idle,busy", help="idle, busy or both")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child: one case, rows as JSON on stdout
    parser.add_argument("--busy", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one_case(args)))
        return 0
    rows = [row for spec in args.models.split(",") for load in args.load.split(",")
            for row in run_case(args, spec, load == "busy")]
    print(f"\n{args.steps} steps, batch {args.batch}, preview every {args.preview_every or '—'}, "
          f"stop when learned {args.stop_when_learned}\n")
    print("| model | server | estimate | estimated s | actual s | estimate / actual |\n|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['model']} | {row['load']} | {row['kind']} | {row['estimate']:.1f} | {row['actual']:.1f} | "
              f"{row['estimate'] / row['actual']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
