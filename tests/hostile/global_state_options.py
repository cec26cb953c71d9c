"""Change process-wide library state, then fail: pandas options, numpy error mode, decimal,
recursion limit, time zone, warnings.

Attack (own): in a long-lived worker these settings leak into every later strategy:
``pd.set_option`` (copy-on-write, numexpr, display precision), ``np.seterr(all='raise')``
(later strategies raise on a harmless 0/0), ``np.set_printoptions``, the decimal context,
``sys.setrecursionlimit``, ``os.environ['TZ']`` + ``time.tzset()``, ``warnings`` as errors,
``random.seed``, ``np.random.seed``. Then it raises so nobody looks at it.
Stopped by: one strategy process per strategy; these settings die with it.
"""

import decimal
import os
import random
import sys
import time
import warnings

import numpy as np
import pandas as pd

PARAMETERS = {}

pd.set_option("mode.copy_on_write", False)
pd.set_option("compute.use_numexpr", False)
pd.set_option("display.precision", 1)
np.seterr(all="raise")
np.set_printoptions(precision=1)
decimal.getcontext().prec = 1
sys.setrecursionlimit(200)
os.environ["TZ"] = "Asia/Kathmandu"
time.tzset()
warnings.simplefilter("error")
random.seed(666)
np.random.seed(666)


def generate_positions(data, **params):
    raise RuntimeError("changed pandas/numpy/decimal/recursion/TZ/warnings state")
