"""``credrot sim DIR``: a simulated tool and pool to try every command on, no account needed."""

from __future__ import annotations

import click

from credrot.cli.base import CONTEXT, EXIT_OK, _Command, _configure_logging, pool_option


@click.command(
    cls=_Command, context_settings=CONTEXT, short_help="Write a simulated tool and pool to DIR."
)
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False))
@click.option(
    "--accounts",
    type=click.IntRange(min=1, max=50),
    default=3,
    show_default=True,
    help="How many simulated accounts.",
)
@click.option(
    "--quota",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Answers each account gives before its quota is spent.",
)
@click.pass_context
def sim(ctx: click.Context, directory: str, accounts: int, quota: int) -> int:
    """Write a simulated tool (the shim) and a pool of simulated accounts into DIR.

    \b
    Prints the two `export` lines that put them to use:
      eval "$(credrot sim /tmp/try)"
      credrot accounts list && credrot run -- -p "hello"
    DIR must be new or empty. Nothing else is touched, nothing goes over the network.
    """
    from pathlib import Path

    from credrot.demo import build_sim

    root = ctx.find_root().params
    _configure_logging(bool(root.get("debug")))
    tool = pool_option(ctx, "tool") or "qwen"
    lines = build_sim(Path(directory), tool=tool, accounts=accounts, quota=quota)
    for line in lines:
        click.echo(line)
    click.echo(
        f"credrot: {accounts} simulated {tool} accounts ({quota} answers each) in {directory}; "
        "run the lines above (or eval this command's output) to use them",
        err=True,
    )
    return EXIT_OK
