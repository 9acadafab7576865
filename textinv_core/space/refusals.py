"""Requests refused before any handler runs: one line in the server log each, and a message the
caller can act on.

gradio checks a request before a handler sees it: a value for every input, each file a FileData
payload, a path only to a file uploaded here, a URL only to a public address. When a check fails,
gradio prints the whole traceback (with `traceback.print_exc()`, so no logging filter can shorten
it), and an API caller is told only that "the upstream Gradio app has raised an exception". Yet
the caller sent something wrong, not the server; a traceback in the log should mean a bug. So
these known refusals become a `gr.Error`, which gradio shows the caller and does not print, and
one log line naming the endpoint and why.
"""

from __future__ import annotations

import functools
import logging

import gradio as gr
from gradio.exceptions import InvalidPathError
from pydantic import ValidationError

log = logging.getLogger("textinv.refusals")

TOO_FEW = ("This request sends too few values for the endpoint: the app's API page (“Use via API” at the foot "
           "of the page) lists its parameters.")
MALFORMED = ("A value in this request is not in the form the endpoint takes (a file goes as "
             '{"path": ..., "meta": {"_type": "gradio.FileData"}}; gradio_client: handle_file(path)).')
NOT_UPLOADED = ("A file in this request was never uploaded to this server: upload it first "
                "(gradio_client: handle_file(path)), then send the path the upload returned.")
BAD_URL = ("A file in this request is a URL this server does not fetch (a private or local address, or "
           "one it cannot resolve): upload the file itself instead.")


def refuse_quietly(demo: gr.Blocks) -> None:
    """Turn the refusals of gradio's input checks on `demo` into one log line and a clear error.

    Only the input checks are wrapped (`preprocess_data`, which runs before every handler), and
    only the errors `refusal` knows; anything else, a bug, still prints its traceback."""
    check_inputs = demo.preprocess_data

    @functools.wraps(check_inputs)
    async def preprocess_data(block_fn, *args, **kwargs):
        try:
            return await check_inputs(block_fn, *args, **kwargs)
        except Exception as err:
            known = refusal(err)
            if known is None:
                raise
            why, message = known
            log.warning("refused a request to %s: %s", endpoint(block_fn), why)
            raise gr.Error(message, title="Request refused", print_exception=False) from None

    demo.preprocess_data = preprocess_data


def refusal(err: BaseException) -> tuple[str, str] | None:
    """(why, for the log; what to tell the caller) if `err` is gradio refusing a bad request."""
    if isinstance(err, ValidationError):
        problem = err.errors()[0]
        return f"a malformed value ({problem['type']}: {first_line(problem['msg'])})", MALFORMED
    if isinstance(err, InvalidPathError):
        return f"a file it never received ({first_line(err)})", NOT_UPLOADED
    if isinstance(err, ValueError) and origin(err).startswith("safehttpx."):  # gradio's guard on fetching URLs
        return f"a file URL it does not fetch ({first_line(err)})", BAD_URL
    if isinstance(err, ValueError) and origin(err) == "gradio.blocks.validate_inputs":
        return f"too few values ({first_line(err)})", TOO_FEW
    return None


def endpoint(block_fn) -> str:
    """`/add_images`: the endpoint as API callers name it."""
    return f"/{block_fn.api_name or block_fn.name}"


def first_line(error: object) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def origin(err: BaseException) -> str:
    """`module.function` that raised `err` (its traceback's innermost frame), "" if unknown."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f"{tb.tb_frame.f_globals.get('__name__')}.{tb.tb_frame.f_code.co_name}" if tb else ""
