"""Image/CompressedImage <-> RGB: every encoding round-trips, padding and byte order are honoured,
and every malformed message raises ImageDecodeError (never another exception type).

Messages are checked both as live rclpy objects and as rosbags-deserialized ones (the bag path):
the same CDR bytes go through ``rosbags`` and must decode identically. No DDS needed.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from rclpy.serialization import serialize_message
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import CompressedImage, Image

from proassist_ros.data.images import (
    RAW_ENCODINGS,
    ImageDecodeError,
    image_to_rgb,
    numpy_to_compressed_msg,
    numpy_to_image_msg,
    stamp_to_ns,
)

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
RNG = np.random.default_rng(1234)
RGB = RNG.integers(0, 256, (6, 9, 3), dtype=np.uint8)  # odd width: padding matters
ALPHA = RNG.integers(0, 256, (6, 9, 1), dtype=np.uint8)


def _smooth(h: int = 48, w: int = 64) -> np.ndarray:
    """A smooth RGB image (JPEG-friendly, so 'close' can be tight)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], -1).astype(np.uint8)


def _as_rosbags(msg):
    """The same message as a rosbags reader yields it (CDR bytes -> rosbags dataclass)."""
    kind = "sensor_msgs/msg/CompressedImage" if isinstance(msg, CompressedImage) else \
        "sensor_msgs/msg/Image"
    return TYPESTORE.deserialize_cdr(serialize_message(msg), kind)


FLAVOURS = {"rclpy": lambda m: m, "rosbags": _as_rosbags}


def _source(encoding: str) -> tuple[np.ndarray, np.ndarray]:
    """(pixels laid out as ``encoding``, the RGB image the decoder must return)."""
    channels, depth = RAW_ENCODINGS[encoding]
    order = {"rgb": [0, 1, 2], "bgr": [2, 1, 0]}
    if encoding.startswith("mono"):
        pix, expect = RGB[:, :, 0], np.repeat(RGB[:, :, :1], 3, axis=2)
    else:
        pix = RGB[:, :, order[encoding[:3]]]
        if channels == 4:
            pix = np.concatenate([pix, ALPHA], axis=2)
        expect = RGB
    if depth == 2:
        pix = pix.astype(np.uint16) * 257  # full-range 16-bit: must map back exactly
    return pix, expect


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("padding", [0, 3, 8])
@pytest.mark.parametrize("encoding", sorted(RAW_ENCODINGS))
def test_raw_round_trip_is_pixel_exact(encoding, padding, flavour):
    pix, expect = _source(encoding)
    msg = numpy_to_image_msg(pix, encoding, stamp=12.5, frame_id="cam", row_padding=padding)
    assert msg.step == pix.shape[1] * pix.itemsize * (pix.shape[2] if pix.ndim == 3 else 1) \
        + padding
    out = image_to_rgb(FLAVOURS[flavour](msg))
    assert out.shape == (6, 9, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert out.flags.owndata and out.flags.writeable  # never a view into the message
    np.testing.assert_array_equal(out, expect)


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("encoding", ["mono16", "rgb16"])
def test_big_endian_16_bit_is_byte_swapped(encoding, flavour):
    pix, expect = _source(encoding)
    msg = numpy_to_image_msg(pix, encoding, big_endian=True)
    assert msg.is_bigendian == 1
    np.testing.assert_array_equal(image_to_rgb(FLAVOURS[flavour](msg)), expect)


def test_mono16_scales_full_range_to_8_bit():
    ramp = np.array([[0, 257, 32767, 32896, 65535]], dtype=np.uint16)
    out = image_to_rgb(numpy_to_image_msg(ramp, "mono16"))
    assert out[0, :, 0].tolist() == [0, 1, 127, 128, 255]


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_png_round_trip_is_exact_and_jpeg_is_close(flavour):
    img = _smooth()
    png = image_to_rgb(FLAVOURS[flavour](numpy_to_compressed_msg(img, "png")))
    np.testing.assert_array_equal(png, img)
    jpg = image_to_rgb(FLAVOURS[flavour](numpy_to_compressed_msg(img, "jpeg", quality=95)))
    assert jpg.shape == img.shape and jpg.dtype == np.uint8
    assert np.abs(jpg.astype(int) - img).mean() < 2.0


@pytest.mark.parametrize("fmt", ["jpeg", "png", "", "bgr8; jpeg compressed bgr8", "PNG"])
def test_compressed_format_strings_and_grey_and_alpha(fmt):
    grey = _smooth()[:, :, 0]
    ext = ".png" if "png" in fmt.lower() else ".jpg"
    msg = CompressedImage(format=fmt, data=cv2.imencode(ext, grey)[1].tobytes())
    out = image_to_rgb(msg)
    assert out.shape == (48, 64, 3)
    assert np.abs(out[:, :, 1].astype(int) - grey).mean() < 2.0
    bgra = np.dstack([_smooth()[:, :, ::-1], np.full((48, 64), 7, np.uint8)])
    out = image_to_rgb(CompressedImage(format=fmt, data=cv2.imencode(".png", bgra)[1].tobytes()))
    np.testing.assert_array_equal(out, _smooth())


def test_builders_fill_header_and_reject_bad_input():
    msg = numpy_to_image_msg(RGB, "rgb8", stamp=1_500_000_123, frame_id="head_cam")
    assert stamp_to_ns(msg.header.stamp) == 1_500_000_123 and msg.header.frame_id == "head_cam"
    assert stamp_to_ns(numpy_to_compressed_msg(RGB, stamp=2.25).header.stamp) == 2_250_000_000
    with pytest.raises(ValueError):
        numpy_to_image_msg(RGB, "mono8")  # 3 channels for a 1-channel encoding
    with pytest.raises(ValueError):
        numpy_to_image_msg(RGB, "rgb16")  # uint8 for a 16-bit encoding
    with pytest.raises(ValueError):
        numpy_to_image_msg(RGB, "yuv422")
    with pytest.raises(ValueError):
        numpy_to_compressed_msg(RGB, "tiff")


def _raw(**changes) -> Image:
    msg = numpy_to_image_msg(RGB, "rgb8")
    for key, value in changes.items():
        setattr(msg, key, value)
    return msg


def _jpeg() -> bytes:
    return bytes(numpy_to_compressed_msg(_smooth(), "jpeg").data)


def _png() -> bytes:
    return bytes(numpy_to_compressed_msg(_smooth(), "png").data)


MALFORMED = {
    "truncated": lambda: _raw(data=bytes(_raw().data)[:-5]),
    "truncated to nothing": lambda: _raw(data=b""),
    "data longer than step*height": lambda: _raw(data=bytes(_raw().data) + b"\0" * 27),
    "step smaller than a row": lambda: _raw(step=20, data=bytes(120)),
    "step too large for data": lambda: _raw(step=30),
    "zero height": lambda: _raw(height=0, data=b""),
    "zero width": lambda: _raw(width=0, step=0, data=b""),
    "unknown encoding": lambda: _raw(encoding="weird16"),
    "generic encoding": lambda: _raw(encoding="8UC3"),
    "yuv encoding": lambda: _raw(encoding="yuv422"),
    "empty encoding": lambda: _raw(encoding=""),
    "empty compressed": lambda: CompressedImage(format="jpeg", data=b""),
    "truncated jpeg": lambda: CompressedImage(format="jpeg", data=_jpeg()[: len(_jpeg()) // 2]),
    "jpeg with corrupt body": lambda: CompressedImage(
        format="jpeg", data=_jpeg()[:400] + bytes(300) + _jpeg()[700:]),
    "jpeg magic then garbage": lambda: CompressedImage(
        format="jpeg", data=b"\xff\xd8\xff definitely not an image " * 10),
    "random bytes": lambda: CompressedImage(format="jpeg", data=RNG.bytes(500)),
    "truncated png": lambda: CompressedImage(format="png", data=_png()[: len(_png()) // 2]),
    "compressed depth": lambda: CompressedImage(format="16UC1; compressedDepth png",
                                                data=_png()),
    "not a message": lambda: object(),
}


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_messages_raise_image_decode_error(case, flavour):
    msg = MALFORMED[case]()
    if flavour == "rosbags" and case != "not a message":  # a non-message has no rosbags form
        msg = _as_rosbags(msg)
    with pytest.raises(ImageDecodeError) as err:
        image_to_rgb(msg)
    assert isinstance(err.value, ValueError) and str(err.value)
