"""The one exception type that the command line turns into a single readable line."""


class PcbenchError(Exception):
    """Bad input or configuration: the message names the bad value and what is allowed."""
