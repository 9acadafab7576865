"""The files a visitor takes away from a finished run."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from ..concepts import concept_name
from .driving import STOP_FILE


def download_files(output_dir: Path, family_is_sdxl: bool) -> dict[str, Path]:
    """The files to offer: `diffusers`, `a1111` and `everything` (a zip of the concept), each
    named after the concept (`red-rocket-diffusers.safetensors`), so that two concepts downloaded
    into one folder never overwrite each other. They live in `downloads/`, apart from the run's
    own files, which keep the names diffusers and A1111 expect."""
    output_dir = Path(output_dir)
    token = (output_dir / "token_identifier.txt").read_text().strip()
    name = concept_name(token)
    folder = output_dir / "downloads"
    folder.mkdir(exist_ok=True)
    files: dict[str, Path] = {}
    if family_is_sdxl:
        files["diffusers"] = folder / f"{name}-diffusers.zip"
        _zip(files["diffusers"], output_dir, ["learned_embeds.safetensors", "learned_embeds_2.safetensors", "token_identifier.txt"])
        files["a1111"] = folder / f"{name}.safetensors"
        shutil.copyfile(output_dir / f"{name}.safetensors", files["a1111"])
    else:
        files["diffusers"] = folder / f"{name}-diffusers.safetensors"
        shutil.copyfile(output_dir / "learned_embeds.safetensors", files["diffusers"])
        files["a1111"] = folder / f"{name}.pt"
        shutil.copyfile(output_dir / f"{name}.pt", files["a1111"])
    files["everything"] = folder / f"{name}-all.zip"
    keep = [p.relative_to(output_dir).as_posix() for p in sorted(output_dir.rglob("*")) if p.is_file()]
    keep = [p for p in keep if not p.startswith(("checkpoints/", "downloads/")) and p != STOP_FILE]
    _zip(files["everything"], output_dir, keep)
    return files


def _zip(path: Path, folder: Path, names: list[str]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            if (folder / name).is_file():
                archive.write(folder / name, name)

