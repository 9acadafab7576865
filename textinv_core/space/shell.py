"""The page-wide components every tab wires to."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr


@dataclass
class Shell:
    """What every tab wires to: the page, its tabs, the visitor's session and their browser's id."""

    demo: gr.Blocks
    tabs: gr.Tabs
    session: gr.State
    visitor: gr.BrowserState
