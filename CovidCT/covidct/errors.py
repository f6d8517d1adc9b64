"""Errors a user can act on.

Every expected failure raises a subclass of :class:`CovidCTError`; the CLI prints its
message (no traceback) and exits with the class's ``exit_code``.  Messages say what was
wrong *and* what to do about it.
"""


# Exit code of a batch command (``covidct classify``) where some inputs were processed and
# others refused, each refusal listed with its own message; when every input fails, the
# first one's own error code is used instead.
PARTIAL_FAILURE_EXIT_CODE = 8


class CovidCTError(Exception):
    """Base class of all expected, user-facing failures."""

    exit_code = 1


class InputNotFoundError(CovidCTError):
    """The path given does not exist or cannot be read."""

    exit_code = 2


class UnsupportedInputError(CovidCTError):
    """The file or folder is not a format CovidCT reads (or holds no image at all)."""

    exit_code = 3


class InvalidCTError(CovidCTError):
    """The image was read but is not a usable chest CT (modality, shape, HU, geometry)."""

    exit_code = 4


class MixedSeriesError(InvalidCTError):
    """A DICOM folder holds several series and the user did not choose one."""


class WeightsError(CovidCTError):
    """Model weights are missing, corrupt (checksum) or do not match the architecture."""

    exit_code = 5


class DeviceError(CovidCTError):
    """The requested compute device is absent or ran out of memory."""

    exit_code = 6


class OutputError(CovidCTError):
    """The output location cannot be written (exists, permissions, disk full)."""

    exit_code = 7


class MissingDependencyError(CovidCTError):
    """An optional part of CovidCT (e.g. ``covidct batch`` and Dask) is not installed."""

    exit_code = 1


class CancelledError(CovidCTError):
    """The user cancelled a running analysis."""

    exit_code = 130


class ResultFileError(CovidCTError):
    """An analysis result (``result.json``) cannot be used: unreadable, not JSON, a required
    field missing or of the wrong type, or written by a newer CovidCT.

    Exit code 3, as :class:`UnsupportedInputError`: a file in a form this version does not read.
    ``missing`` names the required fields that were absent (dotted paths), so a caller such
    as the Slicer module can give its own advice.
    """

    exit_code = 3

    def __init__(self, message: str, missing=()):
        super().__init__(message)
        self.missing = tuple(missing)
