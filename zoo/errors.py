"""The one exception type for user mistakes, shared by `zoo` and `analysis`."""
import difflib


class UserError(ValueError):
    """A mistake in what the user asked for (unknown name, invalid value, missing data, ...).

    The CLIs print its message and exit non-zero, without a traceback; the Python API lets it
    propagate. It subclasses ValueError so callers that catch ValueError keep working.
    """


def run_cli(parser, argv=None) -> int:
    """Parse `argv`, call the chosen sub-command's `func(args)`, and turn user mistakes into one line.

    Shared by `zoo` and `zoo-analysis`: a UserError prints "PROG COMMAND: error: ..." and exits 2,
    Ctrl-C exits 130; anything else is a bug and keeps its traceback.
    """
    import sys

    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as error:
        message = " ".join(str(error).split())  # one line, whatever the message holds
        print(f"{parser.prog} {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `zoo list | head`: the reader left; say nothing more
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def unknown_name_error(kind: str, name: str, known: list[str]) -> UserError:
    """A UserError for an unknown `name` that lists the close matches (or everything known)."""
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(sorted(known)) or '(none)'}"
    return UserError(f"unknown {kind} {name!r}; {hint}")
