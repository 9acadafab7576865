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

from .likeness import FOLDER
from .train import DEFAULT_BATCH, DEFAULT_LR, DEFAULT_STEPS


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
    train.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    train.add_argument("--grad-accum", type=int, default=1)
    train.add_argument("--resolution", type=int, help="default: the model's native resolution")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--no-flip", action="store_true", help="never mirror images (text, logos)")
    train.add_argument("--captions", type=Path, metavar="JSON",
                       help='per-image captions: {"photo1.jpg": "a <cat-toy> on a shelf", ...}')
    train.add_argument("--min-snr-gamma", type=float, help="min-SNR loss weighting, e.g. 5")
    train.add_argument("--norm-weight", type=float, default=0.0, help="pull vector norms toward the vocabulary's")
    train.add_argument("--gradient-checkpointing", action="store_true", help="less memory, ~30%% slower")
    train.add_argument("--output", type=Path, help="output folder (default outputs/NAME)")
    train.add_argument("--resume", type=Path, metavar="DIR", help="continue a run from its output folder")
    train.add_argument("--save-every", type=int, default=0, metavar="N", help="checkpoint every N steps")
    train.add_argument("--stop-when-learned", action="store_true",
                       help="end once the loss on fixed noises stops improving, keeping the best vectors")
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

    inspect = commands.add_parser("inspect", help="say what an embedding file (or Hub concept) holds")
    inspect.add_argument("source", help="embedding file, concept folder, or Hub keyword / repo / URL")
    inspect.add_argument("--json", action="store_true", help="print one JSON object")
    inspect.set_defaults(run=run_inspect)

    convert = commands.add_parser("convert", help="rewrite an embedding in another tool's format")
    convert.add_argument("source")
    convert.add_argument("--to", required=True, choices=["diffusers", "a1111", "safetensors", "sdxl"],
                         help="diffusers: {token: [n, D]} (SDXL: FILE and FILE_2); a1111: .pt; "
                              "safetensors: emb_params; sdxl: {clip_l, clip_g}")
    convert.add_argument("--output", required=True, type=Path, metavar="FILE")
    convert.add_argument("--token", help="keyword to store (default: the source's)")
    convert.set_defaults(run=run_convert)

    search = commands.add_parser("search", help="find community concepts on the Hub")
    search.add_argument("words", nargs="*", help="words in the concept's repo name")
    search.add_argument("--author", default="sd-concepts-library")
    search.add_argument("--limit", type=int, default=12)
    search.set_defaults(run=run_search)

    push = commands.add_parser("push", help="share a trained concept on the Hugging Face Hub")
    push.add_argument("dir", type=Path, help="a training output folder")
    push.add_argument("--repo", required=True, metavar="NAMESPACE/NAME")
    push.add_argument("--private", action="store_true")
    push.add_argument("--license", default="openrail++")
    push.add_argument("--token", help="a write token (default: HF_TOKEN or your saved login)")
    push.set_defaults(run=run_push)
    return parser


def _add_placement(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], help="precision of the frozen model")


def _distributed():
    """The accelerate process state when started by `accelerate launch` with several processes."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())  # CPU processes talk over gloo


def _load_model(args: argparse.Namespace, distributed=None):
    from diffusers.utils import logging as diffusers_logging

    from .models import load_base_model, placement_for

    diffusers_logging.disable_progress_bar()
    device = str(distributed.device) if distributed else args.device
    model = load_base_model(args.model, placement_for(args.model, device, args.dtype))
    if distributed is None or distributed.is_main_process:
        print(f"model: {model.label} on {model.placement.describe()}", file=sys.stderr)
    return model


def _train_config(args: argparse.Namespace):
    from .train import TrainConfig

    if args.resume:
        settings = json.loads((args.resume / "settings.json").read_text())
        args.model = args.model or settings["model"]
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
        stop_when_learned=args.stop_when_learned, preview_every=args.preview_every, preview_prompt=args.preview_prompt,
        captions=_captions(args.captions),
    )


def run_images(output_dir: Path) -> list:
    """A run's own copy of its images (`concept_images/`), under the names it was trained with,
    so that captions keyed by file name still find their image."""
    from .images import load_images

    folder = output_dir / "concept_images"
    if not folder.is_dir():
        raise ValueError(f"{output_dir} has no concept_images/ folder: give the images again with --images")
    images = load_images([folder])
    names = json.loads((output_dir / "settings.json").read_text()).get("images", [])
    if len(names) == len(images):
        for item, name in zip(images, names):
            item.name = name
    return images


def _captions(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    try:
        captions = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(captions, dict) or not all(isinstance(v, str) for v in captions.values()):
        raise ValueError(f'{path}: expected an object of image file name to caption, like {{"a.jpg": "a <x> on a table"}}')
    return captions


def run_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .concepts import concept_name
    from .images import load_images
    from .train import Checkpointed, Finished, Preview, Progress, Trainer

    config = _train_config(args)
    images = load_images(args.images) if args.images else run_images(args.resume)
    for item in images:
        for warning in item.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    distributed = _distributed()
    model = _load_model(args, distributed)
    output = args.resume or args.output or Path("outputs") / concept_name(config.token)
    trainer = Trainer(model, images, config, output, distributed)
    if args.resume:
        trainer.resume(args.resume)
    quiet = not trainer.is_main
    bar = tqdm(total=config.steps, initial=trainer.step, unit="step", dynamic_ncols=True, disable=quiet)
    try:
        for event in trainer.run():
            if isinstance(event, Progress):
                bar.update(1)
                bar.set_postfix(loss=f"{event.loss:.4f}", lr=f"{event.lr:.2g}")
            elif isinstance(event, Checkpointed):
                bar.write(f"checkpoint: {event.path}")
            elif isinstance(event, Preview):
                bar.write(f"preview at step {event.step}: {output / 'previews'}")
            elif isinstance(event, Finished) and not quiet:
                bar.close()
                print(f"{'stopped' if event.stopped else 'done'} at step {event.step}: {event.output_dir}")
                if event.learned_at is not None:
                    print(f"learned: no better after step {event.learned_at}, whose vectors were kept")
                if event.readout:
                    print(f"quality: {event.readout.summary()}")
                if event.readout and event.readout.likeness:
                    print(f"the pictures it was judged by: {event.output_dir / FOLDER}")
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


def _read_source(source: str):
    from .hub import download_concept, parse_reference
    from .readers import read_embedding

    path = Path(source).expanduser()
    return read_embedding(path if path.exists() else download_concept(parse_reference(source)))


def encoder_name(key: str, width: int) -> str:
    """Name single-encoder vectors by the encoder their width belongs to."""
    if key != "single":
        return key
    return {768: "clip_l", 1024: "clip_h", 1280: "clip_g"}.get(width, "text_encoder")


def run_inspect(args: argparse.Namespace) -> int:
    from .readers import families

    file = _read_source(args.source)
    shapes = {encoder_name(k, v.shape[1]): list(v.shape) for k, v in file.vectors.items()}
    norms = {encoder_name(k, v.shape[1]): [round(n, 4) for n in v.norm(dim=1).tolist()] for k, v in file.vectors.items()}
    info = {
        "source": file.source,
        "format": file.format,
        "token": file.token,
        "shapes": shapes,
        "families": families(file.vectors),
        "norms": norms,
        "details": {k: v for k, v in file.details.items() if isinstance(v, (str, int, float, bool, list, type(None)))},
    }
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"{file.source}\n  format:   {file.format}\n  keyword:  {file.token}")
    for name, shape in shapes.items():
        mean = sum(norms[name]) / len(norms[name])
        print(f"  {name}: {shape[0]} vector(s) x {shape[1]}  (mean norm {mean:.3f})")
    print(f"  fits:     {', '.join(info['families'])}")
    for key, value in info["details"].items():
        print(f"  {key}: {value}")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from .concepts import Concept
    from .writers import write_a1111, write_diffusers, write_emb_params, write_sdxl

    file = _read_source(args.source)
    concept = Concept(args.token or file.token, dict(file.vectors), source=file.source)
    two = {"clip_l", "clip_g"} <= concept.vectors.keys()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if args.to == "sdxl":
        if not two:
            raise ValueError(f"{file.source} has one encoder's vectors; the sdxl format needs clip_l and clip_g")
        written = [write_sdxl(concept, args.output)]
    elif two and args.to == "diffusers":
        second = args.output.with_name(f"{args.output.stem}_2{args.output.suffix}")
        written = [write_diffusers(concept, args.output, "clip_l"), write_diffusers(concept, second, "clip_g")]
    elif two:
        raise ValueError(f"{file.source} is an SDXL embedding: convert it --to sdxl or --to diffusers")
    else:
        writer = {"diffusers": write_diffusers, "a1111": write_a1111, "safetensors": write_emb_params}[args.to]
        written = [writer(concept, args.output)]
    for path in written:
        print(path)
    return 0


def run_search(args: argparse.Namespace) -> int:
    from .hub import search_concepts

    for found in search_concepts(" ".join(args.words), author=args.author, limit=args.limit):
        print(f"{found.repo_id}\t{found.keyword}\t{found.concept_type or '?'}")
    return 0


def run_push(args: argparse.Namespace) -> int:
    from huggingface_hub import HfApi

    from .publish import push_concept

    token = args.token or os.environ.get("HF_TOKEN") or None
    print(push_concept(args.dir, args.repo, HfApi(token=token), private=args.private, license=args.license))
    return 0
