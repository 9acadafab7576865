"""Training runs that belong to their visitor, not to the page that started them.

A run goes on in a thread of its own, so reloading the page, closing the tab or losing the
connection does not end it: a page only *watches* a run (`watch`), and a reloaded page watches
the same run again. Runs wait for one of a fixed number of training slots, apart from
generation's, so an image is never queued behind somebody's training.

A run's folder says what became of it: `result.json` once it finished or was stopped by its
visitor; without it, a folder with checkpoints is a run that was interrupted (a server restart,
a kill) and can be resumed from its latest checkpoint (`saved_runs`).
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ..images import TrainingImage, load_images
from ..train import TrainConfig, checkpoints_in, read_checkpoint

log = logging.getLogger("textinv.runs")

RESULT_FILE = "result.json"


class Slots:
    """A fixed number of places for runs, given out first come, first served; a waiting run
    knows how many are ahead of it."""

    def __init__(self, count: int):
        self.count = max(1, count)
        self._queue: list[object] = []  # waiting and running, in arrival order
        self._changed = threading.Condition()

    def ahead_of(self, ticket: object) -> int:
        """How many waiting runs are ahead of `ticket` (0: it is next, or running)."""
        with self._changed:
            return max(0, self._queue.index(ticket) - self.count + 1) if ticket in self._queue else 0

    def acquire(self, ticket: object, cancelled: Callable[[], bool], on_wait: Callable[[int], None]) -> bool:
        """Wait for a place; False when `cancelled()` became true first."""
        with self._changed:  # a re-entrant lock: ahead_of() takes it again
            self._queue.append(ticket)
            while (ahead := self.ahead_of(ticket)) > 0:
                if cancelled():
                    self._queue.remove(ticket)
                    self._changed.notify_all()
                    return False
                on_wait(ahead)
                self._changed.wait(timeout=0.5)
            return True

    def release(self, ticket: object) -> None:
        with self._changed:
            if ticket in self._queue:
                self._queue.remove(ticket)
            self._changed.notify_all()


class Runner:
    """Starts runs in their own threads and stops them all when the server shuts down."""

    def __init__(self, slots: int):
        self.slots = Slots(slots)
        self.shutting_down = threading.Event()
        self._threads: dict[threading.Thread, Path] = {}  # each run's thread and its stop file

    def start(self, view, drive: Callable[[], Iterator], stop_file: Path,
              on_end: Callable[[Exception | None], None]) -> None:
        """Run `drive()` (a run's event stream, updating `view`) once a slot is free, then call
        `on_end(error)`. The run stops at its next step once `stop_file` exists (also while it
        waits). The thread runs in a copy of the caller's context (ZeroGPU's GPU calls look for
        the request there)."""
        def target() -> None:
            error = None
            try:
                if self.slots.acquire(view, stop_file.exists, lambda ahead: view.update(ahead=ahead)):
                    view.update(phase="preparing", ahead=0)
                    for _ in drive():
                        view.update()
            except Exception as err:  # whatever happens, the tab may train again
                error = err
            finally:
                self.slots.release(view)
            try:
                on_end(error)
            except Exception:
                log.exception("finishing a run failed")
            finally:
                view.update(ended_at=time.monotonic())  # only now: a result is complete once it has ended

        thread = threading.Thread(target=contextvars.copy_context().run, args=(target,), name="training", daemon=True)
        self._threads = {t: f for t, f in self._threads.items() if t.is_alive()} | {thread: stop_file}
        thread.start()

    def running(self) -> int:
        return sum(t.is_alive() for t in self._threads)

    def shutdown(self, timeout: float) -> bool:
        """Ask every run to stop at its next step (each saves a checkpoint first) and wait for
        them; True if all ended within `timeout` seconds."""
        self.shutting_down.set()
        for thread, stop_file in list(self._threads.items()):
            if thread.is_alive():
                stop_file.touch()
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        return self.running() == 0


def watch(view, interval: float = 0.5) -> Iterator:
    """The view each time it changes (at most every `interval` seconds, and at least that often,
    so elapsed times move on), until the run has ended; the ended view comes last."""
    seen = -1
    while True:
        version = view.wait_change(seen, interval)
        ended = view.ended_at is not None
        if version != seen or ended:
            seen = version
            yield view
        if ended:
            return


# -- runs on disk ---------------------------------------------------------------------------------


def write_result(folder: Path, step: int, stopped: bool, seconds: float = 0.0) -> None:
    """Mark a run folder as ended by its visitor (finished or stopped), so it is never offered for
    resuming; with how long it took, which a page after a server restart still shows."""
    (Path(folder) / RESULT_FILE).write_text(json.dumps({"step": step, "stopped": stopped, "seconds": round(seconds, 1)}))


@dataclass
class SavedRun:
    """A run folder found on disk, from this server process or an earlier one."""

    folder: Path
    config: TrainConfig
    step: int  # the latest saved step
    ended: bool  # finished or stopped by its visitor; False: interrupted, resumable
    stopped: bool = False  # ended by Stop before its last step
    seconds: float = 0.0  # how long it took, for an ended run

    def images(self) -> list[TrainingImage]:
        return load_images([self.folder / "concept_images"])

    def state(self) -> dict:
        """The latest checkpoint, to resume from."""
        return read_checkpoint(self.folder)


def saved_runs(session_folder: Path) -> list[SavedRun]:
    """Every run folder of a session that holds a learned embedding, oldest first. Folders that
    can't be read (no settings, a settings file of another version) are skipped."""
    found = []
    for folder in sorted(Path(session_folder).glob("run-*")):
        settings, checkpoints = folder / "settings.json", checkpoints_in(folder)
        if not settings.is_file() or not checkpoints or not (folder / "learned_embeds.safetensors").is_file():
            continue
        try:
            fields = json.loads(settings.read_text())
            config = TrainConfig(**{k: v for k, v in fields.items() if k in TrainConfig.__dataclass_fields__})
        except (ValueError, TypeError) as err:
            log.warning("skipping run folder %s: %s", folder.name, err)
            continue
        result = json.loads((folder / RESULT_FILE).read_text()) if (folder / RESULT_FILE).is_file() else None
        if result is None:
            found.append(SavedRun(folder, config, int(checkpoints[-1].stem.split("-")[-1]), ended=False))
        else:
            found.append(SavedRun(folder, config, result["step"], ended=True, stopped=result.get("stopped", False),
                                  seconds=result.get("seconds", 0.0)))
    return found
