"""The one exception type whose message is shown to the user as it is."""


class VislabError(Exception):
    """A problem with the user's input (files, config, arguments).

    The CLI prints its message on one line and exits with status 2; no traceback.
    """


class VislabWarning(UserWarning):
    """Something in the user's data that vislab handled but the user should know about.

    The CLI prints it as one line: ``vislab: warning: <message>``."""
