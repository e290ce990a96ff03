"""The project's one way to write a file so that a crash never leaves it empty or half-written.

`atomic_write(path)` opens a hidden temporary file in the destination folder; when the `with` block
ends normally the data is flushed and fsync'ed, the file is renamed over `path` (`os.replace`, atomic on
POSIX and Windows) and the folder entry is fsync'ed too. When the block raises (or the process is
killed), `path` keeps its old content; the temporary file is deleted (or, after a kill, left behind
under a name `is_temporary_name` recognises).
"""
import contextlib
import json
import os
import re
import shutil
import uuid

_TEMPORARY_NAME = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")


def temporary_path(path: str) -> str:
    """A fresh hidden name beside `path`: `folder/.{name}.{12 hex digits}.tmp`."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.{uuid.uuid4().hex[:12]}.tmp")


def is_temporary_name(name: str) -> bool:
    """True for a file name `temporary_path` makes (a leftover of a write that was killed)."""
    return bool(_TEMPORARY_NAME.match(name))


def _fsync_folder(folder: str) -> None:
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def commit_temporary(tmp: str, path: str) -> None:
    """Make the finished file `tmp` (from `temporary_path(path)`) durable and rename it over `path`."""
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_folder(os.path.dirname(os.path.abspath(path)))


@contextlib.contextmanager
def atomic_write(path: str, binary: bool = False):
    """Context manager yielding a new file object whose content replaces `path` when the block succeeds.

    Text files are UTF-8 with "\\n" line ends. The file gets the permissions of a plain `open` (umask).
    """
    tmp = temporary_path(path)
    try:
        with (open(tmp, "xb") if binary else open(tmp, "x", encoding="utf-8", newline="\n")) as handle:
            yield handle
        commit_temporary(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_text_atomic(path: str, text: str) -> None:
    """Replace `path` by `text` (UTF-8) atomically."""
    with atomic_write(path) as handle:
        handle.write(text)


def write_json_atomic(path: str, value) -> None:
    """Replace `path` by `value` as indented UTF-8 JSON (non-ASCII kept) and a final newline, atomically."""
    write_text_atomic(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def atomic_copy(source: str, destination: str) -> None:
    """Copy `source` over `destination` atomically (a copy that is killed leaves `destination` as it was)."""
    with atomic_write(destination, binary=True) as handle, open(source, "rb") as original:
        shutil.copyfileobj(original, handle, length=16 * 1024 * 1024)
