"""``alphaloop llm``: language-model providers. ``llm check`` makes one tiny call."""

from __future__ import annotations

import typer

from alphaloop.cli import app

llm_app = typer.Typer(name="llm", help="Language-model providers (they need the llm extra "
                      "of the package installed).", no_args_is_help=True)
app.add_typer(llm_app, name="llm")

_LLM_HELP = ("PROVIDER:MODEL, e.g. openai:gpt-4o-mini, anthropic:claude-sonnet-4-5, "
             "ollama:llama3.1. The key comes from OPENAI_API_KEY / ANTHROPIC_API_KEY.")
_URL_HELP = ("Endpoint address (default: OPENAI_BASE_URL / ANTHROPIC_BASE_URL, else the "
             "provider's; for ollama http://127.0.0.1:11434/v1).")


@llm_app.command("check")
def check_command(
    llm: str = typer.Option(..., "--llm", help=_LLM_HELP),
    base_url: str | None = typer.Option(None, "--llm-base-url", help=_URL_HELP),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds to wait for the reply."),
) -> None:
    """Make one tiny call (no retries) and print its latency and whether structured output
    works. An unreachable endpoint, a rejected key or an unknown model: one line naming the
    problem and the fix, exit code 2."""
    from alphaloop.agents.llm import check

    result = check(llm, base_url=base_url, timeout=timeout)
    typer.echo(f"{result.spec} at {result.base_url}: replied in {result.latency_s:.2f} s "
               f"({result.prompt_tokens} prompt + {result.completion_tokens} completion "
               "tokens)")
    how = {"json_schema": "yes (JSON schema)", "tool": "yes (a tool with the schema)",
           "json_object": "no, JSON mode with the schema in the prompt",
           "prompt": "no, the schema in the prompt"}.get(result.mode, result.mode)
    typer.echo(f"structured output: {how}")
    if result.valid:
        typer.echo("reply: valid JSON for the schema")
    else:
        typer.echo(f"reply: not valid ({result.detail}); alphaloop asks again with the error, "
                   "at most twice")
