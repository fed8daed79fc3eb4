"""How fast the workbench starts and how smooth it stays while a real job runs.

    python benchmarks/tui_responsiveness.py [--config sample_configs/digits_ptq.toml] [--runs N]

1. First paint: the TUI is started in a pseudo-terminal of 80×24 (as over SSH) and timed
   from spawn to the moment its first screen — the sample list and the footer's keys — has
   been written to the terminal. Python's own start (``python -c pass``) is measured beside
   it, ``artq`` (the CLI entry point) too, and a minimal Textual app showing the same
   markers: the framework's own floor on this machine.
2. Tab changes: the TUI in a 100×30 pseudo-terminal, F3 … F7 and F2 pressed in turn; the
   bytes it writes to the terminal (what goes down an SSH link) and the CPU it uses per
   tab change, with its default (no animations) and with TEXTUAL_ANIMATIONS=full.
3. Heartbeat: the TUI, in the same kind of terminal, launches a real PTQ job through the
   engine worker while a 20 ms timer ticks; the longest gap between ticks while the job
   runs is how long the UI was unresponsive at worst.

Each prints its figures. The machine is shared: run it twice before believing a number.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEAT_S = 0.02


def _spawn_pty(args: list[str], cols: int = 80, rows: int = 24,
               env_extra: dict[str, str | None] | None = None) -> tuple[subprocess.Popen, int]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(cols), LINES=str(rows))
    for key, value in (env_extra or {}).items():  # None: unset
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=env,
                            start_new_session=True)
    os.close(slave)
    return proc, master


def _read(master: int, timeout: float) -> bytes:
    r, _, _ = select.select([master], [], [], timeout)
    if not r:
        return b""
    try:
        return os.read(master, 65536)
    except OSError:
        return b""


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


MARKERS = ("Samples", "Launch")


@contextmanager
def _on_screen(args: list[str], markers: tuple[str, ...], cols: int = 80, rows: int = 24,
               env_extra: dict[str, str | None] | None = None,
               timeout: float = 20.0) -> Iterator[tuple[subprocess.Popen, int, float]]:
    """The app spawned in a pseudo-terminal, given once every marker is on its screen as
    (process, terminal, seconds from spawn); quit with Ctrl+Q on leaving, killed if it
    does not end."""
    t0 = time.perf_counter()
    proc, master = _spawn_pty(args, cols, rows, env_extra)
    seen = ""
    try:
        while not all(m in seen for m in markers):
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(f"no first screen after {timeout} s: {seen[-400:]!r}")
            seen += _read(master, 0.05).decode(errors="replace")
        yield proc, master, time.perf_counter() - t0
        os.write(master, b"\x11")  # Ctrl+Q
        end = time.perf_counter() + 10
        while proc.poll() is None and time.perf_counter() < end:
            _read(master, 0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(master)


def first_paint(args: list[str], markers: tuple[str, ...], timeout: float = 20.0) -> tuple[float, float]:
    """(wall, CPU) seconds from spawn until every marker has appeared on the terminal.

    On a shared machine the wall time moves with the load; the CPU time the process needed
    to get there does not, and is what the wall time comes down to on an idle machine.
    """
    with _on_screen(args, markers, timeout=timeout) as (proc, _, took):
        return took, _cpu_s(proc.pid)


#: xterm's F2-F7 (tabs 1 Models … 6 Compare), in the order pressed: F3 … F7, then F2.
TAB_KEYS = (b"\x1bOR", b"\x1bOS", b"\x1b[15~", b"\x1b[17~", b"\x1b[18~", b"\x1bOQ")


def tab_changes(runs_dir: Path, animations: str | None, changes: int = 12) -> tuple[float, float]:
    """(bytes written to the terminal, CPU seconds) per tab change, averaged over
    ``changes`` changes (F3 … F7, F2, round again), in the real app in a 100×30
    pseudo-terminal: what a tab change sends down an SSH link and costs the machine.
    ``animations``: TEXTUAL_ANIMATIONS, or None for the app's default."""
    with _on_screen([sys.executable, "-m", "tui", "--runs-dir", str(runs_dir)], MARKERS, 100, 30,
                    {"TEXTUAL_ANIMATIONS": animations}) as (proc, master, _):
        end = time.perf_counter() + 3.0  # the other tabs mount after the first paint
        while time.perf_counter() < end:
            _read(master, 0.05)
        sent, cpu0 = 0, _cpu_s(proc.pid)
        for i in range(changes):
            os.write(master, TAB_KEYS[i % len(TAB_KEYS)])
            end = time.perf_counter() + 0.8  # the underline slides for 0.3 s when animated
            while time.perf_counter() < end:
                sent += len(_read(master, 0.05))
        return sent / changes, (_cpu_s(proc.pid) - cpu0) / changes


def python_start(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(args, check=True, cwd=ROOT)
    return time.perf_counter() - t0


def heartbeat(config: Path, runs_dir: Path, timeout: float, idle_s: float = 0.0) -> dict[str, float]:
    """Heartbeat gaps while a real job runs, or (``idle_s`` > 0) in the idle app for that
    long: the baseline of the same machine at the same load."""
    out = runs_dir.parent / "heartbeat.json"
    out.unlink(missing_ok=True)
    proc, master = _spawn_pty([sys.executable, __file__, "--child", str(config), str(runs_dir),
                               str(out), str(idle_s)])
    t0 = time.perf_counter()
    tail = b""
    sent = 0
    try:
        # Keep reading: a terminal nobody reads fills up and blocks the app's writes.
        while proc.poll() is None:
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError("the job did not finish in time")
            chunk = _read(master, 0.1)
            sent += len(chunk)
            tail = (tail + chunk)[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(master)
    if not out.is_file():
        raise RuntimeError(f"the benchmark app ended without figures: {tail.decode(errors='replace')[-1500:]}")
    # What the terminal received over the app's whole life (start-up and first screen too).
    return {**json.loads(out.read_text()), "kib_per_s": sent / 1024 / (time.perf_counter() - t0)}


def paint_child(runs_dir: str, out: str) -> None:
    """Inside the pseudo-terminal: the real app, noting the CPU it used until the frame
    holding the markers was written (work after that frame, like the lazily mounted tabs,
    does not count)."""
    from textual.drivers.linux_driver import LinuxDriver

    from tui.app import main as tui_main

    write = LinuxDriver.write
    seen = {"text": ""}

    def spy(self: LinuxDriver, data: str) -> None:
        write(self, data)
        if "cpu" not in seen:
            seen["text"] += data
            if all(m in seen["text"] for m in MARKERS):
                self.flush()
                seen["cpu"] = time.process_time()
                Path(out).write_text(json.dumps({"cpu_s": seen["cpu"]}))

    LinuxDriver.write = spy  # type: ignore[method-assign]
    tui_main(runs_dir)


def hello_child() -> None:
    """Textual's floor on this machine: a minimal app (one Static, a footer with two keys)
    showing the same markers. What the workbench adds is its first paint minus this."""
    from textual.app import App, ComposeResult
    from textual.binding import Binding
    from textual.widgets import Footer, Static

    class Hello(App):
        BINDINGS = [Binding("ctrl+q", "quit", "Quit"), Binding("ctrl+r", "bell", "Launch")]

        def compose(self) -> ComposeResult:
            yield Static("Samples")
            yield Footer()

    Hello().run()


def _gaps(beats: list[float]) -> dict[str, float]:
    gaps = sorted(b - a for a, b in zip(beats, beats[1:], strict=False))
    if not gaps:
        return {"beats": len(beats), "max_gap_ms": float("nan"), "p99_gap_ms": float("nan"),
                "median_gap_ms": float("nan"), "gaps_over_100ms": 0}
    return {
        "beats": len(beats),
        "max_gap_ms": 1000 * gaps[-1],
        "p99_gap_ms": 1000 * gaps[int(0.99 * (len(gaps) - 1))],
        "median_gap_ms": 1000 * statistics.median(gaps),
        "gaps_over_100ms": sum(1 for g in gaps if g > 0.1),
    }


def child(config: str, runs_dir: str, out: str, idle_s: str = "0") -> None:
    """Inside the pseudo-terminal: the real app, a heartbeat, one real job (or idle)."""
    from textual.app import ComposeResult  # noqa: F401 - the app module imports Textual anyway

    from tui.app import ArtqApp
    from tui.messages import JobExited

    class Bench(ArtqApp):
        beats: list[float] = []
        job_beats: list[float] = []
        job_t0 = 0.0

        def on_mount(self) -> None:
            super().on_mount()
            self.set_interval(BEAT_S, self.beat)
            if float(idle_s) > 0:
                self.set_timer(2.0, self.start_idle)  # after start-up work
            else:
                self.open_config(Path(config))
                self.set_timer(0.2, self.try_launch)

        def start_idle(self) -> None:
            self.job_t0 = time.perf_counter()
            self.set_timer(float(idle_s), self.end_idle)

        def end_idle(self) -> None:
            res = _gaps([b for b in self.beats if b >= self.job_t0])
            Path(out).write_text(json.dumps({**res, "returncode": 0,
                                             "job_s": time.perf_counter() - self.job_t0}))
            self.exit(0)

        def beat(self) -> None:
            now = time.perf_counter()
            self.beats.append(now)
            if self.runner.running:
                self.job_beats.append(now)

        async def try_launch(self) -> None:
            if self.session is None:
                self.set_timer(0.2, self.try_launch)
                return
            self.job_t0 = time.perf_counter()
            await self.pane("quantize").launch_tuned()

        def on_job_exited(self, message: JobExited) -> None:
            Path(out).write_text(json.dumps({**_gaps(self.job_beats), "returncode": message.returncode,
                                             "job_s": time.perf_counter() - self.job_t0}))
            self.set_timer(0.3, lambda: self.exit(0))

    if os.environ.get("ARTQ_BENCH_STALLS"):
        _watch_stalls(Bench, Path(os.environ["ARTQ_BENCH_STALLS"]))
    Bench(runs_dir=runs_dir).run()


def _watch_stalls(app_cls: type, path: Path) -> None:
    """--stalls: where the UI thread was whenever a beat came 60 ms late (a sampling
    thread), and every garbage collection over 20 ms (a collection holds the GIL, so the
    sampler cannot see it; one of 135 ms was the app's worst stall until gc.freeze)."""
    import gc
    import threading
    import traceback

    main_id = threading.get_ident()
    samples: list[str] = []
    started: list[float] = [0.0]

    def save() -> None:
        path.write_text("\n".join(samples))

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        elif time.perf_counter() - started[0] > 0.02:
            samples.append(f"garbage collection of generation {info['generation']}")
            save()

    def watch() -> None:
        while True:
            time.sleep(0.01)
            beats = app_cls.beats
            if beats and time.perf_counter() - beats[-1] > 0.06:
                frame = sys._current_frames().get(main_id)  # noqa: SLF001 - a profiler's tool
                if frame is not None:
                    stack = traceback.extract_stack(frame)[-6:]
                    samples.append(" < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}"
                                              for f in reversed(stack)))
                    save()

    gc.callbacks.append(on_gc)
    threading.Thread(target=watch, daemon=True).start()


def r_s(r: dict[str, float]) -> str:
    return f"{r['job_s']:.1f} s"


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:6])
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--hello-child":
        hello_child()
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--paint-child":
        paint_child(*sys.argv[2:4])
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "sample_configs" / "digits_ptq.toml"))
    ap.add_argument("--runs", type=int, default=5, help="first-paint repetitions")
    ap.add_argument("--skip-job", action="store_true", help="first paint only")
    ap.add_argument("--stalls", action="store_true",
                    help="also print where the UI thread was when a beat came 60 ms late")
    args = ap.parse_args()
    stalls = Path(tempfile.mkdtemp(prefix="artq-stalls-")) / "stalls.txt"
    if args.stalls:
        os.environ["ARTQ_BENCH_STALLS"] = str(stalls)

    tmp = Path(tempfile.mkdtemp(prefix="artq-tui-bench-"))
    runs_dir = tmp / "runs"
    markers = MARKERS
    py = [python_start([sys.executable, "-c", "pass"]) for _ in range(args.runs)]
    tui = [first_paint([sys.executable, "-m", "tui", "--runs-dir", str(runs_dir)], markers)
           for _ in range(args.runs)]
    cli = [first_paint([sys.executable, "-m", "engine.cli", "tui", "--runs-dir", str(runs_dir)], markers)
           for _ in range(args.runs)]
    hello = [first_paint([sys.executable, __file__, "--hello-child"], markers)
             for _ in range(args.runs)]
    frame_cpu = []
    for _ in range(args.runs):
        note = tmp / "paint.json"
        first_paint([sys.executable, __file__, "--paint-child", str(runs_dir), str(note)], markers)
        frame_cpu.append(json.loads(note.read_text())["cpu_s"])
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"first paint, 80x24 pty, {args.runs} runs: wall median / max, and CPU used by the time the"
          " parent saw it")
    print(f"  python -c pass          {statistics.median(py):6.3f} s / {max(py):.3f} s")
    for name, res in (("python -m tui", tui), ("artq tui (CLI entry)", cli),
                      ("Textual minimal app", hello)):
        wall, cpu = [w for w, _ in res], [c for _, c in res]
        print(f"  {name:<22}  {statistics.median(wall):6.3f} s / {max(wall):.3f} s   "
              f"CPU {statistics.median(cpu):.3f} s")
    print(f"  CPU the app used up to writing its first frame (python -m tui): median "
          f"{statistics.median(frame_cpu):.3f} s, max {max(frame_cpu):.3f} s (the machine's speed moves by up to 1.6× from minute to minute)")
    tabs = {name: [tab_changes(runs_dir, level) for _ in range(2)]
            for name, level in (("the app's default (no animations)", None),
                                ("TEXTUAL_ANIMATIONS=full", "full"))}
    print("tab changes, 100x30 pty, 12 changes x 2 runs: bytes sent to the terminal and CPU, per change")
    for name, res in tabs.items():
        print(f"  {name:<34}  {statistics.median(b for b, _ in res) / 1024:6.1f} KiB   "
              f"CPU {1000 * statistics.median(c for _, c in res):5.0f} ms")
    (off_b, off_c), (on_b, on_c) = ([statistics.median(x[k] for x in r) for k in (0, 1)]
                                    for r in tabs.values())
    print(f"  without / with animations: {off_b / on_b:.2f}x the bytes, {off_c / on_c:.2f}x the CPU")
    if args.skip_job:
        return 0
    cfg = Path(args.config).resolve()
    hb = heartbeat(cfg, runs_dir, timeout=900)
    idle = heartbeat(cfg, runs_dir, timeout=120, idle_s=min(hb["job_s"], 20.0))
    # The control: the idle app while the same job runs outside it (as niced as the app's
    # own jobs). Gaps here are the machine's (two cores, a job on both), not the app's.
    side = subprocess.Popen(["nice", "-n", "10", sys.executable, "-m", "engine.cli", "run", str(cfg),
                             "--runs-dir", str(tmp / "side-runs"), "-q"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        control = heartbeat(cfg, runs_dir, timeout=120, idle_s=min(hb["job_s"], 20.0))
    finally:
        side.kill()
        side.wait()
    if args.stalls and stalls.is_file():
        from collections import Counter

        print("where the UI thread was when beats came late (samples every 10 ms, all runs):")
        for where, n in Counter(stalls.read_text().splitlines()).most_common(12):
            print(f"  {n:4d}  {where}")
    print(f"heartbeat every {1000 * BEAT_S:.0f} ms; load average now {os.getloadavg()[0]:.1f}")
    for name, r in ((f"during a real PTQ job of {Path(args.config).name} ({hb['job_s']:.1f} s, "
                     f"exit {hb['returncode']})", hb),
                    (f"idle app, same machine, {r_s(idle)} (baseline)", idle),
                    (f"idle app while the same job runs outside it, {r_s(control)} (control)",
                     control)):
        print(f"  {name}:")
        print(f"    longest gap {r['max_gap_ms']:.0f} ms, p99 {r['p99_gap_ms']:.0f} ms, "
              f"median {r['median_gap_ms']:.0f} ms, gaps over 100 ms: {r['gaps_over_100ms']} "
              f"of {r['beats']} beats; terminal output {r['kib_per_s']:.1f} KiB/s over the "
              f"app's life")
    return 0


if __name__ == "__main__":
    sys.exit(main())
