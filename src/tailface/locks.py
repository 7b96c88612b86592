"""One live tailface process per run folder: ``OUT/.tailface.lock``, and ``--out`` checked to be a folder.

``with hold(out, "train"):`` creates ``OUT/.tailface.lock``, a JSON record of the holder (pid,
host, command line, start time, and the kernel's start time of the pid: ``/proc/PID/stat`` field
22, with the boot id), and removes it when the block ends, normally or by an exception. A second
``tailface run/train/reproduce/study`` on the same folder stops at once with
:class:`~tailface.errors.OutputError` (exit 2) naming the holder and the lock file.

A lock is **stale**, and taken over, when its holder is gone: the host is this one and the pid no
longer runs (or is a zombie), or the pid runs but started at another time or in another boot (the
pid was reused by an unrelated process). A lock written on another host cannot be checked from
here: it is refused, and the message says to delete the file if that process is gone. A SIGKILLed
run leaves its lock behind; the next run takes it over and says so.

Why this is safe:

* **Creation is atomic** (``os.link``, which fails with ``EEXIST`` like ``O_CREAT|O_EXCL``): the
  record is written and fsynced to a file of this process's own, then hard-linked to the lock's
  name. Exactly one of two racing processes gets the name, and a reader never sees half a record.
* **Take-over is serialised and atomic**: it happens only while holding ``flock`` on the folder
  itself (a lock the kernel drops when its holder dies, so it can never go stale). Under it the
  lock is read again; only if it still names the same dead holder is it replaced by this
  process's record with ``os.replace`` (atomic: a reader sees the stale record or the new one,
  never none). Two processes finding the same stale lock therefore cannot both take it over: the
  second one, once it gets the ``flock``, reads the first one's live record and stops.
* **Release removes only this process's record** (pid and a random token must match): a process
  started by ``fork`` that leaves the block, or a lock taken over meanwhile, is never deleted.

Nesting: the lock is re-entrant within a process (``tailface study`` holds OUT and calls
``reproduce``, which holds OUT too). A folder's lock covers that folder only: ``tailface
reproduce`` holds OUT, and each cell, run in the parent (``--jobs 1``) or in a spawned process
(``--jobs N``), holds its own folder ``OUT/cells/<model>/seed<k>`` through ``run_experiment``.
These are distinct files, so a cell never waits on its parent's lock (no deadlock), and a stray
``tailface train --out OUT/cells/...`` on a cell being trained is refused too.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import shlex
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from tailface.errors import OutputError

LOCK_NAME = ".tailface.lock"
_held: dict[Path, int] = {}  # folders this process holds -> nesting depth


def check_output_folder(out: str | os.PathLike, flag: str = "--out") -> Path:
    """``out`` unless it exists and is not a folder: then :class:`OutputError` naming it (nothing is written)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: {flag} names an existing file, not a folder; give a folder (new, or an earlier "
                          f"run's): nothing was written")
    return out


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def process_start(pid: int) -> tuple[str, int] | None:
    """``(state, start time in clock ticks since boot)`` of ``pid`` from ``/proc/PID/stat``; None when
    it does not run (or there is no ``/proc``)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # fields 3.. (the command name may hold spaces)
    return fields[0], int(fields[19])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def record(command: str) -> dict:
    """This process's lock record."""
    me = process_start(os.getpid())
    cli = Path(sys.argv[0]).name in ("tailface", "__main__.py") and sys.argv[1:2] == [command]
    line = shlex.join(["tailface", *sys.argv[1:]]) if cli else f"tailface {command} (in {shlex.join(sys.argv)})"
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": line,
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "proc_start": me[1] if me else None, "boot_id": _boot_id(), "token": secrets.token_hex(8)}


def stale_reason(rec: dict) -> str | None:
    """Why the holder of ``rec`` is gone (``"pid 123 is not running"``, ``"pid 123 was reused ..."``),
    or None when it may be alive (or runs on another host: it cannot be checked from here)."""
    if not isinstance(rec, dict) or not isinstance(rec.get("pid"), int):
        return "unreadable lock record"
    if rec.get("host") != socket.gethostname():
        return None
    pid = rec["pid"]
    if rec.get("boot_id") and _boot_id() and rec["boot_id"] != _boot_id():
        return f"pid {pid} ran before this machine restarted"
    if not _alive(pid):
        return f"pid {pid} is not running"
    now = process_start(pid)
    if now is not None and now[0] == "Z":
        return f"pid {pid} has exited (zombie)"
    if now is not None and rec.get("proc_start") is not None and now[1] != rec["proc_start"]:
        return f"pid {pid} was reused by another process (started at tick {now[1]}, the lock's at {rec['proc_start']})"
    return None


def _read(path: Path) -> dict | None:
    """The lock record, ``{}`` when unreadable (half a record cannot exist: see the module docstring),
    None when there is no lock."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        rec = json.loads(text)
    except ValueError:
        return {}
    return rec if isinstance(rec, dict) else {}


def _describe(rec: dict) -> str:
    return f"pid {rec.get('pid')} on {rec.get('host')}, started {rec.get('started')}: {rec.get('command')}"


def _write_new(path: Path, rec: dict) -> bool:
    """Create ``path`` (``O_CREAT|O_EXCL``) holding ``rec``, fsynced; False when it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    try:
        os.write(fd, (json.dumps(rec) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def _write_private(folder: Path, rec: dict) -> Path:
    """The record in a file of this process's own (pid and token in its name), to be linked as the lock."""
    tmp = folder / f"{LOCK_NAME}.{rec['pid']}.{rec['token']}"
    if not _write_new(tmp, rec):
        raise FileExistsError(tmp)
    return tmp


@contextmanager
def _folder_flock(folder: Path) -> Iterator[None]:
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def acquire(out: Path, command: str) -> dict:
    """Create ``out/.tailface.lock`` (taking over a stale one) and return its record; :class:`OutputError`
    when a live process holds it."""
    lock = out / LOCK_NAME
    rec = record(command)
    tmp = _write_private(out, rec)
    try:
        while True:
            try:
                os.link(tmp, lock)
                return rec
            except FileExistsError:
                pass
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise OutputError(f"{lock}: cannot create the run folder's lock ({exc.strerror})") from None
                if _write_new(lock, rec):  # a file system without hard links
                    return rec
            with _folder_flock(out):
                theirs = _read(lock)
                if theirs is None:
                    continue  # released meanwhile: try to create it again
                why = stale_reason(theirs)
                if why is None:
                    raise OutputError(
                        f"{out}: in use by another tailface process ({_describe(theirs)}); wait for it to finish, or "
                        f"use another --out (if that process is gone, delete {lock})")
                os.replace(tmp, lock)
                print(f"tailface {command}: {lock}: took over a stale lock ({why}; it was {_describe(theirs)})",
                      file=sys.stderr)
                return rec
    finally:
        if tmp.exists():
            tmp.unlink()


def release(out: Path, rec: dict) -> None:
    """Remove ``out/.tailface.lock`` if it is still ``rec`` (this process's)."""
    lock = out / LOCK_NAME
    theirs = _read(lock)
    if theirs and theirs.get("pid") == os.getpid() == rec["pid"] and theirs.get("token") == rec["token"]:
        lock.unlink(missing_ok=True)


@contextmanager
def hold(out: str | os.PathLike, command: str) -> Iterator[Path]:
    """Hold ``out``'s lock for the block (creating the folder; re-entrant within a process); yields the
    lock file's path. :class:`OutputError` when ``out`` is a file or another live process holds it."""
    folder = check_output_folder(out)
    folder.mkdir(parents=True, exist_ok=True)
    key = folder.resolve()
    if key in _held:
        _held[key] += 1
        try:
            yield folder / LOCK_NAME
        finally:
            _held[key] -= 1
        return
    rec = acquire(folder, command)
    _held[key] = 1
    try:
        yield folder / LOCK_NAME
    finally:
        del _held[key]
        release(folder, rec)
