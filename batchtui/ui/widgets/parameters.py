"""The Parameters tab of a batch task: one field per parameter the task's class declares."""

from __future__ import annotations

import json
from typing import Any

from textual.containers import Horizontal, VerticalScroll
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, Static

from ... import validators
from ..safe_text import safe
from ..validation import ParamValue

TYPED = ("integer", "number", "text_or_list")  # the types whose text is read, and checked as typed


def param_text(value: Any, ptype: str) -> str:
    """A parameter's value as its field shows it."""
    if value is None:
        return ""
    if isinstance(value, list):
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer() and ptype == "number":
        return str(int(value))
    return str(value)


class ParametersForm(VerticalScroll):
    """Built again (``build``) whenever the class changes; its fields' ids carry a generation
    number (``param-{generation}-{name}``), as the old ones are removed after the new are mounted."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.params: list[dict[str, Any]] = []  # the class's declared parameters
        self.class_name: str | None = None
        self.generation = 0
        self._initial: dict[str, Any] = {}

    def field_id(self, name: str) -> str:
        return f"param-{self.generation}-{name}"

    def build(self, class_name: str | None, values: dict[str, Any]) -> None:
        """The fields of class_name's parameters, filled with values."""
        self.remove_children()
        self.generation += 1
        self.class_name = class_name
        self.params = []
        self._initial = {}
        if not class_name:
            self.mount(Static("Choose a class name on the General tab.", classes="dim"))
            return
        from ...classes import describe_class, get_class
        from ...errors import UserError

        try:
            info = describe_class(get_class(class_name))
        except UserError as exc:
            self.mount(Static(safe(f"Class {class_name}: {exc}"), classes="error-line"))
            return
        self.params = info["params"]
        widgets: list[Widget] = [Static(safe(f"{info['name']}: {info['description']}"), classes="dim")]
        if not self.params:
            widgets.append(Static("This class has no parameters.", classes="dim"))
        for p in self.params:
            widgets.append(self._row(p, values.get(p["name"])))
        self.mount_all(widgets)

    def _row(self, p: dict[str, Any], value: Any) -> Horizontal:
        name, ptype = p["name"], p["type"]
        control: Widget
        if ptype == "boolean":
            initial = bool(value if value is not None else p["default"])
            self._initial[name] = initial
            control = Checkbox("", initial, id=self.field_id(name), compact=True, classes="bare")
        else:
            default = p["default"]
            placeholder = "required" if p["required"] else (
                f"default {param_text(default, ptype)}" if default is not None else "not set")
            self._initial[name] = param_text(value, ptype)
            control = Input(param_text(value, ptype), placeholder=placeholder, id=self.field_id(name),
                            compact=True, classes="param-input",
                            validators=[ParamValue(name, ptype)] if ptype in TYPED else None, valid_empty=True)
        label = name + (" *" if p["required"] else "")
        return Horizontal(Label(safe(label), classes="field-label"), control,
                          Label(safe(f"{ptype}. {p['help']}"), classes="dim param-help"), classes="form-row")

    def texts(self) -> dict[str, Any]:
        """What each field holds now (text, or True/False for a check box)."""
        out: dict[str, Any] = {}
        for p in self.params:
            found = self.query(f"#{self.field_id(p['name'])}")
            if not found:  # mounted on the next refresh: what it was built with
                out[p["name"]] = self._initial.get(p["name"])
                continue
            widget = found.first()
            out[p["name"]] = widget.value if isinstance(widget, (Input, Checkbox)) else None
        return out

    def inputs(self) -> list[Input]:
        return [w for p in self.params for w in self.query(f"#{self.field_id(p['name'])}").results(Input)]

    def values(self, texts: dict[str, Any], saved: dict[str, Any]) -> dict[str, Any]:
        """The parameters to save: typed as the class declares them; a field left empty takes the
        class's default; a check box is saved when it differs from the default or was saved before.
        ``validators.Invalid`` names the parameter of a value that cannot be read."""
        params: dict[str, Any] = {}
        for p in self.params:
            name, ptype = p["name"], p["type"]
            raw = texts.get(name)
            if ptype == "boolean":
                if raw is not None and (raw != bool(p["default"]) or name in saved):
                    params[name] = bool(raw)
                continue
            if raw is None or not str(raw).strip():
                continue  # the class's default
            try:
                params[name] = validators.param_text(str(raw), ptype)
            except validators.Invalid as exc:
                raise exc.named(f"Parameter {name}") from None
        return params
