"""Read-only node parameters declared from a typed dataclass: the TTS, microphone and ASR nodes.

Each field of the dataclass is declared once, with a description and an optional integer or
floating-point range (rcl then refuses values outside it at start, naming the parameter), and
read back into the same dataclass, so a node's code sees typed values only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node

T = TypeVar("T")


def declare_read_only(node: Node, defaults: T, descriptions: Mapping[str, tuple[str, Any]]) -> T:
    """Declare every field of the dataclass instance ``defaults`` (its values are the defaults)
    with ``descriptions[name] = (text, range or None)``; the values in force, as that dataclass."""
    fields = dataclasses.fields(defaults)  # type: ignore[arg-type]
    for f in fields:
        text, rng = descriptions[f.name]
        desc = ParameterDescriptor(description=text, read_only=True)
        if isinstance(rng, IntegerRange):
            desc.integer_range = [rng]
        elif isinstance(rng, FloatingPointRange):
            desc.floating_point_range = [rng]
        node.declare_parameter(f.name, getattr(defaults, f.name), desc)
    return dataclasses.replace(defaults, **{f.name: node.get_parameter(f.name).value  # type: ignore[type-var]
                                            for f in fields})
