"""AssistantSession: one streaming assistant per video stream (spec §2), ROS-free.

A session owns the per-stream state the paper's runner keeps (KV cache, pending prefix, initial
system prompt, knowledge — spec P18), the θ decision, context management (§3), talk policies and
task state. Frames go in with their stamps; utterances come out. The node, the evaluation and the
benchmarks all drive this one class.

Threading: ``push_frame(s)``, ``reset`` and ``set_task(reset_context=True)`` serialise on one
lock; ``push_user_utterance`` and ``set_task`` only queue their text (an inbox drained at the next
frame, spec §2.4: "prepended to the next frame's input"), so a ROS callback never waits for
inference.

Catch-up (beyond the paper, so a 512-token IPS summary or a long reply does not freeze the
stream): frames that arrived while the session was busy are given together to ``push_frames``.
All but the newest are fed silently, in as few forwards as the context trigger allows — they
enter the context, and each one's P(silence) is still read at its own last visual token
(``blocked_by="catch_up"`` when it would have spoken) — and only the newest frame may speak.
Speaking about a moment that is already seconds old helps nobody. Invariant: a backlog is
one-at-a-time feeding, silent (docs/engine.md).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from proassist_ros.constants import MAX_KNOWLEDGE_CHARS, MAX_SOURCE_CHARS, MAX_TASK_STEPS, MAX_TURN_CHARS
from proassist_ros.model.streaming import StreamState, crop, forward_chunk, step_frame

from . import context as ctx
from .config import EngineConfig
from .knowledge import knowledge_message, parse_steps
from .labels import classify
from .policies import TalkPolicy
from .summary_job import SummaryJob
from .task_state import TaskStateData, TaskTracker


@dataclass
class FrameResult:
    """What happened at one frame. ``seq`` is the guidance sequence number (−1 when silent)."""

    stamp_s: float
    spoke: bool = False
    text: str = ""
    p_silence: float = 1.0
    seq: int = -1
    kind: int = 5
    priority: int = 1
    interrupt: bool = False
    threshold: float = 0.0
    step_index: int = -1
    blocked_by: str = ""       # "min_gap" | "talk_budget" | "repeat" when a policy silenced it
    context_event: str = ""    # "ips" | "drop_middle" | "drop_all" when context was managed
    summary: str = ""          # the IPS progress summary made at this frame
    summary_running: bool = False  # a background IPS summary is being written after this frame
    timings: dict[str, float] = field(default_factory=dict)


def same_text(a: str, b: str) -> bool:
    """Equal up to case, spacing and end punctuation ("Help me make tea." ~ "help me make tea")."""
    def norm(x: str) -> str:
        return " ".join(x.lower().split()).rstrip(".!?")
    return norm(a) == norm(b)


@dataclass
class _Frame:
    ids: list[int]
    feats: torch.Tensor        # (I, D_llm)
    stamp: float
    has_user: bool
    answer: bool


class AssistantSession:
    def __init__(self, model, config: EngineConfig | None = None, session_id: str | None = None) -> None:
        self.model = model
        self._cfg = config or EngineConfig()
        self._lock = threading.RLock()
        self._inbox_lock = threading.Lock()
        self._inbox: list[tuple] = []
        self.inputs_truncated = 0  # user texts, recipes and step lists cut to their limits
        self.reset(session_id)

    # ---- control -------------------------------------------------------------------------
    def reset(self, session_id: str | None = None) -> str:
        """Back to a clean state: no cache, no dialogue, no task. Returns the new session id."""
        with self._lock:
            self.session_id = session_id or uuid.uuid4().hex[:12]
            if getattr(self, "_ips_job", None) is not None:
                self._ips_job.cancel()
            self._ips_job: SummaryJob | None = None  # a background IPS summary being written
            self._state = StreamState.new()
            self._started = False          # BOS + system prompt fed?
            self._pending: list[int] = []  # ids to prefix to the next frame (IPS / drop_all)
            self._knowledge = ""           # "Task knowledge: ..." once it entered the stream
            self._recipe_waiting = ""      # recipe to inject right after the first user turn
            self._user_seen = False
            self._goal_fed = ""            # the task goal, once it entered as a user turn
            self._init_len: int | None = None   # Drop-Middle's kept initial part
            self._seq = 0
            self._policy = TalkPolicy()
            self._tracker = TaskTracker(self._cfg)
            self._tracker.state.session_id = self.session_id
            self.summaries_triggered = 0
            self.last_input_ids: list[int] = []
            with self._inbox_lock:
                self._inbox.clear()
            return self.session_id

    @property
    def config(self) -> EngineConfig:
        return self._cfg

    def update_config(self, **changes: object) -> EngineConfig:
        """Change θ, policies, … at run time (validated; applies from the next frame)."""
        new = self._cfg.replace(**changes)
        self._cfg = new
        self._tracker.cfg = new
        return new

    def push_user_utterance(self, text: str, stamp_s: float) -> None:
        """Queue a user turn; it enters right before the next frame's visual tokens (spec §2.4)."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("user utterance must be a non-empty string")
        with self._inbox_lock:
            self._inbox.append(("user", self._cap(text.strip(), MAX_TURN_CHARS), float(stamp_s)))

    def set_task(self, goal: str, knowledge: str = "", steps: Sequence[str] = (),
                 reset_context: bool = False) -> str:
        """Give the task: the goal enters as the user's first turn, the recipe as "Task knowledge:"
        right after it (spec §2.4). Steps: given, else parsed from a numbered recipe.

        When the user later *says* the goal (a recording's /proassist/user_utterance usually
        holds it), that utterance is not fed a second time."""
        if reset_context:
            self.reset()
        goal, knowledge = self._cap(goal.strip(), MAX_TURN_CHARS), self._cap(knowledge.strip(), MAX_KNOWLEDGE_CHARS)
        steps = [s.strip() for s in steps if s.strip()] or parse_steps(knowledge)
        if len(steps) > MAX_TASK_STEPS:
            steps, self.inputs_truncated = steps[:MAX_TASK_STEPS], self.inputs_truncated + 1
        self._tracker.set_task(self.session_id, goal, steps)
        self._tracker.state.last_guidance_seq = max(self._seq - 1, 0)
        with self._inbox_lock:
            self._inbox.append(("task", goal, knowledge, float("-inf")))
        return self.session_id

    def mark_step(self, index: int, done: bool, source: str = "") -> TaskStateData:
        """A step done (or not) by an outside account (a robot saw it): the task state moves, and
        a short system line enters before the next frame so the model knows. ValueError for a
        step that does not exist."""
        with self._lock:
            self._tracker.mark(int(index), bool(done))
            who = " ".join(str(source).split())[:MAX_SOURCE_CHARS] or "external"
            line = (f"[{who}] Step {index + 1} is {'done' if done else 'not done'}: "
                    f"{self._tracker.state.steps[index]}")
        with self._inbox_lock:
            self._inbox.append(("note", line, float("-inf")))
        return self.task_state()

    def end_task(self, status: int) -> TaskStateData:
        """End the task from outside (a cancelled GuideTask goal); the model keeps its context."""
        with self._lock:
            self._tracker.end(int(status))
        return self.task_state()

    def _cap(self, text: str, limit: int) -> str:
        """``text`` cut to ``limit`` characters (counted in ``inputs_truncated``)."""
        if len(text) <= limit:
            return text
        self.inputs_truncated += 1
        return text[:limit]

    def task_state(self) -> TaskStateData:
        s = self._tracker.state
        return TaskStateData(**{**s.__dict__, "steps": list(s.steps),
                                "completed_steps": list(s.completed_steps)})

    @property
    def context_tokens(self) -> int:
        return self._state.num_tokens

    def snapshot(self) -> dict:
        """The durable state (JSON-ready) that :meth:`resume` continues from (engine/resume.py)."""
        from .resume import snapshot

        with self._lock:
            return snapshot(self)

    def resume(self, snap: dict) -> str:
        """Continue the session ``snap`` was taken of, its context restarted as after IPS."""
        from .resume import resume

        return resume(self, snap)

    # ---- frames --------------------------------------------------------------------------
    def push_frame(self, rgb: np.ndarray, stamp_s: float) -> FrameResult:
        return self.push_frames([(rgb, stamp_s)])[0]

    def push_frames(self, frames: Sequence[tuple[np.ndarray, float]]) -> list[FrameResult]:
        """Process a backlog in order: older frames silently, the newest normally.

        Invariant (docs/engine.md, "catch-up"): a backlog is one-at-a-time feeding, silent. Each
        older frame's token ids are built only after everything before it has been fed and any
        context event it caused has run, so an IPS / drop_all prefix lands in front of the very
        next frame (spec §3.1 steps 5–6) and a user turn in any frame sets Drop-Middle's initial
        part (§3.3). Older frames are fed together in one forward per run up to the frame that
        reaches the context trigger.
        """
        if not frames:
            return []
        with self._lock, torch.inference_mode():
            t0 = time.perf_counter()
            feats = self.model.embed_frames([np.asarray(f) for f, _ in frames])  # (N, I, D)
            vision_s = (time.perf_counter() - t0) / len(frames)
            results = self.push_embedded(feats, [s for _, s in frames])
            for r in results:
                r.timings["vision_s"] = vision_s
            return results

    def push_embedded(self, feats: torch.Tensor, stamps: Sequence[float]) -> list[FrameResult]:
        """``push_frames`` for frames whose features were already computed with
        ``model.embed_frames`` — (N, I, D_llm). Offline evaluation embeds frames in large
        batches (frames do not depend on the LLM) and feeds them one at a time through here."""
        if len(feats) != len(stamps):
            raise ValueError(f"{len(feats)} feature rows for {len(stamps)} stamps")
        if not len(stamps):
            return []
        with self._lock, torch.inference_mode():
            stamps = [float(s) for s in stamps]
            results: list[FrameResult] = []
            i, last = 0, len(stamps) - 1
            while i < last:
                batch: list[_Frame] = []
                used = 0
                # A run ends at the frame whose tokens reach the trigger: the frames after it
                # must see the prefix the context event leaves.
                while i < last and (not batch or self._state.num_tokens + used < self._cfg.trigger_tokens):
                    batch.append(self._build(feats[i], stamps[i], last=False))
                    used += len(batch[-1].ids)
                    i += 1
                out = self._feed_silent(batch)
                self._manage_context(batch[-1], out[-1])
                results += out
            t1 = time.perf_counter()
            newest = self._build(feats[last], stamps[last], last=True)
            r = self._decide(newest)
            r.timings.update(llm_s=time.perf_counter() - t1)
            results.append(r)
            return results

    def _decide(self, f: _Frame, fed: torch.Tensor | None = None) -> FrameResult:
        """The newest frame: its step (``fed``: its chunk is already in the cache, these are the
        logits at its last token — engine/batch.py), then bookkeeping and context management."""
        r = self._step(f, fed)
        self._bookkeep(f, self._state.num_tokens)
        self._manage_context(f, r)
        return r

    def _build(self, feats: torch.Tensor, stamp: float, last: bool) -> _Frame:
        """The token ids of one frame: [BOS + system] + pending + queued turns + I × <image>."""
        chat = self.model.chat
        ids: list[int] = []
        if not self._started:
            ids += chat.bos_ids() + chat.message_ids("system", self._cfg.system_prompt)
            self._started = True
        ids += self._pending
        self._pending = []
        has_user = answer = False
        with self._inbox_lock:
            take = [m for m in self._inbox if last or m[-1] <= stamp]
            self._inbox = [m for m in self._inbox if m not in take]
        for item in take:
            if item[0] == "user":
                if self._goal_fed and same_text(item[1], self._goal_fed):
                    continue  # the user saying the goal that set_task already gave: not twice
                ids += chat.message_ids("user", item[1])
                self._tracker.on_user(item[1])
                has_user = answer = True
                if not self._user_seen and self._recipe_waiting:
                    ids += self._inject_knowledge(self._recipe_waiting)
                self._user_seen = True
            elif item[0] == "note":  # ("note", line, _): a robot marked a step (mark_step)
                ids += chat.message_ids("system", item[1])
            else:  # ("task", goal, recipe, _)
                _, goal, recipe, _ = item
                if goal:
                    ids += chat.message_ids("user", goal)
                    self._goal_fed = goal
                    has_user = True
                    self._user_seen = True
                if recipe and (goal or self._user_seen):
                    ids += self._inject_knowledge(recipe)
                elif recipe:
                    self._recipe_waiting = recipe
        ids += chat.image_ids(1)
        return _Frame(ids, feats, stamp, has_user, answer)

    def _inject_knowledge(self, recipe: str) -> list[int]:
        self._knowledge = knowledge_message(recipe)
        self._recipe_waiting = ""
        return self.model.chat.message_ids("system", self._knowledge)

    def _feed_silent(self, batch: list[_Frame]) -> list[FrameResult]:
        """One forward over older backlog frames; each frame's decision read at its last token."""
        ids = [t for f in batch for t in f.ids]
        t0 = time.perf_counter()
        start = self._state.num_tokens
        ends = np.cumsum([len(f.ids) for f in batch]).tolist()  # each frame's decision: its last token
        logits = forward_chunk(self.model, self._state, ids, torch.cat([f.feats for f in batch]),
                               keep=[e - 1 for e in ends])  # (len(batch), V)
        results = []
        for f, end, row in zip(batch, ends, logits):
            self._bookkeep(f, start + end)
            r = self._silent(f, float(torch.softmax(row, -1)[self.model.chat.silence_id]))
            r.blocked_by = "catch_up" if self._wants_to_speak(r.p_silence, row) else ""
            r.timings["llm_s"] = (time.perf_counter() - t0) / len(batch)
            results.append(r)
        return results

    def _wants_to_speak(self, p_silence: float, logits: torch.Tensor) -> bool:
        if self._cfg.theta > 0:
            return p_silence <= self._cfg.theta
        return int(torch.argmax(logits)) != self.model.chat.silence_id

    def _step(self, f: _Frame, fed: torch.Tensor | None = None) -> FrameResult:
        """One frame through the paper's per-frame step, with the talk policies around it."""
        cfg, chat = self._cfg, self.model.chat
        self.last_input_ids = list(f.ids)
        blocked = self._policy.may_speak(cfg, f.stamp)
        t0 = time.perf_counter()
        if blocked:  # feed the frame only: exactly a silent step
            last = forward_chunk(self.model, self._state, f.ids, f.feats, keep=[-1])[-1] if fed is None else fed
            r = self._silent(f, float(torch.softmax(last.float(), -1)[chat.silence_id]))
            r.blocked_by = blocked if self._wants_to_speak(r.p_silence, last) else ""
            r.timings["decide_s"] = time.perf_counter() - t0
            return r
        before_reply = self._state.num_tokens + (len(f.ids) if fed is None else 0)
        step = step_frame(self.model, self._state, f.ids, f.feats, cfg.theta,
                          max_new_tokens=cfg.reply_max_tokens, lookahead=cfg.reply_lookahead,
                          append_eot_after_reply=cfg.append_eot_after_reply, fed_logits=fed)
        # Stage timings (runtime/stages.py): the decision, then the reply's tokens.
        timings = {"decide_s": step.decide_s, "reply_s": time.perf_counter() - t0 - step.decide_s}
        if not step.spoke:
            r = self._silent(f, step.p_silence)
            r.timings.update(timings)
            return r
        if self._policy.is_repeat(cfg, step.text):
            self._crop(before_reply)  # as if the frame had been silent
            r = self._silent(f, step.p_silence)
            r.blocked_by = "repeat"
            r.timings.update(timings)
            return r
        self._policy.record(f.stamp, step.text)
        kind, priority, interrupt = classify(step.text, f.answer)
        seq, self._seq = self._seq, self._seq + 1
        self._tracker.state.last_guidance_seq = seq
        step_index = self._tracker.match(step.text)
        timings["reply_s"] = time.perf_counter() - t0 - step.decide_s  # with the step matching
        return FrameResult(f.stamp, True, step.text, step.p_silence, seq, kind, priority, interrupt,
                           cfg.theta, step_index, timings=timings)

    def _silent(self, f: _Frame, p: float) -> FrameResult:
        return FrameResult(f.stamp, p_silence=p, threshold=self._cfg.theta)

    def _crop(self, length: int) -> None:
        """Cut the cache back to ``length`` positions (slicing, like model.streaming.drop_middle)."""
        crop(self._state, length)

    def _bookkeep(self, f: _Frame, tokens_after: int) -> None:
        """Per-frame bookkeeping: the task clock, and Drop-Middle's initial part (spec §3.3: the
        cache right after the first frame step whose input held a user message)."""
        self._tracker.on_frame(f.stamp)
        if f.has_user and self._init_len is None:
            self._init_len = tokens_after

    def _manage_context(self, f: _Frame, r: FrameResult) -> None:
        self._context_step(f, r)
        r.summary_running = self._ips_job is not None

    def _context_step(self, f: _Frame, r: FrameResult) -> None:
        """After a frame (and its reply): IPS / drop-middle / drop-all once the KV cache reaches
        L − reserve (spec §2.5); the prefix they leave goes in front of the next frame.
        With ``ips_background`` the summary is written on a fork while frames go on
        (engine/summary_job.py), and the new context is taken at a frame end once it is done."""
        if self._ips_job is not None:
            self._take_summary(f, r)
            return
        if self._state.num_tokens < self._cfg.trigger_tokens:
            return
        t0 = time.perf_counter()
        strategy = self._cfg.context_strategy
        if strategy == "ips" and self._cfg.ips_background:
            threads = max(1, torch.get_num_threads() // 2)
            self._ips_job = SummaryJob(self.model, self._state, self._cfg, f.feats, self._knowledge, threads)
            r.timings["context_s"] = time.perf_counter() - t0
            return
        if strategy == "ips":
            out = ctx.iterative_progress_summarization(self.model, self._state, self._cfg, f.feats,
                                                       self._knowledge)
            self._tracker.on_summary(out.summary, f.stamp)
        elif strategy == "drop_middle":
            out = ctx.drop_middle_strategy(self.model, self._state, self._cfg, self._init_len)
        else:
            out = ctx.drop_all(self.model, self._state, self._cfg, self._knowledge)
        self._pending = out.prefix_ids + self._pending
        self.summaries_triggered += 1
        r.context_event, r.summary = out.event, out.summary
        r.timings["context_s"] = time.perf_counter() - t0

    def _take_summary(self, f: _Frame, r: FrameResult) -> None:
        """Hand over to the background summary's context once it is done, or wait for it when
        the old cache has used its reserve (L reached)."""
        job = self._ips_job
        if not job.done.is_set() and self._state.num_tokens < self._cfg.context_limit:
            return
        t0 = time.perf_counter()
        out, self._state = job.hand_over()
        self._ips_job = None
        self._tracker.on_summary(out.summary, f.stamp)
        self.summaries_triggered += 1
        r.context_event, r.summary = out.event, out.summary
        r.timings["context_s"] = time.perf_counter() - t0
        r.timings["summary_job_s"] = job.job_s

    def wait_summary(self) -> None:
        """Block until a background IPS summary being written is done (its context is taken at
        the next frame end). For tests and orderly shutdown; a live stream never needs it."""
        job = self._ips_job
        if job is not None:
            job.done.wait()
