"""Read every real community file in the compatibility corpus named by $TEXTINV_COMPAT_CORPUS.

The corpus holds a PROVENANCE.tsv (local_path, repo, path_in_repo, commit, license, size_bytes,
sha256_16, what); the `what` column describes each file as its collector saw it, e.g.
"{'string_to_param': {'*': [6, 768] float32 ...}, 'name': 'badhandv3', ...}". The expectations
below are parsed from that column, independently of the reader under test.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import os
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from textinv_core.readers import EmbeddingFileError, read_embedding

_CORPUS = os.environ.get("TEXTINV_COMPAT_CORPUS", "")
if not _CORPUS or not (Path(_CORPUS) / "PROVENANCE.tsv").is_file():
    pytest.skip(
        "set TEXTINV_COMPAT_CORPUS to a folder with PROVENANCE.tsv (e.g. shared/real-embeddings) to run the "
        "compatibility corpus",
        allow_module_level=True,
    )
CORPUS = Path(_CORPUS)

EMBEDDING_SUFFIXES = (".pt", ".bin", ".safetensors", ".png", ".webp")
SIDECARS = ("token_identifier.txt", "type_of_concept.txt")
# Keys of the formats that have fixed key names; any other single key is a diffusers token.
LAYOUT_KEYS = {"string_to_token", "string_to_param", "name", "step", "sd_checkpoint", "sd_checkpoint_name",
               "emb_params", "emp_params", "emp_params_out", "clip_l", "clip_g", "clip_l_out", "clip_g_out",
               "emb", "emb2", "t5xxl"}
ENCODER_OF_KEY = {"clip_l": "clip_l", "clip_g": "clip_g", "emb": "clip_l", "emb2": "clip_g"}
SHAPE = re.compile(r"'([^']*)': \[(\d+)(?:, (\d+))?\] \w+")   # 'clip_g': [15, 1280] float32
IMAGE_SHAPE = re.compile(r"TORCHTENSOR (\d+)x(\d+)")             # TORCHTENSOR 8x768


def read_provenance() -> list[dict]:
    with open(CORPUS / "PROVENANCE.tsv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


ROWS = read_provenance()
FIRST_LINE = re.compile(r"first=(b'[^']*')")                    # first=b'<na-tarapisu153>'
# folder -> the keyword its token_identifier.txt names, as the collector recorded it
TOKEN_FILES = {
    str(Path(row["local_path"]).parent): ast.literal_eval(FIRST_LINE.search(row["what"]).group(1)).decode()
    for row in ROWS
    if Path(row["local_path"]).name == "token_identifier.txt"
}
EMBEDDING_ROWS = [
    row for row in ROWS
    if row["local_path"].endswith(EMBEDDING_SUFFIXES) and Path(row["local_path"]).name not in SIDECARS
]


def is_refusal(what: str) -> bool:
    return "NEGATIVE FIXTURE" in what or "LFS" in what or re.search(r"\bT5\b", what) is not None


LOADABLE = [row for row in EMBEDDING_ROWS if not is_refusal(row["what"])]
REFUSED = [row for row in EMBEDDING_ROWS if is_refusal(row["what"])]


def expected_shapes(what: str) -> dict[str, tuple[int, int]]:
    """{"single": (n, D)} or {"clip_l": ..., "clip_g": ...}, from the shapes in the `what` column."""
    image = IMAGE_SHAPE.search(what)
    if image:
        return {"single": (int(image.group(1)), int(image.group(2)))}
    shapes = {}
    for key, first, second in SHAPE.findall(what):
        if key.endswith("_out"):
            continue
        shapes[ENCODER_OF_KEY.get(key, "single")] = (int(first), int(second)) if second else (1, int(first))
    return shapes


def expected_keyword(row: dict) -> str:
    """The keyword rules, spelled out: the keyword the file stores (a diffusers key that is not a
    bare placeholder, an A1111 image's embedded name); else token_identifier.txt beside the file
    where it belongs to that file (learned_embeds.*, or the folder's only embedding); else the
    file stem (as A1111 does)."""
    path, what = Path(row["local_path"]), row["what"]
    if path.suffix == ".png":
        return re.search(r"name='([^']*)'", what).group(1)
    keys = ast.literal_eval(re.search(r"keys=(\[[^\]]*\])", what).group(1))
    if len(keys) == 1 and keys[0] not in LAYOUT_KEYS and keys[0].strip() not in ("", "*"):
        return keys[0].strip()
    folder = str(path.parent)
    neighbours = [Path(other["local_path"]) for other in EMBEDDING_ROWS if str(Path(other["local_path"]).parent) == folder]
    alone = len([p for p in neighbours if p.suffix in (".pt", ".bin", ".safetensors")]) == 1
    if folder in TOKEN_FILES and (path.stem == "learned_embeds" or alone):
        return TOKEN_FILES[folder]
    return path.stem


def corpus_file(row: dict) -> Path:
    path = CORPUS / row["local_path"]
    assert path.stat().st_size == int(row["size_bytes"])
    assert hashlib.sha256(path.read_bytes()).hexdigest()[:16] == row["sha256_16"].removeprefix("sha256:")
    return path


@pytest.mark.parametrize("row", LOADABLE, ids=lambda row: row["local_path"])
def test_real_embedding_loads(row):
    embedding = read_embedding(corpus_file(row))
    shapes = {key: tuple(tensor.shape) for key, tensor in embedding.vectors.items()}
    assert shapes == expected_shapes(row["what"])
    assert embedding.token == expected_keyword(row)
    for tensor in embedding.vectors.values():
        assert tensor.dtype == torch.float32 and tensor.is_contiguous() and torch.isfinite(tensor).all()


@pytest.mark.parametrize("row", REFUSED, ids=lambda row: row["local_path"])
def test_real_non_embedding_is_refused(row):
    with pytest.raises(EmbeddingFileError) as caught:
        read_embedding(corpus_file(row))
    message = str(caught.value)
    assert row["local_path"].split("/")[-1] in message
    if "LFS" in row["what"]:
        assert "Git LFS pointer" in message
    if re.search(r"\bT5\b", row["what"]):
        assert "T5" in message


def test_concepts_folders_use_their_token_identifier():
    folders = {str(Path(row["local_path"]).parent) for row in LOADABLE}
    checked = 0
    for folder in sorted(folders & TOKEN_FILES.keys()):
        assert read_embedding(CORPUS / folder).token == TOKEN_FILES[folder]
        checked += 1
    assert checked, "the corpus should have a concepts folder with token_identifier.txt beside its embedding"


@pytest.mark.parametrize("suffix", [".png", ".webp"])
def test_real_a1111_image_side_strips_match_its_text_chunk(tmp_path, suffix):
    """A1111 stores the data twice; drop the text chunk (as a WebP conversion does) and read the strips."""
    rows = [r for r in EMBEDDING_ROWS if r["local_path"].endswith(".png")]
    if not rows:
        pytest.skip("no A1111 image embedding in the corpus")
    original = corpus_file(rows[0])
    with Image.open(original) as image:
        pixels_only = image.convert("RGB")
    copy = tmp_path / f"copy{suffix}"
    pixels_only.save(copy, lossless=True)
    from_text, from_strips = read_embedding(original), read_embedding(copy)
    assert from_strips.token == from_text.token
    assert torch.equal(from_strips.vectors["single"], from_text.vectors["single"])
