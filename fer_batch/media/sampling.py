"""Which frames are analysed, and when each one is: presentation times made monotonic, sampling by time or count.

Why apart from the reader: the segment planner samples the same frames without decoding them (from packet times),
so segmented runs analyse exactly the frames an unsplit run would.
"""

from __future__ import annotations

import math
from fractions import Fraction

from fer_batch.options import Options


class Clock:
    """Presentation times in seconds, made to go forward.

    Why: concatenated transport streams (and cameras restarted mid-file) restart their timestamps; taken as they
    are, the second part would overlap the first and sampling by time (``--fps``) would skip it. A jump back
    continues the time line one frame step after the last frame; frames without any timestamp do the same.
    """

    def __init__(self, time_base: Fraction | None, dt: float) -> None:
        self.time_base, self.dt = time_base, dt
        self.offset = 0.0
        self.last: float | None = None
        self.jumps = 0

    def time(self, pts: int | None) -> float:
        if pts is None or self.time_base is None:
            t = 0.0 if self.last is None else self.last + self.dt
        else:
            t = float(pts * self.time_base) + self.offset
            if self.last is not None and t < self.last - 1e-9:
                self.offset += self.last + self.dt - t
                t = self.last + self.dt
                self.jumps += 1
        self.last = t
        return t


class Sampler:
    """Decides which frames are analysed: all, every N-th, or the one nearest each multiple of 1/fps seconds.

    The fps rule needs one frame of look-ahead (the nearest frame to a target may be the next one), so
    ``push`` returns the previous frame's decision and ``flush`` the last one's.
    """

    def __init__(self, options: Options) -> None:
        self.fps, self.every = options.sampling.fps, options.sampling.every
        self._pending: tuple[int, float] | None = None
        self._last_dt: float | None = None  # the last frame's duration, to know where the video ends
        self._pending_mark = False
        self._k: int | None = None  # next target is k / fps
        self._count = 0

    def push(self, index: int, t: float) -> list[tuple[int, bool]]:
        if self.fps is None:
            n, self._count = self._count, self._count + 1
            return [(index, self.every is None or n % self.every == 0)]
        period = 1.0 / self.fps
        if self._k is None:  # targets from half a period before the first frame: they map to it
            self._k = math.ceil((t - 0.5 * period) * self.fps - 1e-9)
        mark_cur = False
        last = self._last_target(t, period)
        if last >= self._k:  # targets k..last fall in (previous frame, this frame]: each goes to the nearer one
            # nearer to the previous frame means before the midpoint, so the first and last target decide it all
            # (O(1) per frame, whatever the rate: --fps 1e4 on an hour-long video would be 36 million targets)
            first_t, last_t = self._k * period, last * period
            pending = self._pending
            if pending is not None and abs(first_t - pending[1]) <= abs(t - first_t):
                self._pending_mark = True
            if pending is None or abs(last_t - pending[1]) > abs(t - last_t):
                mark_cur = True
            self._k = last + 1
        out = [] if self._pending is None else [(self._pending[0], self._pending_mark)]
        if self._pending is not None:
            self._last_dt = t - self._pending[1]
        self._pending, self._pending_mark = (index, t), mark_cur
        return out

    def _last_target(self, t: float, period: float) -> int:
        """The largest k with ``k * period <= t`` (within 1e-9 s), exactly as a loop over k would find it."""
        k = math.floor((t + 1e-9) / period)
        while (k + 1) * period <= t + 1e-9:
            k += 1
        while k * period > t + 1e-9:
            k -= 1
        return k

    def flush(self) -> list[tuple[int, bool]]:
        if self.fps is None or self._pending is None:
            return []
        index, t = self._pending
        assert self._k is not None
        shown_until = t + (self._last_dt or 0.0)  # the last frame stays on screen for one more frame step
        if self._k / self.fps < min(shown_until, t + 0.5 / self.fps) - 1e-9:  # a target the last frame shows
            self._pending_mark = True
        out = [(index, self._pending_mark)]
        self._pending = None
        return out
