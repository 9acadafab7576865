"""Uploaded training images: what is wrong with each, its thumbnail, and the notes the page shows.

A visitor drops files of any kind and size; each is decoded once, checked (too small for the
model, blurry or upscaled, blank, not an image at all, too big) and kept with its warnings, so
the page can say which file has which problem in the visitor's own file names.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFont, ImageStat

from ..images import MAX_IMAGES, SMALL_SIDE, ImageError, TrainingImage, load_image
from ..readers import MAX_BYTES
from . import messages

MAX_UPLOAD_BYTES = MAX_BYTES  # one photo or embedding file: 50 MB (gradio's own limit is set higher)
MAX_SIDE_KEPT = 1536  # uploads are kept in memory at most this big (training is <= 1024 px)
THUMB_SIDE = 256
MAX_NOTE_LINES = 12  # image notes shown under the thumbnails; the rest are counted
DETAIL_RATIO_MIN = 0.10  # see `detail_warnings`
FLAT_MIN = 0.5


@dataclass
class Upload:
    """One uploaded file: usable (`item`) with warnings, or refused (`error`)."""

    name: str
    item: TrainingImage | None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    thumb: Image.Image | None = None

    @property
    def caption(self) -> str:
        if self.error:
            return f"✖ {self.name}: refused"
        if self.warnings:
            return f"⚠ {self.name}: " + "; ".join(short for short, _ in self.warnings)
        return f"✓ {self.name}"


def _resample_error(gray: Image.Image, factor: int) -> float:
    """Mean grey-level change when the image is shrunk `factor` times and blown up again."""
    w, h = gray.size
    small = gray.resize((max(1, w // factor), max(1, h // factor)), Image.Resampling.BOX)
    return ImageStat.Stat(ImageChops.difference(gray, small.resize((w, h), Image.Resampling.BICUBIC))).mean[0]


def detail_warnings(image: Image.Image) -> list[tuple[str, str]]:
    """Cheap checks for images that train poorly: (short label, explanation) pairs.

    An image that was upscaled or is out of focus has almost no detail at the pixel scale: halving
    and re-enlarging it changes it little compared with shrinking it 16 times. On sharp photos and
    drawings the ratio of the two changes is 0.12 or more; on 2x-8x upscales and blurred copies it
    is 0.03-0.10. A nearly uniform image changes little at any scale.
    """
    gray = image.convert("L")
    side = min(*gray.size, 1024)
    left, top = (gray.width - side) // 2, (gray.height - side) // 2
    gray = gray.crop((left, top, left + side, top + side))
    coarse = _resample_error(gray, 16)
    if coarse < FLAT_MIN:
        return [("almost blank", "almost no detail at all: is it a blank or nearly uniform image?")]
    if _resample_error(gray, 2) / coarse < DETAIL_RATIO_MIN:
        return [("blurry or upscaled", "looks blurry or upscaled (very little fine detail); a sharper photo teaches more")]
    return []


def check_image(path: str | Path, display_name: str | None = None, resolution: int = SMALL_SIDE) -> Upload:
    """Decode one upload and say what is wrong with it, if anything (for a model of `resolution` px).
    Messages name the file as the visitor named it, never the server's copy."""
    name = display_name or Path(path).name
    size = Path(path).stat().st_size
    if size == 0:
        return Upload(name, None, error=f"{name}: empty file (0 bytes): the upload or copy failed; add it again")
    if size > MAX_UPLOAD_BYTES:
        return Upload(name, None, error=f"{name}: {size / 2**20:.0f} MB, over the {MAX_UPLOAD_BYTES // 2**20} MB limit "
                                        "for one image; save it as a smaller JPEG or PNG")
    try:
        item = load_image(path, resolution)
    except ImageError as err:
        message = messages.for_visitor(str(err), {str(path): name, Path(path).name: name})
        return Upload(name, None, error=message if message.startswith(name) else f"{name}: {message}")
    item.name = name
    warnings = [("small", text) for text in item.warnings]
    warnings += detail_warnings(item.image)
    if min(item.image.size) > MAX_SIDE_KEPT:
        scale = MAX_SIDE_KEPT / min(item.image.size)
        item.image = item.image.resize(
            (round(item.image.width * scale), round(item.image.height * scale)), Image.Resampling.LANCZOS
        )
    thumb = item.image.copy()
    thumb.thumbnail((THUMB_SIDE, THUMB_SIDE))
    return Upload(name, item, [(short, text if text.startswith(name) else f"{name}: {text}") for short, text in warnings], thumb=thumb)


def escape(text: str) -> str:
    """Text for Markdown that may hold keywords like <cat-toy>, which must not read as HTML."""
    return html.escape(text, quote=False)


def listed(names: list[str], limit: int = 5) -> str:
    """`a.png, b.png, c.png and 7 more`."""
    shown = ", ".join(names[:limit])
    return f"{shown} and {len(names) - limit} more" if len(names) > limit else shown


def refused_thumbnail() -> Image.Image:
    """The tile shown in place of a refused file: plainly a refusal, not a grey image that seems
    to be loading (the reason is in the image notes and the tile's caption)."""
    tile = Image.new("RGB", (THUMB_SIDE, THUMB_SIDE), (253, 236, 236))
    draw = ImageDraw.Draw(tile)
    red, middle, arm = (176, 42, 38), THUMB_SIDE // 2, THUMB_SIDE // 7
    draw.rectangle((0, 0, THUMB_SIDE - 1, THUMB_SIDE - 1), outline=(214, 69, 65), width=6)
    for sign in (1, -1):  # a cross (the default font has no ✖)
        draw.line((middle - arm, middle - 30 - sign * arm, middle + arm, middle - 30 + sign * arm), fill=red, width=12)
    font = ImageFont.load_default(size=THUMB_SIDE // 6)
    draw.text((middle, middle + 50), "refused", fill=red, font=font, anchor="mm")
    return tile


def notes(uploads: list[Upload], not_added: list[str] = ()) -> str:
    """The notes under the thumbnails (Markdown): a summary line first, then what is wrong with
    which file, at most MAX_NOTE_LINES of it, so 60 files at once still fit on a screen."""
    if not uploads and not not_added:
        return "Drop **3 to 5 images** of your concept above: different backgrounds, angles and lighting."
    usable = sum(u.item is not None for u in uploads)
    refused = [u for u in uploads if u.error]
    warned = [u for u in uploads if u.warnings]
    head = [f"**{usable} image{'s' if usable != 1 else ''} ready**"]
    head += [f"{len(refused)} refused"] if refused else []
    head += [f"{len(warned)} with a warning"] if warned else []
    head += [f"{len(not_added)} not added"] if not_added else []
    summary = " · ".join(head) + "."
    if usable and usable < 3:
        summary += " Add a few more if you can: 3 to 5 usually work best."
    lines = [f"- ✖ {escape(u.error)}" for u in refused]
    lines += [f"- ⚠ {escape(text)}" for u in warned for _, text in u.warnings]
    if not_added:
        lines.append(f"- ✖ {len(not_added)} not added, the limit is {MAX_IMAGES} images (3 to 5 usually work "
                     f"best): {escape(listed(not_added))}")
    if len(lines) > MAX_NOTE_LINES:
        lines = lines[: MAX_NOTE_LINES - 1] + [f"- … and {len(lines) - MAX_NOTE_LINES + 1} more notes: see the "
                                               "captions under the images"]
    return "\n".join([summary, *lines])
