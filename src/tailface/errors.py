"""Errors raised for bad user input: they name the file and the problem."""


class TailfaceError(Exception):
    """Base class of every error tailface raises on purpose."""

    exit_code = 2  # the command line's exit status: bad input


class DataError(TailfaceError):
    """A dataset file is missing, corrupt, or inconsistent. The message names the file."""


class ConfigError(TailfaceError):
    """An experiment or protocol configuration is invalid."""


class ProtocolError(TailfaceError):
    """Features or files do not match an evaluation protocol (order, size, values)."""


class OutputError(TailfaceError):
    """An output file could not be written (disk full, no permission). The previous version of the
    file, if any, is left intact; the message names the file and says so."""


class TrainingDiverged(TailfaceError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


class WorkerFailed(TailfaceError):
    """A worker process died (killed, out of memory, a bug in it). Not bad input: exit status 1.
    The message names the work and where its output is."""

    exit_code = 1
