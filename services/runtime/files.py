"""Writing a file others read while we write it: whole or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, text: str, *, keep_mode: bool = False) -> None:
    """Write `text` to a temp file beside `path`, fsync it, then rename it over `path`.

    Readers see the old content or the new, never a part. The file is readable by the owner only
    (the temp file's 0600), or keeps the mode of the file it replaces with `keep_mode`. A failed
    write leaves no temp file behind.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if keep_mode:
            with contextlib.suppress(OSError):
                os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
