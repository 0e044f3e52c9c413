"""Manual pages in roff (man(7)), written from what the programs already know.

One source for each fact: a command's synopsis and options come from its argparse parser, the
prose from the text the program or docs/ already hold. The build writes stonewall(8) and the
other pages with these functions (scripts/build-manpages); `fence_stonewall -o manpage` prints
its page with the same ones at run time.
"""
from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Sequence
import textwrap
from dataclasses import dataclass

import stonewall

MANUAL = "stonewall manual"
SOURCE = f"stonewall {stonewall.__version__}"
_INLINE = re.compile(r"\*\*(.+?)\*\*|`([^`]+)`|\*([^*\s][^*]*?)\*|\[([^\]]+)\]\([^)]+\)")


def escape(text: str) -> str:
    """`text` safe inside a roff line: backslashes, dashes, and no leading control character."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    # Non-ASCII as groff's Unicode escapes: the page then renders the same with or without
    # preconv, in any locale.
    text = "".join(ch if ord(ch) < 128 else f"\\[u{ord(ch):04X}]" for ch in text)
    return "\\&" + text if text[:1] in (".", "'") else text


def line_start(text: str) -> str:
    """A line of already escaped text that must not start a roff request."""
    return "\\&" + text if text[:1] in (".", "'") else text


def inline(text: str) -> str:
    """Markdown's inline marks (**bold**, `code`, *italic*, [link](url)) as roff fonts."""
    out, position = [], 0
    for match in _INLINE.finditer(text):
        out.append(escape(text[position:match.start()]))
        bold, code, italic, link = match.groups()
        if bold is not None:
            out.append(f"\\fB{inline(bold)}\\fR")
        elif code is not None:
            out.append(f"\\fB{escape(code)}\\fR")
        elif italic is not None:
            out.append(f"\\fI{escape(italic)}\\fR")
        else:
            out.append(escape(link))
        position = match.end()
    out.append(escape(text[position:]))
    return line_start("".join(out))


def preformatted(lines: Iterable[str]) -> str:
    """A block shown as written (a synopsis, an example)."""
    text = textwrap.dedent("\n".join(lines))
    body = "\n".join(line_start(escape(line)) if line else "" for line in text.splitlines())
    return f".PP\n.nf\n.RS 4\n{body}\n.RE\n.fi\n"


def paragraph(text: str) -> str:
    return f".PP\n{inline(' '.join(text.split()))}\n"


@dataclass(frozen=True)
class Section:
    """One `.SH` section: its heading and its roff body."""

    heading: str
    body: str


def title(name: str, section: int) -> str:
    """The `.TH` line (no date: the same source builds the same page)."""
    return f'.TH "{name.upper()}" "{section}" "" "{SOURCE}" "{MANUAL}"\n'


def page(name: str, section: int, summary: str, sections: Sequence[Section]) -> str:
    """A whole manual page: title line, NAME, then `sections` in order."""
    head = f".SH NAME\n{escape(name)} \\- {inline(summary)}\n"
    rest = "".join(f'.SH "{escape(item.heading.upper())}"\n{item.body}' for item in sections)
    return title(name, section) + head + rest


# -- argparse ---------------------------------------------------------------------------------
def _help_text(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if not action.help or action.help == argparse.SUPPRESS:
        return ""
    # argparse's own expansion of %(default)s and friends, as --help prints them.
    return parser._get_formatter()._expand_help(action)  # noqa: SLF001


def _option_label(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"\\fI{escape(action.metavar or action.dest)}\\fR"
    takes_value = action.nargs != 0
    metavar = action.metavar or action.dest.upper()
    if isinstance(metavar, tuple):
        metavar = " ".join(metavar)
    names = ", ".join(f"\\fB{escape(option)}\\fR" for option in action.option_strings)
    return names + (f" \\fI{escape(str(metavar))}\\fR" if takes_value else "")


def options(parser: argparse.ArgumentParser) -> str:
    """The parser's options and positional arguments as `.TP` items (subcommands excluded)."""
    items = []
    for action in parser._actions:  # noqa: SLF001 - argparse keeps no public list
        if isinstance(action, (argparse._SubParsersAction, argparse._HelpAction)):  # noqa: SLF001
            continue
        text = _help_text(parser, action)
        if text or action.option_strings:
            items.append(f".TP\n{_option_label(action)}\n{inline(' '.join(text.split()))}\n")
    return "".join(items)


def usage(parser: argparse.ArgumentParser) -> str:
    """The parser's usage as one filled paragraph, the program's name in bold (argparse's
    own line breaks are made for an 80-column terminal, not for the pager's width)."""
    words = parser.format_usage().removeprefix("usage: ").split()
    prog = parser.prog.split()
    rest = words[len(prog):]
    return f".PP\n\\fB{escape(' '.join(prog))}\\fR {escape(' '.join(rest))}\n"


def subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    """Every subcommand below `parser`, depth first, as (full name, parser)."""
    found = []
    for action in parser._actions:  # noqa: SLF001
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for child in action.choices.values():
                found.append((child.prog, child))
                found.extend(subcommands(child))
    return found


def command_sections(parser: argparse.ArgumentParser) -> str:
    """One `.SS` per leaf subcommand: usage, description and options."""
    parts = []
    for name, child in subcommands(parser):
        if subcommands(child):
            continue  # a group (`stonewall vm`): its leaves carry the text
        parts.append(f'.SS "{escape(name)}"\n{usage(child)}')
        if child.description:
            parts.append(paragraph(child.description))
        body = options(child)
        if body:
            parts.append(f".RS 4\n{body}.RE\n")
    return "".join(parts)
