"""Runs that outlive their page and their server process, and sessions that end and are swept:
the library side (runs.py, visitors.py, the trainer's autosave). The server side, with a real
browser and real kills, is in test_survival.py."""

from __future__ import annotations

import os
import threading
import time

import pytest
import torch
from safetensors.torch import load_file

from textinv_core.space import driving
from textinv_core.space import runs, visitors
from textinv_core.train import TrainConfig, Trainer


def test_autosave_keeps_only_the_latest_checkpoint_and_resumes_exactly(tiny_sd, robot_images, tmp_path):
    config = TrainConfig(token="<red-rocket>", init_word="robot", steps=6, autosave_seconds=1e-9, evaluate=False)
    trainer = Trainer(tiny_sd, robot_images, config, tmp_path / "run")
    events = list(trainer.run(pause_at=4))
    saved = sorted((tmp_path / "run" / "checkpoints").iterdir())
    assert [p.name for p in saved] == ["step-000004.resume"]  # every step autosaved; older ones removed
    assert sum(type(e).__name__ == "Checkpointed" for e in events) == 4  # one a step, as asked
    on_disk = load_file(tmp_path / "run" / "learned_embeds.safetensors")["<red-rocket>"]
    assert torch.equal(on_disk.reshape(-1), trainer.concept.detached().vectors["clip_l"].reshape(-1))  # the files hold the latest vectors

    resumed = Trainer(tiny_sd, robot_images, config, tmp_path / "resumed")
    resumed.resume(tmp_path / "run")
    list(resumed.run())
    straight = Trainer(tiny_sd, robot_images, config, tmp_path / "straight")
    list(straight.run())
    assert torch.equal(resumed.concept.vectors["clip_l"], straight.concept.vectors["clip_l"])


def test_saved_runs_tell_interrupted_from_ended(tiny_sd, robot_images, tmp_path):
    for number, ended in ((1, True), (2, False)):
        folder = tmp_path / f"run-0{number}-rocket"
        config = TrainConfig(token=f"<rocket-{number}>", init_word="robot", steps=3, evaluate=False)
        list(Trainer(tiny_sd, robot_images, config, folder).run(pause_at=2))
        if ended:
            runs.write_result(folder, 2, stopped=True)
    (tmp_path / "run-03-nothing").mkdir()  # killed before its first checkpoint: nothing to offer
    found = runs.saved_runs(tmp_path)
    assert [(r.folder.name, r.step, r.ended) for r in found] == [("run-01-rocket", 2, True), ("run-02-rocket", 2, False)]
    interrupted = found[1]
    assert interrupted.config.token == "<rocket-2>" and interrupted.config.steps == 3
    assert len(interrupted.images()) == len(robot_images) and interrupted.state()["step"] == 2


def test_slots_serve_in_order_and_a_stopped_waiter_leaves(tmp_path):
    slots, order, ahead = runs.Slots(1), [], {}
    first, second, third = object(), object(), object()
    assert slots.acquire(first, lambda: False, lambda n: None)
    cancelled = threading.Event()

    def wait(ticket, name, cancel=lambda: False):
        if slots.acquire(ticket, cancel, lambda n: ahead.__setitem__(name, n)):
            order.append(name)
            slots.release(ticket)

    waiting = [threading.Thread(target=wait, args=(second, "second")),
               threading.Thread(target=wait, args=(third, "third", cancelled.is_set))]
    for thread in waiting:
        thread.start()
        time.sleep(0.2)
    assert ahead == {"second": 1, "third": 2} and slots.ahead_of(third) == 2
    cancelled.set()  # the third is stopped while it waits: it gives up its place
    time.sleep(0.8)
    assert not waiting[1].is_alive() and slots.ahead_of(second) == 1
    slots.release(first)
    waiting[0].join(5)
    assert order == ["second"]


def test_a_visitor_keeps_one_session_across_pages_and_gets_it_back_after_a_restart(
        tiny_sd, robot_images, tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTINV_WORK_ROOT", str(tmp_path))
    registry = visitors.Visitors(grace=0, keep=3600)
    visitor = registry.identity("")
    assert visitors.ID_PATTERN.fullmatch(visitor)
    assert registry.identity(visitor) == visitor and registry.identity("../../etc") != "../../etc"
    assert registry.identity(visitor, "alice") == "hf:alice"  # a logged-in visitor is the Hub user

    session = registry.attach(visitor, tiny_sd)
    assert registry.attach(visitor, tiny_sd) is session and session.pages == 2  # a second page, same session
    finished, interrupted = session.new_run_folder("<done>"), session.new_run_folder("<cut-short>")
    for folder, token in ((finished, "<done>"), (interrupted, "<cut-short>")):
        config = TrainConfig(token=token, init_word="robot", steps=4, evaluate=False)
        list(Trainer(tiny_sd, robot_images, config, folder).run(pause_at=2 if token == "<cut-short>" else None))
    runs.write_result(finished, 4, stopped=False)
    assert visitor not in str(session.folder)  # the id is a secret: the folder is named by its hash

    after_restart = visitors.Visitors(grace=0, keep=3600)  # a new server process
    back = after_restart.attach(visitor, tiny_sd)
    assert back is not session and "<done>" in back.concepts and back.finished_runs[0].files["diffusers"].is_file()
    assert [s.config.token for s in back.interrupted] == ["<cut-short>"] and back.interrupted[0].step == 2
    assert back.new_run_folder("<next>").name.startswith("run-03-")  # numbering goes on


def test_sessions_end_and_leftover_folders_are_swept(tiny_sd, tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTINV_WORK_ROOT", str(tmp_path))
    registry = visitors.Visitors(grace=3600, keep=7200)
    caller = registry.anonymous()
    caller.new_run_folder("<x>")
    registry.release(caller)  # gradio forgot an API caller's session: its files go at once
    assert not caller.folder.exists()

    visitor = registry.attach(registry.identity(""), tiny_sd)
    visitor.new_run_folder("<y>")
    registry.release(visitor)
    registry.run_grace = 0
    assert visitor.folder.name in registry.sweep() and not visitor.folder.exists()

    old_anonymous, old_visitor, young_visitor = (tmp_path / name for name in ("session-old", "visitor-old", "visitor-young"))
    for folder in (old_anonymous, old_visitor, young_visitor):
        folder.mkdir()
    hours_ago = time.time() - 3 * 3600
    for folder in (old_anonymous, old_visitor):
        os.utime(folder, (hours_ago, hours_ago))
    live = registry.anonymous()
    live.new_run_folder("<z>")
    os.utime(live.folder, (hours_ago, hours_ago))
    removed = registry.sweep()
    assert sorted(removed) == ["session-old", "visitor-old"]  # a young visitor folder may still be resumed
    assert young_visitor.exists() and live.folder.exists()  # a live session's folder is never swept


def test_a_running_session_is_not_swept(tiny_sd, tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTINV_WORK_ROOT", str(tmp_path))
    registry = visitors.Visitors(grace=0, keep=0)
    session = registry.attach(registry.identity(""), tiny_sd)
    session.start(10)
    session.new_run_folder("<going>")
    registry.release(session)
    assert registry.sweep() == [] and session.folder.exists()
    session.run.update(phase="finished", ended_at=time.monotonic() - 1)
    assert registry.sweep() == [session.folder.name]


@pytest.mark.parametrize("secret_env", ["", "from-the-environment"])
def test_the_browser_secret_survives_a_restart(tmp_path, monkeypatch, secret_env):
    monkeypatch.setenv("TEXTINV_BROWSER_SECRET", secret_env)
    first = visitors.browser_secret(tmp_path)
    assert first == visitors.browser_secret(tmp_path) and len(first) >= 16
    if not secret_env:
        assert oct((tmp_path / visitors.SECRET_FILE).stat().st_mode & 0o777) == "0o600"
    else:
        assert first == secret_env


def test_watch_streams_changes_and_ends_with_the_result():
    view = driving.RunView(total=3)
    seen = []

    def train():
        for step in range(1, 4):
            time.sleep(0.05)
            view.update(step=step, phase="training")
        view.update(phase="finished", ended_at=time.monotonic())

    threading.Thread(target=train).start()
    for shown in runs.watch(view, interval=0.02):
        seen.append(shown.step)
    assert seen[-1] == 3 and view.ended_at is not None and len(seen) >= 3
