"""Every ``proassist`` subcommand given a missing path, an empty directory or a file of the wrong
kind: a one-line error naming the path and a non-zero exit, never a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from proassist_ros.cli import main

SAMPLE = str(Path(__file__).resolve().parents[1] / "samples" / "test_0004_take_medicine")

# (subcommand argv with {p} for the bad path, which bad kinds apply)
CASES = [
    ("eval {p} --out {o}", "mewt"),
    ("eval " + SAMPLE + " --out {o} --model {p}", "mew"),
    ("replay {p}", "mewt"),
    ("dataset info {p}", "mewt"),
    ("dataset export {p} --out {o}", "mewt"),
    ("dataset import {p} --out {o}", "mew"),
    ("train --data {p} --out {o}", "mewt"),
    ("train --data " + SAMPLE + " --out {o} --tower {p}", "mew"),
    ("train --data " + SAMPLE + " --out {o} --base {p}", "mew"),
    ("train vision pretrain --data {p} --out {o}", "mew"),
    ("train vision features --data " + SAMPLE + " --tower {p} --out {o}", "mew"),
    ("train probe {p}", "mew"),
    ("train pipeline --out {p}", "w"),  # a missing or empty --out is a new run: it starts work
    ("synth --out {p} --videos 1 --split test --seed 1", "w"),
    ("bringup --params-file {p}", "mew"),
    ("demo --bag {p}", "mewt"),
    ("demo --model {p}", "mew"),
    ("bench --quick --model {p}", "mew"),
    ("bench --quick --ros-bag {p}", "ewt"),  # a missing name is looked up among the samples
    ("bench --quick --agreement-bags {p}", "mewt"),
]
KINDS = {"m": "missing", "e": "empty", "w": "wrong.txt", "t": "truncated_bag"}


def _bad(tmp_path: Path, kind: str) -> Path:
    (tmp_path / "empty").mkdir()
    (tmp_path / "wrong.txt").write_text("hello: not what you think\n")
    if kind == "t":  # a real bag cut in half: its metadata says it is fine, the storage is not
        bag = tmp_path / KINDS[kind]
        shutil.copytree(SAMPLE, bag)
        storage = next(bag.glob("*.mcap"))
        storage.write_bytes(storage.read_bytes()[: storage.stat().st_size // 2])
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
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.safetensors"))
