"""The dataset format (docs/dataset.md): episode <-> bag, read back by three independent readers
(rosbags, rclpy's deserialize_message, mcap_ros2), ProAssist JSON export/import, .mp4 import,
users' own bags, parallel synth, and the CLI's errors. Tiny frames keep it fast."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from proassist_ros.cli import main
from proassist_ros.data.bags import read_bag, read_custom_data, typestore, write_bag
from proassist_ros.data.convert import export_bags, import_json, import_video
from proassist_ros.data.dataset import (
    CAPTION_TOPIC,
    COMPRESSED_TOPIC,
    FACTS_KEY,
    IMAGE_TOPIC,
    REFERENCE_TOPIC,
    TASK_TOPIC,
    UTTERANCE_TOPIC,
    bag_info,
    camera_messages,
    iter_dataset,
    read_episode,
    write_episode,
)
from proassist_ros.data.episode import Caption, Episode, EpisodeMeta, TaskSpec, Turn
from proassist_ros.data.schema import KIND_VALUES, T0_NS
from proassist_ros.data.synth import synth
from proassist_ros.msg import Guidance, Task

H, W, HZ, N = 24, 32, 10.0, 8


def _frame(k: int) -> np.ndarray:
    """A frame whose content depends on k (smooth, so JPEG keeps it close)."""
    y, x = np.mgrid[0:H, 0:W]
    img = np.stack([(x * 8 + k * 20) % 256, (y * 10) % 256, np.full_like(x, 30 * k % 256)], -1)
    return img.astype(np.uint8)


def _frames():
    for k in range(N):
        yield (k + 1) / HZ, _frame(k)


def _episode(**meta) -> Episode:
    return Episode(
        meta=EpisodeMeta("tea_0001", "train", "make_tea", 7, "proassist_ros.world/1", N / HZ, HZ,
                         W, H, has_mistake=True, extra={"user_type": "talk_some"}, **meta),
        task=TaskSpec("I want to make a cup of tea.", "[Make tea]\n1. Boil water.\n2. Add a tea bag.",
                      ["Boil water.", "Add a tea bag."], "make_tea", "tea/1", [0, 1]),
        user_turns=[Turn(0.1, "I want to make a cup of tea.", "goal"), Turn(0.4, "Which cup?", "question")],
        references=[Turn(0.2, "Fill the kettle with water.", "instruction"),
                    Turn(0.3, "Stop, that is the sugar.", "correction"),
                    Turn(0.45, "The blue one.", "answer"),
                    Turn(0.6, "Well done.", "confirmation"),
                    Turn(0.6, "The time elapsed is 0.6 s. The water boils.", "progress_summary"),
                    Turn(0.75, "Summary without a spoken turn.", "progress_summary")],
        captions=[Caption((k + 1) / HZ, f"kettle on table, frame {k}") for k in range(N)],
        frames=_frames)


def _same_annotations(a: Episode, b: Episode) -> None:
    assert b.meta == a.meta
    assert b.task == a.task
    assert b.user_turns == a.user_turns
    assert b.references == a.references
    assert b.captions == a.captions


@pytest.mark.parametrize("compressed,raw,storage", [
    (True, False, "mcap"), (False, True, "mcap"), (True, True, "sqlite3")])
def test_episode_bag_round_trip(tmp_path, compressed, raw, storage):
    ep = _episode()
    bag = write_episode(ep, tmp_path / "tea", compressed=compressed, raw=raw, storage=storage)
    back = read_episode(bag)
    _same_annotations(ep, back)
    got = list(back.frames())
    assert [t for t, _ in got] == [t for t, _ in _frames()]
    for (_, want), (_, rgb) in zip(_frames(), got, strict=True):
        assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8
        if raw:  # raw is preferred when both exist: lossless
            assert np.array_equal(rgb, want)
        else:
            assert np.abs(rgb.astype(int) - want).mean() < 6  # JPEG q90
    # The storage file alone (copied out of its directory) keeps the facts.
    (storage_file,) = [p for p in bag.iterdir() if p.suffix in (".mcap", ".db3")]
    assert read_episode(storage_file).meta == ep.meta


def test_schema_topics_types_qos_hashes_and_order(tmp_path):
    bag = write_episode(_episode(), tmp_path / "tea", raw=True)
    info = bag_info(bag)
    assert {t: v["type"] for t, v in info["topics"].items()} == {
        IMAGE_TOPIC: "sensor_msgs/msg/Image", COMPRESSED_TOPIC: "sensor_msgs/msg/CompressedImage",
        UTTERANCE_TOPIC: "std_msgs/msg/String", CAPTION_TOPIC: "std_msgs/msg/String",
        TASK_TOPIC: "proassist_ros/msg/Task", REFERENCE_TOPIC: "proassist_ros/msg/Guidance"}
    assert {t: v["count"] for t, v in info["topics"].items()} == {
        IMAGE_TOPIC: N, COMPRESSED_TOPIC: N, UTTERANCE_TOPIC: 2, CAPTION_TOPIC: N, TASK_TOPIC: 1,
        REFERENCE_TOPIC: 6}
    facts = json.loads(read_custom_data(bag)[FACTS_KEY])
    assert facts["t0_ns"] == T0_NS and facts["frames"] == N and facts["meta"]["seed"] == 7
    # The schemas are the interfaces' own: the RIHS01 hashes match rosidl's generated ones.
    from rosbags.highlevel import AnyReader
    share = Path(sys.prefix) / "share" / "proassist_ros" / "msg"  # where rosidl's build installs
    with AnyReader([bag], default_typestore=typestore()) as reader:
        conns = {c.topic: c for c in reader.connections}
        for topic, name in ((TASK_TOPIC, "Task"), (REFERENCE_TOPIC, "Guidance")):
            rosidl = json.loads((share / f"{name}.json").read_text())["type_hashes"][0]["hash_string"]
            assert conns[topic].digest == rosidl
        (task_qos,) = conns[TASK_TOPIC].ext.offered_qos_profiles
        assert task_qos.durability.name == "TRANSIENT_LOCAL" and task_qos.depth == 1
    # Log-time order; at equal times a user turn precedes the frame, a reference follows it.
    msgs = list(read_bag(bag))
    assert [m.t_ns for m in msgs] == sorted(m.t_ns for m in msgs)
    at_03 = [m.topic for m in msgs if m.t_ns == T0_NS + 300_000_000]
    assert at_03 == [IMAGE_TOPIC, COMPRESSED_TOPIC, CAPTION_TOPIC, REFERENCE_TOPIC]
    at_04 = [m.topic for m in msgs if m.t_ns == T0_NS + 400_000_000]
    assert at_04 == [UTTERANCE_TOPIC, IMAGE_TOPIC, COMPRESSED_TOPIC, CAPTION_TOPIC]
    assert msgs[0].topic == TASK_TOPIC


def test_rclpy_deserializes_every_topic(tmp_path):
    ep = _episode()
    bag = write_episode(ep, tmp_path / "tea", raw=True)
    types = {IMAGE_TOPIC: Image, COMPRESSED_TOPIC: CompressedImage, UTTERANCE_TOPIC: String,
             CAPTION_TOPIC: String, TASK_TOPIC: Task, REFERENCE_TOPIC: Guidance}
    got: dict[str, list] = {t: [] for t in types}
    for m in read_bag(bag):
        got[m.topic].append(deserialize_message(m.raw, types[m.topic]))
    (task,) = got[TASK_TOPIC]
    assert (task.goal, list(task.steps), list(task.step_groups), task.task_type) == (
        ep.task.goal, ep.task.steps, ep.task.step_groups, "make_tea")
    refs = got[REFERENCE_TOPIC]
    assert [g.kind for g in refs] == [KIND_VALUES[r.kind] for r in ep.references]
    assert [g.kind for g in refs[:4]] == [Guidance.KIND_INSTRUCTION, Guidance.KIND_CORRECTION,
                                          Guidance.KIND_ANSWER, Guidance.KIND_CONFIRMATION]
    assert [g.seq for g in refs] == list(range(6)) and refs[1].interrupt
    assert [g.header.stamp.sec * 10**9 + g.header.stamp.nanosec - T0_NS for g in refs] == [
        round(r.t * 1e9) for r in ep.references]
    assert [s.data for s in got[UTTERANCE_TOPIC]] == [u.text for u in ep.user_turns]
    assert [(i.width, i.height, i.encoding) for i in got[IMAGE_TOPIC]] == [(W, H, "rgb8")] * N
    assert np.array_equal(np.asarray(got[IMAGE_TOPIC][3].data).reshape(H, W, 3), _frame(3))
    assert got[COMPRESSED_TOPIC][0].format == "rgb8; jpeg compressed bgr8"


def test_mcap_ros2_reader_reads_every_topic(tmp_path):
    from mcap.reader import make_reader
    from mcap_ros2.reader import read_ros2_messages

    ep = _episode()
    bag = write_episode(ep, tmp_path / "tea", raw=True)
    counts: dict[str, int] = {}
    kinds, texts = [], []
    for m in read_ros2_messages(str(bag / "tea.mcap")):
        counts[m.channel.topic] = counts.get(m.channel.topic, 0) + 1
        if m.channel.topic == REFERENCE_TOPIC:
            kinds.append(m.ros_msg.kind)
            texts.append(m.ros_msg.text)
        if m.channel.topic == TASK_TOPIC:
            assert list(m.ros_msg.steps) == ep.task.steps
        if m.channel.topic == IMAGE_TOPIC:
            assert m.ros_msg.width == W and len(m.ros_msg.data) == W * H * 3
    assert counts == {IMAGE_TOPIC: N, COMPRESSED_TOPIC: N, UTTERANCE_TOPIC: 2, CAPTION_TOPIC: N,
                      TASK_TOPIC: 1, REFERENCE_TOPIC: 6}
    assert kinds == [KIND_VALUES[r.kind] for r in ep.references]
    assert texts == [r.text for r in ep.references]
    with (bag / "tea.mcap").open("rb") as f:  # the facts are in the MCAP file itself
        (rec,) = [r for r in make_reader(f).iter_metadata() if r.name == "rosbag2"]
    assert FACTS_KEY in rec.metadata["serialized_metadata"]


def test_proassist_json_round_trip_keeps_everything(tmp_path):
    ep = _episode()
    bag = write_episode(ep, tmp_path / "bags" / "tea")
    path = export_bags(tmp_path / "bags", tmp_path / "json")
    (video,) = json.loads(path.read_text())
    assert video["video_uid"] == "tea_0001" and video["inferred_goal"] == ep.task.goal
    assert video["parsed_video_anns"]["has_mistake"] is True
    (conv,) = video["conversations"]
    turns = conv["conversation"]
    assert [t["role"] for t in turns] == ["user", "assistant", "assistant", "user", "assistant",
                                          "assistant", "assistant"]
    assert [t.get("labels") for t in turns if t["role"] == "assistant"] == [
        "initiative|instruction", "initiative|correction", "responsive|info_sharing",
        "initiative|feedback", ""]
    assert turns[5]["progress"].startswith("The time elapsed is 0.6 s")  # on its spoken turn
    assert turns[6] == {"role": "assistant", "time": 0.75, "content": "", "labels": "",
                        "progress": "Summary without a spoken turn."}
    files = sorted((tmp_path / "json" / "frames" / "tea_0001").iterdir())
    jpegs = [bytes(m.data) for _, m in camera_messages(bag, prefer="compressed")]
    assert [f.read_bytes() for f in files] == jpegs  # copied, not re-encoded
    (bag2,) = import_json(path, tmp_path / "imported")
    back = read_episode(bag2)
    _same_annotations(ep, back)
    assert [bytes(m.data) for _, m in camera_messages(bag2)] == jpegs
    assert [t for t, _ in back.frames()] == [t for t, _ in _frames()]


def test_import_plain_proassist_json(tmp_path):
    """A video object as ProAssist ships it: two conversations, labels, progress, frames at 2 fps."""
    frames = tmp_path / "frames" / "vid7"
    frames.mkdir(parents=True)
    for i in range(3, 7):  # the evaluated window: frames 3..6 of the video (t = i / 2)
        ok, buf = cv2.imencode(".jpg", _frame(i))
        (frames / f"{i:06d}.jpg").write_bytes(buf.tobytes())
    conv = [{"role": "user", "time": 1.6, "content": "How do I start?"},
            {"role": "assistant", "time": 1.7, "content": "Take the bowl.",
             "labels": "responsive|instruction", "progress": "Elapsed 1.7 s. Started."},
            {"role": "assistant", "time": 2.4, "content": "Not that one.",
             "labels": "initiative|instruction,correction"},
            {"role": "assistant", "time": 3.0, "content": "Good.", "labels": "initiative|feedback"}]
    video = {"video_uid": "vid7", "inferred_goal": "Make pancakes",
             "inferred_knowledge": "[Pancakes]\n1. Take the bowl.\n2. Mix.",
             "parsed_video_anns": {"duration": 3.5, "fps": 2, "has_mistake": True},
             "conversations": [{"user_type": "talk_some", "conversation": conv},
                               {"user_type": "no_talk", "conversation": conv[2:]}]}
    (tmp_path / "val.json").write_text(json.dumps([video]))
    bags = import_json(tmp_path / "val.json", tmp_path / "out", split="val")
    assert [b.name for b in bags] == ["vid7_c0", "vid7_c1"]
    ep = read_episode(bags[0])
    assert ep.task.steps == ["Take the bowl.", "Mix."] and ep.meta.split == "val"
    assert [(r.t, r.kind) for r in ep.references] == [
        (1.7, "answer"), (1.7, "progress_summary"), (2.4, "correction"), (3.0, "confirmation")]
    assert [t for t, _ in ep.frames()] == [1.5, 2.0, 2.5, 3.0]
    assert ep.meta.extra["user_type"] == "talk_some" and ep.meta.has_mistake
    assert [u.text for u in read_episode(bags[1]).user_turns] == []


def test_users_bag_without_references_reads(tmp_path):
    """A plain recording (camera + utterance, no facts, task or references) is a valid episode."""
    frames = [((k + 1) / HZ, _frame(k)) for k in range(5)]
    write_bag(tmp_path / "mine", frames, [(0.35, "which cup?")], t0_s=1000.0)
    ep = read_episode(tmp_path / "mine")
    assert ep.task is None and ep.references == [] and ep.captions == []
    assert (ep.meta.video_id, ep.meta.width, ep.meta.height, ep.meta.split) == ("mine", W, H, "")
    assert ep.meta.hz == pytest.approx(HZ) and ep.meta.duration_s == pytest.approx(0.5)
    assert [t for t, _ in ep.frames()] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert ep.user_turns == [Turn(pytest.approx(0.25), "which cup?")]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(ep.frames(), frames, strict=True))


def test_mp4_import_samples_frames(tmp_path):
    mp4 = tmp_path / "kitchen.mp4"
    w = cv2.VideoWriter(str(mp4), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (W, H))
    for k in range(25):
        w.write(cv2.cvtColor(_frame(k), cv2.COLOR_RGB2BGR))
    w.release()
    ann = {"video_uid": "kitchen", "inferred_goal": "Make tea", "inferred_knowledge": "1. Boil.",
           "conversations": [{"conversation": [
               {"role": "assistant", "time": 1.0, "content": "Boil water.",
                "labels": "initiative|instruction"}]}]}
    (tmp_path / "ann.json").write_text(json.dumps([ann]))
    bag = import_video(mp4, tmp_path / "out", annotation=tmp_path / "ann.json", fps=2.0,
                       size=(16, 12))
    ep = read_episode(bag)
    assert [t for t, _ in ep.frames()] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert (ep.meta.width, ep.meta.height, ep.meta.hz) == (16, 12, 2.0)
    assert [(r.t, r.kind, r.text) for r in ep.references] == [(1.0, "instruction", "Boil water.")]
    assert read_episode(import_video(mp4, tmp_path / "plain", fps=5.0)).task is None


def test_bad_episodes_are_refused_and_leave_nothing(tmp_path):
    ep = _episode()
    ep.references.append(Turn(0.9, "huh", "chitchat"))
    with pytest.raises(ValueError, match="kind 'chitchat'"):
        write_episode(ep, tmp_path / "a")
    ep = _episode()
    ep.user_turns.append(Turn(math.nan, "when?"))
    with pytest.raises(ValueError, match="user turn 2"):
        write_episode(ep, tmp_path / "a")
    ep = _episode()
    ep.frames = lambda: iter([(0.1, _frame(0)), (0.2, _frame(1)[:, :20])])
    with pytest.raises(ValueError, match="frame 1 at t=0.2 is 20x24"):
        write_episode(ep, tmp_path / "a")
    assert list(tmp_path.iterdir()) == []  # no half-written bag, no temporary left behind
    write_episode(_episode(), tmp_path / "a")
    with pytest.raises(FileExistsError, match=str(tmp_path / "a")):
        write_episode(_episode(), tmp_path / "a")


def test_iter_dataset(tmp_path):
    for name in ("b", "a"):
        write_episode(_episode(), tmp_path / "ds" / "sub" / name)
    (tmp_path / "ds" / ".c.partial").mkdir()
    assert list(iter_dataset(tmp_path / "ds")) == [tmp_path / "ds" / "sub" / n for n in "ab"]
    assert list(iter_dataset([tmp_path / "ds" / "sub" / "a" / "a.mcap"])) == [
        tmp_path / "ds" / "sub" / "a" / "a.mcap"]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list(iter_dataset(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="no bags found"):
        list(iter_dataset(tmp_path / "ds" / ".c.partial"))


def make_small(seed, split, index, *, size, hz, long):
    """A stand-in-free generator for synth's plumbing: the hand-built episode, re-identified."""
    ep = _episode()
    ep.meta.video_id, ep.meta.split, ep.meta.seed = f"{split}_{index}", split, seed
    return ep


def test_synth_writes_bags_in_parallel(tmp_path):
    res = synth(tmp_path, 2, "val", 3, size=(W, H), hz=HZ, compressed=True, workers=2,
                make=make_small, progress=False)
    assert [b.name for b in res.bags] == ["val_0000_make_tea", "val_0001_make_tea"]
    assert res.frames == 2 * N and res.video_s == pytest.approx(2 * N / HZ)
    assert [read_episode(b).meta.video_id for b in res.bags] == ["val_0", "val_1"]
    assert synth(tmp_path, 2, "val", 3, skip_existing=True, make=make_small,
                 progress=False).bags == []
    with pytest.raises(FileExistsError, match="val_0000_make_tea"):
        synth(tmp_path, 1, "val", 3, make=make_small, progress=False)


def test_cli_synth_with_the_task_world(tmp_path, capsys):
    """`proassist synth` end to end with the real generator (tiny frames, 2 Hz)."""
    argv = ["synth", "--out", str(tmp_path), "--videos", "1", "--split", "val", "--seed", "0",
            "--size", "64x48", "--hz", "2", "--compressed"]
    assert main(argv) == 0
    assert "x real time" in capsys.readouterr().out
    (bag,) = iter_dataset(tmp_path)
    ep = read_episode(bag)
    assert bag.name.startswith("val_0000_") and bag.name.endswith(ep.meta.task_type)
    assert (ep.meta.split, ep.meta.width, ep.meta.height, ep.meta.hz) == ("val", 64, 48, 2.0)
    assert ep.task is not None and ep.task.steps and ep.references
    assert sum(1 for _ in ep.frames()) == bag_info(bag)["facts"]["frames"] > 0
    assert main(argv) == 2 and "exists" in capsys.readouterr().err  # no silent overwrite


def test_cli(tmp_path, capsys):
    write_episode(_episode(), tmp_path / "tea")
    assert main(["dataset", "info", str(tmp_path / "tea")]) == 0
    assert json.loads(capsys.readouterr().out)["facts"]["meta"]["video_id"] == "tea_0001"
    assert main(["dataset", "export", str(tmp_path / "tea"), "--out", str(tmp_path / "j"),
                 "--fps", "2"]) == 0
    (video,) = json.loads((tmp_path / "j" / "dialogs.json").read_text())
    assert video["proassist_ros"]["frame_times"] == [0.1, 0.5]  # one per 0.5 s bucket
    assert len(list((tmp_path / "j" / "frames" / "tea_0001").iterdir())) == 2
    capsys.readouterr()
    cases = [
        (["dataset", "info", str(tmp_path / "missing")], "missing"),
        (["dataset", "export", str(tmp_path / "j"), "--out", str(tmp_path / "k")], "no bags found"),
        (["dataset", "import", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o")], "nope.json"),
        (["dataset", "import", str(tmp_path / "tea" / "metadata.yaml"), "--out", str(tmp_path)],
         "expected a ProAssist .json"),
        (["synth", "--out", str(tmp_path / "tea" / "metadata.yaml"), "--videos", "1", "--split",
          "val", "--seed", "0"], "not a directory"),
    ]
    for argv, needle in cases:
        assert main(argv) == 2, argv
        assert needle in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["synth", "--out", str(tmp_path), "--videos", "1", "--split", "val", "--seed", "0",
              "--size", "640by480"])
    assert exc.value.code == 2 and "expected WxH" in capsys.readouterr().err
