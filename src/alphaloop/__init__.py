"""alphaloop: an unattended, honest search for trading strategies."""

from alphaloop.errors import AlphaloopError, DataError, StrategyError

__all__ = ["AlphaloopError", "DataError", "StrategyError", "__version__"]
__version__ = "0.1.0"
