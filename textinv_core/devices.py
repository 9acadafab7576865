"""Where the frozen model runs and in which precision.

Textual Inversion trains a few thousand numbers while the model around them stays frozen, so the
frozen modules can run in half precision on a GPU (half the memory, twice the speed) while the
trained vectors and their optimizer state stay in float32, where small updates are not rounded away.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Placement:
    device: torch.device
    dtype: torch.dtype  # of the frozen modules; trained vectors are always float32

    def describe(self) -> str:
        name = {v: k for k, v in DTYPES.items()}[self.dtype]
        return f"{self.device.type} ({name})"


def choose_placement(device: str | None = None, dtype: str | None = None) -> Placement:
    """Pick the fastest safe placement: CUDA bf16 (fp16 where bf16 is unsupported), MPS fp32, CPU fp32.

    MPS gets fp32 because fp16 backward passes on MPS still overflow in attention for some models;
    a user who knows their Mac can ask for fp16.
    """
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
    return Placement(torch_device, torch.float32)
