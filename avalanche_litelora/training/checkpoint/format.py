"""The checkpoint file: plain data only, a checksum over its content, written atomically.

Kept apart from what goes into a checkpoint so that the file's guarantees (a crash leaves the
old file or the new one; a damaged or foreign file is refused) can be read and changed alone.
The one seam into a write is :func:`set_file_wrapper` (``None``, i.e. unused, in production).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, Optional, Union

import torch

FORMAT = "avalanche-litelora-checkpoint"
FORMAT_VERSION = 1

PathLike = Union[str, os.PathLike]

#: ``wrap(file, tmp_path) -> writer``: what ``torch.save`` writes to instead of the open
#: temporary file ``file`` (at ``tmp_path``); the writer must pass every byte on to ``file``.
FileWrapper = Callable[[BinaryIO, Path], Any]

_file_wrapper: Optional[FileWrapper] = None


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed: corrupted, truncated, or from another configuration."""


def _is_plain(obj: Any) -> bool:
    """Data ``torch.load(weights_only=True)`` reads back as it was written."""
    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor)):
        return True
    if isinstance(obj, (list, tuple)):
        return all(_is_plain(v) for v in obj)
    if isinstance(obj, dict):
        return all(_is_plain(k) and _is_plain(v) for k, v in obj.items())
    return False


def _digest(obj: Any) -> str:
    """SHA-256 over the structure and every byte of plain data, independent of file layout."""
    h = hashlib.sha256()

    def feed(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}|".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(value, dict):
            h.update(f"D{len(value)}|".encode())
            for k, v in value.items():
                feed(k)
                feed(v)
        elif isinstance(value, (list, tuple)):
            h.update(f"L{len(value)}|".encode())
            for v in value:
                feed(v)
        elif value is None or isinstance(value, (bool, int, float, str)):
            h.update(f"{type(value).__name__}:{value!r}|".encode())
        else:
            raise TypeError(f"{type(value).__name__} is not plain checkpoint data")

    feed(obj)
    return "sha256:" + h.hexdigest()


# --------------------------------------------------------------------------------- write
def set_file_wrapper(wrap: Optional[FileWrapper]) -> Optional[FileWrapper]:
    """Make every later :func:`atomic_torch_save` without its own ``wrap_file`` use ``wrap``.

    The seam for watching or slowing a write from outside (a test that kills a process in
    the middle of one); ``None`` restores the default, a plain write.
    :return: the wrapper set before.
    """
    global _file_wrapper
    previous, _file_wrapper = _file_wrapper, wrap
    return previous


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_torch_save(obj: Any, path: PathLike, *, wrap_file: Optional[FileWrapper] = None) -> Path:
    """``torch.save`` to a temporary file beside ``path``, fsync, rename over it, fsync the folder.

    A crash at any point leaves either the previous file or the new one, never a partial one.
    :param wrap_file: ``torch.save`` writes to ``wrap_file(file, tmp_path)`` instead of the
        temporary file (default: the one :func:`set_file_wrapper` set, normally none).
    """
    path = Path(path)
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob(f".{path.name}.tmp-*"):  # left by a killed write
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=directory)
    wrap = wrap_file if wrap_file is not None else _file_wrapper
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide the file from the group
        with os.fdopen(fd, "wb") as file:
            torch.save(obj, wrap(file, Path(tmp)) if wrap is not None else file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(directory)
    return path


def write_payload(payload: Dict[str, Any], path: PathLike) -> Path:
    """Add the checksum of ``payload`` (plain data) to it and write it atomically to ``path``."""
    payload["checksum"] = _digest(payload)
    return atomic_torch_save(payload, path)


# ---------------------------------------------------------------------------------- read
def read_checkpoint(path: PathLike) -> Dict[str, Any]:
    """Load and verify a checkpoint file (format, version, checksum) without touching a strategy."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupted): {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an {FORMAT} file")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {payload.get('format_version')!r}; "
            f"this version of the package reads version {FORMAT_VERSION}"
        )
    checksum = payload.pop("checksum", None)
    try:
        actual = _digest(payload)
    except TypeError as error:
        raise CheckpointError(f"{path} holds data a checkpoint never holds: {error}") from error
    if checksum != actual:
        raise CheckpointError(f"{path} is corrupted: its checksum does not match its content")
    return payload
