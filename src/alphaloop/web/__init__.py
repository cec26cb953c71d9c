"""The live local dashboard (``alphaloop dashboard``): a read-only web view of a home folder.

`create_app(home)` is the Starlette application (:mod:`.app`); :mod:`.server` binds the
address (`bind`) and runs uvicorn on it until Ctrl-C (`serve`). Nothing here writes the home.
"""

from __future__ import annotations

from alphaloop.web.app import create_app

__all__ = ["create_app"]
