"""A block's JSON as a small HTML fragment for email templates (every value escaped)."""

from __future__ import annotations

from html import escape

import orjson


def _label(key: str) -> str:
    return escape(key.replace("_", " ").replace("-", " "))


def render_html(content: bytes) -> bytes:
    block = orjson.loads(content)
    parts = [f'<div class="nbo-block nbo-{escape(block["block"])}" '
             f'data-decision-id="{escape(block["decision_id"])}">']
    offer = block.get("offer")
    if offer:
        parts.append(f'<div class="nbo-offer" data-offer-id="{escape(offer["offer_id"])}">'
                     f'{_label(offer["offer_id"])} ({_label(offer["kind"])}, '
                     f'{offer["value"]:g})</div>')
    if block["categories"]:
        items = "".join(f'<li data-category="{escape(c)}">{_label(c)}</li>'
                        for c in block["categories"])
        parts.append(f'<ul class="nbo-categories">{items}</ul>')
    if block.get("items"):
        items = "".join(f'<li data-item-id="{escape(i)}">{escape(i)}</li>' for i in block["items"])
        parts.append(f'<ul class="nbo-items">{items}</ul>')
    if block["brands"]:
        items = "".join(f'<li data-brand="{escape(b)}">{escape(b)}</li>' for b in block["brands"])
        parts.append(f'<ul class="nbo-brands">{items}</ul>')
    parts.append("</div>")
    return "".join(parts).encode()
