"""The checks on input files and on the data directory, made before anything is read or created."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.errors import ConfigError
from config.files import InputFileError, data_dir_problem, map_size_problem, read_input


def test_a_small_regular_file_is_read_whole(tmp_path: Path) -> None:
    """Up to the limit, exactly."""
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    assert read_input(path, limit=10) == b"x" * 10


def test_a_file_over_the_limit_is_refused(tmp_path: Path) -> None:
    """One byte over is too big; the error names the limit."""
    path = tmp_path / "f"
    path.write_bytes(b"x" * 2049)
    with pytest.raises(InputFileError, match=r": larger than 2 KiB$"):
        read_input(path, limit=2048)


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    """Opening a FIFO for reading waits for a writer; the loader opens it non-blocking."""
    path = tmp_path / "fifo"
    os.mkfifo(path)
    with pytest.raises(InputFileError) as info:
        read_input(path)
    assert str(info.value) == f"{path}: a FIFO, not a regular file"


def test_input_file_errors_are_config_errors(tmp_path: Path) -> None:
    """A caller that catches ConfigError catches these too."""
    with pytest.raises(ConfigError, match="No such file or directory"):
        read_input(tmp_path / "nope")


def test_a_new_or_existing_writable_directory_is_a_good_data_dir(tmp_path: Path) -> None:
    """Existing, or to be created under a writable directory: no problem."""
    assert data_dir_problem(tmp_path) is None
    assert data_dir_problem(tmp_path / "new" / "deeper") is None


def test_a_file_as_the_data_dir_or_above_it_is_refused(tmp_path: Path) -> None:
    """A file where the directory is, or where one of its parents would be."""
    afile = tmp_path / "afile"
    afile.write_text("")
    assert data_dir_problem(afile) == "not a directory"
    assert data_dir_problem(afile / "x" / "y") == f"cannot be created in {afile}: not a directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to any directory")
def test_a_directory_without_write_permission_is_refused(tmp_path: Path) -> None:
    """Checked with os.access, which answers for this user."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    try:
        assert data_dir_problem(locked) == "not writable"
        assert data_dir_problem(locked / "new") == f"cannot be created in {locked}: not writable"
    finally:
        locked.chmod(0o755)


@pytest.fixture
def read_only_mount(tmp_path: Path) -> Iterator[Path]:
    """A read-only tmpfs (needs root and mount; skipped otherwise)."""
    where = tmp_path / "ro"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def test_a_read_only_mount_is_refused_even_for_root(read_only_mount: Path) -> None:
    """Root may write anywhere but not to a read-only file system; the error says which."""
    assert data_dir_problem(read_only_mount) == "on a read-only file system"
    assert data_dir_problem(read_only_mount / "new") == (
        f"cannot be created in {read_only_mount}: on a read-only file system"
    )


def test_a_map_beyond_the_address_space_limit_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under `ulimit -v`, a map that cannot be reserved is named before the ledger is opened."""
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda _which: (900 << 20, resource.RLIM_INFINITY))
    assert map_size_problem(899) is None
    assert map_size_problem(900) == "must be at most 899 MiB, what this process may map (ulimit -v)"
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (resource.RLIM_INFINITY,) * 2)
    assert map_size_problem(1 << 20) is None
