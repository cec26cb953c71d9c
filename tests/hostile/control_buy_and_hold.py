"""Control: an honest, always-long strategy (not an attack).

It checks the harness: it must pass everywhere, and its metrics must equal buy and hold on
the real bars computed by the test itself.
"""
# honest-positions: long

import numpy as np
import pandas as pd

PARAMETERS = {}


def generate_positions(data, **params):
    return pd.Series(np.ones(len(data)), index=data.index)
