"""Progress lines of long steps (issue 11 item 18): plain lines in a log, one redrawn line on a terminal, silence
for a quick step, and a progress callback never changing a fit's result."""

from __future__ import annotations

import io

import numpy as np

from harness.fit import ScalingLaw
from harness.progress import ProgressLine


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def drive(stream, steps: int, dt: float, **kw) -> str:
    clock = FakeClock()
    with ProgressLine("bootstrap", stream, clock=clock, **kw) as bar:
        for i in range(1, steps + 1):
            clock.t += dt
            bar(i, steps)
    return stream.getvalue()


def test_log_file_gets_plain_spaced_lines_and_a_final_one():
    out = drive(io.StringIO(), steps=100, dt=1.0, every_s=10)  # 100 s of work, a line at most every 10 s
    assert "\r" not in out and "\033" not in out
    lines = out.splitlines()
    assert 5 <= len(lines) <= 11, lines
    assert lines[-1].startswith("bootstrap: 100/100 (100%)"), lines[-1]
    assert "left" in lines[0] and "left" not in lines[-1]


def test_terminal_redraws_one_line_and_ends_it():
    out = drive(Terminal(), steps=50, dt=0.5, tty_every_s=0.2)
    assert out.count("\n") == 1 and out.endswith("\n")
    frames = out.rstrip("\n").split("\r\033[K")[1:]
    assert len(frames) > 10
    assert frames[-1].startswith("bootstrap: 50/50 (100%)")


def test_quick_step_shows_nothing():
    for stream in (io.StringIO(), Terminal()):
        assert drive(stream, steps=20, dt=0.01) == ""  # 0.2 s in all: under min_s


def test_short_step_in_a_log_leaves_one_line():
    lines = drive(io.StringIO(), steps=5, dt=1.0, every_s=10).splitlines()  # 5 s: past min_s, under every_s
    assert lines == [lines[-1]] and lines[0].startswith("bootstrap: 5/5")


def test_detail_and_unit_are_shown():
    clock = FakeClock()
    s = io.StringIO()
    bar = ProgressLine("step", s, clock=clock, unit="steps", every_s=0)
    clock.t = 2.0
    bar(3, 10, "loss 4.2000")
    bar.close()
    assert s.getvalue() == "step: 3/10 steps (30%), 2 s, ~5 s left  loss 4.2000\n"


def _data(seed=3):
    rng = np.random.default_rng(seed)
    N = np.geomspace(1e4, 1e7, 9)
    y = (1.7 + 400.0 * N**-0.35) * np.exp(rng.normal(0, 0.01, N.size))
    return N[:, None], y


def test_progress_callback_does_not_change_the_fit_or_bootstrap():
    X, y = _data()
    calls: list[tuple[str, int, int]] = []
    plain = ScalingLaw("saturating_power").fit(X, y)
    watched = ScalingLaw("saturating_power").fit(X, y, progress=lambda d, t: calls.append(("fit", d, t)))
    np.testing.assert_array_equal(plain.params_, watched.params_)
    b0 = plain.bootstrap(40, seed=1, chunk_rows=64)
    b1 = watched.bootstrap(40, seed=1, chunk_rows=64, progress=lambda d, t: calls.append(("boot", d, t)))
    np.testing.assert_array_equal(b0.samples, b1.samples)

    for kind in ("fit", "boot"):
        done = [d for k, d, _ in calls if k == kind]
        totals = {t for k, _, t in calls if k == kind}
        assert done, kind
        assert done == sorted(done), f"{kind} progress went backwards"
        assert len(totals) == 1
        assert done[-1] == totals.pop(), f"{kind} progress did not reach its total"
