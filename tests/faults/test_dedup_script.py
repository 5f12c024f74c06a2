"""Trial 5: README's ``cluster_images(paths, max_distance=2)`` in a plain script, without a main guard.

Small inputs hash in-process and just work; a pool whose workers cannot start (they re-import
an unguarded script) is one DataError naming the guard, never BrokenProcessPool.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

SCRIPT = """
import glob
from rsitr.data.dedup import cluster_images
print(len(cluster_images(sorted(glob.glob({pattern!r}))[:{count}], max_distance=2, workers=2)))
"""


def _images(folder: Path, count: int) -> str:
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")
    return str(folder / "*.png")


def _run(tmp_path: Path, pattern: str, count: int) -> subprocess.CompletedProcess:
    script = tmp_path / f"script_{count}.py"
    script.write_text(SCRIPT.format(pattern=pattern, count=count))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)


def test_a_plain_script_works_on_small_inputs_and_names_the_guard_on_large_ones(tmp_path: Path) -> None:
    pattern = _images(tmp_path, 520)
    small = _run(tmp_path, pattern, 40)
    assert small.returncode == 0 and small.stdout.strip() == "40", small.stderr[-2000:]
    large = _run(tmp_path, pattern, 520)
    assert large.returncode != 0
    assert "BrokenProcessPool" not in large.stderr
    assert 'if __name__ == "__main__":' in large.stderr and "DataError" in large.stderr
