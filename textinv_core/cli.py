"""`python -m textinv_core`: train, generate, inspect, convert and push from a terminal.

Every failure the user can fix (bad image, bad keyword, unreadable embedding) exits non-zero with
a one-line message instead of a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .train import DEFAULT_LR, DEFAULT_STEPS


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError) as err:  # our messages are ValueErrors; OSError: disk, network
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m textinv_core", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="teach the model a new word from a few images")
    train.add_argument("--model", help="Hub id, local diffusers folder, or builtin:tiny-sd / builtin:tiny-sdxl")
    train.add_argument("--images", nargs="+", metavar="PATH", help="image files or folders (3-5 images work best)")
    train.add_argument("--token", help='the new keyword, e.g. "<cat-toy>"')
    train.add_argument("--init-word", help="a word or short phrase to start from, e.g. toy")
    train.add_argument("--vectors", type=int, default=1, help="vectors per concept, 1-16 (default 1)")
    train.add_argument("--concept", choices=["object", "style"], default="object")
    train.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    train.add_argument("--lr", type=float, default=DEFAULT_LR, help=f"learning rate (default {DEFAULT_LR})")
    train.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant")
    train.add_argument("--batch-size", type=int, default=1)
    train.add_argument("--grad-accum", type=int, default=1)
    train.add_argument("--resolution", type=int, help="default: the model's native resolution")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--no-flip", action="store_true", help="never mirror images (text, logos)")
    train.add_argument("--min-snr-gamma", type=float, help="min-SNR loss weighting, e.g. 5")
    train.add_argument("--norm-weight", type=float, default=0.0, help="pull vector norms toward the vocabulary's")
    train.add_argument("--gradient-checkpointing", action="store_true", help="less memory, ~30%% slower")
    train.add_argument("--output", type=Path, help="output folder (default outputs/NAME)")
    train.add_argument("--resume", type=Path, metavar="DIR", help="continue a run from its output folder")
    train.add_argument("--save-every", type=int, default=0, metavar="N", help="checkpoint every N steps")
    train.add_argument("--preview-every", type=int, default=0, metavar="N")
    train.add_argument("--preview-prompt")
    _add_placement(train)
    train.set_defaults(run=run_train)

    gen = commands.add_parser("generate", help="make images with concepts in the prompt")
    gen.add_argument("--model", required=True)
    gen.add_argument("--concept", nargs="*", default=[], metavar="SOURCE",
                     help="trained output folder, embedding file, or Hub keyword / repo")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--negative", default="")
    gen.add_argument("--steps", type=int, default=30)
    gen.add_argument("--guidance", type=float, default=7.5)
    gen.add_argument("--seed", type=int)
    gen.add_argument("--num-images", type=int, default=1)
    gen.add_argument("--width", type=int)
    gen.add_argument("--height", type=int)
    gen.add_argument("--output", type=Path, default=Path("outputs/images"))
    _add_placement(gen)
    gen.set_defaults(run=run_generate)
    return parser


def _add_placement(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], help="precision of the frozen model")


def _load_model(args: argparse.Namespace):
    from .devices import choose_placement
    from .models import load_base_model

    model = load_base_model(args.model, choose_placement(args.device, args.dtype))
    print(f"model: {model.label} on {model.placement.describe()}", file=sys.stderr)
    return model


def _train_config(args: argparse.Namespace):
    from .train import TrainConfig

    if args.resume:
        settings = json.loads((args.resume / "settings.json").read_text())
        args.model = args.model or settings["model"]
        args.images = args.images or settings.get("image_paths")
        known = TrainConfig.__dataclass_fields__
        config = TrainConfig(**{k: v for k, v in settings.items() if k in known})
        if args.steps != DEFAULT_STEPS:
            config.steps = args.steps
        return config
    missing = [flag for flag, value in (("--model", args.model), ("--images", args.images), ("--token", args.token)) if not value]
    if missing:
        raise ValueError(f"train needs {', '.join(missing)} (or --resume DIR)")
    return TrainConfig(
        token=args.token, init_word=args.init_word, num_vectors=args.vectors, concept_type=args.concept,
        steps=args.steps, learning_rate=args.lr, lr_schedule=args.lr_schedule, batch_size=args.batch_size,
        grad_accum=args.grad_accum, resolution=args.resolution, seed=args.seed, flip=not args.no_flip,
        min_snr_gamma=args.min_snr_gamma, norm_weight=args.norm_weight,
        gradient_checkpointing=args.gradient_checkpointing, save_every=args.save_every,
        preview_every=args.preview_every, preview_prompt=args.preview_prompt,
    )


def run_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .concepts import concept_name
    from .images import load_images
    from .train import Checkpointed, Finished, Preview, Progress, Trainer

    config = _train_config(args)
    if not args.images:
        raise ValueError("train needs --images (the resumed run's settings do not list them)")
    images = load_images(args.images)
    for item in images:
        for warning in item.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    model = _load_model(args)
    output = args.resume or args.output or Path("outputs") / concept_name(config.token)
    trainer = Trainer(model, images, config, output)
    if args.resume:
        trainer.resume(args.resume)
    bar = tqdm(total=config.steps, initial=trainer.step, unit="step", dynamic_ncols=True)
    try:
        for event in trainer.run():
            if isinstance(event, Progress):
                bar.update(1)
                bar.set_postfix(loss=f"{event.loss:.4f}", lr=f"{event.lr:.2g}")
            elif isinstance(event, Checkpointed):
                bar.write(f"checkpoint: {event.path}")
            elif isinstance(event, Preview):
                bar.write(f"preview at step {event.step}: {output / 'previews'}")
            elif isinstance(event, Finished):
                bar.close()
                print(f"{'stopped' if event.stopped else 'done'} at step {event.step}: {event.output_dir}")
    except KeyboardInterrupt:
        bar.close()
        trainer.save_outputs()
        print(f"interrupted at step {trainer.step}; what was learned is in {output}", file=sys.stderr)
        return 130
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from .generate import generate
    from .sources import load_concepts

    model = _load_model(args)
    concepts, notes = load_concepts(args.concept, model)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    for concept in concepts:
        print(f"concept: {concept.token} ({concept.num_vectors} vectors, from {concept.source})", file=sys.stderr)
    images = generate(
        model, args.prompt, concepts, negative_prompt=args.negative, steps=args.steps, guidance=args.guidance,
        seed=args.seed, num_images=args.num_images, width=args.width, height=args.height,
    )
    args.output.mkdir(parents=True, exist_ok=True)
    start = len(list(args.output.glob("image-*.png")))
    for i, image in enumerate(images):
        path = args.output / f"image-{start + i:04d}.png"
        image.save(path)
        print(path)
    return 0
