"""`proassist synth`: render task-world episodes into dataset bags, in parallel, with progress.

One video per pool task (rendering and JPEG encoding are CPU-bound; two workers keep both cores
of the project's machine busy). Bags are rosbag2 directories named
``{split}_{index:04d}_{task_type}`` under ``--out``; each is written under a hidden temporary name
and renamed when complete, so an interrupted run leaves only whole bags (``--skip-existing``
resumes it).
"""

from __future__ import annotations

import multiprocessing
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from proassist_ros.data.episode import Episode

MakeEpisode = Callable[..., Episode]


@dataclass
class SynthResult:
    bags: list[Path]
    frames: int
    video_s: float      # total stream time written
    wall_s: float

    @property
    def x_real_time(self) -> float:
        return self.video_s / self.wall_s if self.wall_s > 0 else float("inf")


def _default_make() -> MakeEpisode:
    try:
        from proassist_ros.data.world import make_episode
    except ImportError as exc:
        raise RuntimeError(f"the task-world generator is not available: {exc}") from exc
    return make_episode


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one video per process: no thread oversubscription on 2 cores


def _one(make: MakeEpisode | None, out: Path, split: str, index: int, seed: int,
         size: tuple[int, int], hz: float, long: bool, compressed: bool,
         jpeg_quality: int, audio: bool = False) -> tuple[Path, int, float]:
    from proassist_ros.data.dataset import write_episode

    ep = (make or _default_make())(seed, split, index, size=size, hz=hz, long=long)
    if ep.frames is None:
        raise ValueError(f"generator returned episode {index} without frames")
    counted = {"n": 0, "first": None, "last": 0.0}
    frames = ep.frames

    def counting():
        for t, rgb in frames():
            counted["n"] += 1
            counted["first"] = t if counted["first"] is None else counted["first"]
            counted["last"] = t
            yield t, rgb

    ep.frames = counting
    task_type = ep.meta.task_type or (ep.task.task_type if ep.task else "") or "task"
    chunks = None
    if audio:  # the user turns spoken by espeak-ng on /proassist/audio (speech/dataset_audio.py)
        from proassist_ros.speech.dataset_audio import audio_track, track_chunks

        chunks = list(track_chunks(audio_track(ep.user_turns)))
    path = write_episode(ep, out / f"{split}_{index:04d}_{task_type}", compressed=compressed,
                         raw=not compressed, jpeg_quality=jpeg_quality, audio=chunks)
    span = counted["last"] - (counted["first"] or 0.0) + (1.0 / hz if hz else 0.0)
    return path, counted["n"], ep.meta.duration_s or span


def synth(out: Path, videos: int, split: str, seed: int, *, size: tuple[int, int] = (640, 480),
          hz: float = 10.0, compressed: bool = True, long: bool = False, workers: int = 2,
          start: int = 0, overwrite: bool = False, skip_existing: bool = False,
          jpeg_quality: int = 90, make: MakeEpisode | None = None,
          progress: bool = True, audio: bool = False) -> SynthResult:
    """Generate ``videos`` episodes (indices start..start+videos-1) into bags under ``out``.

    ``make(seed, split, index, size=(W, H), hz=, long=)`` returns an Episode (default: the task
    world's ``make_episode``); with ``workers > 1`` it must be importable by name (spawned
    processes pickle it), and a script calling this needs the ``if __name__ == "__main__":``
    guard (workers are spawned, not forked: forking a process that runs threads is unsafe).
    """
    if videos < 1:
        raise ValueError(f"--videos must be >= 1, got {videos}")
    if hz <= 0 or size[0] <= 0 or size[1] <= 0:
        raise ValueError(f"bad --size {size[0]}x{size[1]} or --hz {hz}")
    if overwrite and skip_existing:
        raise ValueError("--overwrite and --skip-existing exclude each other")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out is not a directory: {out}")
    out.mkdir(parents=True, exist_ok=True)
    todo = []
    for index in range(start, start + videos):
        existing = sorted(p for p in out.glob(f"{split}_{index:04d}_*") if p.is_dir())
        if existing and skip_existing:
            continue
        if existing and not overwrite:
            raise FileExistsError(f"{existing[0]} exists (use --overwrite or --skip-existing)")
        for p in existing:
            shutil.rmtree(p)
        todo.append(index)
    args = [(make, out, split, i, seed, size, hz, long, compressed, jpeg_quality, audio)
            for i in todo]
    from tqdm import tqdm

    bar = tqdm(total=len(todo), unit="video", disable=not progress, desc=f"synth {split}")
    bags: list[Path] = []
    frames = 0
    video_s = 0.0
    t0 = time.perf_counter()

    def done(result: tuple[Path, int, float]) -> None:
        nonlocal frames, video_s
        bags.append(result[0])
        frames += result[1]
        video_s += result[2]
        wall = time.perf_counter() - t0
        bar.set_postfix(frames=frames, x_real_time=f"{video_s / wall:.1f}")
        bar.update(1)

    try:
        if workers <= 1 or len(args) <= 1:
            _init_worker()
            for a in args:
                done(_one(*a))
        else:
            ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker) as pool:
                futures = [pool.submit(_one, *a) for a in args]
                try:
                    for fut in as_completed(futures):
                        done(fut.result())
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
    finally:
        bar.close()
    return SynthResult(sorted(bags), frames, video_s, time.perf_counter() - t0)
