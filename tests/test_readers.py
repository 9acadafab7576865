"""Tests for textinv_core.readers: one fixture per format, made here, plus every refusal.

Fixtures use small widths (8, 12, ...) where the width does not matter; the real community
files are covered by test_compat_corpus.py.
"""

from __future__ import annotations

import base64
import io
import json
import os
import pickle
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from safetensors.torch import save_file

from textinv_core.readers import (
    MAX_BYTES,
    EmbeddingFile,
    EmbeddingFileError,
    families,
    family_of_width,
    read_embedding,
)


def vecs(n: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, width, generator=torch.Generator().manual_seed(seed))


def save_pt(path: Path, obj) -> Path:
    torch.save(obj, path)
    return path


def save_st(path: Path, tensors: dict, metadata: dict | None = None) -> Path:
    save_file(tensors, str(path), metadata=metadata)
    return path


def a1111_dict(vectors: torch.Tensor, name: str) -> dict:
    """The dict A1111 saves in its .pt files (and embeds in its images)."""
    return {
        "string_to_token": {"*": 265},
        "string_to_param": {"*": vectors},
        "name": name,
        "step": 1500,
        "sd_checkpoint": "7ab762a7",
        "sd_checkpoint_name": "some-model",
    }


def refusal(path, **kwargs) -> str:
    with pytest.raises(EmbeddingFileError) as caught:
        read_embedding(path, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def assert_clean(embedding: EmbeddingFile) -> None:
    """Every reader must hand back float32, contiguous, CPU [n, D] tensors."""
    for tensor in embedding.vectors.values():
        assert tensor.dtype == torch.float32
        assert tensor.device.type == "cpu"
        assert tensor.is_contiguous()
        assert tensor.ndim == 2
        assert not tensor.requires_grad


# --- diffusers -------------------------------------------------------------------------------


def test_diffusers_bin_with_one_vector(tmp_path):
    vector = vecs(1, 8)[0]
    path = save_pt(tmp_path / "learned_embeds.bin", {"<cat-toy>": vector})
    embedding = read_embedding(path)
    assert embedding.format == "diffusers"
    assert embedding.token == "<cat-toy>"
    assert embedding.source == str(path)
    assert torch.equal(embedding.vectors["single"], vector.reshape(1, 8))
    assert_clean(embedding)


def test_diffusers_safetensors_with_several_vectors(tmp_path):
    vectors = vecs(3, 8)
    path = save_st(tmp_path / "learned_embeds.safetensors", {"<style>": vectors}, {"format": "pt"})
    embedding = read_embedding(str(path))
    assert (embedding.format, embedding.token) == ("diffusers", "<style>")
    assert torch.equal(embedding.vectors["single"], vectors)


def test_safetensors_whose_header_length_starts_like_a_pickle(tmp_path):
    """A 128-byte header makes the file start with 0x80, the byte pickles start with."""
    path = tmp_path / "learned_embeds.safetensors"
    for padding in range(200):
        save_st(path, {"<x>": vecs(1, 8)}, {"pad": "x" * padding})
        if path.read_bytes()[0] == 0x80:
            break
    assert path.read_bytes()[0] == 0x80
    assert read_embedding(path).token == "<x>"


@pytest.mark.parametrize(
    ("stored", "keyword"),
    [(" my token ", "my token"), ("*", "concept"), ("  ", "concept"), ("_*_", "_*_")],
)
def test_diffusers_keyword_is_the_stored_token_stripped_or_else_the_file_stem(tmp_path, stored, keyword):
    path = save_pt(tmp_path / "concept.bin", {stored: vecs(1, 8)})
    embedding = read_embedding(path)
    assert embedding.token == keyword
    assert embedding.details["stored_token"] == stored


def test_diffusers_dict_with_several_tokens_is_refused_naming_them(tmp_path):
    path = save_pt(tmp_path / "learned_embeds.bin", {"<a>": vecs(1, 8)[0], "<b>": vecs(1, 8)[0]})
    message = refusal(path)
    assert "'<a>'" in message and "'<b>'" in message and "one concept per file" in message


# --- A1111, emb_params, OneTrainer, paper ---------------------------------------------------------


def test_a1111_pt_is_known_by_its_file_name_not_its_internal_name(tmp_path):
    vectors = vecs(6, 8)
    path = save_pt(tmp_path / "badhandv4.pt", a1111_dict(vectors, name="badhandv3"))
    embedding = read_embedding(path)
    assert (embedding.format, embedding.token) == ("a1111", "badhandv4")
    assert embedding.details == {
        "name": "badhandv3",
        "step": 1500,
        "sd_checkpoint": "7ab762a7",
        "sd_checkpoint_name": "some-model",
    }
    assert torch.equal(embedding.vectors["single"], vectors)
    assert_clean(embedding)


def test_a1111_pt_with_several_entries_is_refused(tmp_path):
    data = a1111_dict(vecs(2, 8), name="x")
    data["string_to_param"] = {"*": vecs(2, 8), "#": vecs(2, 8)}
    assert "2 entries" in refusal(save_pt(tmp_path / "two.pt", data))


def test_tensors_saved_on_cuda_load_on_the_cpu(tmp_path):
    """Many community .pt files were saved on cuda:0; rewrite a CPU save to say so."""
    buffer = io.BytesIO()
    torch.save({"emb_params": vecs(2, 8)}, buffer)
    original = zipfile.ZipFile(buffer)
    path = tmp_path / "on_cuda.pt"
    with zipfile.ZipFile(path, "w") as rewritten:
        for name in original.namelist():
            data = original.read(name)
            if name.endswith("data.pkl"):
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            rewritten.writestr(name, data)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)  # proves the fixture really is "on cuda"
    embedding = read_embedding(path)
    assert torch.equal(embedding.vectors["single"], vecs(2, 8))


class SavedOnMps:
    """Pickles like a tensor on Apple's mps device, which torch stores through numpy."""

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor

    def __reduce__(self):
        rebuild = torch._utils._rebuild_device_tensor_from_numpy
        return (rebuild, (self.tensor.numpy(), torch.float32, "mps:0", False))


def test_tensors_saved_on_mps_through_numpy_load_on_the_cpu(tmp_path):
    path = save_pt(tmp_path / "apple.pt", {"emb_params": SavedOnMps(vecs(2, 8))})
    assert "numpy.ndarray" in torch.serialization.get_unsafe_globals_in_checkpoint(path)
    assert torch.equal(read_embedding(path).vectors["single"], vecs(2, 8))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_emb_params(tmp_path, suffix):
    vectors = vecs(8, 8)
    path = tmp_path / f"EasyNegative{suffix}"
    save_pt(path, {"emb_params": vectors}) if suffix == ".pt" else save_st(path, {"emb_params": vectors})
    embedding = read_embedding(path)
    assert (embedding.format, embedding.token) == ("emb_params", "EasyNegative")
    assert torch.equal(embedding.vectors["single"], vectors)


def test_onetrainer_ignores_its_out_vectors_and_says_so(tmp_path):
    vectors = vecs(4, 8)
    tensors = {"emp_params": vectors, "emp_params_out": vecs(4, 8, 1)}
    path = save_st(tmp_path / "my-concept.safetensors", tensors)
    embedding = read_embedding(path)
    assert (embedding.format, embedding.token) == ("onetrainer", "my-concept")
    assert torch.equal(embedding.vectors["single"], vectors)
    assert embedding.details == {"ignored_keys": ["emp_params_out"]}


def paper_dict(vectors: torch.Tensor) -> dict:
    """What rinongal/textual_inversion saves: a 0-d int64 token id and an nn.ParameterDict."""
    return {
        "string_to_token": {"*": torch.tensor(265)},
        "string_to_param": torch.nn.ParameterDict({"*": torch.nn.Parameter(vectors)}),
    }


def test_paper_parameterdict(tmp_path):
    vectors = vecs(2, 8)
    embedding = read_embedding(save_pt(tmp_path / "embeddings.pt", paper_dict(vectors)))
    assert (embedding.format, embedding.token) == ("paper", "embeddings")
    assert torch.equal(embedding.vectors["single"], vectors)
    assert_clean(embedding)


def test_paper_parameterdict_from_an_old_torch_without_keys(tmp_path):
    data = paper_dict(vecs(2, 8))
    del data["string_to_param"].__dict__["_keys"]  # old torch's ParameterDict had no _keys
    path = save_pt(tmp_path / "old.pt", data)
    archive = zipfile.ZipFile(path)
    assert b"_keys" not in archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    assert torch.equal(read_embedding(path).vectors["single"], vecs(2, 8))


# --- SDXL ------------------------------------------------------------------------------------------


def test_sdxl_safetensors_ignores_onetrainer_out_keys(tmp_path):
    clip_l, clip_g = vecs(2, 8), vecs(2, 12)
    tensors = {"clip_l": clip_l, "clip_g": clip_g, "clip_l_out": clip_l.clone(), "clip_g_out": clip_g.clone()}
    embedding = read_embedding(save_st(tmp_path / "SDXL-Detail.safetensors", tensors))
    assert (embedding.format, embedding.token) == ("sdxl", "SDXL-Detail")
    assert torch.equal(embedding.vectors["clip_l"], clip_l)
    assert torch.equal(embedding.vectors["clip_g"], clip_g)
    assert embedding.details == {"ignored_keys": ["clip_g_out", "clip_l_out"]}


def test_sdxl_with_different_vector_counts_per_encoder_is_refused(tmp_path):
    path = save_st(tmp_path / "odd.safetensors", {"clip_l": vecs(2, 8), "clip_g": vecs(3, 12)})
    assert "same number" in refusal(path)


def test_sdxl_notebook_dict_in_bf16(tmp_path):
    emb, emb2 = vecs(1, 8)[0].bfloat16(), vecs(1, 12)[0].bfloat16()
    embedding = read_embedding(save_pt(tmp_path / "myPuppet768.pt", {"emb": emb, "emb2": emb2}))
    assert (embedding.format, embedding.token) == ("sdxl-notebook", "myPuppet768")
    assert torch.equal(embedding.vectors["clip_l"], emb.float().reshape(1, 8))
    assert torch.equal(embedding.vectors["clip_g"], emb2.float().reshape(1, 12))
    assert_clean(embedding)


def training_progression(snapshots: int, rows: int, seed: int = 0) -> list[dict]:
    """The SDXL notebook's "all" file: the same embedding saved every few steps as it trains,
    drifting from its start a little each time."""
    start_l, start_g = vecs(rows, 8, seed), vecs(rows, 12, seed + 1)
    drift_l, drift_g = vecs(rows, 8, seed + 2) * 0.05, vecs(rows, 12, seed + 3) * 0.05
    return [
        {"emb": (start_l + i * drift_l).squeeze(0).bfloat16(), "emb2": (start_g + i * drift_g).squeeze(0).bfloat16()}
        for i in range(snapshots)
    ]


def test_sdxl_notebook_progression_uses_the_final_snapshot_and_says_so(tmp_path):
    snapshots = training_progression(10, rows=1)
    embedding = read_embedding(save_pt(tmp_path / "allmyPuppet768.pt", snapshots))
    assert embedding.format == "sdxl-notebook"
    assert embedding.vectors["clip_l"].shape == (1, 8) and embedding.vectors["clip_g"].shape == (1, 12)
    assert torch.equal(embedding.vectors["clip_l"][0], snapshots[-1]["emb"].float())
    assert torch.equal(embedding.vectors["clip_g"][0], snapshots[-1]["emb2"].float())
    assert embedding.snapshot == (10, 10)
    assert embedding.details == {"snapshot_used": 10, "snapshots": 10}
    assert_clean(embedding)


def test_a_progression_of_multi_vector_snapshots_keeps_the_rows_of_the_last(tmp_path):
    """Rows are vectors, list entries are moments in training: never the other way round."""
    snapshots = training_progression(4, rows=3)
    embedding = read_embedding(save_pt(tmp_path / "all.pt", snapshots))
    assert embedding.vectors["clip_l"].shape == (3, 8)
    assert torch.equal(embedding.vectors["clip_g"], snapshots[-1]["emb2"].float())
    assert embedding.snapshot == (4, 4)


def test_a_single_notebook_dict_is_no_progression(tmp_path):
    embedding = read_embedding(save_pt(tmp_path / "one.pt", training_progression(1, rows=1)))
    assert embedding.snapshot is None and embedding.details == {}


def test_a_list_of_differently_shaped_entries_is_refused(tmp_path):
    parts = [{"emb": vecs(1, 8)[0], "emb2": vecs(1, 12)[0]}, {"emb": vecs(2, 8), "emb2": vecs(2, 12)}]
    assert "training progression" in refusal(save_pt(tmp_path / "odd.pt", parts))


def test_inspect_names_the_snapshot_used_and_how_many_there_were(tmp_path, capsys):
    from textinv_core.cli import main

    path = save_pt(tmp_path / "all.pt", training_progression(7, rows=1))
    assert main(["inspect", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "snapshot_used: 7" in printed and "snapshots: 7" in printed
    assert main(["inspect", "--json", str(path)]) == 0
    details = json.loads(capsys.readouterr().out)["details"]
    assert details == {"snapshot_used": 7, "snapshots": 7}


def test_diffusers_sdxl_pair_with_a_bf16_second_file(tmp_path):
    clip_l, clip_g = vecs(2, 8), vecs(2, 12)
    save_st(tmp_path / "learned_embeds.safetensors", {"<pet>": clip_l})
    save_st(tmp_path / "learned_embeds_2.safetensors", {"<pet>": clip_g.bfloat16()})
    for given in (tmp_path, tmp_path / "learned_embeds.safetensors"):
        embedding = read_embedding(given)
        assert (embedding.format, embedding.token) == ("diffusers-sdxl-pair", "<pet>")
        assert torch.equal(embedding.vectors["clip_l"], clip_l)
        assert torch.equal(embedding.vectors["clip_g"], clip_g.bfloat16().float())
        assert embedding.details["clip_g_file"] == "learned_embeds_2.safetensors"
        assert_clean(embedding)


# --- A1111 image embeddings ---------------------------------------------------------------------


def a1111_json(data: dict) -> str:
    return json.dumps(data, default=lambda tensor: {"TORCHTENSOR": tensor.tolist()})


def png_with_text_chunk(path: Path, data: dict) -> Path:
    info = PngInfo()
    info.add_text("sd-ti-embedding", base64.b64encode(a1111_json(data).encode()).decode())
    Image.new("RGB", (32, 32), (90, 60, 30)).save(path, pnginfo=info)
    return path


def a1111_lcg(count: int) -> np.ndarray:
    """A1111's lcg(): seed 0, a=1664525, c=1013904223, m=2**32, yielding seed % 255."""
    out, seed = [], 0
    for _ in range(count):
        seed = (1664525 * seed + 1013904223) % 2**32
        out.append(seed % 255)
    return np.array(out, dtype=np.uint8)


def test_lcg_matches_a1111_reference_values():
    assert a1111_lcg(5).tolist() == [253, 242, 127, 44, 157]  # from A1111's image_embedding.py


def image_with_side_strips(data: dict, height: int = 16) -> Image.Image:
    """Our own version of A1111's insert_image_data_embed, to round-trip the strip decoding."""
    compressed = np.frombuffer(zlib.compress(a1111_json(data).encode(), 9), np.uint8)
    per_column = height * 3
    size = -(-compressed.size // per_column) * per_column
    mask = a1111_lcg(size).reshape(height, -1, 3) & 0x0F
    decoration = 0x50  # A1111 draws dots in the high nibbles; a reader must ignore them

    def strip(nibbles: np.ndarray) -> Image.Image:
        block = np.resize(nibbles, size).reshape(height, -1, 3)
        return Image.fromarray(((block ^ mask) | decoration).astype(np.uint8), "RGB")

    low, high = strip(compressed & 0x0F), strip(compressed >> 4)
    picture = Image.new("RGB", (24, height), (201, 103, 57))
    canvas = Image.new("RGB", (low.width + picture.width + high.width + 2, height))
    canvas.paste(low, (0, 0))
    canvas.paste(picture, (low.width + 1, 0))
    canvas.paste(high, (low.width + 1 + picture.width + 1, 0))
    return canvas


def test_png_text_chunk_is_known_by_its_embedded_name(tmp_path):
    vectors = vecs(4, 8)
    path = png_with_text_chunk(tmp_path / "rick.preview-like.png", a1111_dict(vectors, name="rick"))
    embedding = read_embedding(path)
    assert (embedding.format, embedding.token) == ("a1111-image", "rick")
    assert embedding.details["step"] == 1500
    assert torch.allclose(embedding.vectors["single"], vectors)
    assert_clean(embedding)


def test_png_without_a_name_is_known_by_its_stem(tmp_path):
    data = a1111_dict(vecs(1, 8), name="x")
    del data["name"]
    assert read_embedding(png_with_text_chunk(tmp_path / "nameless.png", data)).token == "nameless"


@pytest.mark.parametrize("suffix", [".png", ".webp"])
def test_side_strips_round_trip(tmp_path, suffix):
    vectors = vecs(2, 8)
    path = tmp_path / f"strips{suffix}"
    image_with_side_strips(a1111_dict(vectors, name="stripy")).save(path, lossless=True)
    embedding = read_embedding(path)
    assert (embedding.format, embedding.token) == ("a1111-image", "stripy")
    assert torch.allclose(embedding.vectors["single"], vectors)


def test_image_without_embedded_data_is_refused(tmp_path):
    path = tmp_path / "concept.preview.png"
    Image.new("RGB", (32, 32), (90, 60, 30)).save(path)
    assert "no embedding data" in refusal(path)


def test_damaged_images_are_refused(tmp_path):
    data = png_with_text_chunk(tmp_path / "good.png", a1111_dict(vecs(1, 8), name="x")).read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 2])
    assert "cut-short image" in refusal(cut)

    info = PngInfo()
    info.add_text("sd-ti-embedding", "bm90IGpzb24=")  # base64 of "not json"
    garbled = tmp_path / "garbled.png"
    Image.new("RGB", (8, 8)).save(garbled, pnginfo=info)
    assert "embedded embedding data is damaged" in refusal(garbled)


def test_decompression_bomb_protection_is_on(tmp_path, monkeypatch):
    path = png_with_text_chunk(tmp_path / "big.png", a1111_dict(vecs(1, 8), name="x"))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert "too large" in refusal(path)


# --- folders and token_identifier.txt --------------------------------------------------------------


def test_concepts_folder_uses_token_identifier_first_token_with_crlf(tmp_path):
    save_st(tmp_path / "learned_embeds.safetensors", {"*": vecs(1, 8)})
    save_pt(tmp_path / "learned_embeds.bin", {"<from-bin>": vecs(1, 8, 1)[0]})
    (tmp_path / "token_identifier.txt").write_bytes(b"\r\n  <cat-toy> \r\n<cat-toy-2>\r\n")
    (tmp_path / "type_of_concept.txt").write_text("object")
    embedding = read_embedding(tmp_path)
    assert embedding.token == "<cat-toy>"
    assert embedding.source == str(tmp_path)
    assert embedding.details == {"stored_token": "*", "file": "learned_embeds.safetensors"}
    assert torch.equal(embedding.vectors["single"], vecs(1, 8))


def test_a_keyword_stored_in_the_file_names_it_over_token_identifier(tmp_path):
    save_st(tmp_path / "learned_embeds.safetensors", {"<stored>": vecs(1, 8)})
    (tmp_path / "token_identifier.txt").write_text("<listed>")
    assert read_embedding(tmp_path).token == "<stored>"
    renamed = save_pt(tmp_path / "renamed.bin", {"<old>": vecs(1, 8)[0]})
    assert read_embedding(renamed).token == "<old>"


def test_a_lone_file_storing_no_keyword_takes_its_token_identifier(tmp_path):
    path = save_pt(tmp_path / "trained.pt", a1111_dict(vecs(2, 8), name="internal"))
    (tmp_path / "token_identifier.txt").write_text("<new>\n")
    assert read_embedding(path).token == "<new>"


def test_one_token_identifier_listing_several_keywords_never_names_every_file(tmp_path):
    """A folder found in public repos: several embeddings and one token_identifier.txt listing
    several keywords, CRLF. Each file keeps the keyword it stores; one storing none keeps its name."""
    save_pt(tmp_path / "first.bin", {"<first>": vecs(1, 8, 1)[0]})
    save_st(tmp_path / "second.safetensors", {"<second>": vecs(2, 8, 2)})
    save_pt(tmp_path / "third.pt", a1111_dict(vecs(3, 8, 3), name="third-internal"))
    (tmp_path / "token_identifier.txt").write_bytes(b"<first>\r\n<second>\r\n<third>\r\n")
    keywords = {name: read_embedding(tmp_path / name).token for name in ("first.bin", "second.safetensors", "third.pt")}
    assert keywords == {"first.bin": "<first>", "second.safetensors": "<second>", "third.pt": "third"}


def test_a_single_keyword_note_beside_several_embeddings_names_none_of_them(tmp_path):
    save_pt(tmp_path / "a.pt", {"emb_params": vecs(1, 8)})
    save_pt(tmp_path / "b.pt", {"emb_params": vecs(1, 8, 1)})
    (tmp_path / "token_identifier.txt").write_text("<only-one>")
    assert [read_embedding(tmp_path / n).token for n in ("a.pt", "b.pt")] == ["a", "b"]


def test_folder_falls_back_to_bin_then_to_its_only_embedding(tmp_path):
    save_pt(tmp_path / "learned_embeds.bin", {"<bin>": vecs(1, 8)[0]})
    save_pt(tmp_path / "other.pt", {"emb_params": vecs(1, 8)})
    assert read_embedding(tmp_path).token == "<bin>"
    (tmp_path / "learned_embeds.bin").unlink()
    assert read_embedding(tmp_path).token == "other"


def test_folder_with_no_or_several_embeddings_is_refused(tmp_path):
    (tmp_path / "README.md").write_text("hi")
    assert "no embedding file" in refusal(tmp_path)
    save_pt(tmp_path / "a.pt", {"emb_params": vecs(1, 8)})
    save_pt(tmp_path / "b.pt", {"emb_params": vecs(1, 8)})
    message = refusal(tmp_path)
    assert "a.pt" in message and "b.pt" in message and "pick one" in message


# --- refusals --------------------------------------------------------------------------------------


def test_git_lfs_pointer(tmp_path):
    path = tmp_path / "learned_embeds.safetensors"
    path.write_text(
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:4d7a0f0e8b8c2f6f3c1a3e0f1d2b4c6a8e0f2d4b6c8a0e2f4d6b8c0a2e4f6d8b\nsize 3192\n"
    )
    message = refusal(path)
    assert "Git LFS pointer" in message and "git lfs pull" in message and "resolve" in message


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    assert "empty" in refusal(path)


def test_missing_file(tmp_path):
    assert "does not exist" in refusal(tmp_path / "nope.pt")


def test_truncated_safetensors(tmp_path):
    data = (save_st(tmp_path / "full.safetensors", {"emb_params": vecs(8, 8)})).read_bytes()
    for cut in (5, 20, len(data) - 1):
        path = tmp_path / "cut.safetensors"
        path.write_bytes(data[:cut])
        assert "cut-short" in refusal(path)


def test_truncated_pytorch_zip(tmp_path):
    data = save_pt(tmp_path / "full.pt", a1111_dict(vecs(8, 8), name="x")).read_bytes()
    path = tmp_path / "cut.pt"
    path.write_bytes(data[: len(data) // 2])
    assert "cut-short" in refusal(path)


def test_size_limit_is_checked_before_reading(tmp_path):
    path = save_pt(tmp_path / "big.pt", {"emb_params": vecs(64, 8)})
    message = refusal(path, max_bytes=1000)
    assert f"{path.stat().st_size:,} bytes" in message and "1,000 bytes limit" in message
    assert MAX_BYTES == 50 * 1024 * 1024


def test_kohya_xti(tmp_path):
    names = ["IN01", "IN02", "IN04", "IN05", "IN07", "IN08", "MID"] + [f"OUT{i:02d}" for i in range(3, 12)]
    path = save_st(tmp_path / "xti.safetensors", {name: vecs(2, 8) for name in names})
    message = refusal(path)
    assert "XTI" in message and "U-Net layer" in message


def test_t5_by_key(tmp_path):
    assert "T5" in refusal(save_st(tmp_path / "t5.safetensors", {"t5xxl": vecs(2, 16)}))


def test_t5_by_width(tmp_path):
    assert "T5" in refusal(save_pt(tmp_path / "wide.bin", {"<wide>": vecs(1, 4096)}))


def test_lora_state_dict(tmp_path):
    tensors = {f"lora_unet_block_{i}.lora_down.weight": vecs(4, 8, i) for i in range(1234)}
    message = refusal(save_st(tmp_path / "lora.safetensors", tensors))
    assert "state dict with 1,234 tensors" in message and "model or LoRA" in message


def test_lora_with_bundled_embeddings(tmp_path):
    tensors = {"bundle_emb.mycat.clip_l": vecs(1, 8), "lora_te1.x.weight": vecs(4, 8)}
    message = refusal(save_st(tmp_path / "bundle.safetensors", tensors))
    assert "bundled embeddings (mycat)" in message


def test_a1111_optimizer_sidecar(tmp_path):
    sidecar = {"hash": "abc", "optimizer_state_dict": {"state": {}, "param_groups": []}}
    assert "optimizer state" in refusal(save_pt(tmp_path / "x.pt.optim", sidecar))


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"hello, these are my notes\n", "text file"),
        (b"<!DOCTYPE html><html><body>Sign in</body></html>", "HTML page"),
        (bytes(range(200, 256)) * 4, "not a file this tool recognises"),
        (pickle.dumps({"emb_params": [1.0, 2.0]}), "plain Python pickle"),
    ],
)
def test_things_that_are_not_embeddings(tmp_path, content, words):
    path = tmp_path / "thing.bin"
    path.write_bytes(content)
    assert words in refusal(path)


def test_non_float_and_non_finite_vectors(tmp_path):
    assert "where token vectors" in refusal(save_pt(tmp_path / "ints.bin", {"<i>": torch.arange(8)}))
    bad = vecs(2, 8)
    bad[0, 0] = float("nan")
    assert "NaN" in refusal(save_pt(tmp_path / "nan.pt", {"emb_params": bad}))


class Malicious:
    """A pickle that runs a shell command when unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'echo pwned > "{self.marker}"',))


def test_malicious_pickles_are_refused_and_never_run(tmp_path):
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Malicious(control)))
    assert control.exists(), "the payload is live: plain unpickling runs it"

    marker = tmp_path / "pwned"
    torch_save = save_pt(tmp_path / "evil.pt", {"emb_params": vecs(1, 8), "x": Malicious(marker)})
    message = refusal(torch_save)
    assert "system" in message and "not loaded" in message

    raw_pickle = tmp_path / "evil.bin"
    raw_pickle.write_bytes(pickle.dumps({"<token>": Malicious(marker)}))
    assert "plain Python pickle" in refusal(raw_pickle)

    assert not marker.exists()


# --- families ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "family"),
    [
        (768, "SD 1.x"),
        (1024, "SD 2.x"),
        (1280, "SDXL (second encoder)"),
        (4096, "T5-XXL (not Stable Diffusion)"),
        (32, "32-wide (unknown family)"),
    ],
)
def test_family_of_width(width, family):
    assert family_of_width(width) == family


def test_families():
    assert families({"single": torch.zeros(1, 768)}) == ["SD 1.x"]
    assert families({"single": torch.zeros(2, 1024)}) == ["SD 2.x"]
    assert families({"clip_l": torch.zeros(1, 768), "clip_g": torch.zeros(1, 1280)}) == [
        "SDXL",
        "SD 1.x (clip_l part only)",
    ]
