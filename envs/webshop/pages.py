"""The WebShop pages as the original text env shows them.

Each page is a list of visible elements in document order, tagged with what kind of thing they
are (plain text, a button, a product link, an option), which is all the original text modes
read from the rendered HTML:

* ``text`` mode: the element texts joined with `` [SEP] ``, e.g.
  ``Instruction: [SEP] ... [SEP] Back to Search [SEP] Page 1 (Total results: 50) [SEP] Next > ...``
* ``text_rich`` mode: buttons as ``[button] X [button_]``; selected options and visited products
  as ``[clicked button] X [clicked button_]`` with "You have clicked X." put in front.

The clickables of a page are its buttons and product links (lower-cased) and its option values,
as the original's ``get_available_actions``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from envs.webshop.data import Product

BACK_TO_SEARCH = "Back to Search"
NEXT_PAGE = "Next >"
PREV_PAGE = "< Prev"
BUY_NOW = "Buy Now"
SEARCH = "Search"
SUB_PAGES = ("Description", "Features", "Reviews", "Attributes")
PAGE_SIZE = 10
OBSERVATION_MODES = ("text", "text_rich")


@dataclass(frozen=True)
class Element:
    """One visible piece of a page; ``kind`` is text | button | product | option."""

    kind: str
    text: str
    #: option group of an option element
    group: str = ""
    #: a selected option or an already visited product
    clicked: bool = False


@dataclass(frozen=True)
class Page:
    name: str
    elements: tuple[Element, ...]

    def clickables(self) -> dict[str, Element]:
        """Lower-cased clickable text -> element (later option groups win, as in the original)."""
        out: dict[str, Element] = {}
        for el in self.elements:
            if el.kind in ("button", "product"):
                out[el.text.lower()] = el
            elif el.kind == "option":
                out[el.text] = el
        return out

    def has_search_bar(self) -> bool:
        return self.name == "search"

    def render(self, mode: str = "text") -> str:
        if mode == "text":
            return " [SEP] ".join(t for t in (el.text.strip() for el in self.elements) if t)
        return _render_rich(self.elements)


def _render_rich(elements: Sequence[Element]) -> str:
    lines, clicked = [], []
    for el in elements:
        if not el.text.strip():
            continue
        if el.kind == "button":
            lines.append(f"[button] {el.text} [button_]")
        elif el.kind == "option" and el.clicked:
            lines.append(f"  [clicked button] {el.text} [clicked button_]")
            clicked.append(f"You have clicked {el.text}.")
        elif el.kind == "option":
            lines.append(f"  [button] {el.text} [button_]")
        elif el.kind == "product":
            tag = "clicked button" if el.clicked else "button"
            lines.append(f"\n[{tag}] {el.text} [{tag}_]")
        else:
            lines.append(el.text)
    return "".join(f"{c}\n" for c in reversed(clicked)) + "".join(f"{line}\n" for line in lines)


def _text(*texts: str) -> list[Element]:
    return [Element("text", t) for t in texts]


def _header(instruction: str) -> list[Element]:
    return [*_text("Instruction:", instruction), Element("button", BACK_TO_SEARCH)]


def search_page(instruction: str) -> Page:
    return Page("search", (*_text("WebShop", "Instruction:", instruction), Element("button", SEARCH)))


def results_page(
    instruction: str, products: Sequence[Product], *, page_no: int, total: int, visited: set[str]
) -> Page:
    """``products`` are the hits on this page (at most :data:`PAGE_SIZE`)."""
    els = _header(instruction)
    els += _text(f"Page {page_no} (Total results: {total})")
    if page_no > 1:
        els.append(Element("button", PREV_PAGE))
    els.append(Element("button", NEXT_PAGE))
    for p in products:
        els.append(Element("product", p.asin, clicked=p.asin in visited))
        els += _text(p.title, p.price_tag)
    return Page("results", tuple(els))


def item_page(instruction: str, product: Product, *, selected: Mapping[str, str], show_attrs: bool) -> Page:
    els = [*_header(instruction), Element("button", PREV_PAGE)]
    for name, values in product.options.items():
        els += _text(name)
        els += [Element("option", v, group=name, clicked=selected.get(name) == v) for v in values]
    els += _text(product.title, f"Price: {product.price_tag}", f"Rating: {product.rating}")
    buttons = SUB_PAGES if show_attrs else SUB_PAGES[:3]
    els += [Element("button", b) for b in buttons]
    els.append(Element("button", BUY_NOW))
    return Page("item", tuple(els))


def sub_page(instruction: str, product: Product, which: str) -> Page:
    els = [*_header(instruction), Element("button", PREV_PAGE)]
    if which == "Description":
        els += _text(product.description)
    elif which == "Features":
        els += _text(*product.bullet_points)
    elif which == "Reviews":
        for r in product.reviews:
            els += _text(f'"{r["title"]}"', str(r["score"]), r["body"])
    else:  # Attributes
        els += _text(*product.attributes, product.category, product.query, product.product_category)
    return Page(f"sub:{which}", tuple(els))


def done_page(reward: float, asin: str, options: Mapping[str, str]) -> Page:
    chosen = ", ".join(f"{k}: {v}" for k, v in options.items()) or "none"
    return Page(
        "done",
        tuple(
            _text(
                "Thank you for shopping with us!",
                f"Purchased: {asin} (options: {chosen})",
                "Your score (min 0.0, max 1.0)",
                f"{reward}",
            )
        ),
    )
