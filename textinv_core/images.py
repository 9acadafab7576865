"""Training images: decoding uploads safely and turning them into square training crops.

Uploads come from anywhere (phones, screenshots, the web), so decoding handles what cameras do
(EXIF rotation, CMYK, transparency) and refuses, by file name, what would waste a training run
or a server's memory (non-images, corrupt files, tiny images, decompression bombs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence
from warnings import catch_warnings, simplefilter

import torch
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_IMAGES = 50
MIN_SIDE = 64
SMALL_SIDE = 256
MAX_PIXELS = 40_000_000  # ~ a 7000x6000 photo; beyond that a file is more likely a bomb than a photo
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


class ImageError(ValueError):
    """An image we refuse; the message names the file and says why."""


@dataclass
class TrainingImage:
    name: str  # file name, for messages
    image: Image.Image  # RGB, upright
    warnings: list[str] = field(default_factory=list)
    path: str | None = None  # where it was read from, recorded so a run can be resumed


def load_image(path: str | Path, resolution: int = SMALL_SIDE) -> TrainingImage:
    """Decode one file into an upright RGB image, or raise ImageError saying what is wrong with it.
    Images smaller than `resolution` (the model's, up to SMALL_SIDE) get a warning."""
    path = Path(path)
    name = path.name
    try:
        with _open(path) as probe:
            width, height = probe.size
            if width * height > MAX_PIXELS:
                raise _too_large(name, f"{width}x{height} pixels")
            probe.load()
            image = _to_rgb(ImageOps.exif_transpose(probe))
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_large(name, f"over {Image.MAX_IMAGE_PIXELS:,} pixels") from None
    except UnidentifiedImageError as err:
        raise ImageError(f"{name}: not an image we can read ({type(err).__name__}); upload a PNG, JPEG or WebP") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{name}: the file is damaged or truncated ({err}); export it again") from None
    short = min(image.size)
    if short < MIN_SIDE:
        raise ImageError(f"{name}: {image.width}x{image.height} is too small; use images of at least {MIN_SIDE} px a side")
    warnings = []
    enough = min(SMALL_SIDE, resolution)
    if short < enough:
        warnings.append(f"{name}: only {image.width}x{image.height}; results are better from {enough} px or more")
    return TrainingImage(name, image, warnings, str(path))


def _open(path: Path) -> Image.Image:
    """`Image.open`, with Pillow's decompression-bomb warning raised as the refusal it is: a picture
    over Pillow's pixel limit is refused by name, not announced in the server's log."""
    with catch_warnings():
        simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(path)


def _too_large(name: str, size: str) -> ImageError:
    return ImageError(f"{name}: {size} is too large to be a training photo (limit {MAX_PIXELS:,} pixels); resize it first")


def _to_rgb(image: Image.Image) -> Image.Image:
    """Flatten transparency onto white (a cut-out object on black would teach 'black background')."""
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")


def image_files(paths: Sequence[str | Path]) -> list[Path]:
    """Expand folders into their image files (sorted, so runs are reproducible)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.exists():
            files.append(path)
        else:
            raise ImageError(f"{path}: no such file or folder")
    return files


def load_images(paths: Sequence[str | Path]) -> list[TrainingImage]:
    """Load a training set; any refused file stops it with that file's message."""
    files = image_files(paths)
    if not files:
        raise ImageError("no images given: add 3 to 5 photos of your concept")
    if len(files) > MAX_IMAGES:
        raise ImageError(f"{len(files)} images given; the limit is {MAX_IMAGES} (3 to 5 usually work best)")
    return [load_image(f) for f in files]


def square_crop(image: Image.Image, resolution: int, center: bool = True) -> tuple[Image.Image, tuple[int, int]]:
    """Resize the short side to `resolution`, then crop a square (centre, or top-left).

    Returns the crop and its top-left corner in resized coordinates: SDXL is conditioned on it.
    """
    scale = resolution / min(image.size)
    width, height = max(resolution, round(image.width * scale)), max(resolution, round(image.height * scale))
    resized = image.resize((width, height), Image.Resampling.BICUBIC, reducing_gap=3.0)
    left = (width - resolution) // 2 if center else 0
    top = (height - resolution) // 2 if center else 0
    return resized.crop((left, top, left + resolution, top + resolution)), (top, left)


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB image -> [3, H, W] float in [-1, 1], the VAE's input range."""
    data = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    return data.view(image.height, image.width, 3).permute(2, 0, 1).float() / 127.5 - 1.0
