"""Rendering template content with jinja2, sandboxed and bounded.

* `SandboxedEnvironment`: attribute access to internals (`__class__`, `__globals__`, ...) and
  unsafe calls raise `SecurityError`, reported as 422 with the field it happened in.
* Autoescape for `html` only; `subject`, `text` and webhook payload strings are not escaped.
* Undefined merge fields render as empty and are reported (never a crash); `default` works.
* Limits: the output of one field is capped (`MAX_OUTPUT`), string/list repetition is capped,
  `range` is capped, and a render is stopped after `MAX_SECONDS` of template code.
"""

from __future__ import annotations

import functools
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from jinja2 import ChainableUndefined, Template, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

MAX_OUTPUT = 256 * 1024  # characters per rendered field
MAX_SECONDS = 1.0
MAX_RANGE = 10_000
MAX_REPEAT = 100_000  # length of a `*` result

# Merge fields a template may use (see docs/templates.md).
CONTACT_FIELDS = frozenset(
    {"id", "email", "external_id", "phone", "timezone", "locale", "attributes"}
)
CAMPAIGN_FIELDS = frozenset({"id", "name"})
OPEN_NAMES = frozenset({"attributes"})  # any key below is allowed
KNOWN_NAMES = frozenset({"contact", "campaign", "attributes", "unsubscribe_url", "link"})
_TEMPLATE_FILE = "<template>"
_DIGITS = re.compile(r"\d+")
# `%`-style conversion specs and `{...}` replacement fields, where widths live.
_FORMAT_FIELDS = re.compile(r"%[-#0 +]*\d*(?:\.\d+)?|\{[^{}]*\}")


class RenderError(Exception):
    """A template that does not parse or fails while rendering; `pointer` is the field."""

    def __init__(self, pointer: str, message: str, code: str) -> None:
        super().__init__(message)
        self.pointer = pointer
        self.message = message
        self.code = code


# Undefined names met by the render in progress (one list per render, per task/thread).
_SEEN: ContextVar[list[str] | None] = ContextVar("herald_template_undefined", default=None)


class _Recording(ChainableUndefined):
    """Renders as empty and notes its name for the render in progress."""

    __slots__ = ()

    def __str__(self) -> str:
        if self._undefined_exception is SecurityError:
            self._fail_with_undefined_error()
        name = self._undefined_name
        seen = _SEEN.get()
        if name is not None and seen is not None and name not in seen:
            seen.append(str(name))
        return ""

    __html__ = __str__


def _bounded_number(value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_REPEAT:
        raise TemplateError(f"numeric arguments are limited to {MAX_REPEAT}")


def _bounded_format(spec: Any) -> None:
    """Widths and precisions in `%` / `format` / `str.format` strings are bounded too."""
    if not isinstance(spec, str):
        return
    fields = [m.group(0) for m in _FORMAT_FIELDS.finditer(spec)]
    if any(int(n) > MAX_REPEAT for field in fields for n in _DIGITS.findall(field)):
        raise TemplateError(f"format widths are limited to {MAX_REPEAT}")


def _guarded(function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter whose arguments (not the filtered value itself) are size-bounded."""
    skip = 2 if hasattr(function, "jinja_pass_arg") else 1  # context/env, then the value

    @functools.wraps(function)  # keeps `jinja_pass_arg`
    def guarded(*args: Any, **kwargs: Any) -> Any:
        for value in (*args[skip:], *kwargs.values()):
            _bounded_number(value)
        return function(*args, **kwargs)

    return guarded


class _Env(SandboxedEnvironment):
    """Sandbox plus size guards: numeric arguments of string methods and of filters
    (`ljust`, `center`, `indent`, ...) and format widths are capped, and so are `*` and `**`
    results. Values themselves are not (`{{ 2500000 | round }}` is fine)."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "%":
            _bounded_format(left)
            return left % right
        if operator == "**":
            if isinstance(right, int) and abs(right) > 64:
                raise TemplateError("exponent too large")
            return left**right
        for count, sized in ((right, left), (left, right)):
            if (
                isinstance(count, int)
                and isinstance(sized, str | list | tuple)
                and len(sized) * count > MAX_REPEAT
            ):
                raise TemplateError("repetition result too large")
        return left * right

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        # `str.format` arrives wrapped by the sandbox (`__wrapped__` is the bound method).
        bound = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)
        if isinstance(bound, str):
            _bounded_format(bound)
            for value in (*args, *kwargs.values()):  # 'x'.ljust(n), 'x'.zfill(n), ...
                _bounded_number(value)
        return super().call(__context, __obj, *args, **kwargs)


def _safe_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise TemplateError(f"range() is limited to {MAX_RANGE} items")
    return rng


def _format_filter(original: Callable[..., Any]) -> Callable[..., Any]:
    def format_(value: Any, *args: Any, **kwargs: Any) -> Any:
        _bounded_format(value)
        return original(value, *args, **kwargs)

    return format_


def _finalize(value: Any) -> Any:
    return "" if value is None else value


def _environment(autoescape: bool, undefined: type[ChainableUndefined]) -> _Env:
    env = _Env(autoescape=autoescape, undefined=undefined, finalize=_finalize)
    env.globals["range"] = _safe_range
    filters = {name: _guarded(f) for name, f in env.filters.items() if name != "format"}
    env.filters = {**filters, "format": _format_filter(env.filters["format"])}
    return env


_PARSER = _Env()
# Built once: environments are costly (filters wrapped), and compiled templates are cached
# by source, so a send renders without parsing or compiling anything.
_ENVIRONMENTS = {flag: _environment(flag, _Recording) for flag in (False, True)}
_COMPILED_CACHE_SIZE = 2048
_MARKERS = re.compile(r"\{[{%#]")
# Only loops and macros (which may recurse) can make a render run long: without them the
# work is linear in the template and its bounded inputs, so the (costly) line tracer that
# enforces MAX_SECONDS is only installed for templates that have them.
_LOOPING = re.compile(r"\{%-?\+?\s*(for|macro|call)\b")


@functools.lru_cache(maxsize=_COMPILED_CACHE_SIZE)
def _compiled(is_html: bool, source: str) -> Template:
    return _ENVIRONMENTS[is_html].from_string(source)


def link(url: Any) -> Any:
    """Hook for tracked links: later rewrites `url` through the click tracker."""
    return url


@dataclass
class RenderContext:
    contact: dict[str, Any] = field(default_factory=dict)
    campaign: dict[str, Any] = field(default_factory=dict)
    unsubscribe_url: str = "https://herald.invalid/unsubscribe/preview"
    link: Callable[[Any], Any] = link

    def variables(self) -> dict[str, Any]:
        # Missing (null) fields are left out: they render empty, are reported, and `default`
        # applies to them.
        contact = {k: v for k, v in self.contact.items() if v is not None}
        attributes = contact.get("attributes") or {}
        contact["attributes"] = attributes
        return {
            "contact": contact,
            "attributes": attributes,
            "campaign": dict(self.campaign),
            "unsubscribe_url": self.unsubscribe_url,
            "link": self.link,
        }


@dataclass
class Rendered:
    content: dict[str, Any]
    undefined_fields: list[str]


# -- content fields ---------------------------------------------------------------------------


def template_fields(content: dict[str, Any]) -> Iterator[tuple[str, str, bool]]:
    """(pointer, source, is_html) for every templated string of a content object."""
    for key, value in content.items():
        if key == "payload":
            yield from _payload_fields(value, "/payload", 0)
        elif isinstance(value, str):
            yield f"/{key}", value, key == "html"


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _payload_fields(value: Any, pointer: str, depth: int) -> Iterator[tuple[str, str, bool]]:
    if depth > 32:
        return
    if isinstance(value, str):
        yield pointer, value, False
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _payload_fields(item, f"{pointer}/{_escape(str(key))}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _payload_fields(item, f"{pointer}/{index}", depth + 1)


def check_syntax(content: dict[str, Any]) -> None:
    """Raise `RenderError` for the first field that does not parse."""
    for pointer, source, _ in template_fields(content):
        _parse(pointer, source)


def _parse(pointer: str, source: str) -> nodes.Template:
    try:
        return _PARSER.parse(source)
    except TemplateSyntaxError as exc:
        raise RenderError(
            pointer, f"Template syntax error on line {exc.lineno}: {exc.message}", "syntax_error"
        ) from exc


# -- undefined merge fields -------------------------------------------------------------------


def find_undefined(content: dict[str, Any]) -> list[str]:
    """Merge fields that cannot be defined at send time, in order of appearance.

    The rule: a name is fine when the template assigns it (`set`, `for`, macro arguments)
    or it is one of `contact`, `campaign`, `attributes`, `unsubscribe_url`, `link`.
    `contact.<x>` must be a contact field and `campaign.<x>` a campaign field; anything below
    `attributes` (`contact.attributes.x`, `attributes.x`) is allowed, attributes being open.
    """
    found: list[str] = []
    for _, source, _ in template_fields(content):
        try:
            tree = _PARSER.parse(source)
        except TemplateSyntaxError:
            continue
        for name in _undefined_in(tree):
            if name not in found:
                found.append(name)
    return found


def _undefined_in(tree: nodes.Template) -> list[str]:
    declared = meta.find_undeclared_variables(tree)
    known = KNOWN_NAMES | set(_PARSER.globals)
    out = [name for name in sorted(declared) if name not in known]
    for node in tree.find_all(nodes.Getattr):
        root = node.node
        if not isinstance(root, nodes.Name) or root.ctx != "load":
            continue
        allowed = {"contact": CONTACT_FIELDS, "campaign": CAMPAIGN_FIELDS}.get(root.name)
        if allowed is not None and node.attr not in allowed:
            out.append(f"{root.name}.{node.attr}")
    return out


# -- rendering --------------------------------------------------------------------------------


def render(content: dict[str, Any], context: RenderContext) -> Rendered:
    """Render every templated string of `content`; undefined fields render empty."""
    seen: list[str] = []
    token = _SEEN.set(seen)
    try:
        values = _render_fields(content, context.variables())
    finally:
        _SEEN.reset(token)
    rendered: dict[str, Any] = {}
    for key, value in content.items():
        if key == "payload":
            rendered[key] = _rebuild(value, "/payload", values, 0)
        elif isinstance(value, str):
            rendered[key] = values[f"/{key}"]
        else:
            rendered[key] = value
    return Rendered(rendered, seen)


def _render_fields(content: dict[str, Any], variables: dict[str, Any]) -> dict[str, str]:
    values: dict[str, str] = {}
    deadline = time.monotonic() + MAX_SECONDS  # for the whole content, not per field
    for pointer, source, is_html in template_fields(content):
        if not _MARKERS.search(source):  # plain text renders as itself
            values[pointer] = source
            continue
        try:
            template = _compiled(is_html, source)
        except TemplateSyntaxError as exc:
            _parse(pointer, source)  # raises the syntax error with its line
            raise RenderError(
                pointer, f"Template syntax error: {exc.message}", "syntax_error"
            ) from exc
        traced = _LOOPING.search(source) is not None
        values[pointer] = _bounded(pointer, template, variables, deadline, traced=traced)
    return values


def _rebuild(value: Any, pointer: str, values: dict[str, str], depth: int) -> Any:
    if depth > 32:
        return value
    if isinstance(value, str):
        return values[pointer]
    if isinstance(value, dict):
        return {
            k: _rebuild(v, f"{pointer}/{_escape(str(k))}", values, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_rebuild(v, f"{pointer}/{i}", values, depth + 1) for i, v in enumerate(value)]
    return value


class _Timeout(Exception):
    pass


def _bounded(
    pointer: str,
    template: Template,
    variables: dict[str, Any],
    deadline: float,
    *,
    traced: bool,
) -> str:
    """Render one field, stopping past `MAX_OUTPUT` and, when `traced`, past `deadline`
    (checked on every line of template code, through a trace function scoped to compiled
    template frames)."""

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if time.monotonic() > deadline:
            raise _Timeout
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename == _TEMPLATE_FILE else None

    previous = sys.gettrace()
    parts: list[str] = []
    size = 0
    if traced:
        sys.settrace(tracer)
    try:
        for chunk in template.generate(variables):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise RenderError(
                    pointer, f"The rendered output exceeds {MAX_OUTPUT} characters.", "too_large"
                )
            parts.append(chunk)
    except _Timeout as exc:
        raise RenderError(
            pointer, f"Rendering took longer than {MAX_SECONDS} s.", "render_timeout"
        ) from exc
    except TemplateSyntaxError as exc:
        raise RenderError(pointer, f"Template syntax error: {exc.message}", "syntax_error") from exc
    except TemplateError as exc:  # SecurityError, UndefinedError, limits
        raise RenderError(pointer, f"Template error: {exc.message}", "render_error") from exc
    except RecursionError as exc:
        raise RenderError(pointer, "The template recurses too deeply.", "render_error") from exc
    except (ArithmeticError, TypeError, ValueError, LookupError, AttributeError) as exc:
        raise RenderError(pointer, f"Template error: {exc}", "render_error") from exc
    finally:
        sys.settrace(previous)
    return "".join(parts)
