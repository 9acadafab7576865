"""Who a visitor is, and how long what they made is kept.

A visitor is the logged-in Hub user on a Space, else a random id that their browser keeps
(gradio's `BrowserState`). All pages of one visitor share one `Session`, so a reloaded or reopened
page finds its uploads, concepts and running training again; and the session's folder is named
after the id (hashed: the id is a secret), so after a server restart the visitor is offered what
their interrupted runs learned. Callers without an identity (gradio_client, REST) get a session
of their own that ends with their connection.

What is kept, and for how long:
- a page's session ends when gradio forgets the page (an hour after the tab closed, gradio's own
  grace for a page that comes back); a visitor's session ends when none of their pages is left
  and no run of theirs is going (a run that ended after the last page went is kept for `grace`
  more); its folder goes with it;
- an API caller's session ends, folder and all, when its client goes: gradio sees that when the
  client's heartbeat connection closes (gradio_client notices its own `close()` at the next
  heartbeat: within 15 s, or $GRADIO_HEARTBEAT_INTERVAL) and runs `unload`. A caller that never
  held that connection (plain REST) has its session ended once unused for `grace`; gradio alone
  would keep it for the state's whole time-to-live;
- folders no live session owns are removed once untouched for `grace` (anonymous ones) or `keep`
  (a visitor's, which after a restart may still be resumed), at start-up and then periodically.
"""

from __future__ import annotations

import datetime
import gc
import logging
import os
import re
import secrets
import shutil
import threading
import time
import weakref
from pathlib import Path

import gradio as gr

from ..models import BaseModel
from .session import Session, session_root

log = logging.getLogger("textinv.visitors")

STORAGE_KEY = "textinv-visitor"  # the browser's localStorage entry that holds the visitor id
SECRET_FILE = ".browser-secret"  # encrypts that entry; kept beside the sessions, so a restart can read it
ID_PATTERN = re.compile(r"v-[A-Za-z0-9_-]{32}")
GRACE_SECONDS = float(os.environ.get("TEXTINV_SESSION_GRACE", 3600))
KEEP_SECONDS = float(os.environ.get("TEXTINV_SESSION_KEEP", 24 * 3600))


def new_visitor_id() -> str:
    return "v-" + secrets.token_urlsafe(24)


def browser_secret(root: Path | None = None) -> str:
    """The key gradio encrypts the visitor id with in the browser: `TEXTINV_BROWSER_SECRET`, else
    one made once and kept (mode 0600) in the sessions folder, so ids survive a restart."""
    if os.environ.get("TEXTINV_BROWSER_SECRET"):
        return os.environ["TEXTINV_BROWSER_SECRET"]
    root = root or session_root()
    root.mkdir(parents=True, exist_ok=True)
    path = root / SECRET_FILE
    if not path.is_file():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


class Visitors:
    """Every live session of this server, by visitor; and the sweeping of what is left over."""

    def __init__(self, grace: float = GRACE_SECONDS, keep: float = KEEP_SECONDS):
        self.grace, self.keep = grace, keep
        # a run that ended with no page open is kept this long for its visitor to come back to
        self.run_grace = grace
        self._visitors: dict[str, Session] = {}
        self._anonymous: set[Session] = set()
        self._watched: weakref.WeakKeyDictionary[gr.Blocks, gr.State] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def identity(self, stored: str | None, username: str | None = None) -> str:
        """The visitor's id: the Hub user if logged in, else the id the browser kept (a new one
        if it kept none or something that is not one of ours)."""
        if username:
            return f"hf:{username}"
        if stored and ID_PATTERN.fullmatch(stored):
            return stored
        return new_visitor_id()

    def attach(self, visitor: str, model: BaseModel) -> Session:
        """The visitor's session, for one more page; after a restart, rebuilt from its folder."""
        with self._lock:
            session = self._visitors.get(visitor)
            if session is None:
                session = self._visitors[visitor] = Session(visitor=visitor)
                session.restore(model)
            session.pages += 1
            session.detached_at = None
        return session

    def anonymous(self) -> Session:
        """A session for a caller without an identity (the API); it ends with its connection."""
        session = Session()
        with self._lock:
            self._anonymous.add(session)
        return session

    def release(self, session: Session | None) -> None:
        """gradio forgot a page (its `delete_callback`): an anonymous session ends now, a
        visitor's when their last page is gone and nothing of theirs is training."""
        if session is None:
            return
        with self._lock:
            if session.visitor is None:
                self._anonymous.discard(session)
                session.cleanup()
                gc.collect()  # a session's images, latents and runs sit in reference cycles; free them now
                return
            session.pages -= 1
            if session.pages <= 0:
                session.detached_at = time.monotonic()

    def watch(self, demo: gr.Blocks, state: gr.State) -> None:
        """End the API callers' sessions that `demo` keeps in `state` when their client goes, and
        let `sweep` end those unused for `grace`. A visitor's session is left as it is: their
        pages end with gradio's grace, so a reloaded page finds it again."""
        def client_gone(request: gr.Request) -> None:
            self._end_api_session(demo, state, request.session_hash)

        demo.unload(client_gone)  # gradio runs it when the client's heartbeat connection closes
        self._watched[demo] = state

    def _end_api_session(self, demo: gr.Blocks, state: gr.State, session_hash: str, idle_only: bool = False) -> None:
        """End the API caller's session gradio keeps for `session_hash`, if it has one (with
        `idle_only`, not while it trains). gradio's reference to it is dropped too, so what it
        holds in memory goes now, not when gradio forgets the connection."""
        kept = demo.state_holder.session_data.get(session_hash)
        session = kept.state_data.get(state._id) if kept else None
        if not isinstance(session, Session) or session.visitor is not None or (idle_only and session.training):
            return
        kept.state_data[state._id] = None  # replaced, not deleted: gradio's own sweep may be iterating over it
        self.release(session)

    def _end_idle_api_sessions(self) -> None:
        """End API sessions no request has used for `grace`: their callers never held a connection
        whose closing gradio could see (plain REST), or have long left it idle."""
        now = datetime.datetime.now()
        for demo, state in list(self._watched.items()):
            holder = getattr(demo, "state_holder", None)  # there once the demo is launched
            for session_hash, used in list(holder.time_last_used.items()) if holder else []:
                if (now - used).total_seconds() >= self.grace:
                    self._end_api_session(demo, state, session_hash, idle_only=True)

    def sweep(self, root: Path | None = None) -> list[str]:
        """End visitors' sessions with no page left and nothing training, and delete folders no
        live session owns once they are old enough; end API sessions unused for `grace`. Returns
        the folder names removed."""
        self._end_idle_api_sessions()
        now, removed = time.monotonic(), []
        with self._lock:
            for visitor, session in list(self._visitors.items()):
                if session.pages <= 0 and not session.training and now - session.quiet_since() >= self.run_grace:
                    del self._visitors[visitor]
                    removed += session.cleanup()
                    gc.collect()
            owned = {s.folder_name for s in [*self._visitors.values(), *self._anonymous]}
        root = root or session_root()
        for folder in root.glob("*-*") if root.is_dir() else []:
            if folder.name in owned or not folder.is_dir():
                continue
            limit = self.keep if folder.name.startswith("visitor-") else self.grace
            if time.time() - folder.stat().st_mtime >= limit:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
        if removed:
            log.info("removed %d session folder(s)", len(removed))
        return removed

    def sweep_every(self, seconds: float) -> threading.Thread:
        """Sweep now and then every `seconds`, in a daemon thread."""
        def loop() -> None:
            while True:
                try:
                    self.sweep()
                except OSError as err:
                    log.warning("sweeping session folders failed: %s", err)
                time.sleep(seconds)

        thread = threading.Thread(target=loop, name="session-sweeper", daemon=True)
        thread.start()
        return thread
