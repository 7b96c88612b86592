"""DataLoader workers' errors as tailface's own one-line errors.

A worker's exception reaches the main process re-created from the worker's whole traceback text
(``Caught DataError in DataLoader worker process 0. Original Traceback ...``, some 25 lines).
:func:`iterate` re-raises a :class:`~tailface.errors.TailfaceError` from a worker as the same
class with the original one-line message, exactly as it reads without workers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from tailface.errors import TailfaceError

T = TypeVar("T")


def original_message(exc: BaseException) -> str:
    """The worker exception's own message (the traceback's last line, without the class name)."""
    text = str(exc)
    if "Original Traceback" not in text:
        return text
    lines = [line for line in text.rstrip().splitlines() if line.strip()]
    last = lines[-1] if lines else text
    prefix = f"{type(exc).__module__}.{type(exc).__qualname__}: "
    for candidate in (prefix, f"{type(exc).__qualname__}: "):
        if last.startswith(candidate):
            return last[len(candidate):]
    return last


def iterate(loader: Iterable[T]) -> Iterator[T]:
    """The batches of ``loader``; a tailface error in a worker re-raised as its one-line self."""
    it = iter(loader)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except TailfaceError as exc:
            if "Original Traceback" not in str(exc):
                raise
            raise type(exc)(original_message(exc)) from None
        yield batch
