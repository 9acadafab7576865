"""Time textinv's training step and its peak memory against the reference Textual Inversion recipe.

Two variants train the same concept (examples/red-rocket, keyword <red-rocket>, init word "robot") on
the same model, images, resolution, batch size, precision and number of steps:

  ours      textinv_core.train.Trainer, calling `trainer.train_step()` in a loop.
  baseline  the diffusers example (examples/textual_inversion/textual_inversion.py and its SDXL twin):
            the keyword added to a copy of the tokenizer, the token table resized and trained WHOLE by
            AdamW (weight decay 1e-2) with the original rows copied back after every step, the VAE
            encoding every batch, the trained text encoder in fp32 (autocast around it in mixed
            precision, as `accelerator.prepare` does), the rest in the chosen precision.

Every variant runs in a fresh subprocess of this script (`--variant ...`), so one's memory high-water
mark can't leak into the other's and the baseline can never touch the model ours uses. Model loading
is excluded from both the step time and the peak (the peak counter is reset after loading).

    python benchmarks/bench_train.py                       # CPU set: tiny-sd 64 px, sd15 256 px, batch 1
    python benchmarks/bench_train.py --models sdxl-512     # opt in: ~10 GB of fp32 weights
    python benchmarks/bench_train.py --device cuda         # CUDA set: 512 px, bf16, batch 1 and 4
    python benchmarks/bench_train.py --preset cuda --device cpu --models tiny-sd --steps 1   # smoke test

See benchmarks/README.md for what each column means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # torchvision and loading advice drown the step log
sys.path.insert(0, str(REPO))  # run from a checkout without installing the package

TOKEN, INIT_WORD = "<red-rocket>", "robot"
DEFAULT_IMAGES = REPO / "examples" / "red-rocket"
BUILD_VERSION = "v1"  # bump when build_random_pipeline changes, so cached models are rebuilt
MB = 2**20


@dataclass
class Case:
    """One row of the table: what to train and how long to measure it."""

    model: str  # builtin name (tiny-sd), a folder under <shared>/sd-configs (sd15), or a pipeline folder
    resolution: int
    batch: int
    dtype: str  # fp32, bf16 or fp16: the frozen modules' precision
    warmup: int
    steps: int


@dataclass
class ReferenceRecipe:
    """The reference script's knobs that change what it learns (bench_quality.py varies them).
    The defaults are the step-time comparison's: our learning rate and warm-up, one micro-batch."""

    token: str = TOKEN
    init_word: str = INIT_WORD
    concept_type: str = "object"
    lr: float = 5e-3
    weight_decay: float = 1e-2
    warmup: int = 50
    steps: int = 1000  # the schedule's length
    grad_accum: int = 1
    seed: int = 0


# Step counts are sized to the hardware: the CPU set must finish in minutes on 2 cores, the CUDA
# set inside 8 minutes on one GPU including building and loading the random-weight models.
PRESETS = {
    # tiny-sd's VAE downsamples 2x, not 8x: at 256 px its latents are 128x128 and each step takes
    # seconds, so it runs at its native 64 px as the quick sanity row (--resolution 256 to override).
    "cpu": [Case("tiny-sd", 64, 1, "fp32", 5, 30), Case("sd15", 256, 1, "fp32", 2, 6)],
    "cuda": [
        Case("sd15", 512, 1, "bf16", 3, 10),
        Case("sd15", 512, 4, "bf16", 3, 10),
        Case("sdxl-512", 512, 1, "bf16", 3, 10),
    ],
}
OPT_IN = {"cpu": [Case("sdxl-512", 256, 1, "fp32", 2, 3)]}  # ~15 GB RSS, ~8 min: not in the default CPU set


def select_cases(args: argparse.Namespace) -> list[Case]:
    """The preset's cases, narrowed to --models and overridden by the other flags."""
    pool = PRESETS[args.preset] + OPT_IN.get(args.preset, [])
    cases = PRESETS[args.preset]
    if args.models:  # a model the preset doesn't name gets the preset's last case's settings
        wanted = args.models.split(",")
        cases = [c for m in wanted for c in ([c for c in pool if c.model == m] or [replace(pool[-1], model=m)])]
    overrides = {"resolution": args.resolution, "dtype": args.dtype, "warmup": args.warmup, "steps": args.steps}
    cases = [replace(c, **{k: v for k, v in overrides.items() if v is not None}) for c in cases]
    if args.batch:
        cases = [replace(c, batch=int(b)) for c in cases for b in dict.fromkeys(args.batch.split(","))]
        cases = list({json.dumps(asdict(c)): c for c in cases}.values())  # sd15 b1 + b4 under --batch 4: once
    return cases


# -- memory and time ------------------------------------------------------------------------------


def _proc_status_mb(field: str) -> float | None:
    """A VmRSS/VmHWM line of /proc/self/status in MiB (Linux); None elsewhere."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else None


def _reset_rss_peak() -> bool:
    """Lower VmHWM to the current RSS (Linux >= 4.0), so loading's transient peak is not counted."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class MemoryMeter:
    """Peak memory of this process relative to just before the model loaded: RSS on CPU, the
    allocator's peak on CUDA. The peak counter restarts after loading (`loaded()`)."""

    def __init__(self, device):
        import torch

        self.torch, self.cuda = torch, device.type == "cuda"
        self.reset_ok = True
        self.start = self._current()

    def _current(self) -> float:
        if self.cuda:
            return self.torch.cuda.memory_allocated() / MB
        return _proc_status_mb("VmRSS") or 0.0

    def loaded(self) -> None:
        """Call once the model is in place: what it holds is the floor the peak is measured from."""
        if self.cuda:
            self.torch.cuda.synchronize()
            self.torch.cuda.reset_peak_memory_stats()
        else:
            self.reset_ok = _reset_rss_peak()
        self.after_load = self._current()

    def peak(self) -> float:
        if self.cuda:
            return self.torch.cuda.max_memory_allocated() / MB
        hwm = _proc_status_mb("VmHWM")
        if hwm is None:  # not Linux: ru_maxrss is KiB on Linux, bytes on macOS, and never resets
            import resource

            hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (MB if sys.platform == "darwin" else 1024)
        return hwm

    def report(self) -> dict:
        peak = self.peak()
        return {
            "peak_mb": round(peak - self.start, 1),  # weights + training state + activations
            "overhead_mb": round(peak - self.after_load, 1),  # all of it beyond the loaded model
            "model_mb": round(self.after_load - self.start, 1),
            "peak_counts_loading": not self.reset_ok,
        }


def time_steps(step, warmup: int, steps: int, device) -> dict:
    """Wall and process-CPU milliseconds of each measured call of `step`, after `warmup` untimed
    calls. CUDA is synced, so wall time is the GPU's. CPU time (all threads) leaves out time spent
    waiting for a core, though on a VM whose host is busy it inflates as well."""
    import torch

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for i in range(warmup):
        step()
        print(f"    warm-up {i + 1}/{warmup}", file=sys.stderr, flush=True)
    sync()
    wall, cpu = [], []
    for i in range(steps):
        begin, begin_cpu = time.perf_counter(), time.process_time()
        step()
        sync()
        wall.append((time.perf_counter() - begin) * 1000)
        cpu.append((time.process_time() - begin_cpu) * 1000)
        print(f"    step {i + 1}/{steps}: {wall[-1]:.0f} ms (cpu {cpu[-1]:.0f} ms)", file=sys.stderr, flush=True)
    return {"times_ms": wall, "cpu_times_ms": cpu}


# -- models ---------------------------------------------------------------------------------------


def shared_dir(arg: str | None) -> Path:
    """The read-only reference folder: --shared, else $TEXTINV_SHARED, else ../shared beside the repo."""
    return Path(arg or os.environ.get("TEXTINV_SHARED") or REPO.parent / "shared").resolve()


def model_folder(name: str, args: argparse.Namespace) -> tuple[str, Path | None]:
    """(spec for load_base_model, config folder to build from or None when nothing must be built)."""
    from textinv_core.builtin import BUILTIN_MODELS, cache_root

    if name in BUILTIN_MODELS:
        return f"builtin:{name}", None
    if Path(name).is_dir():  # a real diffusers pipeline folder: benchmark it as is
        return str(Path(name).resolve()), None
    configs = shared_dir(args.shared) / "sd-configs" / name
    if not (configs / "model_index.json").exists():
        raise SystemExit(f"unknown model {name!r}: not builtin, not a folder, and no {configs}/model_index.json")
    cache = Path(args.cache) if args.cache else cache_root() / "bench"
    return str(cache / f"{name}-random-{BUILD_VERSION}"), configs


def build_random_pipeline(configs: Path, folder: Path) -> None:
    """Instantiate every component from the real configs with seeded random weights and save the
    pipeline once (temp folder + rename, so an interrupted build is never mistaken for a model)."""
    import diffusers
    import torch
    import transformers
    from diffusers import AutoencoderKL, UNet2DConditionModel

    index = json.loads((configs / "model_index.json").read_text())
    torch.manual_seed(0)
    parts = {
        "unet": UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(configs / "unet")),
        "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(configs / "vae")),
    }
    for name in ("text_encoder", "text_encoder_2"):
        if name in index:
            config = transformers.CLIPTextConfig.from_json_file(configs / name / "config.json")
            parts[name] = getattr(transformers, index[name][1])(config)
    for name in ("tokenizer", "tokenizer_2"):
        if name in index:
            parts[name] = transformers.CLIPTokenizer.from_pretrained(configs / name)
    scheduler_config = json.loads((configs / "scheduler" / "scheduler_config.json").read_text())
    parts["scheduler"] = getattr(diffusers, scheduler_config["_class_name"]).from_config(scheduler_config)
    pipeline_class = getattr(diffusers, index["_class_name"])
    if "text_encoder_2" in parts:
        pipe = pipeline_class(**parts, force_zeros_for_empty_prompt=index.get("force_zeros_for_empty_prompt", True))
    else:
        pipe = pipeline_class(**parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        pipe.save_pretrained(tmp, max_shard_size="2GB")  # small shards: saving never holds 10 GB twice
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- the two variants ------------------------------------------------------------------------------


def page_in(pipe) -> None:
    """Read every weight once. On CPU diffusers maps safetensors files into memory, so weights only
    become resident (and count in RSS) when first touched; touching them before the peak counter
    restarts makes the 'loaded' floor hold the whole model, as it does on a GPU."""
    import torch

    with torch.no_grad():
        for module in pipe.components.values():
            if isinstance(module, torch.nn.Module):
                for tensor in list(module.parameters()) + list(module.buffers()):
                    tensor.sum()


def run_ours(case: Case, spec: str, device_name: str, images_dir: Path) -> dict:
    """Our Trainer, built as the CLI builds it; one `train_step()` per measured step."""
    import torch

    from textinv_core.devices import choose_placement
    from textinv_core.images import load_images
    from textinv_core.models import load_base_model
    from textinv_core.train import TrainConfig, Trainer

    placement = choose_placement(device_name, case.dtype)
    meter = MemoryMeter(placement.device)
    model = load_base_model(spec, placement)
    page_in(model.pipe)
    meter.loaded()
    images = load_images([images_dir])
    config = TrainConfig(
        token=TOKEN, init_word=INIT_WORD, steps=1000, batch_size=case.batch, resolution=case.resolution, seed=0
    )
    begin = time.perf_counter()
    with tempfile.TemporaryDirectory() as output:
        trainer = Trainer(model, images, config, Path(output))
        setup_s = time.perf_counter() - begin
        times = time_steps(trainer.train_step, case.warmup, case.steps, placement.device)
    return times | {"setup_s": round(setup_s, 2), "threads": torch.get_num_threads()} | meter.report()


def place_like_reference(pipe, device, dtype) -> None:
    """Freeze everything and cast as the reference does: the trained encoder fp32, the rest to `dtype`."""
    frozen = [pipe.vae, pipe.unet, pipe.text_encoder] + [getattr(pipe, "text_encoder_2", None)]
    for module in filter(None, frozen):
        module.requires_grad_(False)
    pipe.text_encoder.to(device)
    pipe.unet.to(device, dtype=dtype)
    pipe.vae.to(device, dtype=dtype)
    if getattr(pipe, "text_encoder_2", None) is not None:
        pipe.text_encoder_2.to(device, dtype=dtype)


class ReferenceLoop:
    """The diffusers textual_inversion.py training step (SDXL: textual_inversion_sdxl.py, which
    trains the first encoder's table only). Its data pipeline aside: crops, flips and tokenized
    templates are prepared once, so the baseline is not charged for PIL work or tokenizing (the
    reference does both per batch in its DataLoader)."""

    def __init__(self, pipe, images, case: Case, device, recipe: "ReferenceRecipe | None" = None):
        import torch
        from diffusers import DDPMScheduler
        from diffusers.optimization import get_scheduler

        from textinv_core.devices import DTYPES

        self.recipe = recipe = recipe or ReferenceRecipe()
        self.torch, self.pipe, self.device, self.batch = torch, pipe, device, case.batch
        self.dtype = DTYPES[case.dtype]
        self.generator = torch.Generator().manual_seed(recipe.seed)
        self.sdxl = getattr(pipe, "text_encoder_2", None) is not None
        self.placeholder_id, self.tokenizer = self._add_placeholder()
        table = pipe.text_encoder.get_input_embeddings()
        table.weight.requires_grad_(True)
        pipe.text_encoder.train()  # as the reference; CLIP's dropout is 0, so it changes nothing
        self.optimizer = torch.optim.AdamW(
            table.parameters(), lr=recipe.lr, betas=(0.9, 0.999), weight_decay=recipe.weight_decay, eps=1e-8
        )
        self.lr_scheduler = get_scheduler(
            "constant_with_warmup", self.optimizer, num_warmup_steps=recipe.warmup, num_training_steps=recipe.steps
        )
        self.noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        self.orig_embeds = table.weight.data.clone()
        self.pixels, self.time_ids = self._pixel_cache(images, case.resolution)
        self.ids = self._template_ids()

    def _add_placeholder(self):
        """Add the keyword to a copy of the tokenizer, grow the table, start the row at the init word."""
        import copy

        tokenizer = copy.deepcopy(self.pipe.tokenizer)
        tokenizer.add_tokens([self.recipe.token])
        placeholder_id = tokenizer.convert_tokens_to_ids(self.recipe.token)
        init_id = tokenizer.encode(self.recipe.init_word, add_special_tokens=False)[0]
        encoder = self.pipe.text_encoder
        encoder.resize_token_embeddings(len(tokenizer))
        with self.torch.no_grad():
            weight = encoder.get_input_embeddings().weight
            weight[placeholder_id] = weight[init_id].clone()
        return placeholder_id, tokenizer

    def _pixel_cache(self, images, resolution: int):
        """[N, 2, 3, H, W] crops and their mirror images (CPU, like a DataLoader's output), plus SDXL's size ids."""
        from PIL import ImageOps

        from textinv_core.images import square_crop, to_tensor

        pixels, time_ids = [], []
        for item in images:
            crop, (top, left) = square_crop(item.image, resolution)
            pixels.append(self.torch.stack([to_tensor(crop), to_tensor(ImageOps.mirror(crop))]))
            time_ids.append([item.image.height, item.image.width, top, left, resolution, resolution])
        return self.torch.stack(pixels), self.torch.tensor(time_ids, dtype=self.torch.float32)

    def _template_ids(self) -> list:
        """Every object template with the keyword, tokenized as the reference dataset does, per tokenizer."""
        from textinv_core.templates import templates_for

        prompts = [t.format(self.recipe.token) for t in templates_for(self.recipe.concept_type)]
        tokenizers = [self.tokenizer] + ([self.pipe.tokenizer_2] if self.sdxl else [])
        return [
            tok(prompts, padding="max_length", truncation=True, max_length=tok.model_max_length, return_tensors="pt")
            .input_ids
            for tok in tokenizers
        ]

    def _conditioning(self, prompt, image) -> tuple:
        """(encoder_hidden_states, extra U-Net kwargs) for the picked prompts, as the reference computes them."""
        torch, pipe, device, dtype = self.torch, self.pipe, self.device, self.dtype
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):  # accelerate's autocast
            out1 = pipe.text_encoder(self.ids[0][prompt].to(device), output_hidden_states=self.sdxl)
        if not self.sdxl:
            return out1[0].to(dtype), {}
        out2 = pipe.text_encoder_2(self.ids[1][prompt].to(device), output_hidden_states=True)
        states = torch.cat([out1.hidden_states[-2].to(dtype), out2.hidden_states[-2].to(dtype)], dim=-1)
        added = {"text_embeds": out2[0], "time_ids": self.time_ids[image].to(device, dtype=dtype)}
        return states, {"added_cond_kwargs": added}

    def step(self) -> float:
        """One reference optimizer step over `grad_accum` micro-batches (accelerate divides each
        micro-batch's loss by their number); returns the mean loss as the reference logs it."""
        accum, total = self.recipe.grad_accum, 0.0
        for _ in range(accum):
            loss = self._micro_batch_loss()
            (loss / accum).backward()
            total += loss.detach().item() / accum
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad()
        index_no_updates = self.torch.ones((len(self.tokenizer),), dtype=self.torch.bool)
        index_no_updates[self.placeholder_id] = False
        with self.torch.no_grad():
            weight = self.pipe.text_encoder.get_input_embeddings().weight
            weight[index_no_updates] = self.orig_embeds[index_no_updates]
        return total

    def _micro_batch_loss(self):
        torch, pipe, device, size, gen = self.torch, self.pipe, self.device, self.batch, self.generator
        image = torch.randint(0, len(self.pixels), (size,), generator=gen)
        flip = torch.randint(0, 2, (size,), generator=gen)
        prompt = torch.randint(0, len(self.ids[0]), (size,), generator=gen)
        pixels = self.pixels[image, flip].to(device, dtype=self.dtype)
        latents = pipe.vae.encode(pixels).latent_dist.sample(gen).detach() * pipe.vae.config.scaling_factor
        noise = torch.randn(latents.shape, generator=gen).to(device, latents.dtype)
        timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (size,), generator=gen).to(device)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        states, extra = self._conditioning(prompt, image)
        pred = pipe.unet(noisy, timesteps, states, **extra).sample
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        return torch.nn.functional.mse_loss(pred.float(), target.float(), reduction="mean")

    def learned_row(self):
        """The keyword's trained row of the token table, [1, D] float32 on the CPU."""
        weight = self.pipe.text_encoder.get_input_embeddings().weight
        return weight[self.placeholder_id].detach().float().cpu().clone()[None]


def run_baseline(case: Case, spec: str, device_name: str, images_dir: Path) -> dict:
    """The reference recipe on its own fp32 copy of the pipeline, cast as the reference casts it."""
    import torch
    from diffusers import DiffusionPipeline

    from textinv_core.devices import DTYPES
    from textinv_core.images import load_images
    from textinv_core.models import resolve_model_path

    device = torch.device(device_name)
    meter = MemoryMeter(device)
    pipe = DiffusionPipeline.from_pretrained(resolve_model_path(spec))  # fp32, as the reference loads it
    pipe.set_progress_bar_config(disable=True)
    place_like_reference(pipe, device, DTYPES[case.dtype])
    page_in(pipe)
    meter.loaded()  # the same floor as ours: the model where and how it runs, nothing trained yet
    images = load_images([images_dir])
    begin = time.perf_counter()
    loop = ReferenceLoop(pipe, images, case, device)
    setup_s = time.perf_counter() - begin
    times = time_steps(loop.step, case.warmup, case.steps, device)
    return times | {"setup_s": round(setup_s, 2), "threads": torch.get_num_threads()} | meter.report()


# -- driver ---------------------------------------------------------------------------------------


def run_child(variant: str, case: Case, args: argparse.Namespace, spec: str) -> dict:
    """Run one variant in a fresh interpreter; returns its result, or {'error': ...} if it failed."""
    with tempfile.TemporaryDirectory() as tmp:
        result_path = Path(tmp) / "result.json"
        command = [sys.executable, __file__, "--variant", variant, "--case", json.dumps(asdict(case))]
        command += ["--spec", spec, "--device", args.device, "--images", str(args.images), "--result", str(result_path)]
        print(f"  {variant}", file=sys.stderr, flush=True)
        proc = subprocess.run(command)
        if proc.returncode != 0 or not result_path.exists():
            return {"error": f"exit status {proc.returncode}"}
        return json.loads(result_path.read_text())


def ensure_model(name: str, args: argparse.Namespace) -> str:
    """The spec to load `name` by, building its random-weight folder first (in a child) if needed."""
    spec, configs = model_folder(name, args)
    if configs is not None and not (Path(spec) / "model_index.json").exists():
        print(f"building {name} with random weights into {spec} (once)", file=sys.stderr, flush=True)
        command = [sys.executable, __file__, "--variant", "build", "--spec", spec, "--configs", str(configs)]
        subprocess.run(command, check=True)
    return spec


def pool(results: list[dict]) -> dict:
    """One variant's runs (see --repeat) as one result: every measured step, the highest peak."""
    failed = [r for r in results if "error" in r]
    if failed:
        return failed[0]
    pooled = dict(results[0])
    for key in ("times_ms", "cpu_times_ms"):
        pooled[key] = [t for r in results for t in r[key]]
    for key in ("peak_mb", "overhead_mb", "loadavg"):
        pooled[key] = max(r[key] or 0 for r in results)
    return pooled


def summarize(case: Case, ours: dict, base: dict) -> dict:
    """One table row: medians, the speed ratio and the peaks."""
    row = asdict(case)
    for name, result in (("ours", ours), ("baseline", base)):
        if "error" in result:
            row[f"{name}_error"] = result["error"]
            continue
        row[f"{name}_ms"] = round(statistics.median(result["times_ms"]), 1)
        row[f"{name}_cpu_ms"] = round(statistics.median(result["cpu_times_ms"]), 1)
        row[f"{name}_min_ms"] = round(min(result["times_ms"]), 1)  # robust to a noisy neighbour's bursts
        row |= {f"{name}_{key}": value for key, value in result.items()}
    if "ours_ms" in row and "baseline_ms" in row:
        row["speedup"] = round(row["baseline_ms"] / row["ours_ms"], 2)
        row["cpu_speedup"] = round(row["baseline_cpu_ms"] / row["ours_cpu_ms"], 2)
        row["min_speedup"] = round(row["baseline_min_ms"] / row["ours_min_ms"], 2)
    return row


def measure(case: Case, args: argparse.Namespace, spec: str) -> dict:
    """Both variants, --repeat times in alternating order, so a busy spell on a shared machine
    slows both rather than one."""
    runs: dict[str, list] = {"ours": [], "baseline": []}
    for r in range(args.repeat):
        for variant in ("ours", "baseline") if r % 2 == 0 else ("baseline", "ours"):
            runs[variant].append(run_child(variant, case, args, spec))
    return summarize(case, pool(runs["ours"]), pool(runs["baseline"]))


def _cell(row: dict, key: str) -> str:
    """A table cell: the value, 'error' when that variant failed, '-' when absent."""
    if f"{key.split('_')[0]}_error" in row:
        return "error"
    return str(row.get(key, "-"))


def print_table(rows: list[dict], device: str) -> None:
    """The results as an aligned text table (the JSON file has every measurement)."""
    unit = "MB" if device == "cpu" else "MB alloc"
    header = ["model", "res", "batch", "dtype", "ours ms/step", "baseline ms/step", "baseline/ours",
              "fastest-step ratio", f"ours peak {unit}", f"baseline peak {unit}", "ours +MB",
              "baseline +MB"]  # fmt: skip
    keys = ["ours_ms", "baseline_ms", "speedup", "min_speedup", "ours_peak_mb", "baseline_peak_mb",
            "ours_overhead_mb", "baseline_overhead_mb"]  # fmt: skip
    lines = [header] + [
        [r["model"], str(r["resolution"]), str(r["batch"]), r["dtype"]] + [_cell(r, k) for k in keys] for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for i, line in enumerate(lines):
        print(" | ".join(cell.rjust(w) if i else cell.ljust(w) for cell, w in zip(line, widths)))
        if i == 0:
            print("-+-".join("-" * w for w in widths))


def environment(device: str) -> dict:
    import torch

    info = {"torch": torch.__version__, "python": platform.python_version(), "cpu_threads": torch.get_num_threads()}
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    info["command"] = " ".join([Path(sys.executable).name] + sys.argv)
    return info


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="case set (default: the device's)")
    parser.add_argument("--models", help="comma list: tiny-sd, sd15, sdxl-512, sd21-base, or a pipeline folder")
    parser.add_argument("--resolution", type=int, help="override every case's resolution")
    parser.add_argument("--batch", help="comma list of batch sizes to run each model at")
    parser.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], help="override the preset's precision")
    parser.add_argument("--warmup", type=int, help="untimed steps before measuring")
    parser.add_argument("--steps", type=int, help="measured steps (the median is reported)")
    parser.add_argument("--repeat", type=int, default=1, help="run each pair N times, alternating order")
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--shared", help="reference folder with sd-configs/ (default $TEXTINV_SHARED or ../shared)")
    parser.add_argument("--cache", help="where random-weight models are saved (default $TEXTINV_CACHE/bench)")
    parser.add_argument("--json", type=Path, help="results file (default benchmarks/results-<device>.json)")
    internal = parser.add_argument_group("internal (one subprocess per variant)")
    internal.add_argument("--variant", choices=["ours", "baseline", "build"], help=argparse.SUPPRESS)
    internal.add_argument("--case", help=argparse.SUPPRESS)
    internal.add_argument("--spec", help=argparse.SUPPRESS)
    internal.add_argument("--configs", help=argparse.SUPPRESS)
    internal.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.preset = args.preset or ("cuda" if args.device.startswith("cuda") else "cpu")
    return args


def quiet_libraries() -> None:
    """Silence loading progress bars and advice, so the step log stays readable."""
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def child_main(args: argparse.Namespace) -> None:
    """Entry point of a subprocess: build a model, or measure one variant and write its result."""
    quiet_libraries()
    if args.variant == "build":
        build_random_pipeline(Path(args.configs), Path(args.spec))
        return
    case = Case(**json.loads(args.case))
    run = run_ours if args.variant == "ours" else run_baseline
    result = run(case, args.spec, args.device, args.images)
    result["loadavg"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None  # >cores: timings are shared
    Path(args.result).write_text(json.dumps(result))


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.variant:
        child_main(args)
        return
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: torch sees no CUDA GPU (--preset cuda --device cpu tries the path)")
    rows = []
    for case in select_cases(args):
        print(f"{case.model} {case.resolution}px batch {case.batch} {case.dtype}", file=sys.stderr, flush=True)
        spec = ensure_model(case.model, args)
        rows.append(measure(case, args, spec))
    print_table(rows, args.device)
    path = args.json or REPO / "benchmarks" / f"results-{args.device.split(':')[0]}.json"
    path.write_text(json.dumps({"environment": environment(args.device), "rows": rows}, indent=2) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
