"""What the page says when something worked or did not: status-box text and toasts."""

from __future__ import annotations

import logging

import gradio as gr

from . import messages

log = logging.getLogger("textinv.app")


def ok(text: str) -> str:
    return f"✔ {text}"


def warn(title: str, text: str, duration: float = 10) -> None:
    """One toast, saying first what happened. gradio 6 heads every toast with its kind only
    ("Warning") and groups them, so the title leads the text; and the page closes the toasts of
    earlier actions when a new one starts (`widgets.HEAD`), so they never pile up."""
    gr.Warning(messages.for_toast(f"{title}: {text}"), duration=duration, title=title)


def failed(err: Exception, title: str = "Can't do that yet") -> str:
    """A user-facing error as a toast (headed by `title`: what did not happen) and as the text of
    a status box: no server paths, no class names, and in the toast (which shows Markdown
    literally) no backticks."""
    warn(title, messages.for_visitor(str(err)))
    return status_for(err)


def status_for(err: Exception) -> str:
    """The status-box text of a user-facing error (no toast: for runs that end with no page)."""
    return f"✖ {messages.for_markdown(messages.for_visitor(str(err)))}"


def unexpected(err: Exception, what: str) -> str:
    log.exception("%s failed", what)  # the traceback goes to the server log, never to the page
    return failed(ValueError(f"{what} failed unexpectedly; please try again"), "Something went wrong")
