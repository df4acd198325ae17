"""atomic_write: a reader sees the old file or the new one, never a partial one or a leftover temp file."""
import numpy as np
import pytest

from gan.utils.files import atomic_write


def test_success_replaces_the_file_and_keeps_the_suffix(tmp_path):
    target = tmp_path / "sub" / "arrays.npz"
    with atomic_write(target) as temporary:
        assert temporary.parent == target.parent and temporary.suffix == ".npz"
        np.savez_compressed(temporary, x=np.arange(3))  # numpy would append .npz to another suffix
    with np.load(target) as data:
        assert data["x"].tolist() == [0, 1, 2]
    assert [p.name for p in target.parent.iterdir()] == ["arrays.npz"]
    assert target.stat().st_mode & 0o777 == 0o644


def test_failure_keeps_the_previous_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "summary.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_write(target) as temporary:
            temporary.write_text("half a fi")
            raise RuntimeError("disk full")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.csv"]
