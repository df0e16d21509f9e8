"""sensor_msgs/Image and CompressedImage <-> RGB uint8 NumPy arrays, without cv_bridge.

cv_bridge's Python side is broken with NumPy 2 / OpenCV 5 (environment.md), so decoding goes
through ``rosbags-image``, which accepts live rclpy messages and rosbags-deserialized ones alike.
rosbags-image trusts the message: it ignores ``step`` (row padding), and a bad message surfaces
as TypeError, AssertionError or cv2.error. A camera topic is untrusted input for a node that must
keep running, so everything is validated here first and every failure becomes one
:class:`ImageDecodeError` (a ValueError) that a node can count and skip.

It lives in data/ because it needs no ROS: it reads any message object by attribute (the node's
rclpy messages and rosbags-deserialized bag messages alike), so the bag readers and the node
share it without data/ importing ros/. Only the builders (:func:`numpy_to_image_msg`,
:func:`numpy_to_compressed_msg`), which make real ROS messages for tests and demo publishers,
import the message classes, and only when called.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
from rosbags.image import ImageError, compressed_image_to_cvimage, image_to_cvimage
from rosbags.image.image import convert_color

from proassist_ros.constants import MAX_IMAGE_PIXELS, NS_PER_S

# encoding -> (channels, bytes per channel). What a head-mounted camera realistically sends.
RAW_ENCODINGS: dict[str, tuple[int, int]] = {
    "rgb8": (3, 1), "bgr8": (3, 1), "rgba8": (4, 1), "bgra8": (4, 1), "mono8": (1, 1),
    "rgb16": (3, 2), "bgr16": (3, 2), "rgba16": (4, 2), "bgra16": (4, 2), "mono16": (1, 2),
}
COMPRESSED_FORMATS = ("jpeg", "png")
_MAGIC = {b"\xff\xd8\xff": "jpeg", b"\x89PNG\r\n\x1a\n": "png"}


class ImageDecodeError(ValueError):
    """An image message that cannot be turned into pixels (malformed, truncated, unsupported)."""


def is_compressed(msg: Any) -> bool:
    """True for CompressedImage (rclpy or rosbags): it has ``format``, Image has ``encoding``."""
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


def image_to_rgb(msg: Any) -> np.ndarray:
    """Any Image/CompressedImage message -> contiguous (H, W, 3) uint8 RGB array it owns.

    Raises ImageDecodeError (never anything else) for a message that cannot be decoded.
    """
    try:
        return compressed_to_rgb(msg) if is_compressed(msg) else raw_to_rgb(msg)
    except ImageDecodeError:
        raise
    except Exception as exc:  # untrusted input: one error type for callers
        raise ImageDecodeError(f"cannot decode image message: {type(exc).__name__}: {exc}") from exc


def _as_bytes(data: Any) -> memoryview:
    """Message ``data`` (array.array, numpy array, bytes, list) as a flat byte view."""
    try:
        view = memoryview(data)
    except TypeError:
        view = memoryview(np.asarray(data, dtype=np.uint8))
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def raw_to_rgb(msg: Any) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) uint8 RGB. 16-bit data is scaled linearly to 8 bits."""
    encoding = str(msg.encoding).strip()
    if encoding not in RAW_ENCODINGS:
        raise ImageDecodeError(
            f"unsupported encoding {encoding!r} (supported: {', '.join(sorted(RAW_ENCODINGS))})")
    channels, depth = RAW_ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f"empty image: {width}x{height}")
    row_bytes = width * channels * depth
    if step < row_bytes:
        raise ImageDecodeError(
            f"step {step} < width*bytes_per_pixel {row_bytes} for {width}x{height} {encoding}")
    data = _as_bytes(msg.data)
    if len(data) != step * height:
        raise ImageDecodeError(
            f"data has {len(data)} bytes, expected step*height = {step}*{height} = "
            f"{step * height} ({'truncated' if len(data) < step * height else 'wrong step'})")
    rows = np.frombuffer(data, dtype=np.uint8).reshape(height, step)[:, :row_bytes]
    # rosbags-image ignores step: hand it the de-padded rows.
    compact = SimpleNamespace(height=height, width=width, encoding=encoding, step=row_bytes,
                              is_bigendian=int(bool(msg.is_bigendian)),
                              data=np.ascontiguousarray(rows).reshape(-1))
    try:
        img = image_to_cvimage(compact)  # native dtype, byte order fixed
        if depth == 2:
            # Full-range linear scaling (what cv_bridge does), with rounding so 257*k -> k.
            img = ((img.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
            encoding = encoding.replace("16", "8")
        rgb = convert_color(img, encoding, "rgb8")
    except (ImageError, cv2.error, TypeError, ValueError) as exc:
        raise ImageDecodeError(f"cannot convert {encoding} image: {exc}") from exc
    return _check_rgb(rgb, height, width)


def compressed_to_rgb(msg: Any) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg or png, colour or grey) -> (H, W, 3) uint8 RGB."""
    fmt = str(msg.format).strip()
    if "compresseddepth" in fmt.lower():
        raise ImageDecodeError(f"unsupported compressed format {fmt!r} (depth images)")
    data = bytes(_as_bytes(msg.data))
    if not data:
        raise ImageDecodeError(f"empty compressed image (format {fmt!r})")
    kind = next((k for magic, k in _MAGIC.items() if data.startswith(magic)), None)
    if kind is None:
        raise ImageDecodeError(
            f"compressed data is neither jpeg nor png (format {fmt!r}, starts {data[:8].hex()})")
    size = compressed_size(data, kind)
    if size is None:
        raise ImageDecodeError(f"corrupt or truncated {kind} ({len(data)} bytes): no image header")
    if size[0] * size[1] > MAX_IMAGE_PIXELS or 0 in size:
        raise ImageDecodeError(f"{kind} header says {size[0]}x{size[1]} pixels (limit "
                               f"{MAX_IMAGE_PIXELS} pixels): refused before decoding")
    try:
        img = compressed_image_to_cvimage(SimpleNamespace(format=fmt, data=data))
    except (AssertionError, ImageError, cv2.error) as exc:  # imdecode returned None, etc.
        raise ImageDecodeError(f"corrupt or truncated {kind} ({len(data)} bytes)") from exc
    if img is None or img.size == 0:
        raise ImageDecodeError(f"corrupt or truncated {kind} ({len(data)} bytes)")
    if img.dtype != np.uint8:
        img = ((img.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if img.ndim == 2:
        source = "mono8"
    else:
        source = "bgra8" if img.shape[2] == 4 else "bgr8"
    rgb = convert_color(img, source, "rgb8")
    return _check_rgb(rgb, img.shape[0], img.shape[1])


# JPEG start-of-frame markers (baseline, extended, progressive, lossless, and their variants).
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def compressed_size(data: bytes, kind: str) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR or a JPEG's start-of-frame, without decoding pixels.

    Why: a few hundred bytes of PNG or JPEG may claim 100 000 x 100 000 pixels, and a decoder
    would try to allocate them (a decompression bomb); the header is checked first."""
    if kind == "png":
        if len(data) < 24 or data[12:16] != b"IHDR":
            return None
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            i += 2
            continue
        if marker in _SOF:
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


def _check_rgb(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    if rgb.shape != (height, width, 3) or rgb.dtype != np.uint8:
        raise ImageDecodeError(f"conversion produced {rgb.shape} {rgb.dtype}, expected "
                               f"({height}, {width}, 3) uint8")
    # Own the pixels: rgb8 passes through without conversion and would otherwise alias the
    # message's buffer, so in-place work on the frame would silently edit the message.
    return rgb.copy() if not rgb.flags.owndata or not rgb.flags.c_contiguous else rgb


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (rclpy or rosbags) -> integer nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def _time_msg(stamp: Any) -> Any:
    """None | int ns | float s | rclpy Time | builtin_interfaces Time -> builtin_interfaces Time."""
    from builtin_interfaces.msg import Time

    if stamp is None:
        return Time()
    if hasattr(stamp, "sec") and hasattr(stamp, "nanosec"):
        return Time(sec=int(stamp.sec), nanosec=int(stamp.nanosec))
    if hasattr(stamp, "nanoseconds"):  # rclpy.time.Time
        stamp = int(stamp.nanoseconds)
    ns = int(stamp) if isinstance(stamp, int) else round(float(stamp) * NS_PER_S)
    sec, nanosec = divmod(ns, NS_PER_S)
    return Time(sec=sec, nanosec=nanosec)


def numpy_to_image_msg(arr: np.ndarray, encoding: str = "rgb8", stamp: Any = None,
                       frame_id: str = "", *, row_padding: int = 0,
                       big_endian: bool = False) -> Any:
    """Build a sensor_msgs/Image from pixels laid out as ``encoding`` says (no colour conversion).

    ``arr`` is (H, W) or (H, W, C) uint8 / uint16 matching the encoding. ``row_padding`` adds
    zero bytes after each row (step > width*bpp) and ``big_endian`` stores 16-bit data big-endian:
    both are legal in ROS and are what the decoder must cope with.
    """
    from sensor_msgs.msg import Image

    if encoding not in RAW_ENCODINGS:
        raise ValueError(f"unsupported encoding {encoding!r}")
    channels, depth = RAW_ENCODINGS[encoding]
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    dtype = np.dtype(np.uint8 if depth == 1 else np.uint16)
    if arr.ndim != 3 or arr.shape[2] != channels or arr.dtype != dtype:
        raise ValueError(f"{encoding} needs (H, W{', ' + str(channels) if channels > 1 else ''}) "
                         f"{dtype.name}, got {arr.shape} {arr.dtype}")
    height, width = arr.shape[:2]
    pixels = arr.astype(dtype.newbyteorder(">" if big_endian else "<"), copy=False)
    rows = np.ascontiguousarray(pixels).view(np.uint8).reshape(height, -1)
    if row_padding:
        rows = np.hstack([rows, np.zeros((height, row_padding), np.uint8)])
    msg = Image(height=height, width=width, encoding=encoding, step=rows.shape[1],
                is_bigendian=int(big_endian))
    msg.header.stamp = _time_msg(stamp)
    msg.header.frame_id = frame_id
    msg.data = rows.tobytes()
    return msg


def numpy_to_compressed_msg(arr_rgb: np.ndarray, fmt: str = "jpeg", stamp: Any = None,
                            frame_id: str = "", *, quality: int = 90) -> Any:
    """Build a sensor_msgs/CompressedImage (jpeg or png) from an (H, W, 3) uint8 RGB array.

    ``format`` is written as image_transport's compressed plugin does ("rgb8; jpeg compressed
    bgr8"), so real subscribers and our decoder both accept it.
    """
    from sensor_msgs.msg import CompressedImage

    if fmt not in COMPRESSED_FORMATS:
        raise ValueError(f"fmt must be one of {COMPRESSED_FORMATS}, got {fmt!r}")
    arr_rgb = np.asarray(arr_rgb)
    if arr_rgb.ndim != 3 or arr_rgb.shape[2] != 3 or arr_rgb.dtype != np.uint8:
        raise ValueError(f"need (H, W, 3) uint8 RGB, got {arr_rgb.shape} {arr_rgb.dtype}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == "jpeg" else []
    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png",
                           cv2.cvtColor(arr_rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {arr_rgb.shape} image as {fmt}")
    msg = CompressedImage(format=f"rgb8; {fmt} compressed bgr8")
    msg.header.stamp = _time_msg(stamp)
    msg.header.frame_id = frame_id
    msg.data = buf.tobytes()
    return msg
