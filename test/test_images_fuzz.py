"""Property-based fuzz of the image conversion (data/images.py): thousands of random and mutated
messages; each one decodes to (H, W, 3) uint8 or raises ImageDecodeError, never anything else,
never a hang. Plus the decompression-bomb guard."""

from __future__ import annotations

import zlib
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proassist_ros.constants import MAX_IMAGE_PIXELS
from proassist_ros.data.images import RAW_ENCODINGS, ImageDecodeError, compressed_size, image_to_rgb

FUZZ = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decodes_or_refuses(msg) -> None:
    try:
        rgb = image_to_rgb(msg)
    except ImageDecodeError:
        return
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8 and rgb.size > 0


encodings = st.one_of(st.sampled_from(sorted(RAW_ENCODINGS)), st.text(max_size=12),
                      st.sampled_from(["RGB8", " rgb8", "yuv422", "32FC1", "bayer_rggb8"]))


@FUZZ
@given(encoding=encodings, height=st.integers(-2, 40), width=st.integers(-2, 40),
       step_extra=st.integers(-8, 16), length_extra=st.integers(-64, 64), seed=st.integers(0, 2**31),
       bigendian=st.booleans())
def test_raw_images_decode_or_raise_image_decode_error(encoding, height, width, step_extra,
                                                      length_extra, seed, bigendian):
    channels, depth = RAW_ENCODINGS.get(encoding, (3, 1))
    step = max(width, 0) * channels * depth + step_extra
    n = max(step * max(height, 0) + length_extra, 0)
    data = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8)
    _decodes_or_refuses(SimpleNamespace(encoding=encoding, height=height, width=width, step=step,
                                        is_bigendian=bigendian, data=data.tobytes()))


def _valid(kind: str, h: int, w: int, seed: int) -> bytes:
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg" if kind == "jpeg" else ".png", img)
    assert ok
    return buf.tobytes()


@FUZZ
@given(kind=st.sampled_from(["jpeg", "png"]), h=st.integers(1, 24), w=st.integers(1, 24),
       seed=st.integers(0, 2**31), cut=st.integers(0, 400), flips=st.lists(
           st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
       tail=st.binary(max_size=32), fmt=st.sampled_from(["jpeg", "png", "rgb8; jpeg compressed bgr8",
                                                         "", "compressedDepth png", "weird"]))
def test_mutated_compressed_images_decode_or_raise_image_decode_error(kind, h, w, seed, cut, flips,
                                                                     tail, fmt):
    data = bytearray(_valid(kind, h, w, seed))
    for pos, value in flips:
        data[pos % len(data)] = value
    data = bytes(data[:max(len(data) - cut, 0)]) + tail
    _decodes_or_refuses(SimpleNamespace(format=fmt, data=data))


@FUZZ
@given(data=st.binary(max_size=512), fmt=st.text(max_size=10))
def test_random_bytes_as_compressed_images_raise_image_decode_error(data, fmt):
    _decodes_or_refuses(SimpleNamespace(format=fmt, data=data))


def _png_header(width: int, height: int) -> bytes:
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    chunk = b"IHDR" + ihdr
    idat = zlib.compress(b"\0" * 64)
    return (b"\x89PNG\r\n\x1a\n" + len(ihdr).to_bytes(4, "big") + chunk
            + zlib.crc32(chunk).to_bytes(4, "big") + len(idat).to_bytes(4, "big") + b"IDAT" + idat
            + zlib.crc32(b"IDAT" + idat).to_bytes(4, "big"))


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_a_header_claiming_too_many_pixels_is_refused_before_decoding(kind):
    side = int(MAX_IMAGE_PIXELS ** 0.5) + 1
    if kind == "png":
        data = _png_header(side, side)
    else:
        real = bytearray(_valid("jpeg", 8, 8, 0))
        sof = next(i for i in range(2, len(real) - 1) if real[i] == 0xFF and real[i + 1] == 0xC0)
        real[sof + 5:sof + 9] = side.to_bytes(2, "big") + side.to_bytes(2, "big")
        data = bytes(real)
    assert compressed_size(data, kind) == (side, side)
    with pytest.raises(ImageDecodeError, match="refused before decoding"):
        image_to_rgb(SimpleNamespace(format=kind, data=data))


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_compressed_size_reads_real_headers(kind):
    assert compressed_size(_valid(kind, 37, 53, 1), kind) == (53, 37)
    assert image_to_rgb(SimpleNamespace(format=kind, data=_valid(kind, 37, 53, 1))).shape == (37, 53, 3)
