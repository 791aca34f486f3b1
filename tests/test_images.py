import io
import json
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from shared.config import REPO_ROOT
from shared.images import (
    ImageTooLarge,
    UnreadableImage,
    decode_image,
    encode_jpeg,
    heif_opener,
)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_every_readable_hard_file_decodes_to_upright_rgb(faces_dir, expected):
    for name, info in expected.items():
        if "info" not in info:
            continue
        image = decode_image((faces_dir / name).read_bytes())
        width, height = map(int, info["info"].split("/")[1].split("x"))
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, name
        assert image.shape[:2] == (height, width), name
        if "noface_black" not in name:  # no mode may lose its values on the way to RGB
            assert image.mean() > 10, f"{name} decoded (nearly) black"


def test_exif_orientation_is_applied(faces_dir):
    data = (faces_dir / "hard" / "derived_exif_orientation6.jpg").read_bytes()
    with Image.open(io.BytesIO(data)) as raw:
        assert raw.getexif().get(0x0112) == 6
        stored = raw.size
    image = decode_image(data)
    assert (image.shape[1], image.shape[0]) == (stored[1], stored[0])


def test_transparency_is_flattened_on_white():
    rgba = Image.new("RGBA", (20, 10), (0, 0, 0, 0))
    rgba.paste((255, 0, 0, 255), (5, 0, 15, 10))
    image = decode_image(_png(rgba))
    assert image[0, 0].tolist() == [255, 255, 255]
    assert image[5, 10].tolist() == [255, 0, 0]


def test_sixteen_bit_full_range_is_scaled_down():
    values = np.full((8, 8), 65535, dtype=np.uint16)
    image = decode_image(_png(Image.fromarray(values)))
    assert image[0, 0].tolist() == [255, 255, 255]


def test_first_frame_of_an_animation():
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    image = decode_image(buffer.getvalue())
    assert image[0, 0, 0] > 200 and image[0, 0, 2] < 50


@pytest.mark.parametrize("name", ["broken_empty.jpg", "broken_not_an_image.jpg",
                                  "broken_truncated.jpg"])
def test_broken_files_are_unreadable(faces_dir, name):
    with pytest.raises(UnreadableImage) as error:
        decode_image((faces_dir / "hard" / name).read_bytes())
    assert error.value.code == "unreadable_image" and error.value.message


def test_pixel_limit_is_checked_before_decoding():
    huge = _png(Image.new("L", (9000, 5000)))  # 45 MP of zeros compresses to a few KB
    with pytest.raises(ImageTooLarge) as error:
        decode_image(huge)
    assert error.value.code == "image_too_large"
    small = _png(Image.new("RGB", (100, 100)))
    with pytest.raises(ImageTooLarge):
        decode_image(small, max_pixels=5_000)
    assert decode_image(small, max_pixels=10_000).shape == (100, 100, 3)


def test_forged_header_dimensions_are_refused_cheaply():
    # A PNG header claiming 20000 x 20000 pixels with no data behind it.
    header = bytearray(_png(Image.new("L", (1, 1))))
    header[16:24] = (20000).to_bytes(4, "big") * 2
    header[29:33] = zlib.crc32(bytes(header[12:29])).to_bytes(4, "big")
    with pytest.raises(ImageTooLarge):
        decode_image(bytes(header))


def test_encode_jpeg_round_trips():
    image = np.zeros((10, 12, 3), dtype=np.uint8)
    assert decode_image(encode_jpeg(image)).shape == (10, 12, 3)


def _phone_file(source: Image.Image, fmt: str) -> bytes:
    """`source` saved as a phone would send it: HEIC/AVIF with its EXIF orientation."""
    heif_opener()  # Pillow writes HEIF through pillow-heif
    buffer = io.BytesIO()
    source.save(buffer, format=fmt, quality=80, exif=source.info.get("exif", b""))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def heic_case(faces_dir) -> tuple[bytes, tuple[int, int]]:
    """The `hard/` corpus's HEIC case: its EXIF-rotated photo, saved as an iPhone saves.
    Returns the bytes and the upright (width, height)."""
    with Image.open(faces_dir / "hard" / "derived_exif_orientation6.jpg") as source:
        source.load()
        data = _phone_file(source, "HEIF")
        upright = (source.height, source.width)  # orientation 6: turned by 90°
    assert data[4:12] == b"ftypheic"
    return data, upright


_DECODE_IN_A_NEW_PROCESS = """
import json, sys
from shared.images import decode_image
jpeg = decode_image(open(sys.argv[1], "rb").read()).shape
after_jpeg = "pillow_heif" in sys.modules
heic = decode_image(open(sys.argv[2], "rb").read()).shape
print(json.dumps([after_jpeg, "pillow_heif" in sys.modules, jpeg, heic]))
"""


def test_heif_support_loads_when_the_first_heif_file_comes(faces_dir, heic_case, tmp_path):
    """A new process decodes JPEG photos without loading pillow-heif, and a HEIC file
    all the same once one comes."""
    heic = tmp_path / "phone.heic"
    heic.write_bytes(heic_case[0])
    jpeg = faces_dir / "hard" / "derived_exif_orientation6.jpg"
    done = subprocess.run([sys.executable, "-c", _DECODE_IN_A_NEW_PROCESS, str(jpeg),
                           str(heic)], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120, check=True)
    after_jpeg, after_heic, jpeg_shape, heic_shape = json.loads(done.stdout)
    width, height = heic_case[1]
    assert (after_jpeg, after_heic) == (False, True)
    assert jpeg_shape == heic_shape == [height, width, 3]


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_phone_formats_decode_upright_with_the_face(fmt, faces_dir, heic_case, models):
    from shared.faces import find_faces

    if fmt == "HEIF":
        data, (width, height) = heic_case
    else:
        with Image.open(faces_dir / "hard" / "derived_exif_orientation6.jpg") as source:
            source.load()
            data, (width, height) = _phone_file(source, "AVIF"), (source.height, source.width)
        assert data[4:12] == b"ftypavif"
    image = decode_image(data)
    assert image.shape == (height, width, 3)
    scan = find_faces(image, models)
    assert len(scan.faces) == 1 and not scan.rotation  # upright: found without turning


def test_phone_formats_keep_the_pixel_limit_and_refuse_damage(heic_case):
    data, (width, height) = heic_case
    with pytest.raises(ImageTooLarge):
        decode_image(data, max_pixels=width * height - 1)
    with pytest.raises(UnreadableImage):
        decode_image(data[: len(data) // 2])
