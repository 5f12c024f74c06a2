"""rsitr.atomic: a write either lands whole under the target's name or leaves the old file."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from rsitr.atomic import atomic_path, write_bytes, write_text
from rsitr.training.checkpoint import remove_stale_temporaries


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = write_text(tmp_path / "out" / "a.json", "old\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.json"]


def test_the_result_has_the_usual_mode_and_threads_do_not_collide(tmp_path: Path) -> None:
    target = tmp_path / "b.bin"
    threads = [threading.Thread(target=write_bytes, args=(target, bytes([i]) * 1000)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    data = target.read_bytes()
    assert len(data) == 1000 and len(set(data)) == 1  # one whole write won
    assert stat.S_IMODE(target.stat().st_mode) & 0o044 == 0o044  # readable by group/others (not mkstemp's 0600)
    assert [p.name for p in tmp_path.iterdir()] == ["b.bin"]


def test_a_killed_writers_temporary_is_found_as_stale(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "last.pt") as tmp:
        tmp.write_bytes(b"x")
        left = tmp.with_name(tmp.name + "-copy")
        left.write_bytes(b"x")  # what a SIGKILL leaves behind (no finally runs)
        raise KeyboardInterrupt
    assert remove_stale_temporaries(tmp_path) == [left]
