"""Progress summaries for IPS (spec §3.1): what the model learns to write when its context fills.

Format: "The time elapsed since the start of the task is {t:.1f} seconds. " then the goal, what
has been done, other topics the user raised (questions, a fixed mistake), and the current step.
Placed every 60-120 s (never within 1 s of another reference turn).
"""

from __future__ import annotations

from .catalog import lower_first, number
from .dialogue import Dialogue


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def summary_text(d: Dialogue, t: float) -> str:
    task, tl = d.task, d.tl
    done = [s for s in tl.steps if s["t_end"] <= t]
    due = next((s for s in tl.steps if s["t_end"] > t), None)
    out = [f"The time elapsed since the start of the task is {t:.1f} seconds.",
           f"The user wants to {d.goal_phrase}."]
    if len(tl.rounds) > 1:
        rnd = due["round"] if due else len(tl.rounds)
        out.append(f"They have finished {number(rnd)} of {number(len(tl.rounds))} rounds." if rnd else
                   f"They are on the first of {number(len(tl.rounds))} rounds.")
        done = [s for s in done if due is None or s["round"] == due["round"]]
    if done:
        out.append(f"So far they have {_join([task.steps[s['step']].done for s in done])}.")
    else:
        out.append("They have not finished a step of this round yet." if len(tl.rounds) > 1
                   else "They have not finished any step yet.")
    topics = []
    for q in d.questions:
        if q["t"] < t:
            topics.append({"next": "what to do next", "time": "how long it would take",
                           "where": "where something was", "did": "whether a step was done"}[q["kind"]])
    if topics:
        out.append(f"They asked {_join(sorted(set(topics), key=topics.index))}.")
    for m in tl.mistakes:
        if m["fix_end"] <= t:
            what = m["ing"].replace("putting", "put", 1) if m["type"] == "wrong_object" else \
                task.steps[m["did"]].done
            out.append(f"Earlier they {what} by mistake and then fixed it.")
    a = tl.action_at(t)
    if due is None:
        out.append("The task is finished.")
    elif a.kind in ("step", "mistake", "fix") and a.t0 <= t < a.t1:
        out.append(f"They are now {a.ing}.")
    else:
        out.append(f"They are about to {lower_first(task.steps[due['step']].text)}.")
    return " ".join(out)


def add_summaries(d: Dialogue) -> list[float]:
    """Insert progress_summary references; returns their times."""
    rng, times = d.rng, []
    t = float(rng.uniform(60, 120))
    while t < d.tl.end - 5.0:
        while any(abs(r.t - t) < 1.0 for r in d.refs):
            t += 1.5
        if t >= d.tl.end - 5.0:
            break
        d.say(t, summary_text(d, t), "progress_summary")
        times.append(round(t, 3))
        t += float(rng.uniform(60, 120))
    return times
