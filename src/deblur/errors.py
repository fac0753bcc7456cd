"""One exception hierarchy. Every error says what failed, where, and what to do.

The CLI maps each class to an exit code (see ``exit_code``); the library only raises.
"""


class DeblurError(Exception):
    """Base class: a failure a user can understand and act on."""

    exit_code = 1


class InputError(DeblurError):
    """One input could not be used (missing, unreadable, unsupported). The batch goes on."""

    exit_code = 1


class OutputError(DeblurError):
    """One output could not be written (exists, would overwrite an input, unsupported format)."""

    exit_code = 1


class UsageError(DeblurError):
    """The options given cannot work together."""

    exit_code = 2


class ModelError(DeblurError):
    """The model or its weights are unavailable, malformed or do not match."""

    exit_code = 3


class DeviceError(DeblurError):
    """The requested device does not exist on this machine."""

    exit_code = 4
