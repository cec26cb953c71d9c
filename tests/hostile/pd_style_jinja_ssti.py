"""``data.agg('style').env.from_string(...)``: a Jinja2 template reaches ``__import__``.

Attack (issue, pandas-only style): the Styler's Jinja2 environment renders attacker templates;
a template walks ``self.__init__.__globals__.__builtins__`` to ``__import__('os')`` and then
runs a shell command (marker in the private temp), writes a file into the canary folder with
``open`` and reads the canary file.
Stopped by: seccomp (no new process); Landlock (no write outside the private temp, no read of
the canary file).
"""

import os

PARAMETERS = {}

TEMPLATE = (
    "{% set b = self.__init__.__globals__.__builtins__ %}"
    "{{ b['__import__']('os').system('touch ' ~ marker) }}|"
    "{{ b['open']('@@CANARY_DIR@@/hostile-pd_style_jinja_ssti', 'w').write('x') }}"
)
READ = "{{ self.__init__.__globals__.__builtins__['open']('@@CANARY_FILE@@').read() }}"


def generate_positions(data, **params):
    env = data.agg("style").env
    marker = os.path.join(os.getcwd(), "spawned-marker")
    out = []
    for template in (TEMPLATE, READ):
        try:
            out.append(env.from_string(template).render(marker=marker))
        except Exception as exc:
            out.append(f"{type(exc).__name__}: {exc}")
    if os.path.exists(marker):
        raise RuntimeError("HOSTILE" + "-ESCAPED jinja spawned a process")
    # whatever the templates produced (file content included) goes into the error text
    raise RuntimeError(" | ".join(out))
