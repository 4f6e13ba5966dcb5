"""One exception type per failure family; the CLI turns each into one line and an exit code."""


class BirddError(Exception):
    """Base class: a failure that the CLI reports as one line (no traceback)."""

    exit_code = 1


class AudioError(BirddError):
    """An audio file or device cannot be read (the message names the file or device)."""


class BundleError(BirddError):
    """A model bundle is missing, tampered with or incompatible (the message names the file)."""


class ConfigError(BirddError):
    """The configuration is invalid (the message names the key); exit 2, which systemd does not restart.

    Only for what editing the configuration fixes: runtime faults (disk full, port taken, device lost)
    are other types, so that ``Restart=on-failure`` brings the service back.
    """

    exit_code = 2


class StorageError(BirddError):
    """A database or file the service writes cannot be opened or written (a runtime fault: exit 1, restarted)."""


class ServiceError(BirddError):
    """A runtime resource of the service is unavailable, e.g. a port already taken (exit 1, restarted)."""


class DatasetError(BirddError):
    """A training or evaluation dataset is malformed (the message names the file and field)."""


class SubmissionError(BirddError):
    """A submission or label CSV does not match what is expected (names the rows or columns)."""


class StoreError(StorageError):
    """The detection store cannot be opened or read (the message names the file)."""


class WebError(BirddError):
    """``birdd web`` cannot serve (the address is taken or not allowed; the message names it)."""


class ResumeError(BirddError):
    """A replay run cannot resume from the journal next to its output (the message says what differs)."""


class SetupError(BirddError):
    """``birdd setup`` cannot install or remove a station (the message names the check, file or command)."""
