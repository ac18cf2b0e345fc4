"""Flame graphs in pure Python: folded stacks (`a;b;c N`, the stackcollapse
form) and an interactive SVG drawn as flamegraph.pl draws one, with no
external tool.

The SVG: one box per frame, the root (`all`) at the bottom and callees
above their callers; a box's width is its share of the total (samples,
or microseconds off CPU), siblings in name order, identical paths merged.
Embedded JavaScript makes it interactive as flamegraph.pl's: hovering a
frame shows its name and share below the graph (the title element shows
it too), clicking zooms into it (Reset Zoom or a click on the root goes
back), Search (or Ctrl-F) highlights the frames matching a regular
expression and shows their share, Ctrl-I makes the search case
insensitive. Used by profile and offcputime (--folded, --svg FILE).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from xml.sax.saxutils import escape

from pydtrace.lang.dataclass import dataclass, field

WIDTH = 1200
FRAME_HEIGHT = 16
FONT_SIZE = 12
FONT_WIDTH = 0.59  # average character width, in font sizes (flamegraph.pl's)
XPAD = 10
TOP = FONT_SIZE * 3  # the title and the buttons
BOTTOM = FONT_SIZE * 2 + 10  # the details line
MIN_WIDTH = 0.1  # frames narrower than this (pixels) are not drawn


def fold(stacks: Iterable[tuple[Sequence[str], int]]) -> dict[str, int]:
    """Folded lines (frames outermost first, joined by ';') and their totals;
    a ';' in a frame's name becomes ':' so that it stays one frame."""
    rows: dict[str, int] = {}
    for frames, n in stacks:
        if n <= 0 or not frames:
            continue
        line = ";".join(f.replace(";", ":").replace("\n", " ") for f in frames)
        rows[line] = rows.get(line, 0) + n
    return rows


def folded_text(rows: dict[str, int]) -> str:
    """The folded lines as flamegraph.pl reads them, in name order."""
    return "".join(f"{line} {rows[line]}\n" for line in sorted(rows))


def parse_folded(text: str) -> dict[str, int]:
    """`a;b;c N` lines back to rows (a line without a count is skipped)."""
    rows: dict[str, int] = {}
    for line in text.splitlines():
        stack, _, n = line.rstrip().rpartition(" ")
        if stack and n.isdigit():
            rows[stack] = rows.get(stack, 0) + int(n)
    return rows


@dataclass
class Frame:
    name: str
    value: int = 0
    children: dict[str, Frame] = field(default_factory=dict)


def tree(rows: dict[str, int]) -> Frame:
    """The call tree of folded rows under a root named `all`."""
    root = Frame("all")
    for line, n in rows.items():
        root.value += n
        node = root
        for name in line.split(";"):
            node = node.children.setdefault(name, Frame(name))
            node.value += n
    return root


def _color(name: str) -> str:
    """flamegraph.pl's "hot" palette, the shade from the name (stable across runs)."""
    h = zlib.crc32(name.encode("utf-8", "replace"))
    v1, v2, v3 = (h & 0xFF) / 255, ((h >> 8) & 0xFF) / 255, ((h >> 16) & 0xFF) / 255
    return f"rgb({205 + int(50 * v3)},{int(230 * v1)},{int(55 * v2)})"


def label(name: str, width: float) -> str:
    """The text that fits in a box: the name, cut with '..', or nothing."""
    fits = int((width - 3) / (FONT_SIZE * FONT_WIDTH))
    if fits < 3:
        return ""
    return name if len(name) <= fits else name[: fits - 2] + ".."


def _xml(text: str) -> str:
    clean = "".join(ch if ch >= " " or ch in "\t" else "?" for ch in text)
    return escape(clean, {'"': "&quot;"})


def _depth(node: Frame) -> int:
    return 1 + max((_depth(c) for c in node.children.values()), default=0)


def svg(rows: dict[str, int], title: str, countname: str = "samples") -> str:
    """The flame graph of folded rows as an SVG document."""
    root = tree(rows)
    total = root.value
    levels = _depth(root) if total else 1
    height = levels * FRAME_HEIGHT + TOP + BOTTOM
    per = (WIDTH - 2 * XPAD) / total if total else 0.0
    out = [
        '<?xml version="1.0" standalone="no"?>\n',
        '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
        '"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n',
        f'<svg version="1.1" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        'xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'onload="init(evt)" data-countname="{_xml(countname)}" data-total="{total}">\n',
        '<defs><linearGradient id="background" y1="0" y2="1" x1="0" x2="0">'
        '<stop stop-color="#eeeeee" offset="5%"/><stop stop-color="#eeeeb0" offset="95%"/>'
        "</linearGradient></defs>\n",
        '<style type="text/css">text { font-family: Verdana, sans-serif; font-size: '
        f"{FONT_SIZE}px; fill: rgb(0,0,0); }} #title {{ text-anchor: middle; font-size: "
        f"{FONT_SIZE + 5}px; }} .f:hover {{ stroke: black; stroke-width: 0.5; cursor: pointer; }}"
        " .hide { display: none; } .parent { opacity: 0.5; }</style>\n",
        f'<script type="text/ecmascript"><![CDATA[\n{_SCRIPT}]]></script>\n',
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="url(#background)"/>\n',
        f'<text id="title" x="{WIDTH / 2:.2f}" y="{FONT_SIZE * 2}">{_xml(title)}</text>\n',
        f'<text id="details" x="{XPAD}" y="{height - FONT_SIZE / 2:.2f}"> </text>\n',
        f'<text id="unzoom" class="hide" x="{XPAD}" y="{FONT_SIZE * 2}">Reset Zoom</text>\n',
        f'<text id="search" x="{WIDTH - XPAD - 100}" y="{FONT_SIZE * 2}">Search</text>\n',
        f'<text id="matched" x="{WIDTH - XPAD - 100}" y="{height - FONT_SIZE / 2:.2f}"> </text>\n',
        '<g id="frames">\n',
    ]

    def draw(node: Frame, depth: int, start: int) -> None:
        width = node.value * per
        if width < MIN_WIDTH:
            return
        x = XPAD + start * per
        y = height - BOTTOM - (depth + 1) * FRAME_HEIGHT
        share = 100.0 * node.value / total
        info = f"{node.name} ({node.value:,} {countname}, {share:.2f}%)"
        out.append(
            f'<g class="f" data-depth="{depth}"><title>{_xml(info)}</title>'
            f'<rect x="{x:.2f}" y="{y}" width="{width:.2f}" height="{FRAME_HEIGHT - 1}" '
            f'fill="{"rgb(230,230,230)" if depth == 0 else _color(node.name)}" rx="2" ry="2"/>'
            f'<text x="{x + 3:.2f}" y="{y + FRAME_HEIGHT - 5}">{_xml(label(node.name, width))}</text></g>\n'
        )
        at = start
        for name in sorted(node.children):
            child = node.children[name]
            draw(child, depth + 1, at)
            at += child.value

    if total:
        draw(root, 0, 0)
    out.append("</g>\n</svg>\n")
    return "".join(out)


# The interactive part: zoom, search, details. Frames are <g class="f"> with
# a <title> ("name (N unit, P%)"), a <rect> and a <text>; data-depth is the
# distance from the root. The original geometry is kept in data-x/data-w.
_SCRIPT = r"""
"use strict";
var svg, details, matchedtxt, searchbtn, unzoombtn, frames, searching = null, ignorecase = false;
var XPAD = 10, FONTW = 0.59 * 12, WIDTH = 0;
function init(evt) {
	svg = document.documentElement;
	WIDTH = parseFloat(svg.getAttribute("width"));
	details = document.getElementById("details").firstChild;
	matchedtxt = document.getElementById("matched");
	searchbtn = document.getElementById("search");
	unzoombtn = document.getElementById("unzoom");
	frames = Array.prototype.slice.call(document.querySelectorAll("g.f"));
	frames.forEach(function (g) {
		var r = g.querySelector("rect");
		r.setAttribute("data-x", r.getAttribute("x"));
		r.setAttribute("data-w", r.getAttribute("width"));
		g.addEventListener("mouseover", function () { details.nodeValue = name_of(g); });
		g.addEventListener("mouseout", function () { details.nodeValue = " "; });
		g.addEventListener("click", function () {
			if (parseInt(g.getAttribute("data-depth"), 10) === 0) unzoom(); else zoom(g);
		});
	});
	unzoombtn.addEventListener("click", unzoom);
	searchbtn.addEventListener("click", search_prompt);
	window.addEventListener("keydown", function (e) {
		if (e.keyCode === 114 || (e.ctrlKey && e.keyCode === 70)) { e.preventDefault(); search_prompt(); }
		else if (e.ctrlKey && e.keyCode === 73) { e.preventDefault(); ignorecase = !ignorecase; if (searching) search(searching); }
	});
}
function title_of(g) { return g.querySelector("title").textContent; }
function name_of(g) { return title_of(g); }
function func_of(g) { var t = title_of(g); return t.substring(0, t.lastIndexOf(" (")); }
function orig(g) {
	var r = g.querySelector("rect");
	return { x: parseFloat(r.getAttribute("data-x")), w: parseFloat(r.getAttribute("data-w")),
		d: parseInt(g.getAttribute("data-depth"), 10) };
}
function fit_text(g) {
	var r = g.querySelector("rect"), t = g.querySelector("text");
	var w = parseFloat(r.getAttribute("width")), name = func_of(g);
	var n = Math.floor((w - 3) / FONTW);
	t.setAttribute("x", parseFloat(r.getAttribute("x")) + 3);
	if (n < 3) { t.textContent = ""; return; }
	t.textContent = name.length <= n ? name : name.substring(0, n - 2) + "..";
}
function zoom(g) {
	var z = orig(g), ratio = (WIDTH - 2 * XPAD) / z.w, eps = 0.0001;
	unzoombtn.classList.remove("hide");
	frames.forEach(function (e) {
		var o = orig(e), r = e.querySelector("rect");
		e.classList.remove("hide", "parent");
		if (o.d < z.d && o.x <= z.x + eps && o.x + o.w >= z.x + z.w - eps) {
			e.classList.add("parent");  /* an ancestor: across the whole width */
			r.setAttribute("x", XPAD); r.setAttribute("width", WIDTH - 2 * XPAD);
		} else if (o.d >= z.d && o.x >= z.x - eps && o.x + o.w <= z.x + z.w + eps) {
			r.setAttribute("x", XPAD + (o.x - z.x) * ratio); r.setAttribute("width", o.w * ratio);
		} else {
			e.classList.add("hide");
		}
		fit_text(e);
	});
	if (searching) search(searching);
}
function unzoom() {
	unzoombtn.classList.add("hide");
	frames.forEach(function (e) {
		var o = orig(e), r = e.querySelector("rect");
		e.classList.remove("hide", "parent");
		r.setAttribute("x", o.x); r.setAttribute("width", o.w);
		fit_text(e);
	});
	if (searching) search(searching);
}
function search_prompt() {
	if (searching) { reset_search(); return; }
	var term = prompt("Search for (regular expression):" + (ignorecase ? " (case insensitive; Ctrl-I toggles)" : " (Ctrl-I: case insensitive)"), "");
	if (term) search(term);
}
function reset_search() {
	searching = null;
	frames.forEach(function (e) {
		var r = e.querySelector("rect");
		if (r.hasAttribute("data-fill")) { r.setAttribute("fill", r.getAttribute("data-fill")); r.removeAttribute("data-fill"); }
	});
	searchbtn.textContent = "Search";
	matchedtxt.textContent = " ";
}
function search(term) {
	var re = new RegExp(term, ignorecase ? "i" : ""), spans = [], root = 0;
	reset_search();
	searching = term;
	frames.forEach(function (e) {
		var o = orig(e), r = e.querySelector("rect");
		if (o.d === 0) root = o.w;
		if (e.classList.contains("hide") || !re.test(func_of(e))) return;
		r.setAttribute("data-fill", r.getAttribute("fill"));
		r.setAttribute("fill", "rgb(230,0,230)");
		spans.push([o.x, o.x + o.w]);
	});
	/* the share matched: the union of the matched spans (a match inside a match counts once) */
	spans.sort(function (a, b) { return a[0] - b[0] || b[1] - a[1]; });
	var covered = 0, end = -1;
	spans.forEach(function (s) {
		if (s[0] >= end) { covered += s[1] - s[0]; end = s[1]; }
		else if (s[1] > end) { covered += s[1] - end; end = s[1]; }
	});
	searchbtn.textContent = "Reset Search";
	matchedtxt.textContent = "Matched: " + (root ? (100 * covered / root).toFixed(1) : "0.0") + "%";
}
"""
