"""Window start: seconds from launching ``lla-studio SESSION.json`` until its window is on screen.

Measured from outside, as a person sees it: the benchmark starts the real console script on an X
display (a private ``Xvfb`` when ``DISPLAY`` is not set), and ``xdotool search --sync --onlyvisible``
returns when a visible window titled "LLA Studio" is mapped. Each launch gets a fresh, empty
``HOME``/``XDG_*`` folder (no recovery file, no saved layout) and is closed with SIGTERM afterwards.

"Warm machine": the first ``--warmup`` launches (file cache, compiled bytecode) are not counted;
then ``--repeats`` launches, reported as min / median / max. Beside it, in the same run, the
reference a Qt program cannot beat: ``python -c "import PySide6.QtWidgets"`` plus showing an empty
``QWidget`` with the same title (the same measurement), and the import time of the window module
(``python -X importtime -c "import lla_studio.gui.main_window"``, its top-level total) with whether
torch was imported by it.

    python benchmarks/window_start.py
    python benchmarks/window_start.py --session resources/sessions/cnn_hyperparameters.json --repeats 5

Goal (the architecture issue): the window shown within 3 s of launch on a warm machine.
Needs ``Xvfb`` and ``xdotool`` (``apt-get install xvfb xdotool``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EMPTY_WINDOW = (
    "import sys\n"
    "from PySide6.QtWidgets import QApplication, QWidget\n"
    "app = QApplication(sys.argv[:1])\n"
    "w = QWidget(); w.setWindowTitle('LLA Studio - empty'); w.resize(1400, 900); w.show()\n"
    "app.exec()\n"
)


def _free_display() -> str:
    for n in range(90, 200):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return f":{n}"
    raise SystemExit("window_start: no free X display number")


def _time_to_window(cmd: list[str], env: dict[str, str], timeout: float) -> float:
    """Seconds from Popen to a visible 'LLA Studio' window, then terminate the process."""
    with tempfile.TemporaryDirectory() as home:
        run_env = {**env, "HOME": home, "XDG_CONFIG_HOME": f"{home}/config", "XDG_DATA_HOME": f"{home}/data",
                   "XDG_CACHE_HOME": f"{home}/cache"}
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            subprocess.run(["xdotool", "search", "--sync", "--onlyvisible", "--name", "LLA Studio"],
                           env=run_env, timeout=timeout, check=True, capture_output=True)
            seconds = time.perf_counter() - start
        finally:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return seconds


def _import_time(env: dict[str, str]) -> tuple[float, bool]:
    code = "import sys, lla_studio.gui.main_window; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env={**env, "QT_QPA_PLATFORM": "offscreen"},
                         capture_output=True, text=True, timeout=300, check=True)
    total = 0
    for line in out.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)$", line)
        if m and not m.group(2).startswith(" "):  # top-level imports: their cumulative times add up
            total += int(m.group(1))
    return total / 1e6, out.stdout.strip() == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--session", type=Path, default=ROOT / "resources" / "sessions" / "branin.json")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    for tool in ("xdotool",) + (() if os.environ.get("DISPLAY") else ("Xvfb",)):
        if shutil.which(tool) is None:
            raise SystemExit(f"window_start: needs {tool} (apt-get install xvfb xdotool)")
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    xvfb = None
    if not env.get("DISPLAY"):
        env["DISPLAY"] = _free_display()
        xvfb = subprocess.Popen(["Xvfb", env["DISPLAY"], "-screen", "0", "1600x1000x24"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    studio = shutil.which("lla-studio", path=str(Path(sys.executable).parent)) or "lla-studio"
    cases = {
        "lla-studio SESSION": [studio, str(args.session)],
        "empty Qt window (reference)": [sys.executable, "-c", EMPTY_WINDOW],
    }
    try:
        results: dict[str, list[float]] = {name: [] for name in cases}
        for i in range(args.warmup + args.repeats):
            for name, cmd in cases.items():  # interleaved: a slow spell of the machine hits both
                seconds = _time_to_window(cmd, env, args.timeout)
                if i >= args.warmup:
                    results[name].append(seconds)
        imports, torch_loaded = _import_time(env)
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(10)
    print(f"# window start, {args.session.name}, {args.repeats} launches after {args.warmup} warm-up, "
          f"{os.cpu_count()} cores")
    print(f"{'launch':<30} {'min':>7} {'median':>7} {'max':>7}")
    for name, values in results.items():
        print(f"{name:<30} {min(values):>6.2f}s {statistics.median(values):>6.2f}s {max(values):>6.2f}s")
    ratio = statistics.median(results["lla-studio SESSION"]) / statistics.median(results["empty Qt window (reference)"])
    print(f"studio / empty Qt window (medians): {ratio:.2f}")
    print(f"import lla_studio.gui.main_window: {imports:.2f} s (top-level import total), torch imported: {torch_loaded}")
    print("goal: the window shown within 3 s of launch (median)")


if __name__ == "__main__":
    main()
