"""The one exception type users see: a problem with their input or configuration."""


class TransferlabError(Exception):
    """A problem with the user's input or configuration, reported to the user as one clear message."""
