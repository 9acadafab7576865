#!/usr/bin/env python3
"""How far off the Train tab's time estimate is: estimated against actual wall time of runs, as
the app runs them (`session.train_chunk`, previews included, the readout at the end).

For each case the estimate is taken first as a new server would make it (measured: a few steps
on a blank image), then the run is timed and recorded, as the app records it, and the next run's
estimate is the *learned* one. The table gives estimate / actual for both.

    python benchmarks/bench_estimate.py                    # tiny-sd and toyworld, 2 settings each
    python benchmarks/bench_estimate.py --models builtin:toyworld --steps 300
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from textinv_core import estimate  # noqa: E402
from textinv_core.images import load_images  # noqa: E402
from textinv_core.models import load_base_model  # noqa: E402
from textinv_core.space.driving import Timing, train_chunk  # noqa: E402
from textinv_core.train import TrainConfig  # noqa: E402

IMAGES = REPO / "examples" / "red-rocket"


def timed_run(model, images, steps: int, batch: int, preview_every: int) -> tuple[float, Timing]:
    config = TrainConfig(token="<red-rocket>", init_word="toy", steps=steps, batch_size=batch,
                         preview_every=preview_every, preview_prompt="a photo of <red-rocket>")
    with tempfile.TemporaryDirectory() as out:
        began = time.perf_counter()
        timing = [e for e in train_chunk(model, images, config, Path(out)) if isinstance(e, Timing)][-1]
        return time.perf_counter() - began, timing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="builtin:tiny-sd,builtin:toyworld")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args(argv)
    images = load_images([IMAGES])
    rows = []
    for spec in args.models.split(","):
        model = load_base_model(spec)
        for batch, preview_every in ((1, 0), (2, 50)):
            for kind in ("measured", "learned"):
                est = estimate.estimate_training(model, args.steps, batch, 1, model.resolution, preview_every)
                actual, timing = timed_run(model, images, args.steps, batch, preview_every)
                estimate.record_run(model, model.resolution, batch, 1, timing.steps, timing.previews, timing.finish)
                rows.append((spec, batch, preview_every, kind, est.seconds, actual))
                print(f"{spec} batch {batch} previews every {preview_every}: {kind} estimate {est.seconds:.1f} s, "
                      f"actual {actual:.1f} s", file=sys.stderr, flush=True)
    print("\n| model | batch | preview every | estimate | estimated s | actual s | estimate / actual |\n"
          "|---|---|---|---|---|---|---|")
    for spec, batch, every, kind, est, actual in rows:
        print(f"| {spec} | {batch} | {every or '—'} | {kind} | {est:.1f} | {actual:.1f} | {est / actual:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
