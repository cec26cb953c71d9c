"""Return NaN positions (all of them, as a float Series).

Attack (own): NaN poisons comparisons (``NaN > 1`` is False, so a naive range check passes)
and the engine's arithmetic.
Stopped by: validation in the strategy process and again in the worker (finite, within
[-1, 1]); one clear line naming the first bad date.
"""

import numpy as np
import pandas as pd

PARAMETERS = {}


def generate_positions(data, **params):
    return pd.Series(np.nan, index=data.index)
