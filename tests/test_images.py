"""Training images: every kind of bad upload is refused with a message naming the file."""

import io

import pytest
from PIL import Image

from textinv_core import images
from textinv_core.images import ImageError, load_image, load_images, square_crop


def _save(path, image, **kwargs):
    image.save(path, **kwargs)
    return path


def test_a_good_photo_loads_upright_and_rgb(tmp_path):
    photo = Image.new("RGB", (600, 400), "red")
    exif = photo.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": the camera held sideways
    item = load_image(_save(tmp_path / "sideways.jpg", photo, exif=exif))
    assert item.image.size == (400, 600) and item.image.mode == "RGB" and not item.warnings


def test_transparency_is_flattened_on_white_and_cmyk_and_grey_convert(tmp_path):
    cutout = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    assert load_image(_save(tmp_path / "cutout.png", cutout)).image.getpixel((5, 5)) == (255, 255, 255)
    assert load_image(_save(tmp_path / "print.jpg", Image.new("CMYK", (256, 256)))).image.mode == "RGB"
    assert load_image(_save(tmp_path / "grey.png", Image.new("L", (256, 256), 128))).image.getpixel((0, 0)) == (128, 128, 128)


def test_small_images_warn_and_tiny_ones_are_refused(tmp_path):
    item = load_image(_save(tmp_path / "small.png", Image.new("RGB", (128, 160))))
    assert "small.png" in item.warnings[0] and "256" in item.warnings[0]
    with pytest.raises(ImageError, match="tiny.png: 40x40 is too small"):
        load_image(_save(tmp_path / "tiny.png", Image.new("RGB", (40, 40))))


def test_not_an_image_and_damaged_files_are_refused_by_name(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ImageError, match="notes.txt: not an image"):
        load_image(tmp_path / "notes.txt")
    buffer = io.BytesIO()
    Image.new("RGB", (300, 300), "blue").save(buffer, format="PNG")
    (tmp_path / "cut.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageError, match="cut.png: .*(damaged|not an image)"):
        load_image(tmp_path / "cut.png")


def test_decompression_bombs_are_refused_before_decoding(tmp_path, monkeypatch):
    path = _save(tmp_path / "bomb.png", Image.new("RGB", (1000, 1000)))
    monkeypatch.setattr(images, "MAX_PIXELS", 500_000)
    with pytest.raises(ImageError, match="bomb.png: 1000x1000 pixels is too large"):
        load_image(path)


def test_set_size_limits(tmp_path, monkeypatch):
    with pytest.raises(ImageError, match="no images"):
        load_images([tmp_path])
    monkeypatch.setattr(images, "MAX_IMAGES", 2)
    for i in range(3):
        _save(tmp_path / f"{i}.png", Image.new("RGB", (64, 64)))
    with pytest.raises(ImageError, match="3 images given; the limit is 2"):
        load_images([tmp_path])
    with pytest.raises(ImageError, match="missing.png: no such file"):
        load_images([tmp_path / "missing.png"])


def test_square_crop_is_centred_and_reports_its_corner():
    wide = Image.new("RGB", (400, 200))
    crop, (top, left) = square_crop(wide, 100)
    assert crop.size == (100, 100) and (top, left) == (0, 50)
