"""One name per setting: the CLIs spell θ, the context strategy and the context limit as the node's
parameters do, and the earlier spellings still work as hidden aliases with a one-line note."""

from __future__ import annotations

import pytest

from proassist_ros.eval import bench
from proassist_ros.eval.cli import build_parser as eval_parser
from proassist_ros.ros.assistant_config import SPECS

NEW = ["bags", "--out", "o", "--theta", "0.4", "--context-strategy", "drop_middle",
       "--context-limit", "512", "--select-theta", "t.yaml"]
OLD = ["bags", "--out", "o", "--threshold", "0.4", "--strategy", "drop_middle",
       "--context-limit", "512", "--select-threshold", "t.yaml"]


def test_eval_options_are_the_node_parameter_names():
    args = eval_parser().parse_args(NEW)
    assert (args.theta, args.context_strategy, args.context_limit, str(args.select_theta)) == \
        (0.4, "drop_middle", 512, "t.yaml")
    assert {"theta", "context_strategy", "context_limit"} <= set(SPECS)
    assert bench.build_parser().parse_args(["--context-limit", "256", "--theta", "0.2"]).context_limit == 256


def test_old_spellings_still_work_with_a_note(capsys):
    assert vars(eval_parser().parse_args(OLD)) == vars(eval_parser().parse_args(NEW))
    notes = capsys.readouterr().err.splitlines()
    assert notes == ["proassist eval: note: --threshold is deprecated, use --theta",
                     "proassist eval: note: --strategy is deprecated, use --context-strategy",
                     "proassist eval: note: --select-threshold is deprecated, use --select-theta"]
    assert bench.build_parser().parse_args(["--limit", "256"]).context_limit == 256
    assert capsys.readouterr().err == "proassist bench: note: --limit is deprecated, use --context-limit\n"


def test_old_spellings_are_hidden_and_keep_their_rules(capsys):
    help_text = eval_parser().format_help() + bench.build_parser().format_help()
    for old in ("--threshold", "--strategy", "--select-threshold", "--limit "):
        assert old not in help_text
    with pytest.raises(SystemExit):  # still exclusive with --sweep, still checked against the choices
        eval_parser().parse_args(["b", "--out", "o", "--threshold", "0.4", "--sweep", "0:1:0.5"])
    with pytest.raises(SystemExit):
        eval_parser().parse_args(["b", "--out", "o", "--strategy", "drop_some"])
    assert eval_parser().parse_args(["b", "--out", "o"]).context_strategy == "ips"  # defaults stand
