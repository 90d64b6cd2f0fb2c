"""What every reader raises: :class:`DataLoadError`, whose message names the file, what was wrong and what to do,
never a bare library traceback; and a limit refusal (:class:`~scvi_core.io.ExpansionRefused`) turned into one."""

from __future__ import annotations

import functools

from . import _limits as limits


class DataLoadError(ValueError):
    """A file could not be read as count data. The message names the file, what was wrong, and what to do."""


def refusals_as_load_errors(reader):
    """A reader whose :class:`~scvi_core.io.ExpansionRefused` (a file past this server's limits) reaches its
    caller as the :class:`DataLoadError` every reader raises."""
    @functools.wraps(reader)
    def read(*args, **kwargs):
        try:
            return reader(*args, **kwargs)
        except limits.ExpansionRefused as err:
            raise DataLoadError(str(err)) from err
    return read


def damaged(name: str, what: str, err: BaseException) -> DataLoadError:
    """The error for a file that a library could not parse as ``what`` (e.g. "an .h5ad file"): damaged in transit."""
    return DataLoadError(f"Could not read '{name}' as {what}: it looks truncated or corrupt ({describe_error(err)}). "
                         "Export it again, or copy it again in full.")


def describe_error(err: BaseException) -> str:
    """A one-line description of a library error, for inclusion in a message."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text[:200]}" if text else type(err).__name__

