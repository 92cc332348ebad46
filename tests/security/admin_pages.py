"""Fill in Django admin forms like a browser: read the values a rendered form would submit
(text, hidden, checked boxes, selected options, textareas), change some, post them back."""

from __future__ import annotations

from html.parser import HTMLParser

_SKIPPED_INPUTS = frozenset({"submit", "button", "image", "reset", "file"})
_LOGOUT_FORM = "logout-form"


class _FormValues(HTMLParser):
    def __init__(self, form_id: str | None) -> None:
        super().__init__(convert_charrefs=True)
        self.wanted = form_id
        self.values: dict[str, list[str]] = {}
        self.done = False
        self._inside = False
        self._select: str | None = None
        self._textarea: str | None = None
        self._text = ""

    def _form_matches(self, attrs: dict[str, str | None]) -> bool:
        form_id = attrs.get("id") or ""
        return form_id == self.wanted if self.wanted else form_id != _LOGOUT_FORM

    def _input(self, attrs: dict[str, str | None]) -> None:
        name, kind = attrs.get("name"), (attrs.get("type") or "text").lower()
        if not name or kind in _SKIPPED_INPUTS:
            return
        if kind in ("checkbox", "radio") and "checked" not in attrs:
            return
        self.values.setdefault(name, []).append(
            attrs.get("value") or ("on" if kind == "checkbox" else "")
        )

    def handle_starttag(self, tag: str, attr_list: list[tuple[str, str | None]]) -> None:
        attrs = dict(attr_list)
        if tag == "form" and not self.done and not self._inside:
            self._inside = self._form_matches(attrs)
        elif not self._inside:
            return
        elif tag == "input":
            self._input(attrs)
        elif tag == "select":
            self._select = attrs.get("name")
        elif tag == "option" and self._select and "selected" in attrs:
            self.values.setdefault(self._select, []).append(attrs.get("value") or "")
        elif tag == "textarea" and attrs.get("name"):
            self._textarea, self._text = attrs["name"], ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._inside:
            self._inside, self.done = False, True
        elif tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea:
            # Browsers drop the one newline Django writes after the opening tag.
            text = self._text[1:] if self._text.startswith("\n") else self._text
            self.values.setdefault(self._textarea, []).append(text)
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self._text += data


def form_values(html: str, *, form_id: str | None = None) -> dict[str, list[str]]:
    """What the page's form (``form_id``, else the first form that is not the logout button)
    would submit as it stands, each name with its list of values."""
    parser = _FormValues(form_id)
    parser.feed(html)
    assert parser.done, f"no form {form_id or ''} on the page"
    return parser.values
