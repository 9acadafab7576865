"""What several tabs show of one session: its concepts (Generate's table and picker, kept fresh
by Train and Hub too) and the runs it can push (the Hub tab's choices, fed by Train)."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from .context import viewing
from .session import Session


def concept_rows(session: Session) -> pd.DataFrame:
    rows = [
        {"keyword": c.token, "type": c.concept_type, "vectors": c.num_vectors, "from": c.source or "trained"}
        for c in session.concept_list()
    ]
    return pd.DataFrame(rows, columns=["keyword", "type", "vectors", "from"])


def concept_views(session: Session | None, selected: str | None = None):
    """The Generate tab's concept table and keyword picker."""
    session = viewing(session)
    keywords = [c.token for c in session.concept_list()]
    value = selected if selected in keywords else (keywords[-1] if keywords else None)
    return concept_rows(session), gr.update(choices=keywords, value=value)


def trained_runs(session: Session):
    """The Hub tab's 'concept to push' choices: finished runs of this session."""
    choices = [(f"{run.keyword} ({run.output_dir.name})", str(run.output_dir)) for run in session.finished_runs]
    return gr.update(choices=choices, value=choices[-1][1] if choices else None)
