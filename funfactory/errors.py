"""Errors that name the input and the fix."""


class FunfactoryError(Exception):
    """A problem the user can fix; the CLI prints it without a traceback."""


class MissingAssetError(FunfactoryError):
    """A model, voice or data file is not installed; the message names the package or flag."""


class UnsafeInputError(FunfactoryError):
    """Input from an untrusted source tried something we refuse (path escape, link, bomb)."""
