"""Training and generation as GPU calls: on ZeroGPU each is a `spaces.GPU` call with a duration
computed from the request (a long run is trained as several calls, see `driving.py`); elsewhere
the same functions run directly."""

from __future__ import annotations

try:  # app.py imports `spaces` first, before anything initializes CUDA; off Spaces it is optional
    import spaces
except ImportError:
    spaces = None

from ..generate import generate
from ..train import TrainConfig
from . import estimate
from .context import model
from .driving import train_chunk
from .settings import ZERO_GPU, ZERO_GPU_CALL_SECONDS


def gpu(duration):
    """`spaces.GPU(duration=...)` on ZeroGPU; elsewhere the function runs as it is."""
    if spaces is None:
        return lambda fn: fn
    return spaces.GPU(duration=duration)


def zero_gpu_chunk_steps(config: TrainConfig) -> int:
    """On ZeroGPU, the steps that fit in one GPU call (previews included); 0 elsewhere (one call)."""
    if not ZERO_GPU:
        return 0
    est = estimate.estimate_training(
        model(), 100, config.batch_size, config.grad_accum, config.resolution, config.preview_every
    )
    return max(1, int((ZERO_GPU_CALL_SECONDS - 20) / (est.seconds / 100)))


def _train_duration(images, config, output_dir, state=None, pause_at=None) -> int:
    done = int(state["step"]) if state else 0
    est = estimate.estimate_training(
        model(), (pause_at or config.steps) - done, config.batch_size, config.grad_accum,
        config.resolution, config.preview_every,
    )
    return int(min(ZERO_GPU_CALL_SECONDS, 20 + 1.3 * est.seconds))


@gpu(_train_duration)
def train_on_gpu(images, config, output_dir, state=None, pause_at=None):
    """One chunk of a training run; on ZeroGPU, one GPU call in a forked worker."""
    yield from train_chunk(model(), images, config, output_dir, state, pause_at)


def _generate_duration(prompt, concepts, negative, steps, guidance, seed, num_images, width, height) -> int:
    return int(min(120, 10 + 1.5 * estimate.generation_seconds(model(), steps, num_images, width, height)))


@gpu(_generate_duration)
def generate_on_gpu(prompt, concepts, negative, steps, guidance, seed, num_images, width, height):
    return generate(model(), prompt, concepts, negative, steps, guidance, seed, num_images, width, height)
