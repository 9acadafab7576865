"""The command line: train, generate, inspect, convert, and one-line errors with non-zero exits."""

import json

import pytest
from PIL import Image

from conftest import EXAMPLES
from textinv_core.cli import main


def test_help_for_each_command(capsys):
    for command in ("train", "generate", "inspect", "convert", "search", "push"):
        with pytest.raises(SystemExit) as exit:
            main([command, "--help"])
        assert exit.value.code == 0
        assert command in capsys.readouterr().out


def test_train_then_generate_with_the_concept(tmp_path, capsys):
    out = tmp_path / "robot"
    args = ["train", "--model", "builtin:tiny-sd", "--images", str(EXAMPLES / "red-rocket"), "--token", "<red-rocket>",
            "--init-word", "robot", "--steps", "3", "--output", str(out), "--save-every", "2"]
    assert main(args) == 0
    assert (out / "learned_embeds.safetensors").exists() and (out / "red-rocket.pt").exists()
    assert main(["train", "--resume", str(out), "--steps", "5"]) == 0
    assert (out / "checkpoints" / "step-000005.resume").exists()
    images = tmp_path / "images"
    assert main(["generate", "--model", "builtin:tiny-sd", "--concept", str(out), "--prompt", "a <red-rocket>",
                 "--steps", "2", "--num-images", "2", "--seed", "1", "--output", str(images)]) == 0
    assert len(list(images.glob("*.png"))) == 2
    capsys.readouterr()
    alone = tmp_path / "webui" / "red-rocket.pt"  # as in an A1111 embeddings folder: keyword = file name
    alone.parent.mkdir()
    alone.write_bytes((out / "red-rocket.pt").read_bytes())
    assert main(["inspect", str(alone), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "a1111" and info["token"] == "red-rocket" and info["shapes"] == {"text_encoder": [1, 32]}
    assert main(["convert", str(alone), "--to", "diffusers", "--output", str(tmp_path / "c.safetensors"),
                 "--token", "<bot>"]) == 0
    capsys.readouterr()
    main(["inspect", str(tmp_path / "c.safetensors"), "--json"])
    assert json.loads(capsys.readouterr().out)["token"] == "<bot>"


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "--model", "builtin:tiny-sd", "--images", "{bad}", "--token", "<x>"], "notes.txt: not an image"),
        (["train", "--model", "builtin:tiny-sd", "--images", "{good}", "--token", "cat"], "already means something"),
        (["train", "--model", "builtin:nope", "--images", "{good}", "--token", "<x>"], "unknown built-in model"),
        (["train", "--images", "{good}"], "train needs --model, --token"),
        (["generate", "--model", "builtin:tiny-sd", "--prompt", " "], "prompt is empty"),
        (["inspect", "{bad}"], "notes.txt"),
        (["train", "--model", "builtin:tiny-sd", "--images", "{good}", "--token", "<x>", "--captions", "{bad}"], "not valid JSON"),
        (["convert", "{bad}", "--to", "sdxl", "--output", "{tmp}/x.safetensors"], "notes.txt"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(tmp_path, capsys, args, message):
    (tmp_path / "notes.txt").write_text("not a picture")
    Image.new("RGB", (64, 64)).save(tmp_path / "ok.png")
    filled = [a.format(bad=tmp_path / "notes.txt", good=tmp_path / "ok.png", tmp=tmp_path) for a in args]
    assert main(filled) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and message in err


def test_the_same_commands_work_on_sdxl(tmp_path, capsys):
    out = tmp_path / "xl"
    assert main(["train", "--model", "builtin:tiny-sdxl", "--images", str(EXAMPLES / "blocky-style"), "--token", "<dots>",
                 "--concept", "style", "--steps", "2", "--batch-size", "3", "--output", str(out)]) == 0
    assert {p.name for p in out.glob("*.safetensors")} == {"learned_embeds.safetensors", "learned_embeds_2.safetensors", "dots.safetensors"}
    assert main(["generate", "--model", "builtin:tiny-sdxl", "--concept", str(out / "dots.safetensors"), "--prompt",
                 "a boat, dots", "--steps", "2", "--output", str(tmp_path / "img")]) == 0
    capsys.readouterr()
    assert main(["inspect", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "diffusers-sdxl-pair" and info["shapes"] == {"clip_l": [1, 32], "clip_g": [1, 48]}
    assert main(["convert", str(out), "--to", "sdxl", "--output", str(tmp_path / "x.safetensors")]) == 0
