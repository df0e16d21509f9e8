"""Context limit, reserve and Drop-Middle keep-last are derived in one place
(engine.config.context_budget), and every limit the node accepts makes a valid engine config."""

from __future__ import annotations

import pytest

from proassist_ros.engine.config import (
    CONTEXT_STRATEGIES,
    MIN_CONTEXT_LIMIT,
    ConfigError,
    EngineConfig,
    context_budget,
    model_settings,
)
from proassist_ros.eval.evaluate import EvalSettings
from proassist_ros.ros.assistant_config import MIN_CONTEXT_LIMIT as NODE_MIN
from proassist_ros.ros.assistant_config import SPECS, AssistantConfig, change_problem

NODE_MAX = int(SPECS["context_limit"].high)
SHIPPED = {"theta": 0.42, "context_limit": 1024, "reserve": 96}  # a model's own settings


@pytest.mark.parametrize("strategy", CONTEXT_STRATEGIES)
@pytest.mark.parametrize("limit", [NODE_MIN, 256, 300, 640, 1024, 4096, NODE_MAX])
def test_every_limit_the_node_accepts_builds_a_valid_engine_config(limit, strategy):
    cfg = AssistantConfig.from_values({"context_limit": limit, "context_strategy": strategy})
    eng = cfg.engine_config(SHIPPED)  # raises ConfigError if the derived values do not fit
    reserve, keep_last = context_budget(limit, strategy)
    assert (eng.context_limit, eng.reserve, eng.drop_middle_keep_last) == (limit, reserve, keep_last)
    assert 0 < eng.reserve < limit // 2
    if strategy == "drop_middle":
        assert 0 < eng.drop_middle_keep_last < eng.trigger_tokens
    else:
        assert eng.drop_middle_keep_last == 0  # only Drop-Middle keeps a tail
    # proassist eval derives the same session from the same limit
    ev = EvalSettings(context_limit=limit, context_strategy=strategy).engine_config(0.3, SHIPPED)
    assert (ev.context_limit, ev.reserve, ev.drop_middle_keep_last) == (limit, reserve, keep_last)


@pytest.mark.parametrize("strategy", CONTEXT_STRATEGIES)
def test_the_models_own_limit_keeps_its_own_reserve(strategy):
    eng = AssistantConfig(context_strategy=strategy).engine_config(SHIPPED)  # context_limit 0
    assert (eng.context_limit, eng.reserve) == (1024, 96)
    assert eng.drop_middle_keep_last == (512 if strategy == "drop_middle" else 0)
    ev = EvalSettings(context_strategy=strategy).engine_config(0.3, SHIPPED)  # --context-limit unset
    assert (ev.context_limit, ev.reserve, ev.drop_middle_keep_last) == \
        (eng.context_limit, eng.reserve, eng.drop_middle_keep_last)


def test_the_spec_values_at_4096():
    assert context_budget(4096, "drop_middle") == (128, 512)
    assert context_budget(4096, "ips") == (128, 0)
    assert context_budget(640, "drop_middle") == (80, 320)  # the fixed 128 / 512 would not fit
    assert context_budget(1024, "drop_middle", reserve=96) == (96, 512)


def test_one_below_the_node_bound_is_refused_by_name():
    below = NODE_MIN - 1
    with pytest.raises(ValueError, match="context_limit") as err:
        AssistantConfig.from_values({"context_limit": below})
    assert "drop_middle_keep_last" not in str(err.value) and str(NODE_MIN) in str(err.value)
    assert "context_limit" in change_problem("context_limit", below, None)
    assert change_problem("context_limit", NODE_MIN, None) is None


def test_the_engine_floor_holds_for_every_limit_above_it():
    for limit in range(MIN_CONTEXT_LIMIT, 5000, 7):
        for strategy in CONTEXT_STRATEGIES:
            reserve, keep_last = context_budget(limit, strategy)
            EngineConfig(context_limit=limit, context_strategy=strategy, reserve=reserve,
                         drop_middle_keep_last=keep_last)
    with pytest.raises(ConfigError, match="context_limit"):
        context_budget(MIN_CONTEXT_LIMIT - 1, "ips")
    with pytest.raises(ConfigError, match="context_strategy"):
        context_budget(1024, "drop_some")
    with pytest.raises(TypeError, match="strategy"):
        model_settings(None, 1024, {})
