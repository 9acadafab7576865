"""The training loop on both demo models: frozen weights, learning, reproducibility, resume, stop."""

import json
import shutil
import zipfile

import pytest
import torch
from safetensors.torch import load_file

from conftest import EXAMPLES, ROOT, assert_same_state, model_state
from textinv_core import train
from textinv_core.concepts import new_concept
from textinv_core.loss import denoising_loss
from textinv_core.space import downloads, driving, uploads
from textinv_core.stopping import PlateauRule
from textinv_core.train import Checkpointed, Finished, Progress, TrainConfig, Trainer


def _config(**overrides) -> TrainConfig:
    settings = dict(token="<red-rocket>", init_word="robot", num_vectors=2, steps=6, batch_size=2, seed=3)
    return TrainConfig(**(settings | overrides))


def _run(trainer: Trainer) -> list:
    return list(trainer.run())


def test_only_the_vectors_train_and_every_weight_stays_bitwise(tiny_model, robot_images, tmp_path):
    before = model_state(tiny_model)
    trainer = Trainer(tiny_model, robot_images, _config(), tmp_path)
    trained = [p for group in trainer.optimizer.param_groups for p in group["params"]]
    assert {id(p) for p in trained} == {id(v) for v in trainer.concept.vectors.values()}
    initial = {k: v.detach().clone() for k, v in trainer.concept.vectors.items()}
    _run(trainer)
    assert_same_state(before, tiny_model)
    assert all(not torch.equal(initial[k], v) for k, v in trainer.concept.vectors.items())
    assert all(p.dtype == torch.float32 for p in trained)


def test_events_report_progress_and_finish(tiny_sd, robot_images, tmp_path):
    events = _run(Trainer(tiny_sd, robot_images, _config(steps=4), tmp_path))
    progress = [e for e in events if isinstance(e, Progress)]
    assert [e.step for e in progress] == [1, 2, 3, 4] and progress[-1].eta == 0
    assert all(e.loss > 0 and e.lr > 0 for e in progress)
    assert isinstance(events[-1], Finished) and not events[-1].stopped


def _fixed_batches(trainer: Trainer, count: int):
    """A fixed evaluation set: images, noises and timesteps drawn from a separate seed."""
    saved_state, saved_order = trainer.generator.get_state(), trainer.order
    trainer.generator.manual_seed(1234)
    batches = [trainer.next_batch() for _ in range(count)]
    trainer.generator.set_state(saved_state)
    trainer.order = saved_order
    return batches


def _mean_loss(trainer: Trainer, batches) -> float:
    with torch.no_grad():
        losses = [denoising_loss(trainer.model, [trainer.concept], b, trainer.noise_scheduler).item() for b in batches]
    return sum(losses) / len(losses)


def test_learned_vectors_lower_the_loss_on_a_fixed_evaluation_set(tiny_model, robot_images, tmp_path):
    """The demo U-Net has random weights, so text can only move its loss a little; the test asks
    that learning lowers it, and by far more than moving the vectors as far in a random direction."""
    trainer = Trainer(tiny_model, robot_images, _config(num_vectors=1, steps=60, batch_size=1), tmp_path)
    batches = _fixed_batches(trainer, 12)
    initial = {k: v.detach().clone() for k, v in trainer.concept.vectors.items()}
    before = _mean_loss(trainer, batches)
    _run(trainer)
    after = _mean_loss(trainer, batches)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for kind, vector in trainer.concept.vectors.items():
            step = vector - initial[kind]
            direction = torch.randn(step.shape, generator=generator)
            vector.copy_(initial[kind] + direction / direction.norm() * step.norm())
    randomly_moved = _mean_loss(trainer, batches)
    assert after < before
    assert before - after > 2 * max(before - randomly_moved, 0.0) and randomly_moved > after


def test_same_seed_gives_bitwise_the_same_embedding(tiny_model, robot_images, tmp_path):
    runs = []
    for name in ("a", "b"):
        trainer = Trainer(tiny_model, robot_images, _config(), tmp_path / name)
        _run(trainer)
        runs.append(trainer.concept.detached().vectors)
    assert runs[0].keys() == runs[1].keys()
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_resumed_run_equals_uninterrupted_run(tiny_model, robot_images, tmp_path):
    config = _config(steps=6, save_every=3, lr_schedule="cosine", warmup_steps=2, grad_accum=2)
    full = Trainer(tiny_model, robot_images, config, tmp_path / "full")
    _run(full)

    first = Trainer(tiny_model, robot_images, config, tmp_path / "split")
    for event in first.run():
        if isinstance(event, Checkpointed):
            break  # the process "dies" right after the step-3 checkpoint
    resumed = Trainer(tiny_model, robot_images, config, tmp_path / "split")
    resumed.resume(tmp_path / "split")
    assert resumed.step == 3
    _run(resumed)
    for kind in full.concept.vectors:
        assert torch.equal(full.concept.vectors[kind], resumed.concept.vectors[kind])
    assert (tmp_path / "full" / "loss_log.csv").read_text() == (tmp_path / "split" / "loss_log.csv").read_text()


def test_stop_keeps_what_was_learned(tiny_sd, robot_images, tmp_path):
    trainer = Trainer(tiny_sd, robot_images, _config(steps=50), tmp_path)
    for event in trainer.run():
        if isinstance(event, Progress) and event.step == 2:
            trainer.stop()
    assert isinstance(event, Finished) and event.stopped and event.step == 2
    assert (tmp_path / "learned_embeds.safetensors").exists()
    assert (tmp_path / "checkpoints" / "step-000002.resume").exists()


@pytest.mark.parametrize("images,batch", [(1, 4), (3, 2), (5, 3)])
def test_any_batch_size_with_any_number_of_images(tiny_sdxl, robot_images, tmp_path, images, batch):
    trainer = Trainer(tiny_sdxl, robot_images[:images], _config(steps=2, batch_size=batch), tmp_path)
    assert isinstance(_run(trainer)[-1], Finished)


def test_v_prediction_min_snr_and_norm_pull_train(tiny_sd, robot_images, tmp_path, monkeypatch):
    monkeypatch.setitem(tiny_sd.pipe.scheduler._internal_dict, "prediction_type", "v_prediction")
    config = _config(steps=3, min_snr_gamma=5.0, norm_weight=0.1, gradient_checkpointing=True)
    trainer = Trainer(tiny_sd, robot_images, config, tmp_path)
    assert trainer.noise_scheduler.config.prediction_type == "v_prediction"
    losses = [e.loss for e in _run(trainer) if isinstance(e, Progress)]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))


def test_initializer_phrase_is_spread_over_the_vectors(tiny_sd):
    concept = new_concept(tiny_sd, "<x>", "red robot", 3, "object", 0)
    slot = tiny_sd.text_encoders[0]
    table = slot.encoder.get_input_embeddings().weight
    red, robot = slot.tokenizer("red robot", add_special_tokens=False).input_ids
    vectors = concept.vectors["clip_l"]
    assert torch.equal(vectors[0], table[red]) and torch.equal(vectors[1], table[robot])
    assert torch.equal(vectors[2], table[red])
    random = new_concept(tiny_sd, "<x>", None, 2, "object", 0).vectors["clip_l"]
    typical = table.norm(dim=1).mean()
    assert torch.allclose(random.norm(dim=1), typical.expand(2), rtol=1e-4)


@pytest.mark.parametrize(
    "token,message",
    [("", "empty"), ("my cat", "whitespace"), ("robot", "already means something"), ("<|endoftext|>", "already means")],
)
def test_bad_keywords_are_refused(tiny_sd, token, message):
    with pytest.raises(ValueError, match=message):
        new_concept(tiny_sd, token, None, 1, "object", 0)


@pytest.mark.parametrize("vectors", [0, 17])
def test_vector_count_is_limited(tiny_sd, vectors):
    with pytest.raises(ValueError, match="between 1 and 16"):
        new_concept(tiny_sd, "<x>", None, vectors, "object", 0)


def test_paused_and_continued_from_state_equals_uninterrupted(tiny_sd, robot_images, tmp_path):
    """ZeroGPU runs long trainings as several calls, carrying the state on the CPU in between."""
    config = _config(steps=5)
    full = Trainer(tiny_sd, robot_images, config, tmp_path / "full")
    _run(full)
    first = Trainer(tiny_sd, robot_images, config, tmp_path / "chunks")
    events = list(first.run(pause_at=2))
    assert type(events[-1]).__name__ == "Paused" and events[-1].step == 2
    state = first.state_dict()
    second = Trainer(tiny_sd, robot_images, config, tmp_path / "chunks")  # as in a fresh GPU worker
    second.load_state_dict(state)
    assert isinstance(list(second.run())[-1], Finished)
    assert torch.equal(full.concept.vectors["clip_l"], second.concept.vectors["clip_l"])


def test_data_parallel_training_with_two_processes(tiny_sd, robot_images, tmp_path):
    """`torchrun`/`accelerate launch` with 2 CPU processes: gradients are averaged, one process
    writes, and the checkpoint keeps each process's data stream so a resume continues exactly."""
    import os
    import socket
    import subprocess
    import sys

    from conftest import EXAMPLES, ROOT

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
               "-m", "textinv_core", "train", "--model", "builtin:tiny-sd", "--images", str(EXAMPLES / "red-rocket"),
               "--token", "<red-rocket>", "--steps", "3", "--output", str(out)]
    result = subprocess.run(command, cwd=ROOT, env=os.environ | {"TRANSFORMERS_VERBOSITY": "error"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("done at step 3") == 1
    state = torch.load(out / "checkpoints" / "step-000003.resume", weights_only=True)
    assert len(state["generators"]) == 2 and not torch.equal(state["generators"][0], state["generators"][1])
    alone = Trainer(tiny_sd, robot_images, _config(token="<red-rocket>", num_vectors=1, batch_size=1), tmp_path / "x")
    with pytest.raises(ValueError, match="made by 2 process"):
        alone.resume(out)


def test_captions_replace_the_templates_for_their_image(tiny_sd, robot_images, tmp_path):
    captions = {robot_images[0].name: "a <red-rocket> waving on a table", robot_images[1].name: "at night"}
    trainer = Trainer(tiny_sd, robot_images, _config(captions=captions), tmp_path)
    assert trainer.prompts[0] == ["a <red-rocket> waving on a table"]
    assert trainer.prompts[1] == ["a photo of a <red-rocket>, at night"]  # keyword added when missing
    assert len(trainer.prompts[2]) >= 20 and all("<red-rocket>" in p for p in trainer.prompts[2])


def test_a_runs_files_name_no_server_path(tiny_sd, tmp_path):
    """Uploads live in gradio's cache under random folder names: the run folder and its downloads
    name the images as the visitor did, and nothing of where the server keeps anything."""
    cache = tmp_path / "gradio" / "0a1b2c3d"
    cache.mkdir(parents=True)
    images = []
    for i, source in enumerate(sorted((EXAMPLES / "red-rocket").glob("*.png"))[:3]):
        copy = cache / f"upload-{i}.png"
        shutil.copyfile(source, copy)
        images.append(uploads.check_image(copy, f"my rocket {i}.png").item)
    out = tmp_path / "outputs" / "run-01"
    list(Trainer(tiny_sd, images, _config(steps=2), out).run())
    files = downloads.download_files(out, family_is_sdxl=False)
    taken_away = {"settings.json": (out / "settings.json").read_bytes()}
    for zipped in (files["diffusers"], files["everything"]):
        with zipfile.ZipFile(zipped) as archive:
            taken_away |= {f"{zipped.name}:{n}": archive.read(n) for n in archive.namelist()}
    assert f"{files['everything'].name}:settings.json" in taken_away
    for place in (str(tmp_path), tmp_path.name, "0a1b2c3d", str(ROOT)):
        assert [name for name, data in taken_away.items() if place.encode() in data] == [], place
    assert json.loads(taken_away["settings.json"])["images"] == ["my rocket 0.png", "my rocket 1.png", "my rocket 2.png"]


def test_a_resumed_cli_run_trains_on_its_own_copy_of_the_images(tiny_sd, robot_images, tmp_path):
    from textinv_core.cli import run_images

    config = _config(steps=2, captions={robot_images[1].name: "a <red-rocket> at night"})
    list(Trainer(tiny_sd, robot_images, config, tmp_path).run())
    again = run_images(tmp_path)
    assert [item.name for item in again] == [item.name for item in robot_images]  # so captions still match
    assert [item.image.size for item in again] == [item.image.size for item in robot_images]  # small: kept whole
    resumed = Trainer(tiny_sd, again, config, tmp_path)
    assert resumed.prompts == Trainer(tiny_sd, robot_images, config, tmp_path / "x").prompts


def test_kept_best_vectors_are_written_with_their_own_step(tiny_sd, robot_images, tmp_path, monkeypatch):
    """A plateaued run goes back to its best reading's vectors: the embedding files say that
    reading's step, the checkpoint keeps the step the run reached, to resume from."""
    monkeypatch.setattr(train, "PlateauRule", lambda: PlateauRule(every=2, patience=2))
    readings = iter([1.0, 0.9, 0.8, 0.85, 0.85])  # the start, then steps 2, 4 (the best), 6, 8
    monkeypatch.setattr(Trainer, "_reading", lambda self, concept=None: next(readings))
    trainer = Trainer(tiny_sd, robot_images, _config(steps=20, stop_when_learned=True, evaluate=False), tmp_path)
    best = None
    for event in trainer.run():
        if isinstance(event, Progress) and event.step == 4:
            best = trainer.concept.detached().vectors["clip_l"]
    assert isinstance(event, Finished) and (event.step, event.learned_at, event.stopped) == (8, 4, False)
    assert torch.equal(load_file(tmp_path / "learned_embeds.safetensors")["<red-rocket>"], best)
    assert torch.load(tmp_path / "red-rocket.pt", weights_only=True)["step"] == 4
    state = train.read_checkpoint(tmp_path)
    assert (state["step"], state["vectors_step"]) == (8, 4)
    resumed = Trainer(tiny_sd, robot_images, _config(steps=20, evaluate=False), tmp_path / "resumed")
    resumed.load_state_dict(state)
    resumed.save_outputs()
    assert torch.load(tmp_path / "resumed" / "red-rocket.pt", weights_only=True)["step"] == 4


def _counting_evaluations(monkeypatch, after_first=None) -> list:
    """Count the evaluation batches the trainer reads; `after_first()` runs once the first is read."""
    calls, real = [], train.evaluation_loss

    def counted(*args, **kwargs):
        calls.append(1)
        loss = real(*args, **kwargs)
        if after_first is not None and len(calls) == 1:
            after_first()
        return loss

    monkeypatch.setattr(train, "evaluation_loss", counted)
    return calls


def test_a_stop_while_preparing_ends_the_run_before_its_first_step(tiny_sd, robot_images, tmp_path, monkeypatch):
    """The app's Stop (a file) asked for before the run's first step: no plateau reading, no step,
    no readout (nothing was learned), and the run ends as stopped, its files written."""
    (tmp_path / driving.STOP_FILE).touch()
    calls = _counting_evaluations(monkeypatch)
    config = _config(steps=50, stop_when_learned=True)
    events = list(driving.train_chunk(tiny_sd, robot_images, config, tmp_path))
    finished = next(e for e in events if isinstance(e, Finished))
    assert (finished.step, finished.stopped, finished.readout) == (0, True, None)
    assert not any(isinstance(e, Progress) for e in events) and calls == []
    assert (tmp_path / "learned_embeds.safetensors").exists() and (tmp_path / "checkpoints" / "step-000000.resume").exists()


def test_a_stop_during_the_first_plateau_reading_cuts_it_short(tiny_sd, robot_images, tmp_path, monkeypatch):
    """A reading costs several steps' time: a Stop asked for meanwhile waits for one slice of it."""
    calls = _counting_evaluations(monkeypatch, after_first=lambda: (tmp_path / driving.STOP_FILE).touch())
    trainer = Trainer(tiny_sd, robot_images, _config(steps=50, stop_when_learned=True), tmp_path,
                      should_stop=(tmp_path / driving.STOP_FILE).exists)
    events = list(trainer.run())
    assert isinstance(events[-1], Finished) and events[-1].stopped and events[-1].step == 0
    assert len(calls) == 1 and trainer.plateau is None
