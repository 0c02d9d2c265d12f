"""Owner-only files and folders for everything the archive keeps on disk.

Stored instances, the index, the spool and the quarantine hold health data (and, before
de-identification, identifiable data), so nobody but the archive's own user may read
them: folders 0700, files 0600. The command line sets a 077 umask for the whole process;
the helpers here set the modes explicitly at creation as well, so the archive stays
private when embedded in another process (a WSGI server, a test) whatever its umask.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

PRIVATE_DIR: Final = 0o700
PRIVATE_FILE: Final = 0o600
UMASK: Final = 0o077


def _tighten(path: Path, mode: int) -> None:
    """Drop group and other bits from ``path`` if we own it (never loosen anything)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, stat.S_IMODE(st.st_mode) & mode)


def private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents as 0700; tighten ``path`` if it exists."""
    missing = []
    p = Path(path)
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            pass
        os.chmod(d, PRIVATE_DIR)  # mkdir's mode is filtered by the umask
    _tighten(Path(path), PRIVATE_DIR)
    return Path(path)


def private_file(path: Path) -> Path:
    """Create ``path`` empty as 0600 if missing; tighten it if it exists."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    except FileExistsError:
        _tighten(Path(path), PRIVATE_FILE)
    else:
        os.chmod(path, PRIVATE_FILE)
    return Path(path)


def open_private(path: Path) -> int:
    """A new file descriptor for writing ``path``, created 0600 (it must not exist)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    os.fchmod(fd, PRIVATE_FILE)
    return fd
