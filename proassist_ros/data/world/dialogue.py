"""The reference dialogue, ProAssist's way (spec §2.1, §6.1): the user states the goal; the
assistant gives the first instruction shortly after, and each next instruction 0.5-2 s after the
previous step *visibly* completes (sometimes after a separate confirmation); it corrects a
mistake 0.5-1.5 s after it happens and confirms the fix; it answers a question ~1 s after it.
Every act has several paraphrases, picked by the episode's seeded RNG.
"""

from __future__ import annotations

import numpy as np

from ..episode import Turn
from .catalog import TaskDef, lower_first, number
from .layout import Thing
from .script import Timeline, hidden, position

GOAL = ("I want to {g}.", "Can you help me {g}?", "I'd like to {g}.", "Help me {g}, please.")
FIRST = ("Sure! First, {s}.", "Happy to help. Let's start: {s}.", "Okay, let's begin. First, {s}.",
         "Great, let's do it. Step one: {s}.")
NEXT = ("Next, {s}.", "Now {s}.", "Good. Now {s}.", "Great, next {s}.", "Well done. Next, {s}.",
        "Okay, now {s}.", "Nice. The next step is to {s}.", "Perfect. Now go ahead and {s}.")
CONFIRM = ("Nice, you {d}.", "Good job, you {d}.", "Well done, you {d}.", "That's it, you {d}.",
           "Great, you {d}.")
ROUND_DONE = ("That's one done, {n} to go.", "Good, that round is finished. {n} more to go.",
              "Nice, one finished. Only {n} left.")
ROUND_START = ("Let's do the next one. First, {s}.", "Next round. First, {s}.",
               "On to the next one: {s}.")
FINAL = ("That's everything, well done!", "All done. Great job!", "You're finished. Nicely done!",
         "And that was the last step. Well done!")
WRONG_ORDER = ("Hold on, you need to {s} first. Please {u}.", "Wait, not yet: first {s}. Please {u}.",
               "Oops, that's out of order. Please {u}, and {s} first.")
WRONG_OBJECT = ("Oops, that's the {w}, not the {r}. Please {u}.",
                "Careful, that's the {w}. Please {u} and use the {r} instead.",
                "That's the wrong one: you need the {r}, not the {w}. Please {u}.")
FIXED = ("Good, that's fixed. Now {s}.", "That's better. Go ahead and {s}.", "Right. Now {s}.",
         "Thanks, that's sorted. Now {s}.")
Q_NEXT = ("What should I do next?", "What's the next step?", "What do I do now?")
Q_TIME = ("How long will this take?", "How much longer?", "How much is left to do?")
Q_WHERE = ("Where is the {x}?", "I can't find the {x}.", "Where did I put the {x}?")
Q_DID = ("Did I {b} already?", "Did I already {b}?")

class Dialogue:
    """Builds user turns and reference turns for one episode from its timeline."""

    def __init__(self, task: TaskDef, things: dict[str, Thing], tl: Timeline, rng: np.random.Generator,
                 goal_phrase: str):
        self.task, self.things, self.tl, self.rng = task, things, tl, rng
        self.goal_phrase = goal_phrase
        self.users: list[Turn] = []
        self.refs: list[Turn] = []
        self.questions: list[dict] = []
        self.summaries: list[float] = []
        self.user_type = "no_talk"

    def pick(self, options) -> str:
        return str(options[int(self.rng.integers(len(options)))])

    def say(self, t: float, text: str, kind: str) -> None:
        self.refs.append(Turn(round(float(t), 3), text, kind))

    def step_phrase(self, i: int) -> str:
        s = self.task.steps[i]
        return lower_first(self.pick((s.text, s.alt)))

    def script(self) -> None:
        rng, tl, steps = self.rng, self.tl, self.tl.steps
        t_goal = float(rng.uniform(0.5, 1.5))
        self.users.append(Turn(round(t_goal, 3), self.pick(GOAL).format(g=self.goal_phrase), "goal"))
        self.say(t_goal + rng.uniform(0.8, 1.8), self.pick(FIRST).format(s=self.step_phrase(steps[0]["step"])),
                 "instruction")
        for n, rec in enumerate(steps):
            tc = rec["t_end"]
            nxt = steps[n + 1] if n + 1 < len(steps) else None
            if nxt is not None and nxt["round"] == rec["round"]:
                if rng.random() < 0.25:
                    t_conf = tc + rng.uniform(0.5, 0.9)
                    self.say(t_conf, self.pick(CONFIRM).format(d=self.task.steps[rec["step"]].done),
                             "confirmation")
                    t_next = t_conf + rng.uniform(1.0, 1.1)
                else:
                    t_next = tc + rng.uniform(0.5, 2.0)
                self.say(t_next, self.pick(NEXT).format(s=self.step_phrase(nxt["step"])), "instruction")
            elif nxt is not None:
                left = len(tl.rounds) - rec["round"] - 1
                self.say(tc + rng.uniform(0.5, 1.5), self.pick(ROUND_DONE).format(n=number(left)),
                         "confirmation")
                ready = tl.rounds[nxt["round"]]["t_ready"]
                self.say(ready + rng.uniform(0.5, 1.2),
                         self.pick(ROUND_START).format(s=self.step_phrase(nxt["step"])), "instruction")
            else:
                self.say(tc + rng.uniform(0.5, 1.5), self.pick(FINAL), "confirmation")
        for m in tl.mistakes:
            s = self.step_phrase(m["step"])
            if m["type"] == "wrong_order":
                text = self.pick(WRONG_ORDER).format(s=s, u=m["undo"])
            else:
                right = self.things[self.task.steps[m["step"]].carry].noun
                text = self.pick(WRONG_OBJECT).format(w=self.things[m["did"]].noun, r=right, u=m["undo"])
            m["t_correction"] = round(float(m["t_end"] + rng.uniform(0.5, 1.5)), 3)
            self.say(m["t_correction"], text, "correction")
            m["t_confirm"] = round(float(m["fix_end"] + rng.uniform(0.5, 1.5)), 3)
            self.say(m["t_confirm"], self.pick(FIXED).format(s=s), "confirmation")

    # ---- questions -------------------------------------------------------------------------
    def ask(self, n_questions: int) -> None:
        """Put questions where no assistant turn is within 2.5 s; answer each ~1 s later."""
        rng, end = self.rng, self.tl.end
        for _ in range(n_questions):
            for _attempt in range(60):
                q = float(rng.uniform(6.0, end - 4.0))
                if all(abs(r.t - q) > 2.5 for r in self.refs) and all(abs(u.t - q) > 5 for u in self.users):
                    break
            else:
                continue
            kind, text, answer = self.question(q)
            t_ans = round(q + float(rng.uniform(0.8, 1.3)), 3)
            self.users.append(Turn(round(q, 3), text, "question"))
            self.say(t_ans, answer, "answer")
            self.questions.append({"t": round(q, 3), "kind": kind, "text": text, "answer_t": t_ans})

    def _done_before(self, t: float) -> list[dict]:
        return [s for s in self.tl.steps if s["t_end"] <= t]

    def _due(self, t: float) -> dict | None:
        return next((s for s in self.tl.steps if s["t_end"] > t), None)

    def question(self, q: float) -> tuple[str, str, str]:
        kinds = ["next", "time", "did"]
        where = self._where_candidates(q)
        if where:
            kinds.append("where")
        kind = self.pick(kinds)
        due = self._due(q)
        if kind == "next":
            return kind, self.pick(Q_NEXT), self._answer_next(q, due)
        if kind == "time":
            left = len(self.tl.steps) - len(self._done_before(q))
            mins = (self.tl.end - q) / 60.0
            when = "Less than a minute" if mins < 1 else f"About {number(max(1, round(mins)))} more minute" + \
                ("s" if round(mins) > 1 else "")
            return kind, self.pick(Q_TIME), f"{when}; {number(left)} step{'s' if left != 1 else ''} left."
        if kind == "where":
            oid = where[int(self.rng.integers(len(where)))]
            noun = self.things[oid].noun
            return kind, self.pick(Q_WHERE).format(x=noun), self._answer_where(q, oid)
        rnd = due["round"] if due else self.tl.steps[-1]["round"]
        pool = [s for s in self.tl.steps if s["round"] == rnd]
        rec = pool[int(self.rng.integers(len(pool)))]
        sd = self.task.steps[rec["step"]]
        text = self.pick(Q_DID).format(b=lower_first(sd.text))
        if rec["t_end"] <= q:
            return kind, text, f"Yes, you already {sd.done}."
        if rec["t_start"] <= q:
            return kind, text, "You're doing it right now."
        return kind, text, f"Not yet. You still need to {lower_first(sd.text)}."

    def _answer_next(self, q: float, due: dict | None) -> str:
        if due is None:
            return "Nothing else, you're all done!"
        a = self.tl.action_at(q)
        if a.kind == "step" and a.t0 <= q < a.t1:
            later = self._due(a.t1)
            after = f" After that, {self.step_phrase(later['step'])}." if later else " That's the last step."
            return f"Keep {a.ing}.{after}"
        return self.pick(NEXT).format(s=self.step_phrase(due["step"]))

    def _where_candidates(self, q: float) -> list[str]:
        state, a = self.tl.state_at(q), self.tl.action_at(q)
        todo = {o for s in self.tl.steps if s["t_end"] > q
                for o in (self.task.steps[s["step"]].carry, self.task.steps[s["step"]].target) if o}
        return sorted(o for o in todo if not hidden(state, self.things, o) and o != a.carry)

    def _answer_where(self, q: float, oid: str) -> str:
        state = self.tl.state_at(q)
        at = state[oid]["at"]
        if at:
            kind = self.things[at].kind
            prep = "in" if kind in ("cup", "bowl", "box", "pot", "flashlight", "glass") else "on"
            return f"It's {prep} the {self.things[at].noun}."
        x, y = position(state, oid)
        side = "on the left" if x < 420 else "on the right" if x > 540 else "in the middle"
        depth = "at the back " if y < 290 else "at the front " if y > 460 else ""
        others = [(o, position(state, o)) for o in state if o != oid and not state[o]["at"]
                  and not hidden(state, self.things, o)]
        near = min(others, key=lambda p: (p[1][0] - x) ** 2 + (p[1][1] - y) ** 2)[0] if others else ""
        tail = f", next to the {self.things[near].noun}" if near else ""
        return f"It's {depth}{side}{tail}."
