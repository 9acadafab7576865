"""Read textual-inversion embedding files, whatever tool wrote them, without trusting them.

An embedding is a few vectors (one row per token slot) for one text encoder, or for both of
SDXL's. Half a dozen tools write them in different layouts (see FORMATS), inside three kinds of
container: safetensors, PyTorch pickles, and A1111's PNG/WebP images. `read_embedding` turns any
of them into one `EmbeddingFile`, or raises `EmbeddingFileError` with a one-line message a user
can act on (what the file is, and what to do instead).

Reading goes in three steps, each a section below:

1. find the file (a folder is a concepts-library snapshot) and read its bytes, size-checked;
2. open the container, recognised by its content rather than its extension, never running
   pickled code;
3. recognise the layout of what was inside, and convert it with one small reader per format.
"""

from __future__ import annotations

import base64
import io
import json
import os
import pickle
import re
import threading
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import safetensors
import safetensors.torch
import torch
from PIL import Image

MAX_BYTES = 50 * 1024 * 1024

FORMATS = (
    "diffusers",            # {token: [D] or [n, D]} in learned_embeds.bin / .safetensors
    "diffusers-sdxl-pair",  # learned_embeds.safetensors + learned_embeds_2.safetensors
    "a1111",                # .pt with string_to_param
    "emb_params",           # {"emb_params": [n, D]} (kohya; EasyNegative)
    "onetrainer",           # {"emp_params": [n, D]} (sic)
    "sdxl",                 # {"clip_l": [n, 768], "clip_g": [n, 1280]}
    "sdxl-notebook",        # {"emb": [768], "emb2": [1280]}, or a training progression: a list of them
    "paper",                # rinongal/textual_inversion: string_to_param is an nn.ParameterDict
    "a1111-image",          # PNG/WebP with the A1111 data embedded
)


class EmbeddingFileError(ValueError):
    """Raised for any file we cannot use; str(err) is a one-line message for an end user that
    names the file and says what it is / what to do."""


@dataclass(frozen=True)
class EmbeddingFile:
    """One concept, ready to be added to a tokenizer and its text encoder(s)."""

    source: str                       # the path as given (display)
    format: str                       # one of FORMATS
    token: str                        # the default keyword users know it by
    vectors: dict[str, torch.Tensor]  # "single", or "clip_l" + "clip_g"; float32 [n, D] on CPU
    details: dict                     # extra facts worth showing (name, step, snapshot, ...); may be empty

    @property
    def snapshot(self) -> tuple[int, int] | None:
        """(snapshot used, snapshots in the file) for a training progression, else None."""
        if "snapshots" not in self.details:
            return None
        return self.details["snapshot_used"], self.details["snapshots"]


# --- Model families -------------------------------------------------------------------------
# The width of the vectors says which text encoder they were trained for.

_FAMILY_BY_WIDTH = {
    768: "SD 1.x",
    1024: "SD 2.x",
    1280: "SDXL (second encoder)",
    4096: "T5-XXL (not Stable Diffusion)",
}


def family_of_width(width: int) -> str:
    """Name the model family whose text encoder has this width."""
    return _FAMILY_BY_WIDTH.get(width, f"{width}-wide (unknown family)")


def families(vectors: dict[str, torch.Tensor]) -> list[str]:
    """Name the model families these vectors fit, so a mismatch can be explained to the user."""
    if set(vectors) == {"clip_l", "clip_g"}:
        widths = (vectors["clip_l"].shape[-1], vectors["clip_g"].shape[-1])
        if widths == (768, 1280):
            return ["SDXL", "SD 1.x (clip_l part only)"]
        return [f"two-encoder model ({family_of_width(widths[0])} + {family_of_width(widths[1])})"]
    return [family_of_width(tensor.shape[-1]) for tensor in vectors.values()]


# --- Entry point ----------------------------------------------------------------------------


class _Found(NamedTuple):
    """What one format reader makes of a file, before folder-level facts are added."""

    format: str
    token: str | None  # the keyword the file itself stores, if any
    vectors: dict[str, torch.Tensor]
    details: dict


def read_embedding(path: str | os.PathLike, *, max_bytes: int = MAX_BYTES) -> EmbeddingFile:
    """Read one embedding from a file, or from a concepts-library folder.

    The keyword (`token`) is the one users know: the keyword the file stores (a diffusers file's
    token, an A1111 image's embedded name); else the token_identifier.txt beside it, where that
    clearly belongs to this file (`_token_identifier`); else, as in A1111, the file name without
    its extension.

    Raises EmbeddingFileError for anything that cannot be used as a textual-inversion token.
    """
    source = os.fspath(path)
    given = Path(source)
    file = _pick_file_in_folder(given) if given.is_dir() else given
    found = _read_file(file, max_bytes)
    partner = _sdxl_partner(file)
    if partner is not None and found.format == "diffusers":
        found = _pair(file, found, partner, _read_file(partner, max_bytes))
    details = dict(found.details)
    if file != given:
        details["file"] = file.name
    token = found.token or _token_identifier(file) or file.stem
    return EmbeddingFile(source, found.format, token, found.vectors, details)


def _error(file: Path, problem: str) -> EmbeddingFileError:
    """Build the user-facing error: the file's path, then what it is, on one line."""
    message = f"'{file}' {problem}"
    return EmbeddingFileError(message.replace("\r", " ").replace("\n", " "))


# --- Step 1: find the file and read its bytes -----------------------------------------------

_LEARNED_EMBEDS = ("learned_embeds.safetensors", "learned_embeds.bin")  # in order of preference
_EMBEDDING_SUFFIXES = (".safetensors", ".bin", ".pt")
_PAIR_SECOND = "learned_embeds_2.safetensors"
_TOKEN_FILE = "token_identifier.txt"


def _pick_file_in_folder(folder: Path) -> Path:
    """A concepts-library snapshot keeps its embedding as learned_embeds.*; any other folder
    must hold exactly one candidate."""
    for name in _LEARNED_EMBEDS:
        if (folder / name).is_file():
            return folder / name
    candidates = sorted(
        child for child in folder.iterdir()
        if child.is_file() and child.suffix.lower() in _EMBEDDING_SUFFIXES
    )
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise _error(folder, "is a folder with no embedding file in it (.safetensors, .bin or .pt)")
    names = _listing([child.name for child in candidates])
    raise _error(
        folder, f"is a folder with {len(candidates)} possible embedding files ({names}); pick one of them"
    )


def _sdxl_partner(file: Path) -> Path | None:
    """diffusers' SDXL script writes the second encoder's vectors to learned_embeds_2.safetensors,
    beside the first (a diffusers file; a learned_embeds.bin holding both encoders needs none)."""
    if file.name not in _LEARNED_EMBEDS:
        return None
    partner = file.with_name(_PAIR_SECOND)
    return partner if partner.is_file() else None


def _token_identifier(file: Path) -> str | None:
    """The keyword a token_identifier.txt beside `file` gives it, where the note clearly belongs to
    this file: the concepts-library layout (the file is learned_embeds.*) or the folder's only
    embedding. In a folder of several embeddings one note cannot name them all, so it names none.

    Some list several tokens, one a line (CRLF too): the first non-empty line is the keyword.
    """
    path = file.with_name(_TOKEN_FILE)
    if not path.is_file() or not (file.name in _LEARNED_EMBEDS or _only_embedding_in(file.parent) == file):
        return None
    with path.open("rb") as f:
        text = f.read(4096).decode("utf-8-sig", errors="replace")
    return next((line.strip() for line in text.splitlines() if line.strip()), None)


def _only_embedding_in(folder: Path) -> Path | None:
    candidates = [
        child for child in folder.iterdir()
        if child.suffix.lower() in _EMBEDDING_SUFFIXES and child.name != _PAIR_SECOND and child.is_file()
    ]
    return candidates[0] if len(candidates) == 1 else None


def _read_bytes(file: Path, max_bytes: int) -> bytes:
    """Read the whole file, refusing before reading anything too big to be an embedding."""
    if not file.exists():
        raise _error(file, "does not exist")
    if not file.is_file():
        raise _error(file, "is not a regular file")
    size = file.stat().st_size
    if size <= max_bytes:
        with file.open("rb") as f:
            data = f.read(max_bytes + 1)  # one byte more catches a file that grew since stat()
        size = len(data)
    if size == 0:
        raise _error(file, "is empty (0 bytes): the download or copy failed; fetch the file again")
    if size > max_bytes:
        raise _error(
            file,
            f"is {_size(size)}, over the {_size(max_bytes)} limit for an embedding; embeddings are "
            "kilobytes, so this is probably a model or LoRA, not an embedding",
        )
    return data


def _read_file(file: Path, max_bytes: int) -> _Found:
    """Read one file of any supported format (step 2 and step 3)."""
    data = _read_bytes(file, max_bytes)
    if data.startswith(b"version https://git-lfs"):
        raise _error(
            file,
            f"is a Git LFS pointer (a {len(data)}-byte text stub), not the embedding itself: download "
            "the real file (run `git lfs pull` in the repo, or use the Hub's .../resolve/main/... link)",
        )
    if _is_image(data):
        found = _read_a1111_image(file, _load_image(file, data, max_bytes))
    else:
        found = _interpret(file, _load_tensors(file, data))
    if any(tensor.shape[1] == 4096 for tensor in found.vectors.values()):
        raise _error(file, _T5_PROBLEM)
    return found


# --- Step 2: open the container -------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ZIP_SIGNATURE = b"PK\x03\x04"                            # torch.save since torch 1.6
_LEGACY_TORCH_SIGNATURE = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"  # older torch.save


def _is_image(data: bytes) -> bool:
    return data.startswith(_PNG_SIGNATURE) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def _load_tensors(file: Path, data: bytes) -> Any:
    """Open a PyTorch save or a safetensors file; describe anything else."""
    if data.startswith((_ZIP_SIGNATURE, _LEGACY_TORCH_SIGNATURE)):
        return _load_torch(file, data)
    if _looks_like_safetensors(data):  # before the pickle test: a header length may start with 0x80
        return _load_safetensors(file, data)
    if data.startswith(b"\x80"):
        raise _error(
            file,
            "is a plain Python pickle, not a PyTorch or safetensors file; a safe reader does not open "
            "arbitrary pickles, as they can run code",
        )
    if file.suffix.lower() == ".safetensors":  # e.g. cut short inside its header
        return _load_safetensors(file, data)
    raise _error(file, _describe_bytes(data))


def _looks_like_safetensors(data: bytes) -> bool:
    """safetensors starts with an 8-byte little-endian header length, then the JSON header."""
    return data[8:9] == b"{" and int.from_bytes(data[:8], "little") < len(data)


def _load_safetensors(file: Path, data: bytes) -> dict[str, torch.Tensor]:
    try:
        return safetensors.torch.load(data)
    except safetensors.SafetensorError as err:
        raise _error(file, f"is a damaged or cut-short safetensors file ({err}); download it again") from None


def _pickle_allow_list() -> list:
    """Globals, beyond torch's weights_only defaults, that real embedding pickles need.

    The original paper code pickled an nn.ParameterDict; a file saved on Apple silicon stores its
    tensor through numpy. None of these run code: the classes only receive attribute dicts and
    array bytes, and the result is checked by the format readers.
    """
    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    return [
        torch.nn.ParameterDict,
        (multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
        (multiarray._reconstruct, "numpy._core.multiarray._reconstruct"),
        np.ndarray,
        np.dtype,
        np.dtypes.Float32DType,
    ]


_PICKLE_ALLOW_LIST = _pickle_allow_list()
# safe_globals edits a process-wide list; the lock stops two of our loads undoing each other's entries.
_TORCH_LOAD_LOCK = threading.Lock()


def _load_torch(file: Path, data: bytes) -> Any:
    """torch.load with weights_only (no arbitrary code, only the allow-list above) and
    map_location="cpu" (many files were saved on cuda:0, one on mps)."""
    try:
        with _TORCH_LOAD_LOCK, torch.serialization.safe_globals(_PICKLE_ALLOW_LIST):
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        blocked = re.search(r"GLOBAL (\S+)", str(err))
        wants = f"wants to load `{blocked.group(1)}`" if blocked else "uses pickle features"
        raise _error(
            file,
            f"is a pickle that {wants}, which a safe reader refuses since it could run code; it was not "
            "loaded (if it really is an embedding, get a .safetensors version of it)",
        ) from None
    except Exception as err:  # torch reports damage as RuntimeError, EOFError, IndexError, ...
        problem = f"is a damaged or cut-short PyTorch file ({_first_line(err)}); download it again"
        raise _error(file, problem) from None


# A1111 image embeddings: the data is JSON, stored twice -- base64 in a PNG text chunk, and
# zlib-compressed in two coloured strips beside the picture (the only copy a WebP keeps).

_TEXT_CHUNK = "sd-ti-embedding"


def _load_image(file: Path, data: bytes, max_bytes: int) -> Any:
    """Return the JSON embedded in an A1111 image, decoded, with its tensors as torch tensors."""
    text, strips = _embedded_data(file, data, max_bytes)
    if text is None and strips is None:
        raise _error(
            file,
            "is an image with no embedding data in it (a preview picture?); A1111 image embeddings "
            f"carry theirs in a '{_TEXT_CHUNK}' text chunk or in coloured strips at the sides",
        )
    try:
        payload = base64.b64decode(text) if text is not None else strips
        return json.loads(payload, object_hook=_tensor_from_json)
    except (ValueError, TypeError, RuntimeError, RecursionError) as err:
        problem = f"is an image whose embedded embedding data is damaged ({_first_line(err)})"
        raise _error(file, problem) from None


def _embedded_data(file: Path, data: bytes, max_bytes: int) -> tuple[str | None, bytes | None]:
    """Open the image with Pillow's decompression-bomb check as an error; return its
    'sd-ti-embedding' text chunk, or else the bytes hidden in its side strips (None if neither)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=["PNG", "WEBP"]) as image:
                image.load()
                text = getattr(image, "text", {}).get(_TEXT_CHUNK)
                return text, (_decode_side_strips(image, max_bytes) if text is None else None)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise _error(file, f"is an image too large to open safely ({err})") from None
    except (OSError, SyntaxError, ValueError) as err:  # how Pillow reports damaged images
        raise _error(file, f"is a damaged or cut-short image ({_first_line(err)})") from None


def _tensor_from_json(obj: dict) -> Any:
    """A1111 writes each tensor into the JSON as {"TORCHTENSOR": nested lists}."""
    if "TORCHTENSOR" in obj:
        return torch.tensor(obj["TORCHTENSOR"], dtype=torch.float32)
    return obj


def _decode_side_strips(image: Image.Image, max_bytes: int) -> bytes | None:
    """Undo A1111's insert_image_data_embed; None when the image carries no such data.

    The zlib-compressed JSON is split into low and high nibbles, each XOR'd with a fixed
    pseudo-random sequence and stored in the low 4 bits of a strip: low nibbles left of the
    picture, high nibbles right of it, each strip separated from the picture by a black column.
    (The high 4 bits of the strips only hold decoration.)
    """
    pixels = _crop_black(np.asarray(image.convert("RGB"))) & 0x0F
    black_columns = np.flatnonzero(pixels.sum(axis=(0, 2)) == 0)
    if len(black_columns) < 2:
        return None
    low = pixels[:, : black_columns.min()]
    high = pixels[:, black_columns.max() + 1:]
    # Each strip element holds a nibble of compressed (incompressible) data, so real strips
    # cannot hold more elements than the file has bytes; more means this is not an embedding.
    if low.shape != high.shape or not 0 < low.size <= max_bytes:
        return None
    mask = _lcg_nibbles(low.size).reshape(low.shape)
    compressed = (((high ^ mask) << 4) | (low ^ mask)).tobytes()
    inflater = zlib.decompressobj()
    try:
        payload = inflater.decompress(compressed, max_bytes)
    except zlib.error:
        return None
    return payload if inflater.eof else None


def _crop_black(pixels: np.ndarray) -> np.ndarray:
    """Drop black rows and columns at the borders, as A1111's crop_black does before decoding."""
    lit = (pixels > 0).all(axis=2)
    rows, columns = np.flatnonzero(lit.any(axis=1)), np.flatnonzero(lit.any(axis=0))
    if rows.size == 0:
        return pixels[:0, :0]
    return pixels[rows[0]: rows[-1] + 1, columns[0]: columns[-1] + 1]


def _lcg_nibbles(count: int) -> np.ndarray:
    """A1111's fixed sequence, low 4 bits: seed = (1664525 * seed + 1013904223) mod 2**32 from
    seed 0, yielding seed % 255.

    Computed by doubling rather than one step at a time (a large image would take minutes):
    given the first L seeds, the next L are f^L(seeds), where f^L(x) = a_L * x + c_L, and
    f^2L has a_2L = a_L**2, c_2L = a_L * c_L + c_L. uint32 arithmetic wraps mod 2**32 by itself.
    """
    seeds = np.array([1013904223], dtype=np.uint32)  # f(0)
    a, c = 1664525, 1013904223  # f^L for L = len(seeds)
    while seeds.size < count:
        seeds = np.concatenate([seeds, seeds * np.uint32(a) + np.uint32(c)])
        a, c = a * a % 2**32, (a * c + c) % 2**32
    return ((seeds[:count] % 255) & 0x0F).astype(np.uint8)


# --- Step 3: recognise the layout and convert it --------------------------------------------


def _interpret(file: Path, content: Any) -> _Found:
    """Dispatch to the reader for the layout found in the container, or say what it is instead."""
    layout = _layout_of(content)
    if layout is None:
        raise _error(file, _describe(content))
    return _READERS[layout](file, content)


def _layout_of(content: Any) -> str | None:
    """Recognise a format by its keys (see FORMATS); None when it is no embedding we read."""
    if isinstance(content, list):
        parts_ok = all(isinstance(part, dict) and {"emb", "emb2"} <= part.keys() for part in content)
        return "sdxl-notebook" if content and parts_ok else None
    if not isinstance(content, dict) or "t5xxl" in content:
        return None
    keys = content.keys()
    if isinstance(content.get("string_to_param"), torch.nn.ParameterDict):
        return "paper"
    if isinstance(content.get("string_to_param"), dict):
        return "a1111"
    if "emb_params" in keys:
        return "emb_params"
    if "emp_params" in keys:
        return "onetrainer"
    if {"clip_l", "clip_g"} <= keys:
        return "sdxl"
    if {"emb", "emb2"} <= keys:
        return "sdxl-notebook"
    if len(content) == 1 and isinstance(next(iter(keys)), str):
        return "diffusers"
    return None


def _read_diffusers(file: Path, content: dict) -> _Found:
    """{token: vectors}: users know it by the stored token, unless that is blank or a bare '*' (a placeholder)."""
    ((stored, value),) = content.items()
    token = stored.strip()
    vectors = {"single": _vectors(file, repr(stored), value)}
    return _Found("diffusers", None if token in ("", "*") else token, vectors, {"stored_token": stored})


def _read_a1111(file: Path, content: dict) -> _Found:
    """A1111 .pt: users know it by the file name (A1111 ignores the internal name, kept in details)."""
    facts = ("name", "step", "sd_checkpoint", "sd_checkpoint_name")
    details = {key: content[key] for key in facts if isinstance(content.get(key), (str, int, float))}
    return _Found("a1111", None, {"single": _only_param(file, content["string_to_param"])}, details)


def _read_paper(file: Path, content: dict) -> _Found:
    """rinongal's ParameterDict; read ._parameters, which old-torch pickles (lacking _keys) also have."""
    parameters = vars(content["string_to_param"]).get("_parameters")
    return _Found("paper", None, {"single": _only_param(file, parameters)}, {})


def _only_param(file: Path, parameters: Any) -> torch.Tensor:
    """string_to_param maps the placeholder ('*') to the vectors; more entries would be more concepts."""
    if not isinstance(parameters, dict) or len(parameters) != 1:
        count = len(parameters) if isinstance(parameters, dict) else 0
        names = f" ({_listing([repr(key) for key in parameters])})" if count else ""
        raise _error(
            file, f"has {count} entries{names} in string_to_param, where exactly one embedding belongs"
        )
    ((key, value),) = parameters.items()
    return _vectors(file, f"string_to_param[{key!r}]", value)


def _read_emb_params(file: Path, content: dict) -> _Found:
    vectors = {"single": _vectors(file, "'emb_params'", content["emb_params"])}
    return _Found("emb_params", None, vectors, _ignored(content, {"emb_params"}))


def _read_onetrainer(file: Path, content: dict) -> _Found:
    """OneTrainer's 'emp_params' (sic); its 'emp_params_out' is for its own output-embedding mode."""
    vectors = {"single": _vectors(file, "'emp_params'", content["emp_params"])}
    return _Found("onetrainer", None, vectors, _ignored(content, {"emp_params"}))


def _read_sdxl(file: Path, content: dict) -> _Found:
    """One file for both SDXL encoders; OneTrainer may add clip_l_out / clip_g_out, which we ignore."""
    vectors = _two_encoders(
        file, _vectors(file, "'clip_l'", content["clip_l"]), _vectors(file, "'clip_g'", content["clip_g"])
    )
    return _Found("sdxl", None, vectors, _ignored(content, {"clip_l", "clip_g"}))


def _read_sdxl_notebook(file: Path, content: dict | list) -> _Found:
    """{"emb": [768], "emb2": [1280]} (bf16): one embedding, or a list of them.

    The notebook trains one token and, with its "all" files, saves a list of snapshots of it taken
    during training, first to last: a training progression, not one embedding of several vectors
    (a multi-vector embedding keeps its vectors as the rows of one tensor). The final snapshot is
    the trained embedding; details say which was used and how many there were.
    """
    parts = content if isinstance(content, list) else [content]
    snapshots = [(_vectors(file, "'emb'", part["emb"]), _vectors(file, "'emb2'", part["emb2"])) for part in parts]
    if len({(clip_l.shape, clip_g.shape) for clip_l, clip_g in snapshots}) > 1:
        raise _error(
            file,
            f"is a list of {len(parts)} 'emb'/'emb2' entries of different shapes, so not snapshots of one "
            "embedding over training (a training progression); this tool cannot tell which to use",
        )
    vectors = _two_encoders(file, *snapshots[-1])
    details = {"snapshot_used": len(parts), "snapshots": len(parts)} if len(parts) > 1 else {}
    return _Found("sdxl-notebook", None, vectors, details)


def _read_a1111_image(file: Path, content: Any) -> _Found:
    """A1111 image embeddings hold the .pt dict; A1111 knows them by their embedded name."""
    if _layout_of(content) != "a1111":
        raise _error(
            file, f"is an image whose embedded data is not an A1111 embedding: it {_describe(content)}"
        )
    found = _read_a1111(file, content)
    name = found.details.get("name")
    token = name.strip() if isinstance(name, str) and name.strip() else None
    return found._replace(format="a1111-image", token=token)


def _pair(file: Path, first: _Found, partner: Path, second: _Found) -> _Found:
    """Join diffusers' SDXL pair: clip_l from learned_embeds.*, clip_g from learned_embeds_2.safetensors."""
    if second.format != "diffusers":
        raise _error(
            file,
            f"has {partner.name} beside it, as diffusers' SDXL script writes, but that is a {second.format} "
            "file, not one token",
        )
    vectors = _two_encoders(file, first.vectors["single"], second.vectors["single"])
    return _Found("diffusers-sdxl-pair", first.token, vectors, {**first.details, "clip_g_file": partner.name})


_READERS: dict[str, Callable[[Path, Any], _Found]] = {
    "diffusers": _read_diffusers,
    "a1111": _read_a1111,
    "paper": _read_paper,
    "emb_params": _read_emb_params,
    "onetrainer": _read_onetrainer,
    "sdxl": _read_sdxl,
    "sdxl-notebook": _read_sdxl_notebook,
}


def _vectors(file: Path, where: str, value: Any) -> torch.Tensor:
    """Return value as float32 [n, D] rows on the CPU, or refuse: everything downstream relies on that."""
    usable = (
        isinstance(value, torch.Tensor)
        and value.layout == torch.strided
        and not value.is_meta
        and value.is_floating_point()
        and value.ndim in (1, 2)
        and value.numel() > 0
    )
    if not usable:
        raise _error(file, f"has {_what(value)} at {where}, where token vectors (floats, [n, D]) belong")
    rows = value.detach().to(device="cpu", dtype=torch.float32).reshape(-1, value.shape[-1]).clone()
    if not torch.isfinite(rows).all():
        raise _error(file, f"has NaN or infinite values at {where} (training diverged?); it cannot be used")
    return rows


def _two_encoders(file: Path, clip_l: torch.Tensor, clip_g: torch.Tensor) -> dict[str, torch.Tensor]:
    """Both SDXL encoders see the same tokens, so they need the same number of vectors."""
    if clip_l.shape[0] != clip_g.shape[0]:
        raise _error(
            file,
            f"has {clip_l.shape[0]} vectors for clip_l but {clip_g.shape[0]} for clip_g; "
            "SDXL needs the same number for both encoders",
        )
    return {"clip_l": clip_l, "clip_g": clip_g}


def _ignored(content: dict, used: set[str]) -> dict:
    """Note the keys a reader left unused (e.g. OneTrainer's *_out), so nothing is dropped silently."""
    extra = sorted(str(key) for key in content if key not in used)
    return {"ignored_keys": extra} if extra else {}


# --- Saying what a file is, when it is not an embedding -------------------------------------

_T5_PROBLEM = (
    "is a T5 embedding (4096-wide, made for the T5-XXL text encoder of Flux or SD3), not for "
    "SD 1.x, SD 2.x or SDXL; this tool cannot use it"
)
_XTI_KEY = re.compile(r"(IN|OUT)\d\d|MID")


def _describe(content: Any) -> str:
    """Say what was found instead of an embedding, so the user knows what they picked."""
    if not isinstance(content, dict):
        return f"holds {_what(content)}, which is no embedding layout this tool knows"
    keys = [str(key) for key in content]
    tensors = [value for value in content.values() if isinstance(value, torch.Tensor)]
    # OneTrainer bundles embeddings into a LoRA as bundle_emb.NAME.clip_l, bundle_emb.NAME.string_to_param.*
    bundled = sorted({key.split(".")[1] for key in keys if re.match(r"bundle_emb\.[^.]+\.", key)})
    if "t5xxl" in content:
        return _T5_PROBLEM
    if len(keys) > 1 and all(_XTI_KEY.fullmatch(key) for key in keys):
        return (
            "is a kohya XTI (extended textual inversion) file: one embedding per U-Net layer "
            f"({keys[0]} ... {keys[-1]}), which cannot be used as a single textual-inversion token here"
        )
    if bundled:
        return (
            f"is a LoRA with bundled embeddings ({_listing(bundled)}); this tool reads stand-alone "
            "embedding files, not LoRAs"
        )
    if "optimizer_state_dict" in content:
        return (
            "is the optimizer state A1111 saves next to an embedding (.pt.optim), not the embedding: "
            "use the .pt file"
        )
    if _several_tokens(content):
        return (
            f"holds {len(keys)} embeddings in one diffusers dict "
            f"(tokens {_listing([repr(k) for k in keys])}); this tool reads one concept per file"
        )
    if "state_dict" in content:
        return "is a training checkpoint (it has a 'state_dict'), not an embedding"
    if tensors and len(tensors) == len(keys):
        return f"is a state dict with {len(keys):,} tensors — looks like a model or LoRA, not an embedding"
    listed = _listing([repr(key) for key in keys])
    return f"is a dict with keys {listed}, which is no embedding layout this tool knows"


def _several_tokens(content: dict) -> bool:
    """Does this look like {token: vectors} for several tokens, rather than a model's state dict?"""
    values = list(content.values())
    return (
        2 <= len(values) <= 64
        and all(isinstance(v, torch.Tensor) and v.ndim in (1, 2) for v in values)
        and len({v.shape[-1] for v in values}) == 1
        and not any("." in str(key) for key in content)
    )


def _describe_bytes(data: bytes) -> str:
    """Name unrecognised bytes: text (often an HTML error page saved instead of the file) or binary."""
    text = data[:2000].decode("utf-8", errors="replace")
    if "\x00" in text or text.count("\ufffd") > 3:
        return "is not a file this tool recognises (not safetensors, a PyTorch file, or a PNG/WebP image)"
    if "<html" in text.lower():
        return "is an HTML page, not an embedding: the download probably saved an error or login page"
    start = " ".join(text.split())[:40]
    return f"is a text file (it starts {start!r}), not an embedding"


def _what(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {list(value.shape)} {str(value.dtype).removeprefix('torch.')} tensor"
    return f"a {type(value).__name__}"


def _listing(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... ({len(names)} in all)"


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.1f} MB" if n_bytes >= 2**20 else f"{n_bytes:,} bytes"


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
