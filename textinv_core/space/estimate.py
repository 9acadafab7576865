"""How long a training run will take, said before it starts.

A first-time visitor should know whether to wait two minutes or to go and find a GPU. A run's time
is the sum of its parts, each costed on its own because each scales differently: preparing
(encoding the images), the steps, the evaluation readings (the quality readout at the end, and with
stop when learned one of the starting vectors and one every 25 steps: each is 64 forward passes,
several steps' time), the previews, and finishing (the last checkpoint and the readout, whose pictures
cost two previews' time each where the model has an image encoder). With stop
when learned the run may end sooner, so the estimate is an upper bound ("up to"). Each part is
costed deliberately simply, and the estimate says how:

- Once this server has trained with the same model, device, resolution and batch size, it is
  *learned*: the mean steady step time and the median preparing, reading, preview and finishing
  times of its recent runs (`record_run`). The mean, not the median, for steps: a busy moment makes
  a run longer by the sum of its slow steps, which the median would leave out.
- Before that, on a built-in demo model it is *measured*: a few training steps, one reading and one
  preview on a blank image take a few seconds, each after a warm-up that pays for lazy
  initialisation (timed without it, a first step or a first preview costs several times a steady
  one), and the results are cached per (resolution, batch size).
- On a real model it comes from the small table below: seconds per optimizer step at batch 1, at
  the family's native resolution, with the frozen model in bf16/fp16 on an A100-class GPU, or fp32
  on a CPU. It is scaled by the GPU's class, the CPU's core count, the resolution, the batch size,
  gradient accumulation and the preview images, so treat it as "minutes or hours", not as a promise.

Where the numbers come from: the GPU rows are the usual throughput of Textual Inversion with a
frozen model in half precision (the diffusers example reports ~4-5 steps/s for SD 1.5 at 512 px on
an A100; SD 2.x at 768 px and SDXL at 1024 px have 2.25x and 4x the pixels); the CPU row for SD 1.x
was measured with this library on a random-weight SD 1.5 (same architecture and size as the real
one) on a 2-core x86 cloud machine: 24 s per step at 256 px, 35 s at 512 px (a step on a CPU is
dominated by streaming the 3.4 GB of fp32 weights, so it grows slowly with the resolution), and a
20-step preview cost as much as ~16 steps. SD 2.x and SDXL are scaled by their U-Net sizes. A
machine with more cores is credited linearly with them, up to 16 (memory bandwidth caps the gain).
A reading is costed as its 64 samples in batches of 16, a forward pass being about a third of a
training step's forward and backward.
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import torch

from ..likeness import PICTURES, has_image_tower
from ..quality import EVAL_SAMPLES
from ..stopping import PlateauRule
from ..train import READING_SLICE

# Seconds per step, batch 1, native resolution (SD 1.x: 512, SD 2.x: 768, SDXL: 1024).
GPU_SECONDS = {"SD 1.x": 0.25, "SD 2.x": 0.55, "SDXL": 1.0}  # A100-class GPU, bf16/fp16
CPU_SECONDS_2_CORES = {"SD 1.x": 35.0, "SD 2.x": 70.0, "SDXL": 140.0}  # fp32, 2 cores
CPU_BF16_SPEEDUP = 1.89  # bf16 on a CPU with AVX512-BF16: SD 1.5 at 256 px, 3562 -> 1885 ms a step
MPS_FACTOR = 8.0  # an Apple-silicon GPU (fp32) against an A100

# How much slower than an A100 a GPU is, matched on its name (first match wins).
GPU_CLASSES = (
    ("H200", 0.6), ("H100", 0.6), ("GH200", 0.6), ("A100", 1.0), ("L40", 1.1), ("4090", 1.1),
    ("A6000", 1.6), ("3090", 1.8), ("A10", 2.5), ("L4", 3.0), ("4080", 1.5), ("T4", 6.0), ("V100", 2.5),
)
UNKNOWN_GPU = 3.0

# One preview is 20 denoising steps, each two forward passes (guidance) with no backward pass:
# measured ~16 training steps' worth on a CPU; on a GPU it is less, but previews are few.
PREVIEW_STEPS_EQUIVALENT = 16
FORWARD_SHARE = 1 / 3  # a forward pass (a reading's) against a training step's forward and backward
READING_EVERY = PlateauRule().every
# ZeroGPU: each GPU call waits for a slot and forks a worker, a few seconds each.
ZERO_GPU_CALL_OVERHEAD = 8.0
SLOW_SECONDS = 3600  # beyond this the estimate is shown as a warning
RUNS_REMEMBERED = 8  # per setting, the recent runs a learned estimate is the median of
NATIVE = {"SD 1.x": 512, "SD 2.x": 768, "SDXL": 1024}


@dataclass(frozen=True)
class Estimate:
    seconds: float  # the whole run
    seconds_per_step: float  # one optimizer step, previews excluded
    device: str  # what it runs on, in words
    measured: bool  # measured on this machine (demo models, or learned from runs) rather than read from the table
    cpu_only: bool
    runs: int = 0  # the earlier runs on this server it was learned from (0: not learned)
    up_to: bool = False  # stop when learned is on: the run may end sooner

    @property
    def slow(self) -> bool:
        return self.seconds > SLOW_SECONDS

    def describe(self) -> str:
        """One or two sentences for the page."""
        if self.runs:
            how = f"learned from {self.runs} run{'s' if self.runs != 1 else ''} on this server"
        else:
            how = "measured on this machine" if self.measured else "rough estimate"
        about = "Up to" if self.up_to else "About"
        text = f"{about} **{format_duration(self.seconds)}** on {self.device} ({how}, {self.seconds_per_step:.2g} s per step)."
        if self.up_to:
            text += " Stop when learned may end it sooner."
        if self.cpu_only and not self.measured and not self.runs:
            text = (
                f"⚠ **This machine has no GPU.** Training a real model on a CPU is very slow: {about.lower()} "
                f"**{format_duration(self.seconds)}** for these settings ({self.seconds_per_step:.0f} s per step; "
                "a GPU is about 100× faster). Try fewer steps, a smaller resolution, or a GPU Space."
            )
        elif self.slow:
            text = f"⚠ {text} That is a long run: consider fewer steps or a smaller resolution."
        return text


def format_duration(seconds: float) -> str:
    """`45 s`, `3 min`, `1 h 20 min`, `2 days 4 h`."""
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} days {hours} h" if hours else f"{days} days"


def device_name(device_type: str) -> str:
    """The GPU's name (`NVIDIA H200`), `Apple GPU (MPS)` or `CPU (N cores)`."""
    if device_type == "cuda":
        try:
            return torch.cuda.get_device_name(0)
        except Exception:  # ZeroGPU before a call, or a driver hiccup: the name is only cosmetic
            return "GPU"
    if device_type == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({cpu_cores()} cores)"


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def gpu_factor(name: str) -> float:
    upper = name.upper()
    return next((factor for key, factor in GPU_CLASSES if key in upper), UNKNOWN_GPU)


def table_seconds_per_step(
    family: str, device_type: str, resolution: int, batch_size: int = 1, grad_accum: int = 1, gpu: str = ""
) -> float:
    """Seconds per optimizer step from the table, scaled to the settings."""
    family = family if family in NATIVE else "SD 1.x"
    ratio = resolution / NATIVE[family]
    if device_type == "cpu":
        # Weight traffic dominates: 256 -> 512 px took 1.46x as long, i.e. ratio^0.55 per image.
        base = CPU_SECONDS_2_CORES[family] * 2 / min(16, max(1, cpu_cores()))
        return base * ratio**0.55 * (1 + 0.8 * (batch_size - 1)) * grad_accum
    # GPU: compute-bound; convolutions scale with pixels, self-attention a little faster.
    scale = max(ratio**2.3 * batch_size, 0.35) * grad_accum  # a small step still launches every kernel
    base = GPU_SECONDS[family] * (gpu_factor(gpu) if device_type == "cuda" else MPS_FACTOR)
    return base * scale


_MEASURED: dict[tuple, float] = {}
_MEASURE_LOCK = threading.Lock()


def measure_seconds_per_step(model, resolution: int, batch_size: int = 1, steps: int = 5) -> float:
    """Time a few real training steps of `model` on a blank image (fast on the demo models only):
    the median of `steps` steps after two warm-up steps."""
    key = (model.spec, resolution, batch_size)
    with _MEASURE_LOCK:
        if key in _MEASURED:
            return _MEASURED[key]
        from PIL import Image

        from ..images import TrainingImage
        from ..train import TrainConfig, Trainer

        image = TrainingImage("blank.png", Image.new("RGB", (resolution, resolution), (128, 128, 128)))
        config = TrainConfig(token="<timing-probe>", steps=steps + 2, batch_size=batch_size, resolution=resolution)
        with tempfile.TemporaryDirectory(prefix="textinv-timing-") as folder:
            trainer = Trainer(model, [image], config, Path(folder))
            for _ in range(2):  # the first steps pay for lazy initialisation
                trainer.train_step()
            _MEASURED[key] = statistics.median(_timed(trainer.train_step) for _ in range(steps))
        return _MEASURED[key]


def measure_reading_seconds(model, resolution: int) -> float:
    """Time one evaluation reading of `model` (fast on the demo models only) on a blank image,
    after one warm-up slice."""
    key = (model.spec, resolution, "reading")
    with _MEASURE_LOCK:
        if key not in _MEASURED:
            from PIL import Image

            from ..images import TrainingImage
            from ..latents import encode_images
            from ..quality import evaluation_loss, evaluation_set

            image = TrainingImage("blank.png", Image.new("RGB", (resolution, resolution), (128, 128, 128)))
            latents = encode_images(model, [image], resolution, flip=True)
            evaluation_loss(model, evaluation_set(model, latents, "object", samples=READING_SLICE), "a photo")
            evalset = evaluation_set(model, latents, "object")
            _MEASURED[key] = _timed(lambda: evaluation_loss(model, evalset, "a photo", chunk=READING_SLICE))
        return _MEASURED[key]


def measure_preview_seconds(model) -> float:
    """Time one preview image (20 denoising steps) of `model` (fast on the demo models only), after
    one warm-up image."""
    key = (model.spec, "preview")
    with _MEASURE_LOCK:
        if key not in _MEASURED:
            from ..generate import generate

            generate(model, "a photo", steps=2, seed=0)
            _MEASURED[key] = _timed(lambda: generate(model, "a photo", steps=20, seed=0))
        return _MEASURED[key]


def _timed(work) -> float:
    begin = time.perf_counter()
    work()
    return time.perf_counter() - begin


_LEARNED: dict[tuple, deque] = {}  # (what, setting...) -> one number per recent run, in seconds
_LEARN_LOCK = threading.Lock()


def _step_key(model, resolution: int, batch_size: int) -> tuple:
    return ("step", model.spec, model.placement.device.type, resolution, batch_size)


def _reading_key(model, resolution: int, what: str) -> tuple:  # readings and preparing: no batches
    return (what, model.spec, model.placement.device.type, resolution)


def _model_key(model, what: str) -> tuple:  # previews (native size, batch 1) depend on the model only
    return (what, model.spec, model.placement.device.type)


def _finish_key(model, stop_when_learned: bool) -> tuple:  # the readout reads once with the rule, twice without
    return _model_key(model, "finish") + (stop_when_learned,)


def record_run(model, resolution: int, batch_size: int, grad_accum: int, step_seconds: list[float],
               preview_seconds: list[float], finish_seconds: float | None, reading_seconds: list[float] = (),
               prepare_seconds: float | None = None, stop_when_learned: bool = False) -> None:
    """Remember how long a run's parts really took on this server (see `driving.Timing`), so that
    later estimates for the same setting are learned ones. The first step of a run is left out: it
    pays for lazy initialisation."""
    steady = step_seconds[1:]
    remembered = [
        (_step_key(model, resolution, batch_size), statistics.mean(steady) / grad_accum if steady else None),
        (_reading_key(model, resolution, "reading"), statistics.median(reading_seconds) if reading_seconds else None),
        (_reading_key(model, resolution, "prepare"), prepare_seconds),
        (_model_key(model, "preview"), statistics.median(preview_seconds) if preview_seconds else None),
        (_finish_key(model, stop_when_learned), finish_seconds),
    ]
    with _LEARN_LOCK:
        for key, seconds in remembered:
            if seconds is not None:
                _LEARNED.setdefault(key, deque(maxlen=RUNS_REMEMBERED)).append(seconds)


def _learned(key: tuple) -> tuple[float, int] | None:
    """(median, number of runs) of what runs with `key` took, or None before any."""
    with _LEARN_LOCK:
        values = list(_LEARNED.get(key, ()))
    return (statistics.median(values), len(values)) if values else None


def preview_count(steps: int, preview_every: int) -> int:
    """Previews in a run: one every `preview_every` steps, and one at the end if that step has none."""
    return math.ceil(steps / preview_every) if preview_every else 0


def readings_in(steps: int, stop_when_learned: bool) -> tuple[int, int]:
    """A run's evaluation readings: (while training, at the end). Stop when learned reads the
    starting vectors and every 25 steps, and its readout then needs only the learned vectors; the
    readout alone reads the starting and the learned ones."""
    return (1 + steps // READING_EVERY, 1) if stop_when_learned else (0, 2)


def estimate_training(
    model,
    steps: int,
    batch_size: int = 1,
    grad_accum: int = 1,
    resolution: int | None = None,
    preview_every: int = 0,
    zero_gpu_chunk_steps: int = 0,
    stop_when_learned: bool = False,
) -> Estimate:
    """The time a run with these settings should take on this machine, everything included (with
    stop when learned: at most, as it may end sooner)."""
    resolution = resolution or model.resolution
    device_type = model.placement.device.type
    device = device_name(device_type)

    def per_step_at(res: int, batch: int) -> float:
        if model.is_demo:
            return measure_seconds_per_step(model, res, batch)
        seconds = table_seconds_per_step(model.family.name, device_type, res, batch, 1, device)
        return seconds / CPU_BF16_SPEEDUP if device_type == "cpu" and model.placement.dtype == torch.bfloat16 else seconds

    def learned_or(key: tuple, otherwise) -> float:
        learned = _learned(key)
        return learned[0] if learned else otherwise()

    def reading() -> float:
        if model.is_demo:
            return measure_reading_seconds(model, resolution)
        return EVAL_SAMPLES / READING_SLICE * per_step_at(resolution, READING_SLICE) * FORWARD_SHARE

    def preview() -> float:  # one image at the model's own resolution, 20 denoising steps
        if model.is_demo:
            return measure_preview_seconds(model)
        return per_step_at(model.resolution, 1) * PREVIEW_STEPS_EQUIVALENT

    learned_step = _learned(_step_key(model, resolution, batch_size))
    per_step = (learned_step[0] if learned_step else per_step_at(resolution, batch_size)) * grad_accum
    while_training, at_end = readings_in(steps, stop_when_learned)
    reading_cost = learned_or(_reading_key(model, resolution, "reading"), reading)
    previews = preview_count(steps, preview_every)
    readout_pictures = 2 * PICTURES if has_image_tower(model) else 0  # the keyword's and the starting word's
    total = (
        learned_or(_reading_key(model, resolution, "prepare"), lambda: 0.0)
        + steps * per_step
        + while_training * reading_cost
        + (previews * learned_or(_model_key(model, "preview"), preview) if previews else 0.0)
        + learned_or(_finish_key(model, stop_when_learned), lambda: at_end * reading_cost + readout_pictures * preview())
    )
    if zero_gpu_chunk_steps:
        total += math.ceil(steps / zero_gpu_chunk_steps) * ZERO_GPU_CALL_OVERHEAD
    runs = learned_step[1] if learned_step else 0
    return Estimate(total, per_step, device, model.is_demo or bool(runs), cpu_only=device_type == "cpu", runs=runs,
                    up_to=stop_when_learned)


def generation_seconds(model, steps: int, num_images: int, width: int, height: int) -> float:
    """Rough seconds for one generation request (used to size ZeroGPU calls)."""
    device_type = model.placement.device.type
    if model.is_demo:
        return 2.0 + 0.02 * steps * num_images
    per_train_step = table_seconds_per_step(
        model.family.name, device_type, int(math.sqrt(width * height)), 1, 1, device_name(device_type)
    )
    return 5.0 + steps * num_images * per_train_step * 2 / 3  # two forwards (guidance) ~ 2/3 of a step
