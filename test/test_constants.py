"""proassist_ros.constants: the one home of shared names and numbers agrees with the interfaces,
and the ROS-free rooms take theirs from it."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from proassist_ros import constants as c

REPO = Path(__file__).resolve().parents[1]


def _msg_constants(name: str) -> dict[str, int]:
    text = (REPO / "msg" / f"{name}.msg").read_text()
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^\s*uint8\s+(\w+)\s*=\s*(\d+)", text, re.M)}


def test_guidance_kinds_and_priorities_match_the_message():
    msg = _msg_constants("Guidance")
    ours = {k: getattr(c, k) for k in dir(c) if k.startswith(("KIND_", "PRIORITY_"))
            and isinstance(getattr(c, k), int)}
    assert ours == msg
    assert c.KIND_VALUES == {name.removeprefix("KIND_").lower(): v
                             for name, v in msg.items() if name.startswith("KIND_")}
    assert set(c.KIND_URGENCY) == set(c.KIND_NAMES)
    assert set(c.KIND_NAMES.values()) == set(c.KIND_VALUES)


def test_topics_resolve_in_the_default_namespace():
    assert c.GUIDANCE_TOPIC == "/proassist/guidance" and c.TASK_STATE_TOPIC == "/proassist/task_state"
    assert c.UTTERANCE_TOPIC == "/proassist/user_utterance" and c.TASK_TOPIC == "/proassist/task"
    assert c.COMPRESSED_TOPIC == "/camera/image_raw/compressed"
    assert c.absolute("guidance", "/robot1/") == "/robot1/guidance" and c.absolute("stats", "") == "/stats"
    assert c.NS_PER_S == 10**9


def test_constants_is_the_bottom_of_the_import_graph():
    """It imports nothing of the package (nor rclpy), so every room may import it."""
    code = ("import sys; import proassist_ros.constants; "
            "mods = [m for m in sys.modules if m.startswith('proassist_ros.') or m == 'rclpy']; "
            "assert mods == ['proassist_ros.constants'], mods")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_no_second_home_for_nanoseconds_per_second():
    """Stamp arithmetic takes NS_PER_S from constants; no module spells 10⁹ itself."""
    pattern = re.compile(r"1_000_000_000(?!\s*\*)|\b1e9\b|10\s*\*\*\s*9")
    offenders = []
    for path in sorted((REPO / "proassist_ros").rglob("*.py")):
        if path.name == "constants.py":
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if pattern.search(code):
                offenders.append(f"{path.relative_to(REPO)}:{i}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


ROS_FREE = ("constants.py", "model", "engine", "data", "eval", "train", "runtime", "tts", "speech", "utils")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):  # inside functions too
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_ros_free_rooms_import_neither_ros_nor_rclpy():
    """Arrows point down: no ROS-free layer imports proassist_ros.ros (image decoding is
    data/images.py, episode frame sampling runtime/sampling.py) or rclpy."""
    offenders = []
    for room in ROS_FREE:
        base = REPO / "proassist_ros" / room
        for path in sorted([base] if base.is_file() else base.rglob("*.py")):
            bad = {m for m in _imports(path) if m == "rclpy" or m.startswith(("rclpy.", "proassist_ros.ros"))}
            offenders += [f"{path.relative_to(REPO)}: {m}" for m in sorted(bad)]
    assert not offenders, "\n".join(offenders)
