"""Buy and hold: fully long from the first bar to the last; the benchmark every strategy must beat.

Rule: target position 1 at every bar, decided at the first bar's close (so the engine buys at
the second bar's open).
"""

import numpy as np
import pandas as pd

PARAMETERS = {}


def generate_positions(data):
    return pd.Series(np.ones(len(data.index)), index=data.index)
