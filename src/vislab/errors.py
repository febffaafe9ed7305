"""The one exception type whose message is shown to the user as it is."""


class VislabError(Exception):
    """A problem with the user's input (files, config, arguments).

    The CLI prints its message on one line and exits with status 2; no traceback.
    """
