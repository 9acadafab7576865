"""The widgets every tab uses, and the page's style.

Every field a visitor fills in is declared and checked in `forms.py`; these widgets show a field
(its label, default and allowed range) and hand its value to the handler exactly as it was sent,
so the handler's check, not gradio's, says what is wrong with it.
"""

from __future__ import annotations

from dataclasses import fields

import gradio as gr

from .fields import NumberField, TextField

CSS = """
.demo-banner { background: #fff4e5 !important; border: 1px solid #f0b35b !important; border-radius: 8px;
               padding: 10px 16px !important; }
.demo-banner > *, .demo-banner .prose { border: none !important; background: transparent !important; }
.demo-banner p { margin: 0; }
.notice { background: #fdecec !important; border: 1px solid #e8a09e !important; border-radius: 8px;
          padding: 8px 14px !important; }
.model-line { opacity: 0.8; font-size: 0.92em; }
.status-box { min-height: 2.2em; }
.tips { font-size: 0.92em; opacity: 0.85; margin-top: 12px !important; }
.estimate-box { border-left: 3px solid #8c9eff; padding-left: 10px !important; }
#image-actions { align-items: end; }
#image-actions button { flex-grow: 0; min-width: 0; }
#stop-btn:not([disabled]) { background: #d64541 !important; border-color: #b83330 !important; color: white !important; }
#stop-btn[disabled] { background: #f6d5d4 !important; border-color: #eebcbb !important; color: #9c4a48 !important; }
footer { display: none !important; }
/* A phone (390 px): thumbnails two by two with whole captions, all of them shown; tables scroll. */
@media (max-width: 640px) {
  #thumbnails, #thumbnails .grid-wrap { height: auto !important; max-height: none !important; overflow-y: visible !important; }
  #thumbnails .grid-container { grid-template-columns: repeat(2, minmax(0, 1fr)) !important;
                                grid-template-rows: none !important; }
  #thumbnails .caption-label { white-space: normal !important; max-width: 94% !important; }
  #concept-table .table-wrap { overflow-x: auto !important; }
  #concept-table table { min-width: 100%; width: max-content; }
}
"""

# While a run is going (Stop is enabled only then), the browser asks before the page is left. The
# run itself would go on (see runs.py), but a visitor who closes the tab by mistake should know.
# And a new action (a click on a button, Enter in a field) closes the toasts of earlier ones:
# gradio groups toasts of a kind and stops their timers once two are grouped, so they would pile up.
HEAD = """<script>
window.addEventListener("beforeunload", (event) => {
  if (document.querySelector("#stop-btn:not([disabled])")) { event.preventDefault(); event.returnValue = ""; }
});
function closeEarlierToasts(event) {
  if (event.target.closest("[data-testid='toast-body']")) return;
  if (event.type === "keydown" && event.key !== "Enter") return;
  if (event.type === "click" && !event.target.closest("button")) return;
  document.querySelectorAll("[data-testid='toast-close']").forEach((button) => button.click());
}
window.addEventListener("click", closeEarlierToasts, true);
window.addEventListener("keydown", closeEarlierToasts, true);
</script>"""


def as_sent(component: gr.components.Component, field: NumberField | None = None) -> gr.components.Component:
    """`component`, with its value reaching the handler exactly as the page or the API sent it,
    and described to the API by what `field` allows.

    gradio's sliders, dropdowns and radios check values themselves and answer a bad one with a
    generic "Error" toast; `forms.py` checks every field instead and names it. (Set on the
    instance: a subclass of a gradio component makes gradio write a .pyi file beside this one.)"""
    component.preprocess = lambda payload: payload
    if field is not None:
        component.api_info = lambda: {"type": "integer" if field.integer else "number", "description": field.allowed}
    return component


def number_choices(dropdown: gr.Dropdown) -> gr.Dropdown:
    """A dropdown of numbers, described to the API as numbers (gradio says "string")."""
    values = [value for _, value in dropdown.choices]
    dropdown.api_info = lambda: {"type": "integer", "enum": values}
    return as_sent(dropdown)


def number_box(field: NumberField, value: float | None = None, **kwargs) -> gr.Number:
    """A number box for `field`: its label, its default, and its allowed range as the hint. It
    has no minimum or maximum of its own: forms.py says what is wrong with a value."""
    return as_sent(gr.Number(value=field.default if value is None else value, label=kwargs.pop("label", field.label),
                             info=kwargs.pop("info", field.allowed), **kwargs), field)


def slider(field: NumberField, value: float, step: float = 1, **kwargs) -> gr.Slider:
    return as_sent(gr.Slider(field.minimum, field.maximum, value=value, step=step, label=field.label, **kwargs), field)


def textbox(field: TextField, **kwargs) -> gr.Textbox:
    """A text box for `field`, which the page stops at the field's length limit."""
    return gr.Textbox(label=kwargs.pop("label", field.label), max_length=field.max_chars, **kwargs)


def by_name(form) -> dict[str, gr.components.Component]:
    """A form record's components by field name: a button's `inputs_kwargs`, so each value
    reaches the handler's parameter of the same name whatever the order."""
    return {f.name: getattr(form, f.name) for f in fields(form)}
