"""The exceptions alphaloop raises on bad input.

Every message is one line that names the thing at fault and how to fix it; the command line
prints it as is and exits with code 2.
"""


class AlphaloopError(Exception):
    """Base class of every error alphaloop raises for bad input or configuration."""


class DataError(AlphaloopError):
    """Market data is missing, malformed or cannot serve the request."""


class StrategyError(AlphaloopError):
    """Strategy code cannot be loaded, is rejected by the sandbox, or produced bad positions."""


class ConfigError(AlphaloopError):
    """A setting (parameter, timeframe, gate expression, path...) is invalid."""
