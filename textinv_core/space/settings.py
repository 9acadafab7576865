"""What the person who runs the app can set (environment variables), and the app's fixed limits."""

from __future__ import annotations

import os
from pathlib import Path

import torch

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEMO_MODEL = "builtin:toyworld"
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
MOCK_OAUTH_TOKEN = "mock-oauth-token-for-local-dev"  # what gradio hands out locally: not a real token
ON_SPACE = bool(os.environ.get("SPACE_ID"))
ZERO_GPU = bool(os.environ.get("SPACES_ZERO_GPU"))
OAUTH = ON_SPACE and bool(os.environ.get("OAUTH_CLIENT_ID"))


def _limit(name: str, on_gpu: int, on_cpu: int) -> int:
    """A concurrency limit from the environment, else sized for the hardware: on a CPU every run
    or image already uses all cores, so a second one at once only makes both slower."""
    return int(os.environ.get(name) or (on_gpu if torch.cuda.is_available() else on_cpu))


# Training and generation have limits of their own, so an image never waits behind a training run.
TRAIN_SLOTS = _limit("TEXTINV_TRAIN_SLOTS", 2, 1)
GENERATE_CONCURRENCY = _limit("TEXTINV_GENERATE_CONCURRENCY", 2, 1)
AUTOSAVE_SECONDS = float(os.environ.get("TEXTINV_AUTOSAVE_SECONDS", "60"))  # a crash loses at most this
# A page's session is forgotten an hour after its tab closed (gradio's grace); an API caller that
# never disconnects (plain REST) is ended by the sweep once unused for the grace (visitors.py).
SESSION_TTL = 24 * 3600
SWEEP_SECONDS = 300
SHUTDOWN_SECONDS = 25  # on SIGTERM, how long runs get to reach their next step and save (Spaces wait 30)
ZERO_GPU_CALL_SECONDS = int(os.environ.get("TEXTINV_GPU_SECONDS", "110"))  # one ZeroGPU call at most
# The app refuses photos and embedding files over 50 MB itself, with a note naming the file (see
# uploads.MAX_UPLOAD_BYTES). gradio's own limit is higher, because a file over it never reaches the
# app: gradio's page refuses the whole batch with a toast of its own.
UPLOAD_HARD_LIMIT = "200mb"
CACHE_CLEANUP = (3600, 6 * 3600)  # every hour, delete uploads and outputs older than 6 hours
EMBEDDING_TYPES = [".pt", ".bin", ".safetensors", ".png", ".webp"]
