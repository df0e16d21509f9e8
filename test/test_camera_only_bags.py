"""Users' own recordings: a bag holding nothing but a camera topic.

The bags are written here with ``rosbags`` directly (its Writer and its Kilted typestore), as a
user's recorder would, never with this project's bag writer: no facts in custom_data, no task,
no utterances, no references, a 25 fps camera, bgr8 raw or JPEG compressed frames, MCAP or
sqlite3, and a camera topic of any name. ``proassist eval``, ``proassist dataset info`` (through
the CLI entry point) and the readers must take them, exit 0, and say what they could not do
(no scores, no task) instead of crashing.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import OutputDrain, wait_until
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from proassist_ros.cli import main as cli_main
from proassist_ros.data.bags import read_bag
from proassist_ros.data.dataset_read import bag_info, read_episode_base

HZ = 25.0
SECONDS = 2.4           # 60 frames; the 2 FPS stamp gate keeps 5 (t = 0, 0.5, ..., 2.0)
KEPT = 5
W, H = 160, 120
T0_NS = 1_733_000_000 * 1_000_000_000 + 123_456_789   # a wall-clock epoch, not the project's
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
NOT_SCORED = "no reference turns: not scored"
NO_TASK = "no task in the bag: the session ran without a goal or recipe"


def _frame(k: int) -> np.ndarray:
    """A BGR frame that changes over time (a moving bar), as a camera would give."""
    img = np.full((H, W, 3), (40, 90, 160), np.uint8)
    x = (k * 3) % W
    img[:, x:x + 12] = (200, 200, 30)
    return img


def write_camera_bag(path: Path, topic: str = "/camera/image_raw", *, compressed: bool = False,
                     storage: str = "mcap", frames: int = int(SECONDS * HZ)) -> Path:
    """A camera-only bag as ``ros2 bag record`` of one camera would leave it (rosbags, no facts)."""
    ts = get_typestore(Stores.ROS2_KILTED)
    msgtype = COMPRESSED if compressed else IMAGE
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    Header, Time = ts.types["std_msgs/msg/Header"], ts.types["builtin_interfaces/msg/Time"]
    with Writer(path, version=9, storage_plugin=plugin) as w:
        conn = w.add_connection(topic, msgtype, typestore=ts)
        for k in range(frames):
            ns = T0_NS + round(k * 1e9 / HZ)
            header = Header(stamp=Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000),
                            frame_id="usb_cam")
            bgr = _frame(k)
            if compressed:
                ok, buf = cv2.imencode(".jpg", bgr)
                assert ok
                msg = ts.types[msgtype](header=header, format="jpeg", data=buf.reshape(-1))
            else:
                msg = ts.types[msgtype](header=header, height=H, width=W, encoding="bgr8",
                                        is_bigendian=0, step=W * 3, data=bgr.reshape(-1))
            w.write(conn, ns + 1_000_000, ts.serialize_cdr(msg, msgtype))  # logged 1 ms later
    return path


CASES = {  # name: (topic, compressed, storage)
    "raw_mcap": ("/camera/image_raw", False, "mcap"),
    "jpeg_sqlite": ("/camera/image_raw/compressed", True, "sqlite3"),
    "raw_custom_topic_sqlite": ("/usb_cam/front/image", False, "sqlite3"),
    "jpeg_custom_topic_mcap": ("/head/rgb/compressed", True, "mcap"),
}


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("camera_only")
    return {name: write_camera_bag(root / name, topic, compressed=c, storage=s)
            for name, (topic, c, s) in CASES.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_reader_sees_frames_and_nothing_else(bags, name):
    ep, base = read_episode_base(bags[name])
    assert (len(ep.references), len(ep.user_turns), len(ep.captions), ep.task) == (0, 0, 0, None)
    frames = list(ep.frames())
    assert len(frames) == int(SECONDS * HZ)
    assert base == T0_NS and frames[0][0] == 0.0
    assert frames[1][0] == pytest.approx(1 / HZ)
    assert ep.meta.video_id == name and (ep.meta.width, ep.meta.height) == (W, H)
    assert ep.meta.hz == pytest.approx(HZ)
    rgb = frames[0][1]
    assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8
    # bgr8 / JPEG became RGB: the background (B, G, R) = (40, 90, 160) reads (160, 90, 40)
    assert np.abs(rgb[5, -5].astype(int) - (160, 90, 40)).max() <= 6


def test_empty_topic_selection_reads_nothing(bags):
    """rosbags reads every connection for an empty list; the project's readers must not."""
    bag = bags["raw_mcap"]
    assert list(read_bag(bag, ["/proassist/task"])) == []
    assert list(read_bag(bag, [])) == []
    assert len(list(read_bag(bag))) == int(SECONDS * HZ)


def test_dataset_info_cli(bags, capsys):
    assert cli_main(["dataset", "info", str(bags["raw_custom_topic_sqlite"]),
                     str(bags["jpeg_custom_topic_mcap"])]) == 0
    out = capsys.readouterr().out
    infos = [json.loads(chunk) for chunk in out.split("\n}\n") if chunk.strip()
             for chunk in [chunk + "\n}"]]
    assert [i["camera_topic"] for i in infos] == ["/usb_cam/front/image", "/head/rgb/compressed"]
    assert [i["topics"][i["camera_topic"]]["count"] for i in infos] == [int(SECONDS * HZ)] * 2
    assert all(i["facts"] is None and not i["has_task"] and i["references"] == 0 for i in infos)


def test_dataset_info_camera_topic_option(tmp_path, capsys):
    bag = tmp_path / "two_cams"
    ts = get_typestore(Stores.ROS2_KILTED)
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        for topic in ("/left/image", "/right/image"):
            conn = w.add_connection(topic, IMAGE, typestore=ts)
            msg = ts.types[IMAGE](header=ts.types["std_msgs/msg/Header"](
                stamp=ts.types["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="c"),
                height=2, width=2, encoding="mono8", is_bigendian=0, step=2,
                data=np.zeros(4, np.uint8))
            w.write(conn, 1_000_000_000, ts.serialize_cdr(msg, IMAGE))
    info = bag_info(bag)
    assert info["camera_topic"] is None and info["camera_candidates"] == ["/left/image", "/right/image"]
    assert "--camera-topic" in info["camera_problem"]
    with pytest.raises(ValueError, match="/left/image .*/right/image.*--camera-topic"):
        read_episode_base(bag)
    assert cli_main(["dataset", "info", str(bag), "--camera-topic", "/right/image"]) == 0
    assert json.loads(capsys.readouterr().out)["camera_topic"] == "/right/image"
    assert cli_main(["dataset", "info", str(bag), "--camera-topic", "/nope"]) == 2
    err = capsys.readouterr().err
    assert "two_cams" in err and "/nope" in err and "/left/image" in err
    ep, _ = read_episode_base(bag, "/left/image")
    assert len(list(ep.frames())) == 1 and ep.meta.video_id == "two_cams"


def _eval(inputs: list[Path], out: Path, *extra: str) -> int:
    return cli_main(["eval", *map(str, inputs), "--model", "tiny", "--out", str(out), *extra])


def test_eval_camera_only_bags(bags, tmp_path, capsys):
    """Default topics, raw bgr8 on MCAP and JPEG on sqlite3: run, not scored, no task, exit 0."""
    names = ["raw_mcap", "jpeg_sqlite"]
    assert _eval([bags[n] for n in names], tmp_path) == 0
    printed = capsys.readouterr().out
    assert NOT_SCORED in printed and NO_TASK in printed

    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["scored"] is False and m["not_scored_reason"] == NOT_SCORED
    assert m["best"] is None and m["baselines"] == {} and m["no_task"] == names
    assert [v["video_id"] for v in m["videos"]] == names
    (at,) = m["thetas"].values()
    assert at["overall"] is None and at["frames"] == KEPT * len(names)
    for v in m["videos"]:
        assert (v["scored"], v["task"], v["references"]) == (False, False, 0)
        assert v["not_scored_reason"] == NOT_SCORED and NO_TASK in v["notes"]
        assert all(0 <= s["t"] <= SECONDS and s["llm_s"] > 0 for s in v["said"])
    assert sum(len(v["said"]) for v in m["videos"]) == at["utterances"]

    for n in names:  # the predictions bag: on the input's time base, one TaskState at least
        msgs = list(read_bag(tmp_path / "outputs" / n))
        assert msgs and {x.topic for x in msgs} <= {"/proassist/guidance", "/proassist/task_state"}
        assert all(T0_NS <= x.t_ns <= T0_NS + int(SECONDS * 1e9) for x in msgs)
    html = (tmp_path / "report.html").read_text()
    assert NO_TASK in html and NOT_SCORED in html
    assert (tmp_path / "plots" / "latency.png").is_file()
    assert len(list((tmp_path / "plots").glob("timeline_*.png"))) == len(names)


def test_eval_any_camera_topic_name(bags, tmp_path, capsys):
    """A bag's only image topic is found by itself; --camera-topic names it; a wrong name fails."""
    bag = bags["raw_custom_topic_sqlite"]
    assert _eval([bag], tmp_path / "auto") == 0
    assert _eval([bag], tmp_path / "named", "--camera-topic", "/usb_cam/front/image") == 0
    runs = [json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("auto", "named")]
    assert [next(iter(r["thetas"].values()))["frames"] for r in runs] == [KEPT, KEPT]
    assert runs[1]["settings"]["camera_topic"] == "/usb_cam/front/image"
    assert (tmp_path / "named" / "outputs" / "raw_custom_topic_sqlite").is_dir()
    capsys.readouterr()
    assert _eval([bag], tmp_path / "wrong", "--camera-topic", "/camera/image_raw") == 2
    err = capsys.readouterr().err
    assert "raw_custom_topic_sqlite" in err and "no topic /camera/image_raw" in err
    assert "/usb_cam/front/image" in err and not (tmp_path / "wrong").exists()


def test_eval_jpeg_on_custom_topic_mcap(bags, tmp_path):
    assert _eval([bags["jpeg_custom_topic_mcap"]], tmp_path, "--camera-topic", "/head/rgb/compressed") == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["scored"] is False and next(iter(m["thetas"].values()))["frames"] == KEPT


def test_replay_camera_plan_any_topic(bags):
    """The bag's topic (named or found) goes out on the topic the running node subscribes."""
    from proassist_ros.ros.replay_io import camera_plan

    raw = {"/usb_cam/front/image": IMAGE}
    node = {"transport": "raw", "image_topic": "/camera/image_raw"}
    assert camera_plan(raw, node, Path("b"))[:2] == ("/usb_cam/front/image", "/camera/image_raw")
    assert camera_plan(raw, node, Path("b"), "/usb_cam/front/image")[:2] == (
        "/usb_cam/front/image", "/camera/image_raw")
    jpeg = {"/head/rgb/compressed": COMPRESSED, "/rosout": "rcl_interfaces/msg/Log"}
    remapped = {"transport": "compressed", "image_topic": "/cam/front"}
    assert camera_plan(jpeg, remapped, Path("b"))[:2] == ("/head/rgb/compressed", "/cam/front/compressed")
    assert camera_plan(jpeg, {}, Path("b"))[:2] == ("/head/rgb/compressed", "/camera/image_raw/compressed")
    with pytest.raises(ValueError, match="b: the assistant subscribes raw images .*/head/rgb/compressed"):
        camera_plan(jpeg, node, Path("b"))
    with pytest.raises(ValueError, match="b: no topic /nope .*/usb_cam/front/image"):
        camera_plan(raw, node, Path("b"), "/nope")


@pytest.mark.dds
@pytest.mark.slow
def test_replay_camera_only_bag_to_the_running_node(spawn, bags, tmp_path):
    """`proassist replay --camera-topic` of a camera-only bag to a real node (tiny model): the
    frames reach the node's /camera/image_raw, the session runs without a task, exit 0, not scored."""
    node = OutputDrain(spawn(["-m", "proassist_ros.ros.assistant_node", "--ros-args", "-p", "model:=tiny",
                              "-p", "theta:=0.5", "-p", "reply_max_tokens:=4", "-p", "use_sim_time:=true"]))
    wait_until(lambda: node.has("active: ") or node.proc.poll() is not None, 120, "the assistant to activate",
               on_timeout=node.text)
    assert node.proc.poll() is None, node.text(200)
    proc = spawn(["-m", "proassist_ros.ros.replay", str(bags["raw_custom_topic_sqlite"]), "--out", str(tmp_path),
                  "--camera-topic", "/usb_cam/front/image", "--rate", "0.5"])
    text, _ = proc.communicate(timeout=240)
    assert (tmp_path / "metrics.json").is_file(), f"replay exit {proc.returncode}:\n{text}\nnode:\n{node.text()}"
    m = json.loads((tmp_path / "metrics.json").read_text())
    live = m["live"]
    assert proc.returncode == 0, f"{m['problems']}\n{text}"
    assert (live["bag_camera_topic"], live["camera_topic"]) == ("/usb_cam/front/image", "/camera/image_raw")
    assert live["frames_sent"] == live["frames_received"] == int(SECONDS * HZ)
    assert live["frames_processed"] == live["frames_expected"] == KEPT
    assert live["task_via"] == "reset (the bag has no task)" and NO_TASK in m["notes"]
    assert m["scored"] is False and m["not_scored_reason"] == NOT_SCORED and m["overall"] is None
    assert (tmp_path / "outputs").is_dir() and NOT_SCORED in text
