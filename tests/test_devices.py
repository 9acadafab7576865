"""Where the frozen model runs and in which precision."""

from __future__ import annotations

import pytest
import torch

from textinv_core import devices


@pytest.mark.parametrize("native, small, expected", [
    (True, False, torch.bfloat16),  # a CPU with AVX512-BF16 and a real model: bf16 (1.9x faster a step)
    (True, True, torch.float32),  # a small built-in model is faster in fp32
    (False, False, torch.float32),  # emulated bf16 is slower than fp32
])
def test_a_cpu_runs_bf16_only_where_it_pays(monkeypatch, native, small, expected):
    monkeypatch.delenv("TEXTINV_DTYPE", raising=False)
    monkeypatch.setattr(devices, "cpu_computes_bf16", lambda: native)
    assert devices.choose_placement("cpu", small_model=small).dtype == expected


def test_the_precision_can_be_chosen(monkeypatch):
    monkeypatch.setattr(devices, "cpu_computes_bf16", lambda: True)
    monkeypatch.setenv("TEXTINV_DTYPE", "fp32")
    assert devices.choose_placement("cpu").dtype == torch.float32
    assert devices.choose_placement("cpu", "bf16").dtype == torch.bfloat16  # an explicit choice wins
    monkeypatch.setenv("TEXTINV_DTYPE", "fp8")
    with pytest.raises(ValueError, match="fp32, fp16, bf16"):
        devices.choose_placement("cpu")
