"""Teams message HTML -> Matrix `formatted_body` and a plain `body`, in one pass over the parsed markup.

Only what the Matrix spec lists for `org.matrix.custom.html` ("m.room.message msgtypes", HTML) is written back,
and every tag and attribute is re-emitted from the parsed tokens, never copied through: what is not on the
allowlist cannot reach a client. Scripts, styles and other executable or embedded content are dropped with
their text; links keep only http(s), ftp, mailto and magnet targets; images keep only `mxc://` sources (Teams'
own inline images are uploaded and sent as separate `m.image` events by the caller).

Teams-specific markup becomes its Matrix counterpart: `<at id>` -> a user pill (the caller says whose),
`<emoji alt>` -> the emoji, `<codeblock class>` -> `<pre><code class="language-...">`, `<attachment id>` -> what
the caller renders for that attachment.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urlsplit

# Tags the spec lists for formatted bodies (without mx-reply, which the sender never writes any more).
ALLOWED_TAGS = frozenset({
    "font", "del", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "p", "a", "ul", "ol", "sup", "sub", "li",
    "b", "i", "u", "strong", "em", "s", "strike", "code", "hr", "br", "div", "table", "thead", "tbody", "tr",
    "th", "td", "caption", "pre", "span", "img", "details", "summary",
})
VOID_TAGS = frozenset({"br", "hr", "img"})
# Dropped with everything inside them: their text is code, styling or a document of its own, never message text.
DROPPED_WITH_CONTENT = frozenset({
    "script", "style", "template", "iframe", "object", "embed", "noscript", "noembed", "noframes", "textarea",
    "title", "head", "svg", "math", "select", "frameset", "xmp", "plaintext", "applet",
})
LINK_SCHEMES = frozenset({"https", "http", "ftp", "mailto", "magnet"})
BLOCK_TAGS = frozenset({"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "ul", "ol", "table",
                        "tr", "caption", "details", "summary", "hr"})
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_CSS_RGB = re.compile(r"color\s*:\s*rgb\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\)")
_LANGUAGE = re.compile(r"[^a-z0-9+#-]")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True)
class Rendered:
    """A Matrix message body: `formatted` is sanitised HTML, `plain` the faithful text of the same content."""

    formatted: str
    plain: str
    mentioned_ids: tuple[str, ...] = ()  # source user ids the pills point to, in order of appearance
    attachment_ids: tuple[str, ...] = ()  # `<attachment id>` tags met, in order
    image_sources: tuple[str, ...] = ()  # `<img src>` values met (each once), for the caller to resolve


@dataclass
class Hooks:
    """What the caller decides while the markup is walked."""

    mention: Callable[[str, str], tuple[str, str] | None] = lambda at_id, text: None  # -> (pill href, label)
    attachment: Callable[[str], tuple[str, str]] = lambda attachment_id: ("", "")  # -> (html, plain)
    image: Callable[[str], str | None] = lambda src: None  # -> an mxc:// URI to keep it inline, or None to drop it


def safe_link(url: str) -> str | None:
    """The URL when a Matrix client may open it, else None. Control characters and blanks inside a scheme
    ("java\\tscript:") are removed before looking at it, as browsers do."""
    cleaned = _CONTROL.sub("", url)
    try:
        scheme = urlsplit(cleaned).scheme.lower()
    except ValueError:
        return None
    return cleaned if scheme in LINK_SCHEMES else None


def _css_color(style: str) -> str | None:
    match = _CSS_RGB.search(style or "")
    if not match:
        return None
    red, green, blue = (min(255, int(v)) for v in match.groups())
    return f"#{red:02x}{green:02x}{blue:02x}"


@dataclass
class _Open:
    tag: str  # the tag written, or "" when nothing was written for it
    source: str
    plain_after: str = ""
    text_start: int = 0


class _Converter(HTMLParser):
    def __init__(self, hooks: Hooks) -> None:
        super().__init__(convert_charrefs=True)
        self.hooks = hooks
        self.out: list[str] = []
        self.text: list[str] = []
        self.stack: list[_Open] = []
        self.dropping = 0  # depth inside a DROPPED_WITH_CONTENT element
        self.drop_tag: list[str] = []
        self.mentions: list[str] = []
        self.attachments: list[str] = []
        self.images: list[str] = []
        self.lists: list[list[int | None]] = []  # per open list: [next number] or [None] for bullets
        self.cells = 0
        self.mention: tuple[str, str, list[str]] | None = None  # (at id, href, label text parts)
        self.pre = 0
        self.in_cell = 0

    # -- plain text helpers -----------------------------------------------------------------------

    def _newline(self, blank: bool = False) -> None:
        if self.in_cell:  # a table row stays one line of text, whatever its cells hold
            return
        current = "".join(self.text)
        if not current.strip():
            return
        want = "\n\n" if blank else "\n"
        stripped = current.rstrip(" ")
        if stripped.endswith(want) or (not blank and stripped.endswith("\n")):
            self.text = [stripped]
            return
        self.text = [stripped.rstrip("\n") + want]

    def _write(self, markup: str) -> None:
        if self.mention is None:
            self.out.append(markup)

    # -- parser callbacks -------------------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.dropping:
            if tag == self.drop_tag[-1] or tag in DROPPED_WITH_CONTENT:
                self.dropping += 1
                self.drop_tag.append(tag)
            return
        if tag in DROPPED_WITH_CONTENT:
            self.dropping, self.drop_tag = 1, [tag]
            return
        if self.mention is not None:
            return  # a mention's label is text: markup inside <at> is not kept
        values = {name: value or "" for name, value in attrs}
        if tag == "at":
            found = self.hooks.mention(values.get("id", ""), "")
            self.mention = (values.get("id", ""), found[0] if found else "", [])
            return
        if tag == "emoji":
            alt = values.get("alt", "")
            self._write(html.escape(alt, quote=False))
            self.text.append(alt)
            self.stack.append(_Open("", tag))
            return
        if tag == "attachment":
            attachment_id = values.get("id", "")
            self.attachments.append(attachment_id)
            markup, plain = self.hooks.attachment(attachment_id)
            self._write(markup)
            if plain:
                self._newline()
                self.text.append(plain)
                self._newline()
            self.stack.append(_Open("", tag))
            return
        if tag == "img":
            self._image(values)
            return
        if tag == "codeblock":
            language = _LANGUAGE.sub("", values.get("class", "").lower())
            self._newline(blank=True)
            self._write("<pre><code" + (f' class="language-{language}"' if language else "") + ">")
            self.stack.append(_Open("codeblock", tag))
            self.pre += 1
            return
        if tag == "code" and self.stack and self.stack[-1].source == "codeblock":
            self.stack.append(_Open("", tag))  # the codeblock's own <pre><code> already opened it
            return
        if tag not in ALLOWED_TAGS:
            self.stack.append(_Open("", tag))
            return
        self._open_allowed(tag, values)

    def _open_allowed(self, tag: str, values: dict[str, str]) -> None:
        written = [tag]
        if tag == "a":
            href = safe_link(values.get("href", ""))
            if href is None:
                self.stack.append(_Open("", tag))
                return
            written.append(f'href="{html.escape(href)}"')
            label_after = f" ({href.removeprefix('mailto:')})"
            self.stack.append(_Open(tag, tag, plain_after=label_after, text_start=len("".join(self.text))))
            self._write("<" + " ".join(written) + ">")
            return
        if tag in ("font", "span"):
            color = values.get("data-mx-color") or _css_color(values.get("style", "")) or values.get("color", "")
            if _COLOR.match(color or ""):
                written.append(f'data-mx-color="{color.lower()}"')
        if tag == "ol":
            start = values.get("start", "")
            if start.isdigit():
                written.append(f'start="{int(start)}"')
        if tag == "code":
            language = values.get("class", "")
            if language.startswith("language-") and not _LANGUAGE.search(language[9:]):
                written.append(f'class="{language}"')
        if tag in ("ul", "ol"):
            start = values.get("start", "")
            self.lists.append([int(start) if tag == "ol" and start.isdigit() else (1 if tag == "ol" else None)])
        if tag in BLOCK_TAGS:
            self._newline(blank=tag not in ("tr",))
        if tag == "li":
            self._newline()
            depth = max(len(self.lists) - 1, 0)
            marker = "- "
            if self.lists and self.lists[-1][0] is not None:
                marker = f"{self.lists[-1][0]}. "
                self.lists[-1][0] += 1
            self.text.append("  " * depth + marker)
        if tag == "tr":
            self.cells = 0
        if tag in ("td", "th"):
            if self.cells:
                self.text.append(" | ")
            self.cells += 1
            self.in_cell += 1
        if tag == "blockquote":
            self.text.append("> ")
        if tag == "pre":
            self.pre += 1
        if tag == "br":
            self.text.append("\n")
        self._write("<" + " ".join(written) + (" />" if tag in VOID_TAGS else ">"))
        if tag not in VOID_TAGS:
            self.stack.append(_Open(tag, tag))
        elif tag == "hr":
            self._newline(blank=True)

    def _image(self, values: dict[str, str]) -> None:
        src = values.get("src", "")
        if src and src not in self.images:
            self.images.append(src)
        mxc = self.hooks.image(src)
        alt = values.get("alt", "")
        if mxc is None or not mxc.startswith("mxc://"):
            return  # Teams' hosted images travel as m.image events; any other source is not ours to load
        attributes = [f'src="{html.escape(mxc)}"']
        for name in ("width", "height"):
            if values.get(name, "").isdigit():
                attributes.append(f'{name}="{values[name]}"')
        if alt:
            attributes.append(f'alt="{html.escape(alt)}"')
        self._write("<img " + " ".join(attributes) + " />")
        self.text.append(alt or "[image]")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID_TAGS and not self.dropping and tag != "at" or self.dropping and tag == self.drop_tag[-1]:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.dropping:
            if tag == self.drop_tag[-1]:
                self.drop_tag.pop()
                self.dropping -= 1
            return
        if tag == "at" and self.mention is not None:
            at_id, href, parts = self.mention
            self.mention = None
            label = "".join(parts)
            found = self.hooks.mention(at_id, label)
            if found:
                href, label = found
                self.mentions.append(at_id)
                self.out.append(f'<a href="{html.escape(href)}">{html.escape(label, quote=False)}</a>')
            else:
                self.out.append(html.escape(label, quote=False))
            self.text.append(label)
            return
        if self.mention is not None:
            return
        for depth in range(len(self.stack) - 1, -1, -1):  # close what is open up to the matching tag
            if self.stack[depth].source == tag:
                for opened in reversed(self.stack[depth:]):
                    self._close(opened)
                del self.stack[depth:]
                return

    def _close(self, opened: _Open) -> None:
        if opened.tag == "codeblock":
            self._write("</code></pre>")
            self.pre -= 1
            self._newline(blank=True)
            return
        if not opened.tag:
            return
        self._write(f"</{opened.tag}>")
        if opened.tag == "a":
            label = "".join(self.text)[opened.text_start:]
            if opened.plain_after.strip(" ()") != label.strip():
                self.text.append(opened.plain_after)
        if opened.tag in ("ul", "ol") and self.lists:
            self.lists.pop()
        if opened.tag == "pre":
            self.pre -= 1
        if opened.tag in ("td", "th"):
            self.in_cell -= 1
        if opened.tag in BLOCK_TAGS or opened.tag == "li":
            self._newline(blank=opened.tag not in ("li", "tr"))

    def handle_data(self, data: str) -> None:
        if self.dropping:
            return
        if self.mention is not None:
            self.mention[2].append(data)
            return
        self._write(html.escape(data, quote=False))
        self.text.append(data if self.pre else re.sub(r"\s+", " ", data))

    def close(self) -> None:
        super().close()
        self.dropping, self.drop_tag = 0, []  # an element dropped with its content may be left open at the end
        if self.mention is not None:  # an <at> never closed: keep its text
            self.handle_endtag("at")
        for opened in reversed(self.stack):
            self._close(opened)
        self.stack.clear()


def render_html(markup: str, hooks: Hooks | None = None) -> Rendered:
    converter = _Converter(hooks or Hooks())
    converter.feed(markup)
    converter.close()
    plain = "\n".join(line.rstrip() for line in "".join(converter.text).split("\n")).strip()
    plain = re.sub(r"\n{3,}", "\n\n", plain)
    formatted = "".join(converter.out).strip()
    return Rendered(formatted, plain, tuple(converter.mentions), tuple(converter.attachments), tuple(converter.images))
