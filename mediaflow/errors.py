"""One small hierarchy of errors, each with a message a user can act on.

The API maps these to status codes in one place (`service/errors.py`); the CLI prints
`str(error)` on one line and exits non-zero.
"""


class MediaflowError(Exception):
    """Base class. `code` is a stable machine-readable name; `transient` means retrying may help."""

    code = "mediaflow_error"
    transient = False


class AudioDecodeError(MediaflowError):
    """The input is not audio ffmpeg can read: corrupt, truncated beyond repair, or not audio."""

    code = "audio_decode_error"


class EmptyAudio(AudioDecodeError):
    """The input decodes but carries no samples worth processing (zero bytes, zero length)."""

    code = "empty_audio"


class UnsupportedFormat(AudioDecodeError):
    """ffmpeg does not recognise the container, or there is no audio stream in it."""

    code = "unsupported_format"


class InputTooLarge(MediaflowError):
    """The input exceeds a configured size or duration limit."""

    code = "input_too_large"


class InvalidInput(MediaflowError):
    """A parameter is wrong: an unknown format name, a path outside the data dir, ..."""

    code = "invalid_input"


class NotFound(MediaflowError):
    """The requested episode, transcript or file does not exist."""

    code = "not_found"


class ModelUnavailable(MediaflowError):
    """A model could not be found or loaded from the local installation."""

    code = "model_unavailable"


class StorageError(MediaflowError):
    """The database or the data dir could not be written; retrying may help."""

    code = "storage_error"
    transient = True


class DependencyMissing(MediaflowError):
    """A required program (ffmpeg, ffprobe) or package is not installed."""

    code = "dependency_missing"


class Busy(MediaflowError):
    """Another live run is working on this episode now; try again when it has finished."""

    code = "busy"
    transient = True


class Overloaded(MediaflowError):
    """Too much work in hand (synthesis queued past its bound): try again after `retry_after` seconds."""

    code = "overloaded"
    transient = True

    def __init__(self, message: str, retry_after: int = 5):
        super().__init__(message)
        self.retry_after = retry_after


def excerpt(value: object, limit: int = 40, quote: bool = True) -> str:
    """`value` as an error message may echo it: quoted (repr), and cut to `limit` characters, its length
    said, when longer (a 10,000-character voice name is not sent back whole)."""
    text = str(value)
    shown = repr(text[:limit]) if quote else text[:limit]
    return shown if len(text) <= limit else f"{shown}… ({len(text):,} characters)"
