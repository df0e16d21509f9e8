"""Every ``proassist`` subcommand given a missing path, an empty directory or a file of the wrong
kind: a one-line error naming the path and a non-zero exit, never a traceback."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from proassist_ros.cli import main

SAMPLE = str(Path(__file__).resolve().parents[1] / "samples" / "test_0004_take_medicine")

# (subcommand argv with {p} for the bad path, which bad kinds apply)
CASES = [
    ("eval {p} --out {o}", "mewtrnd"),
    ("eval " + SAMPLE + " --out {o} --model {p}", "mew"),
    ("replay {p}", "mewtrnd"),
    ("dataset info {p}", "mewt"),  # r, n: info describes such a bag (no error expected)
    ("dataset export {p} --out {o}", "mewtrd"),
    ("dataset import {p} --out {o}", "mew"),
    ("train --data {p} --out {o}", "mewtrnd"),
    ("train --data " + SAMPLE + " --out {o} --tower {p}", "mew"),
    ("train --data " + SAMPLE + " --out {o} --base {p}", "mew"),
    ("train vision pretrain --data {p} --out {o}", "mew"),
    ("train vision features --data " + SAMPLE + " --tower {p} --out {o}", "mew"),
    ("train probe {p}", "mew"),
    ("train pipeline --out {p}", "w"),  # a missing or empty --out is a new run: it starts work
    ("synth --out {p} --videos 1 --split test --seed 1", "w"),
    ("bringup --params-file {p}", "mew"),
    ("demo --bag {p}", "mewtrnd"),
    ("demo --model {p}", "mew"),
    ("bench --quick --model {p}", "mew"),
    ("bench --quick --ros-bag {p}", "ewt"),  # a missing name is looked up among the samples
    ("bench --quick --agreement-bags {p}", "mewt"),
    ("asr {p}", "mewt"),  # a WAV that is missing, a directory, a text file, a bag directory
]
KINDS = {"m": "missing", "e": "empty", "w": "wrong.txt", "t": "truncated_bag",
         "r": "wrong_reference_type_bag", "n": "no_camera_bag", "d": "damaged_middle_bag"}
# What the bad bags must say (besides their name): a user fixing the bag needs the reason.
REASONS = {"r": "/proassist/reference has type std_msgs/msg/String, expected "
                "proassist_ros/msg/Guidance", "n": "no camera topic",
           "d": "cannot read this bag"}


def _other_tool_bag(path: Path, camera: bool) -> None:
    """A bag written with rosbags' own Writer (not our dataset writer): a camera (unless not
    ``camera``) and a /proassist/reference topic of the wrong type (std_msgs/String)."""
    import numpy as np
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    t = ts.types
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as w:
        ref = w.add_connection("/proassist/reference", "std_msgs/msg/String", typestore=ts)
        cam = w.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=ts) if camera else None
        for i in range(6):
            ns = 1_700_000_000 * 10**9 + i * 250_000_000
            if cam is not None:
                stamp = t["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)
                img = t["sensor_msgs/msg/Image"](
                    header=t["std_msgs/msg/Header"](stamp=stamp, frame_id="cam"), height=24,
                    width=32, encoding="rgb8", is_bigendian=0, step=96,
                    data=np.zeros(24 * 96, np.uint8))
                w.write(cam, ns, ts.serialize_cdr(img, "sensor_msgs/msg/Image"))
        w.write(ref, ns, ts.serialize_cdr(t["std_msgs/msg/String"](data="hi"), "std_msgs/msg/String"))


def _bad(tmp_path: Path, kind: str) -> Path:
    (tmp_path / "empty").mkdir()
    (tmp_path / "wrong.txt").write_text("hello: not what you think\n")
    if kind == "t":  # a real bag cut in half: its metadata says it is fine, the storage is not
        bag = tmp_path / KINDS[kind]
        shutil.copytree(SAMPLE, bag)
        storage = next(bag.glob("*.mcap"))
        storage.write_bytes(storage.read_bytes()[: storage.stat().st_size // 2])
    if kind == "d":  # 4 KiB of noise in the middle of a real bag: its index and end are intact
        bag = tmp_path / KINDS[kind]
        shutil.copytree(SAMPLE, bag)
        storage = next(bag.glob("*.mcap"))
        data = bytearray(storage.read_bytes())
        middle = len(data) // 2
        data[middle:middle + 4096] = random.Random(0).randbytes(4096)
        storage.write_bytes(bytes(data))
    if kind in "rn":
        _other_tool_bag(tmp_path / KINDS[kind], camera=kind == "r")
    return tmp_path / KINDS[kind]


@pytest.mark.parametrize("template, kind", [(t, k) for t, kinds in CASES for k in kinds],
                         ids=lambda v: v if len(v) == 1 else v.split(" {")[0].split(" /")[0])
def test_bad_paths_give_one_line_errors(template, kind, tmp_path, capsys):
    bad = _bad(tmp_path, kind)
    argv = template.format(p=bad, o=tmp_path / "out").split()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse-level errors
        code = exc.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and "Warning" not in line
             and not line.startswith("  warnings.warn") and "it/s]" not in line  # progress bars
             and "UNTRAINED" not in line]  # a base model's notice when training starts from it
    assert code not in (0, None), (argv, err)
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("proassist") and bad.name in lines[0], (argv, err)
    assert REASONS.get(kind, "") in lines[0], (argv, err)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.safetensors"))
