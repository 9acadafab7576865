"""What several tabs show of one session: its concepts (Generate's table and picker, kept fresh
by Train and Hub too) and the runs it can push (the Hub tab's choices, fed by Train)."""

from __future__ import annotations

from pathlib import Path

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
    """The Hub tab's 'concept to push' choices: finished runs of this session, named by keyword and
    how far they trained. The value is the run folder's name, never its path on the server."""
    runs = session.finished_runs
    repeated = {run.keyword.lower() for run in runs if sum(r.keyword.lower() == run.keyword.lower() for r in runs) > 1}
    choices = []
    for number, run in enumerate(runs, 1):
        label = f"{run.keyword} · {run.step} steps" + (" · stopped early" if run.phase == "stopped" else "")
        if run.keyword.lower() in repeated:
            label += f" · run {number} of this session"
        choices.append((label, Path(run.output_dir).name))
    return gr.update(choices=choices, value=choices[-1][1] if choices else None)
