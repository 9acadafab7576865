"""What every handler of this server shares: the one frozen model, where the Hub is, the runner of
training runs and the visitors' sessions. Set once by `configure` when the page is built."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from huggingface_hub import HfApi

from ..hub import CONCEPTS_LIBRARY
from ..models import BaseModel
from . import runs, visitors
from .session import Session
from .settings import TRAIN_SLOTS

RUNNER = runs.Runner(TRAIN_SLOTS)
VISITORS = visitors.Visitors()


@dataclass
class Server:
    model: BaseModel | None = None
    resolutions: list[int] = field(default_factory=list)  # what the Train tab offers
    hub_endpoint: str | None = None  # None: $TEXTINV_HUB_ENDPOINT (read at each request), else the Hub
    library_author: str | None = None  # None: $TEXTINV_LIBRARY_AUTHOR (read at each request), else the library


SERVER = Server()


def configure(base: BaseModel, hub_endpoint: str | None = None, library_author: str | None = None) -> None:
    SERVER.model, SERVER.resolutions = base, resolution_choices(base.resolution)
    SERVER.hub_endpoint, SERVER.library_author = hub_endpoint, library_author


def model() -> BaseModel:
    return SERVER.model


def resolution_choices(native: int) -> list[int]:
    choices = {native}
    for factor in (0.5, 0.75, 1.25, 1.5):
        size = int(native * factor) // 8 * 8
        if size >= 64 and size <= 1536:
            choices.add(size)
    return sorted(choices)


def concepts_library() -> str:
    return SERVER.library_author or os.environ.get("TEXTINV_LIBRARY_AUTHOR") or CONCEPTS_LIBRARY


def hub_api(token) -> HfApi:
    endpoint = SERVER.hub_endpoint or os.environ.get("TEXTINV_HUB_ENDPOINT") or None
    return HfApi(endpoint=endpoint, token=token)


def own(session: Session | None) -> Session:
    """The caller's session. Pages get theirs when they load; an API caller's first call that
    keeps something makes one (and hands it back to gradio, which ends it with the connection)."""
    return session if session is not None else VISITORS.anonymous()


def viewing(session: Session | None) -> Session:
    """The caller's session for reading only: an empty one (kept nowhere) if it has none yet."""
    return session if session is not None else Session()
