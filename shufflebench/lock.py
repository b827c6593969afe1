"""One sweep at a time per device: two sweeps would time each other.

A file lock per machine key (``fcntl.flock``), so it is released however the holder ends. ``refuse_if_held`` tells a
second sweep at once, before it spends seconds importing torch; ``device_lock`` is the lock itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

from shufflebench.errors import UserError

# One lock per device, in a fixed place: not $TMPDIR, which two shells on one machine may set differently.
# SHUFFLEBENCH_LOCK_DIR moves it (the tests use their own, so a sweep running on the machine cannot fail them).
LOCK_DIR = "/tmp/shufflebench-locks"


@contextlib.contextmanager
def device_lock(device_id: str, holder: str) -> Iterator[None]:
    """Hold the one-sweep-at-a-time lock of this device; raises UserError naming the holder when it is taken."""
    folder = Path(os.environ.get("SHUFFLEBENCH_LOCK_DIR", LOCK_DIR))
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):  # every user of the machine shares the folder
        folder.chmod(0o1777)
    path = folder / f"{device_id}.lock"
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            other = f.read().strip() or "another process"
            raise UserError(
                f"another sweep is running on this device ({other}); wait for it to finish, two sweeps "
                "would time each other"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(holder)
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()


def refuse_if_held(device_id: str) -> None:
    """Raise the lock's UserError now if another sweep holds it (checked again, for real, when the run takes it)."""
    with device_lock(device_id, ""):
        pass
