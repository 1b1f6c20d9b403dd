"""Golden texts of news items, from Python's standard library only (xml.etree for the XML layer,
html.parser with convert_charrefs for the HTML layer, i.e. html.unescape's HTML5 entity table).

    python3 tests/reference/html_text.py fragment '<p>Caf&eacute;</p>' ...
    python3 tests/reference/html_text.py feed FILE.xml

`fragment` prints the text of each HTML fragment; `feed` prints, per item, JSON [title, summary].
The rules are the ones README.md states: RSS titles and descriptions are HTML; Atom text
constructs follow their type (text: as is; html: HTML; xhtml: the XML text); script/style are
dropped; block elements and <br> separate words; whitespace (also U+00A0) collapses to one space.
"""
import json
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

DROPPED = {"script", "style", "noscript", "template", "iframe", "object", "head", "title"}
BREAKING = set(
    "address article aside blockquote br caption dd div dl dt figcaption figure footer h1 h2 h3 "
    "h4 h5 h6 header hr img li main nav ol p pre section table tbody td tfoot th thead tr ul".split()
)
ATOM = "{http://www.w3.org/2005/Atom}"


def collapse(s):
    return " ".join(s.split())


class Text(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in DROPPED:
            self.skip += 1
        elif tag in BREAKING:
            self.out.append(" ")

    def handle_startendtag(self, tag, attrs):
        if tag in BREAKING:
            self.out.append(" ")

    def handle_endtag(self, tag):
        if tag in DROPPED:
            self.skip = max(0, self.skip - 1)
        elif tag in BREAKING:
            self.out.append(" ")

    def handle_data(self, data):
        if not self.skip:
            self.out.append(data)


def html_text(fragment):
    p = Text()
    p.feed(fragment)
    p.close()
    return collapse("".join(p.out))


def xhtml_text(el, out):
    """The text of an XHTML element tree (already XML-decoded), with the same tag rules."""
    for child in el:
        name = child.tag.rsplit("}", 1)[-1]
        if name not in DROPPED:
            if name in BREAKING:
                out.append(" ")
            out.append(child.text or "")
            xhtml_text(child, out)
            if name in BREAKING:
                out.append(" ")
        out.append(child.tail or "")


def atom_text(el):
    if el is None:
        return ""
    kind = el.get("type", "text")
    if kind == "xhtml":
        out = []
        xhtml_text(el, out)
        return collapse("".join(out))
    if kind in ("html", "text/html"):
        return html_text(el.text or "")
    return collapse(el.text or "")


def feed(path):
    root = ET.parse(path).getroot()
    out = []
    if root.tag == ATOM + "feed":
        for e in root.iter(ATOM + "entry"):
            summary = e.find(ATOM + "summary")
            if summary is None:
                summary = e.find(ATOM + "content")
            out.append([atom_text(e.find(ATOM + "title")), atom_text(summary)])
    else:
        for item in root.iter("item"):
            title = item.findtext("title") or ""
            desc = item.findtext("description")
            if desc is None:
                desc = item.findtext("{http://purl.org/rss/1.0/modules/content/}encoded") or ""
            out.append([html_text(title), html_text(desc)])
    return out


if __name__ == "__main__":
    if sys.argv[1] == "fragment":
        for a in sys.argv[2:]:
            print(json.dumps(html_text(a), ensure_ascii=True))
    else:
        for row in feed(sys.argv[2]):
            print(json.dumps(row, ensure_ascii=True))
