"""Loading the model the app runs on, falling back to the built-in demo model when it can't be had."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from huggingface_hub import snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError

from ..hub import hub_unreachable
from ..models import BaseModel, load_base_model
from . import messages
from .settings import DEFAULT_MODEL, DEMO_MODEL

log = logging.getLogger("textinv.app")


def load_model(spec: str | None = None) -> tuple[BaseModel, str | None]:
    """The model asked for (argument, $TEXTINV_MODEL, else SD 1.5), or the demo model with the
    reason when it can't be loaded. A Hub model is looked for in the local cache at once when the
    Hub can't be reached, instead of waiting for huggingface_hub's retries (45 s without a network);
    each step is logged, so whoever starts the app sees what it is doing."""
    spec = spec or os.environ.get("TEXTINV_MODEL") or DEFAULT_MODEL
    if spec.startswith("builtin:") or Path(spec).exists():
        log.info("Loading %s…", spec)
        return _load_or_fall_back(spec, spec)
    log.info("Checking the Hub for %s…", spec)
    if reason := hub_unreachable():
        try:
            folder = snapshot_download(spec, local_files_only=True)
        except (LocalEntryNotFoundError, ValueError, OSError):
            log.warning("The Hub can't be reached (%s) and %s is not in the local cache: opening the built-in "
                        "demo model %s instead.", reason, spec, DEMO_MODEL)
            return load_base_model(DEMO_MODEL), f"`{spec}` could not be loaded (the Hub can't be reached: {reason}, and there is no copy in the local cache)"
        log.info("The Hub can't be reached (%s): loading %s from the local cache…", reason, spec)
        return _load_or_fall_back(folder, spec)
    log.info("Loading %s (downloaded into the Hugging Face cache first if it is not there: several GB)…", spec)
    return _load_or_fall_back(spec, spec)


def _load_or_fall_back(path: str, spec: str) -> tuple[BaseModel, str | None]:
    try:
        base = load_base_model(path)
    except (ValueError, OSError) as err:
        if spec.startswith("builtin:"):
            raise
        cause = _cause(err)
        log.warning("Could not load %s (%s): opening the built-in demo model %s instead.", spec, cause, DEMO_MODEL)
        return load_base_model(DEMO_MODEL), f"`{spec}` could not be loaded ({cause})"
    base.spec = spec  # the name asked for, also when it was loaded from its cached folder
    log.info("Loaded %s (%s, %d px).", spec, base.family.name, base.resolution)
    return base, None


def _cause(err: Exception) -> str:
    """The first sentence of a loading error, without diffusers' pointer to a stack trace that
    is never printed ("check out the root cause in the stacktrace above")."""
    text = re.sub(r"[^.]*stack ?trace[^.]*\.?", "", str(err), flags=re.IGNORECASE).strip()
    first = text.splitlines()[0] if text else "unknown error"
    return messages.for_visitor(first[:300])
