"""Shared test set-up: a private cache for the built-in demo models, offline-safe environment
variables set before anything imports huggingface_hub or gradio, and loaded tiny models."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

_SCRATCH = Path(tempfile.mkdtemp(prefix="textinv-tests-"))
os.environ.setdefault("TEXTINV_CACHE", str(_SCRATCH / "cache"))
os.environ["HF_HOME"] = str(_SCRATCH / "hf-home")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["GRADIO_TEMP_DIR"] = str(_SCRATCH / "gradio")
os.environ.pop("HF_TOKEN", None)
sys.path.insert(0, str(Path(__file__).parent))  # tests import hub_server and helpers directly

import pytest  # noqa: E402
import torch  # noqa: E402

from hub_server import hub  # noqa: E402,F401  (a fixture, for every test module)
from textinv_core.images import load_images  # noqa: E402
from textinv_core.models import BaseModel, load_base_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="session")
def toyworld() -> BaseModel:
    """The toy-world model: where learning, not just running, can be checked."""
    return load_base_model("builtin:toyworld")


@pytest.fixture(scope="session")
def tiny_sd() -> BaseModel:
    return load_base_model("builtin:tiny-sd")


@pytest.fixture(scope="session")
def tiny_sdxl() -> BaseModel:
    return load_base_model("builtin:tiny-sdxl")


@pytest.fixture(scope="session", params=["builtin:tiny-sd", "builtin:tiny-sdxl"])
def tiny_model(request, tiny_sd, tiny_sdxl) -> BaseModel:
    """Both demo models, so each core test runs on SD 1.x-style and SDXL-style pipelines."""
    return tiny_sd if request.param == "builtin:tiny-sd" else tiny_sdxl


@pytest.fixture(scope="session")
def robot_images():
    return load_images([EXAMPLES / "red-rocket"])


def model_state(model: BaseModel) -> dict[str, torch.Tensor]:
    """A copy of every weight and buffer of every module of the pipeline."""
    state = {}
    for name, module in model.pipe.components.items():
        if isinstance(module, torch.nn.Module):
            state |= {f"{name}.{k}": v.detach().clone() for k, v in module.state_dict().items()}
    return state


def assert_same_state(before: dict[str, torch.Tensor], model: BaseModel) -> None:
    after = model_state(model)
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert not changed, f"weights changed: {changed[:5]}"
