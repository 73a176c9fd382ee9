"""IMAP's modified UTF-7 for mailbox names (RFC 3501 §5.1.3).

IMAP servers that predate UTF8=ACCEPT only take 7-bit mailbox names, so "Überleg" travels as
"&ANw-berleg". Printable ASCII stays readable, "&" (the shift character) is written "&-", and every
other run of characters becomes "&" + base64 of its UTF-16BE bytes, with "," in place of "/" (so
the result never contains the usual hierarchy separator) and no "=" padding, then "-".
"""

from __future__ import annotations

import base64

_SHIFT = "&"
_END = "-"


def _is_direct(char: str) -> bool:
    """Printable US-ASCII (0x20..0x7E) represents itself; everything else must be shifted."""
    return "\x20" <= char <= "\x7e"


def _encode_run(run: str) -> str:
    # surrogatepass: a lone surrogate (possible in a Python str) still round-trips instead of raising.
    raw = run.encode("utf-16-be", "surrogatepass")
    text = base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",")
    return f"{_SHIFT}{text}{_END}"


def encode(name: str) -> str:
    """A Unicode mailbox name as the 7-bit text an IMAP command carries."""
    out: list[str] = []
    run_start: int | None = None
    for index, char in enumerate(name):
        if _is_direct(char):
            if run_start is not None:
                out.append(_encode_run(name[run_start:index]))
                run_start = None
            out.append("&-" if char == _SHIFT else char)
        elif run_start is None:
            run_start = index
    if run_start is not None:
        out.append(_encode_run(name[run_start:]))
    return "".join(out)


def _decode_run(text: str, whole: str) -> str:
    padded = text.replace(",", "/") + "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(padded, validate=True)
    except ValueError:
        raise ValueError(f"invalid modified UTF-7 in mailbox name {whole!r}: bad base64 {text!r}") from None
    if len(raw) % 2:
        raise ValueError(f"invalid modified UTF-7 in mailbox name {whole!r}: odd UTF-16 length in {text!r}")
    return raw.decode("utf-16-be", "surrogatepass")


def decode(name: str) -> str:
    """The Unicode name behind a mailbox name a server sent. Raises ValueError when it is malformed,
    because guessing would create a second, differently spelled folder on the next run."""
    out: list[str] = []
    index = 0
    while index < len(name):
        char = name[index]
        if char != _SHIFT:
            if not _is_direct(char):
                raise ValueError(f"invalid modified UTF-7 in mailbox name {name!r}: raw {char!r}")
            out.append(char)
            index += 1
            continue
        end = name.find(_END, index + 1)
        if end < 0:
            raise ValueError(f"invalid modified UTF-7 in mailbox name {name!r}: '&' without closing '-'")
        text = name[index + 1 : end]
        out.append(_decode_run(text, name) if text else _SHIFT)
        index = end + 1
    return "".join(out)
