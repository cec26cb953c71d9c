"""``data.agg('eval', 0, "close.to_numpy.__func__.__globals__...")`` reaches ``os``; then
``os.system``.

Attack (issue, pandas-only style: no import but pandas): pandas' own expression evaluator walks
attributes and subscripts the Python-level sandbox never sees: from a bound method to its
function's module globals, to the ``warnings`` module, to ``sys.modules['os']``. With ``os`` in
hand it runs shell commands: one touches a marker in the private temp (proof that a process
ran), one writes into the canary folder, one tries the loopback listener with bash's /dev/tcp.
Stopped by: seccomp (no fork/clone of a process, no execve); Landlock for the writes.
"""

PARAMETERS = {}

EXPR = "close.to_numpy.__func__.__globals__['warnings'].sys.modules['os']"


def generate_positions(data, **params):
    os_ = data.agg("eval", 0, EXPR, engine="python")
    marker = os_.path.join(os_.getcwd(), "spawned-marker")
    codes = [
        os_.system("touch " + marker),
        os_.system("touch '@@CANARY_DIR@@/hostile-pd_eval_globals_os_system'"),
        os_.system("bash -c 'echo hi > /dev/tcp/127.0.0.1/@@TCP_PORT@@'"),
    ]
    if os_.path.exists(marker) or 0 in codes:
        raise RuntimeError("HOSTILE" + f"-ESCAPED os.system returned {codes}")
    raise RuntimeError(f"reached {os_.__name__} but os.system returned {codes}")
