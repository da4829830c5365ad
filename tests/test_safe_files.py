"""The two rules every writer follows (``model_utils.safe_files``): whole or nothing, never over a result."""

from __future__ import annotations

import pytest

from model_utils.safe_files import atomic_path, commit_renames, free_path, free_stem, next_free, write_texts
from tests.disk_faults import disk_full_on


def test_names_count_up_from_2_and_give_up_loudly(tmp_path):
    assert next_free("run", lambda _n: False) == "run"
    taken = {"run", "run_2"}
    assert next_free("run", taken.__contains__) == "run_3"
    (tmp_path / "a.tif").write_text("x")
    (tmp_path / "a_2.tif").write_text("x")
    assert free_path(tmp_path / "a.tif") == tmp_path / "a_3.tif"
    (tmp_path / "r_summary.csv").write_text("x")  # one of the set exists: the whole set moves on
    assert free_stem(tmp_path, "r", ("_classes.csv", "_summary.csv", ".html")) == "r_2"
    with pytest.raises(FileExistsError, match="Too many existing outputs named like x"):
        next_free("x", lambda _n: True)


def test_a_failed_write_leaves_neither_the_file_nor_its_temporary(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole" and [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_several_files_are_written_all_or_none(tmp_path, monkeypatch):
    disk_full_on(monkeypatch, ".html")
    with pytest.raises(OSError):
        write_texts({tmp_path / "a.csv": "1", tmp_path / "b.html": "2", tmp_path / "c.csv": "3"})
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()  # the disk has room again
    write_texts({tmp_path / "a.csv": "1", tmp_path / "b.html": "2"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.html"]
    (tmp_path / "t1").write_text("new")
    with pytest.raises(OSError):
        commit_renames([(tmp_path / "t1", tmp_path / "final1"), (tmp_path / "missing", tmp_path / "final2")])
    assert not (tmp_path / "final1").exists()  # the first rename was undone
