"""``credrot stats|doctor|demo``."""

from __future__ import annotations

import click

from credrot.cli.base import (
    CONTEXT,
    EXIT_ERROR,
    EXIT_OK,
    _Command,
    _configure_logging,
    _FindingsCommand,
    _manager,
    pool_option,
)


def _stats(ctx: click.Context, as_json: bool, prom: bool, output: str | None) -> int:
    from credrot import report

    manager = _manager(ctx)
    stats = manager.get_stats()
    if prom:
        text = report.prometheus(stats, manager.list_accounts())
    elif as_json:
        text = report.stats_json(stats) + "\n"
    else:
        text = "\n".join(report.stats_lines(stats)) + "\n"
    if output is None or output == "-":
        click.echo(text, nl=False)
        return EXIT_OK
    from pathlib import Path

    from credrot.fsutil import atomic_write

    # Written by rename, so node_exporter's textfile collector never reads half a file.
    atomic_write(Path(output), text.encode("utf-8"), mode=0o644)
    return EXIT_OK


@click.command(
    cls=_Command,
    context_settings=CONTEXT,
    short_help="Counters: requests, tool runs, successes, quota hits.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--prometheus",
    "prom",
    is_flag=True,
    help="Prometheus text format (credrot_* metrics, labels tool and account).",
)
@click.option(
    "-o",
    "--output",
    metavar="FILE",
    default=None,
    help="Write to FILE atomically (for node_exporter's textfile collector).",
)
@click.pass_context
def stats(ctx: click.Context, as_json: bool, prom: bool, output: str | None) -> int:
    """Totals and per-account counters: requests, tool runs, successes, quota hits, switches."""
    if as_json and prom:
        raise click.UsageError("choose one of --json and --prometheus")
    return _stats(ctx, as_json, prom, output)


@click.command(
    cls=_FindingsCommand,
    context_settings=CONTEXT,
    short_help="Check the tool and the pool; --fix repairs.",
)
@click.option("--fix", is_flag=True, help="Apply the safe fixes (adopt, restore link, chmod).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--skip-tool", is_flag=True, help="Don't look for the tool or run its --version.")
@click.pass_context
def doctor(ctx: click.Context, fix: bool, as_json: bool, skip_tool: bool) -> int:
    """Check the tool, the home, permissions, the pointer, credentials, locks.

    Each finding comes with its fix; --fix applies the safe ones. Exit 1 when an
    error remains.
    """
    import json

    from credrot.doctor import apply_fixes, diagnose_safely

    manager = _manager(ctx)
    findings = diagnose_safely(manager, tool=not skip_tool)
    done: list[str] = []
    if fix:
        done = apply_fixes(manager, findings)
        tool_findings = [f for f in findings if f.check == "tool"]
        findings = tool_findings + diagnose_safely(manager, tool=False)
    errors = [f for f in findings if f.level == "error"]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "tool": manager.profile.name,
                    "home": str(manager.home),
                    "fixed": done,
                    "findings": [f.as_dict() for f in findings],
                    "ok": not errors,
                },
                indent=2,
            )
        )
        return EXIT_ERROR if errors else EXIT_OK
    click.echo(f"credrot doctor: {manager.profile.name} in {manager.home}")
    for line in done:
        click.echo(f"  fixed  {line}")
    for f in findings:
        click.echo(f"  {f.level:<5}  {f.message}")
        if f.fix and f.level in ("warn", "error"):
            how = " (credrot doctor --fix does this)" if f.fixable else ""
            click.echo(f"         fix: {f.fix}{how}")
    problems = [f for f in findings if f.level in ("warn", "error")]
    fixable = sum(1 for f in problems if f.fixable)
    if problems:
        click.echo(
            f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
            + (f", {fixable} fixable with --fix" if fixable else "")
        )
    else:
        click.echo("no problems found")
    return EXIT_ERROR if errors else EXIT_OK


@click.command(
    cls=_Command, context_settings=CONTEXT, short_help="Watch rotation work on simulated accounts."
)
@click.pass_context
def demo(ctx: click.Context) -> int:
    """See rotation work: simulated accounts in a throwaway pool, no real account needed.

    Nothing in your real home is read or written, and nothing goes over the network.
    """
    from credrot.demo import run_demo

    root = ctx.find_root().params
    _configure_logging(bool(root.get("debug")))
    return run_demo(click.echo, tool=pool_option(ctx, "tool") or "qwen")
