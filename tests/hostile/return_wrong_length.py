"""Return one position more than there are bars, as an array (no index to check).

Attack (own): an off-by-one makes positions line up with the wrong bars (look-ahead by one
bar) or overflows a buffer in a careless engine.
Stopped by: validation of the length (in the strategy process, and the worker refuses a reply
whose body is not exactly 8 bytes per bar).
"""

import numpy as np

PARAMETERS = {}


def generate_positions(data, **params):
    return np.ones(len(data) + 1)
