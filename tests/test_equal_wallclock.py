"""The OpenSTL-configured peer and the equal-wall-clock script (benchmarks/), checked by running
benchmarks/check_equal_wallclock.py as a script: its parameter count against OpenSTL's published
15.0 M, teacher forcing and rollout, scheduled sampling and one-cycle against torch's, and a tiny
end-to-end run of each mode."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "check_equal_wallclock.py"


def test_peer_and_equal_wallclock_checks_pass():
    run = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert "6 checks passed" in run.stdout
