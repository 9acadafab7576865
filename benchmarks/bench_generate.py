"""Time per image: textinv's `generate` with a concept in the prompt against the plain diffusers
pipeline call on the same model, prompt length, steps, size and seed, alternating runs in one process.

    python benchmarks/bench_generate.py                       # tiny-sd 64 px, sd15 256 px (CPU)
    python benchmarks/bench_generate.py --models sd15 --resolution 512 --steps 30 --device cuda
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from bench_train import build_random_pipeline, model_folder  # noqa: E402
from textinv_core.concepts import new_concept  # noqa: E402
from textinv_core.devices import choose_placement  # noqa: E402
from textinv_core.generate import generate  # noqa: E402
from textinv_core.models import load_base_model  # noqa: E402


def time_once(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(name: str, args: argparse.Namespace) -> dict:
    spec, configs = model_folder(name, args)
    if configs is not None and not (Path(spec) / "model_index.json").exists():
        build_random_pipeline(configs, Path(spec))
    model = load_base_model(spec, choose_placement(args.device, args.dtype))
    size = args.resolution or model.resolution
    concept = new_concept(model, "<bench-thing>", "toy", 4, "object", 0).detached()
    settings = dict(num_inference_steps=args.steps, guidance_scale=7.5, width=size, height=size)
    plain_prompt, concept_prompt = "a photo of a toy toy toy toy on a table", "a photo of a <bench-thing> on a table"

    def plain():
        model.pipe(plain_prompt, generator=torch.Generator().manual_seed(0), **settings)

    def ours():
        generate(model, concept_prompt, [concept], seed=0, steps=args.steps, guidance=7.5, width=size, height=size)

    plain(), ours()  # warm-up
    times = {"plain": [], "ours": []}
    for _ in range(args.repeat):
        times["plain"].append(time_once(plain))
        times["ours"].append(time_once(ours))
    plain_s, ours_s = statistics.median(times["plain"]), statistics.median(times["ours"])
    return {"model": name, "resolution": size, "steps": args.steps, "dtype": str(model.placement.dtype),
            "plain_s": round(plain_s, 4), "ours_s": round(ours_s, 4),
            "overhead_pct": round(100 * (ours_s - plain_s) / plain_s, 2), "times": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny-sd,sd15")
    parser.add_argument("--device")
    parser.add_argument("--dtype", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--resolution", type=int, help="default: tiny-sd 64, others 256 on CPU / native on CUDA")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--shared", help="the shared reference folder (default $TEXTINV_SHARED or ../shared)")
    parser.add_argument("--cache", help="where random-weight models are saved")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results-generate.json")
    args = parser.parse_args()
    rows = []
    for name in args.models.split(","):
        if args.resolution is None and name != "tiny-sd" and not torch.cuda.is_available():
            args.resolution = 256
        rows.append(measure(name, args))
        args.resolution = None if name != "tiny-sd" else args.resolution
    print(f"{'model':10} {'res':>4} {'steps':>5}  {'plain s/img':>11}  {'ours s/img':>10}  {'overhead':>8}")
    for r in rows:
        print(f"{r['model']:10} {r['resolution']:>4} {r['steps']:>5}  {r['plain_s']:>11.3f}  {r['ours_s']:>10.3f}  {r['overhead_pct']:>7.2f}%")
    args.json.write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
