"""Where the frozen model runs and in which precision.

Textual Inversion trains a few thousand numbers while the model around them stays frozen, so the
frozen modules can run in half precision on a GPU (half the memory, twice the speed) while the
trained vectors and their optimizer state stay in float32, where small updates are not rounded away.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Placement:
    device: torch.device
    dtype: torch.dtype  # of the frozen modules; trained vectors are always float32

    def describe(self) -> str:
        name = {v: k for k, v in DTYPES.items()}[self.dtype]
        return f"{self.device.type} ({name})"


def cpu_computes_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX512-BF16 or AMX): without them torch
    emulates bf16 and it is slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", flags) is not None


def choose_placement(device: str | None = None, dtype: str | None = None, small_model: bool = False) -> Placement:
    """Pick the fastest safe placement: CUDA bf16 (fp16 where bf16 is unsupported), MPS fp32, and
    on a CPU bf16 where it computes it natively, else fp32. `dtype` (or `$TEXTINV_DTYPE`) overrides.

    MPS gets fp32 because fp16 backward passes on MPS still overflow in attention for some models;
    a user who knows their Mac can ask for fp16. On a CPU with AVX512-BF16, bf16 made an SD 1.5
    training step 1.9x faster (benchmarks/README.md) with no loss of quality beyond seed noise on the
    toy world; a small model (the built-in ones, `small_model`) is faster in fp32, its convolutions
    too small for the conversions to pay.
    """
    dtype = dtype or os.environ.get("TEXTINV_DTYPE") or None
    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    if device is None:
        if torch.cuda.is_available():
            device = "cuda"
        elif torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    try:
        torch_device = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"--device {device!r} is not a device torch knows ({err})") from None
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA GPU on this machine")
    if dtype is not None:
        return Placement(torch_device, DTYPES[dtype])
    if torch_device.type == "cuda":
        return Placement(torch_device, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    if torch_device.type == "cpu" and not small_model and cpu_computes_bf16():
        return Placement(torch_device, torch.bfloat16)
    return Placement(torch_device, torch.float32)
