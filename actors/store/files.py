"""The store's files are private to the user running the server: what this server creates
is made ``0700`` (directories) and ``0600`` (files) whatever the umask; what exists already is
left as it is (the server warns when the store file is readable by others)."""
from __future__ import annotations

import os
from pathlib import Path

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def make_private_directories(directory: str | os.PathLike[str]) -> None:
    """Create ``directory`` and its missing ancestors, each ``0700``; existing ones are left
    alone. Raises OSError when one cannot be created."""
    missing = []
    current = Path(directory)
    while not os.path.lexists(current) and current != current.parent:
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=DIRECTORY_MODE)
        except FileExistsError:  # created meanwhile by someone else: theirs, left as it is
            continue
        os.chmod(path, DIRECTORY_MODE)  # mkdir's mode is filtered by the umask


def create_private_file(path: str | os.PathLike[str]) -> None:
    """Create ``path`` empty and ``0600`` unless it exists (then it is left as it is), so
    that SQLite, which gives its ``-wal`` and ``-shm`` files the database's mode, opens a
    private file. Raises OSError when it cannot be created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, FILE_MODE)  # open's mode is filtered by the umask
    finally:
        os.close(fd)
