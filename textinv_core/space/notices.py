"""What the page says when something worked or did not: status-box text and toasts."""

from __future__ import annotations

import logging

import gradio as gr

from . import messages

log = logging.getLogger("textinv.app")


def ok(text: str) -> str:
    return f"✔ {text}"


def failed(err: Exception) -> str:
    """A user-facing error as a toast and as the text of a status box: no server paths, no class
    names, and in the toast (which shows Markdown literally) no backticks."""
    message = messages.for_visitor(str(err))
    gr.Warning(messages.for_toast(message), duration=10, title="Can't do that yet")
    return status_for(err)


def status_for(err: Exception) -> str:
    """The status-box text of a user-facing error (no toast: for runs that end with no page)."""
    return f"✖ {messages.for_markdown(messages.for_visitor(str(err)))}"


def unexpected(err: Exception, what: str) -> str:
    log.exception("%s failed", what)  # the traceback goes to the server log, never to the page
    return failed(ValueError(f"{what} failed unexpectedly; please try again"))
