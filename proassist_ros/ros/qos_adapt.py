"""The camera subscription's reliability, including ``image_reliability: auto``.

Why: whether raw frames survive best-effort delivery is decided by the *sender's* DDS settings.
A camera publisher at rclpy's default QoS (reliable, keep-last 10) that does not load our Fast DDS
profile got 2 of ~20 sampled 640x480 frames through to a best-effort subscriber in 10 s; a
reliable subscriber got them, because Fast DDS then repairs lost fragments. Users rarely control
their camera driver's DDS settings, but a receiver can match the reliability it is offered. So
``auto`` does what rosbag2 does when it adapts its subscriptions to the offered QoS: reliable when
every publisher on the topic offers reliable, best effort otherwise (a reliable subscription would
not match a best-effort publisher at all). Explicit ``reliable``/``best_effort`` always win.

:func:`choose_reliability` is the decision, ROS-free and unit tested. :class:`CameraSubscription`
applies it to one rclpy subscription: it polls the graph (``get_publishers_info_by_topic``) on a
wall-clock timer, re-decides whenever the set of publishers changes, and re-creates the
subscription only when the decision changes (a re-subscription loses the frames in flight).
rclpy is imported lazily, so this module imports without ROS.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

AUTO, RELIABLE, BEST_EFFORT = "auto", "reliable", "best_effort"
SETTINGS = (AUTO, RELIABLE, BEST_EFFORT)
POLL_PERIOD_S = 0.5  # graph poll (cheap: a local graph-cache query)


@dataclass(frozen=True)
class ReliabilityChoice:
    """The reliability to subscribe with, and why (logged once per change, shown in /diagnostics)."""

    reliability: str  # RELIABLE or BEST_EFFORT
    reason: str

    def describe(self) -> str:
        return f"{self.reliability} ({self.reason})"


def choose_reliability(setting: str, offered: Iterable[str],
                       current: str | None = None) -> ReliabilityChoice:
    """Reliability for a subscription configured as ``setting`` given the publishers' offers.

    ``offered`` holds one entry per publisher: "reliable", "best_effort" or another policy name
    (anything but "reliable" counts as not reliable). With ``auto`` and no publisher at all,
    ``current`` (the reliability in use) is kept, so a camera restarting does not cause a
    needless re-subscription; before the first decision it is best effort, which matches a
    publisher of either kind.
    """
    if setting not in SETTINGS:
        raise ValueError(f"image_reliability must be one of {', '.join(SETTINGS)}; got {setting!r}")
    if setting != AUTO:
        return ReliabilityChoice(setting, "image_reliability set explicitly")
    offers = list(offered)
    if not offers:
        if current is not None:
            return ReliabilityChoice(current, "auto: no publisher now, keeping the last choice")
        return ReliabilityChoice(BEST_EFFORT, "auto: no publisher yet; best effort matches any")
    unreliable = sum(offer != RELIABLE for offer in offers)
    if unreliable == 0:
        return ReliabilityChoice(RELIABLE, f"auto: all {len(offers)} publisher(s) offer reliable")
    return ReliabilityChoice(BEST_EFFORT, f"auto: {unreliable} of {len(offers)} publisher(s) "
                                          "offer best effort")


def policy_name(policy: Any) -> str:
    """An rclpy ReliabilityPolicy as the names used here ("reliable", "best_effort", ...)."""
    return str(getattr(policy, "name", policy)).lower()


class CameraSubscription:
    """One camera subscription whose reliability follows ``image_reliability`` (auto adapts).

    ``create`` is called with the QoS to use and returns the subscription; ``on_choice`` is told
    every decision that changed the reliability (the first one included), right before the
    subscription is (re-)created, so whatever it logs comes before that subscription's events.
    """

    def __init__(self, node: Any, topic: str, setting: str, depth: int,
                 create: Callable[[Any], Any], on_choice: Callable[[ReliabilityChoice], None],
                 callback_group: Any = None) -> None:
        if setting not in SETTINGS:
            raise ValueError(f"image_reliability must be one of {', '.join(SETTINGS)}; "
                             f"got {setting!r}")
        self._node, self._setting, self._depth = node, setting, depth
        self._create, self._on_choice, self._group = create, on_choice, callback_group
        self.topic = node.resolve_topic_name(topic)
        self.choice: ReliabilityChoice | None = None
        self.resubscriptions = 0  # re-creations after the first subscription
        self._seen: frozenset[tuple[Any, ...]] | None = None
        self._sub: Any = None
        self._timer: Any = None

    @property
    def subscription(self) -> Any:
        return self._sub

    def start(self) -> None:
        """Subscribe (deciding from the publishers already known) and, for auto, start polling."""
        self.poll()
        if self._setting == AUTO and self._timer is None:
            from rclpy.clock import Clock, ClockType

            # Wall clock: graph changes are wall-time events, and a node on use_sim_time
            # without /clock yet must still adapt.
            self._timer = self._node.create_timer(POLL_PERIOD_S, self.poll,
                                                  callback_group=self._group,
                                                  clock=Clock(clock_type=ClockType.STEADY_TIME))

    def publishers(self) -> list[Any]:
        """The publishers on the camera topic as the local graph knows them now."""
        return list(self._node.get_publishers_info_by_topic(self.topic))

    def poll(self) -> bool:
        """Re-decide when the set of publishers changed; True when it re-subscribed."""
        infos = self.publishers() if self._setting == AUTO else []
        seen = frozenset((tuple(i.endpoint_gid), policy_name(i.qos_profile.reliability))
                         for i in infos)
        if self._sub is not None and seen == self._seen:
            return False
        self._seen = seen
        current = self.choice.reliability if self.choice else None
        choice = choose_reliability(self._setting, (offer for _, offer in seen), current)
        if self._sub is not None and choice.reliability == current:
            self.choice = choice  # same reliability, up-to-date reason (for /diagnostics)
            return False
        self._subscribe(choice)
        return True

    def _subscribe(self, choice: ReliabilityChoice) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        reliability = (ReliabilityPolicy.RELIABLE if choice.reliability == RELIABLE
                       else ReliabilityPolicy.BEST_EFFORT)
        if self._sub is not None:
            self._node.destroy_subscription(self._sub)
            self.resubscriptions += 1
        self.choice = choice
        self._on_choice(choice)  # before subscribing: its log precedes the new matched event
        self._sub = self._create(QoSProfile(depth=self._depth, reliability=reliability))

    def destroy(self) -> None:
        """Stop polling and unsubscribe."""
        if self._timer is not None:
            self._node.destroy_timer(self._timer)
            self._timer = None
        if self._sub is not None:
            self._node.destroy_subscription(self._sub)
            self._sub = None
