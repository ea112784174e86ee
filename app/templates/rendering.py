"""Rendering template content with jinja2, sandboxed and bounded.

* `SandboxedEnvironment`: attribute access to internals (`__class__`, `__globals__`, ...) and
  unsafe calls raise `SecurityError`, reported as 422 with the field it happened in.
* Autoescape for `html` only; `subject`, `text` and webhook payload strings are not escaped.
* Undefined merge fields render as empty and are reported (never a crash); `default` works.
* Operation bounds (a `template_limit` error naming the limit): integers stay under
  `MAX_INT_BITS` (a `**` or `*` that would pass it is refused before it is computed), `*`
  repetition and `+` concatenation results, `range`, numeric arguments of filters and string
  methods and format widths are capped, and the whole message's output is capped by
  `RenderLimits` (per channel, from settings).
* Templates whose work is not linear in their size (loops, macros, `set`, arithmetic, method
  calls, filters outside `LINEAR_FILTERS`) are rendered by `app.templates.sandbox` in a
  separate process that is killed past the time budget and has a memory ceiling; the rest
  render in-process (docs/templates.md explains the split and its cost).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from jinja2 import ChainableUndefined, Template, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

MAX_RANGE = 10_000
MAX_REPEAT = 100_000  # length of a `*` result, numeric arguments, format widths
MAX_SEQUENCE = 1_000_000  # length of a `+` result (strings, lists)
MAX_INT_BITS = 4_096  # about 1,233 decimal digits

# Merge fields a template may use (see docs/templates.md).
CONTACT_FIELDS = frozenset(
    {"id", "email", "external_id", "phone", "timezone", "locale", "attributes"}
)
CAMPAIGN_FIELDS = frozenset(
    {"id", "name", "description", "objective", "type", "timezone", "start_at", "end_at", "tags"}
)
OPEN_NAMES = frozenset({"attributes"})  # any key below is allowed
KNOWN_NAMES = frozenset({"contact", "campaign", "attributes", "unsubscribe_url", "link"})
_DIGITS = re.compile(r"\d+")
# `%`-style conversion specs and `{...}` replacement fields, where widths live.
_FORMAT_FIELDS = re.compile(r"%[-#0 +]*\d*(?:\.\d+)?|\{[^{}]*\}")
LIMIT_CODE = "template_limit"


@dataclass(frozen=True)
class RenderLimits:
    """The budget of one message's render (settings: `HERALD_TEMPLATES__*`)."""

    max_output: int = 512 * 1024  # the whole message: every field added up
    unit: Literal["bytes", "chars"] = "bytes"  # bytes: UTF-8 encoded size
    timeout_seconds: float = 1.0  # isolated renders only: the process is killed past it
    memory_bytes: int = 256 * 1024 * 1024  # isolated renders only: address space added


class LimitExceeded(TemplateError):
    """A bound of the sandbox was hit; `limit` names it."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


class RenderError(Exception):
    """A template that does not parse or fails while rendering; `pointer` is the field.

    `limit` names the sandbox bound that was hit (`code` is then `template_limit`)."""

    def __init__(self, pointer: str, message: str, code: str, limit: str | None = None) -> None:
        super().__init__(message)
        self.pointer = pointer
        self.message = message
        self.code = code
        self.limit = limit

    def as_tuple(self) -> tuple[str, str, str, str | None]:
        """Plain values: crosses a process boundary (exceptions with custom `__init__` do
        not unpickle)."""
        return (self.pointer, self.message, self.code, self.limit)


def limit_error(pointer: str, limit: str, message: str) -> RenderError:
    return RenderError(pointer, message, LIMIT_CODE, limit)


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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bounded_number(value: Any) -> None:
    if _is_int(value) and abs(value) > MAX_REPEAT:
        raise LimitExceeded("argument_size", f"numeric arguments are limited to {MAX_REPEAT}")


def _bounded_format(spec: Any) -> None:
    """Widths and precisions in `%` / `format` / `str.format` strings are bounded too."""
    if not isinstance(spec, str):
        return
    fields = [m.group(0) for m in _FORMAT_FIELDS.finditer(spec)]
    if any(int(n) > MAX_REPEAT for field in fields for n in _DIGITS.findall(field)):
        raise LimitExceeded("format_width", f"format widths are limited to {MAX_REPEAT}")


def _integer_limit() -> LimitExceeded:
    return LimitExceeded("integer_size", f"integer results are limited to {MAX_INT_BITS} bits")


def _bounded_power(base: Any, exponent: Any) -> None:
    """A power whose integer result would pass `MAX_INT_BITS` is refused before it is
    computed: `(2**64)**64` is 4,097 bits, and one more `**64` would take seconds."""
    ints = _is_int(base) and _is_int(exponent)
    if ints and exponent > 0 and (base.bit_length() - 1) * exponent > MAX_INT_BITS:
        raise _integer_limit()


def _bounded_product(left: Any, right: Any) -> None:
    if _is_int(left) and _is_int(right):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
            raise _integer_limit()
        return
    for count, sized in ((right, left), (left, right)):
        repeated = _is_int(count) and isinstance(sized, str | list | tuple)
        if repeated and len(sized) * count > MAX_REPEAT:
            raise LimitExceeded(
                "repetition", f"`*` repetition results are limited to {MAX_REPEAT} items"
            )


def _bounded_sum(left: Any, right: Any) -> None:
    sized = (str, list, tuple)
    both = isinstance(left, sized) and isinstance(right, sized)
    if both and len(left) + len(right) > MAX_SEQUENCE:
        raise LimitExceeded("concatenation", f"`+` results are limited to {MAX_SEQUENCE} items")


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
    (`ljust`, `center`, `indent`, ...) and format widths are capped, and so are the results
    of `*`, `**` and `+`. Values themselves are not (`{{ 2500000 | round }}` is fine)."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "%":
            _bounded_format(left)
        elif operator == "**":
            _bounded_power(left, right)
        elif operator == "*":
            _bounded_product(left, right)
        elif operator == "+":
            _bounded_sum(left, right)
        return super().call_binop(context, operator, left, right)

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
        raise LimitExceeded("range", f"range() is limited to {MAX_RANGE} items")
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

# -- what may render in-process ---------------------------------------------------------------
#
# A template built only from these nodes does work linear in its own size and in the size of
# its inputs (each expression looks values up, compares them or passes them through a filter
# whose output is at most a constant times its input), so it cannot run away: it renders
# in-process. Anything else (loops, macros, `set`, arithmetic, method calls, other filters,
# tests, calls other than `link(...)`) renders in the isolated, killable sandbox process.
_LINEAR_NODES: tuple[type[nodes.Node], ...] = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Const,
    nodes.Name,
    nodes.Getattr,
    nodes.Getitem,
    nodes.If,
    nodes.CondExpr,
    nodes.Compare,
    nodes.Operand,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Concat,
    nodes.Filter,
    nodes.Test,
    nodes.Call,
    nodes.Keyword,
    nodes.Slice,
    nodes.List,
    nodes.Tuple,
    nodes.Dict,
    nodes.Pair,
    nodes.Neg,
    nodes.Pos,
)
LINEAR_FILTERS = frozenset(
    {
        "default",
        "d",
        "upper",
        "lower",
        "capitalize",
        "title",
        "trim",
        "escape",
        "e",
        "forceescape",
        "safe",
        "string",
        "int",
        "float",
        "abs",
        "length",
        "count",
        "first",
        "last",
        "urlencode",
        "truncate",
        "tojson",
    }
)
_MAX_IN_PROCESS_SOURCE = 64 * 1024  # longer sources go to the sandbox process anyway
# A linear template still does work proportional to (merge field references) x (size of the
# values): `{{ a ~ a ~ a ... }}` over a 1 MB attribute. Past this product (characters), the
# render goes to the sandbox process too; typical messages are 3-4 orders of magnitude below.
IN_PROCESS_WORK = 8_000_000


def _linear(tree: nodes.Template, source: str) -> bool:
    if len(source) > _MAX_IN_PROCESS_SOURCE:
        return False
    for node in tree.find_all(nodes.Node):
        if type(node) not in _LINEAR_NODES:
            return False
        if isinstance(node, nodes.Name) and node.ctx != "load":
            return False
        if isinstance(node, nodes.Filter) and node.name not in LINEAR_FILTERS:
            return False
        if isinstance(node, nodes.Call) and not (
            isinstance(node.node, nodes.Name) and node.node.name == "link"
        ):
            return False
    return True


@dataclass(frozen=True)
class _Plan:
    template: Template
    in_process: bool
    references: int  # names looked up: bounds the work of a linear template


@functools.lru_cache(maxsize=_COMPILED_CACHE_SIZE)
def _plan(is_html: bool, source: str) -> _Plan:
    env = _ENVIRONMENTS[is_html]
    tree = env.parse(source)
    references = sum(1 for _ in tree.find_all(nodes.Name))
    return _Plan(env.from_string(tree), _linear(tree, source), references)


def link(url: Any) -> Any:
    """Hook for tracked links: later rewrites `url` through the click tracker."""
    return url


@dataclass
class RenderContext:
    contact: dict[str, Any] = field(default_factory=dict)
    campaign: dict[str, Any] = field(default_factory=dict)
    unsubscribe_url: str = "https://herald.invalid/unsubscribe/preview"
    link: Callable[[Any], Any] = link

    def data(self) -> dict[str, Any]:
        """The plain (picklable) merge fields; `link` is added by the renderer."""
        # Missing (null) fields are left out: they render empty, are reported, and `default`
        # applies to them.
        contact = {k: v for k, v in self.contact.items() if v is not None}
        attributes = contact.get("attributes") or {}
        contact["attributes"] = attributes
        return {
            "contact": contact,
            "attributes": attributes,
            "campaign": {k: v for k, v in self.campaign.items() if v is not None},
            "unsubscribe_url": self.unsubscribe_url,
        }

    def variables(self) -> dict[str, Any]:
        return {**self.data(), "link": self.link}


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


def sandboxed_fields(content: dict[str, Any], data: dict[str, Any]) -> list[str]:
    """Pointers of the fields that must render in the sandbox process (`[]`: the whole
    message renders in-process). Non-linear fields always do (see `_linear`); linear ones do
    when their references times the size of the merge data passes `IN_PROCESS_WORK`."""
    nonlinear: list[str] = []
    linear: list[str] = []
    references = 0
    for pointer, source, is_html in template_fields(content):
        if not _MARKERS.search(source):
            continue
        plan = _compiled(pointer, source, is_html)
        (linear if plan.in_process else nonlinear).append(pointer)
        references += plan.references
    if nonlinear or not linear:
        return nonlinear
    size = len(json.dumps(data, default=str, ensure_ascii=False))
    return linear[:1] if references * size > IN_PROCESS_WORK else []


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


def render(
    content: dict[str, Any], context: RenderContext, limits: RenderLimits | None = None
) -> Rendered:
    """Render every templated string of `content` in this process (undefined fields render
    empty). Callers that may meet hostile templates use `app.templates.sandbox.render_bounded`,
    which sends the non-linear ones to the killable sandbox process."""
    return render_variables(content, context.variables(), limits or RenderLimits())


def render_variables(
    content: dict[str, Any], variables: dict[str, Any], limits: RenderLimits
) -> Rendered:
    seen: list[str] = []
    token = _SEEN.set(seen)
    try:
        values = _render_fields(content, variables, _Budget(limits))
    finally:
        _SEEN.reset(token)
    return Rendered(map_fields(content, lambda pointer, _source, _html: values[pointer]), seen)


def map_fields(content: dict[str, Any], value: Callable[[str, str, bool], str]) -> dict[str, Any]:
    """`content` with every templated string replaced by `value(pointer, source, is_html)`;
    other values (webhook numbers, booleans, nulls) are kept."""
    out: dict[str, Any] = {}
    for key, item in content.items():
        if key == "payload":
            out[key] = _rebuild(item, "/payload", value, 0)
        elif isinstance(item, str):
            out[key] = value(f"/{key}", item, key == "html")
        else:
            out[key] = item
    return out


def _rebuild(item: Any, pointer: str, value: Callable[[str, str, bool], str], depth: int) -> Any:
    if depth > 32:
        return item
    if isinstance(item, str):
        return value(pointer, item, False)
    if isinstance(item, dict):
        return {
            k: _rebuild(v, f"{pointer}/{_escape(str(k))}", value, depth + 1)
            for k, v in item.items()
        }
    if isinstance(item, list):
        return [_rebuild(v, f"{pointer}/{i}", value, depth + 1) for i, v in enumerate(item)]
    return item


@dataclass
class _Budget:
    """The whole message's output size, added up over its fields as they render."""

    limits: RenderLimits
    used: int = 0

    def spend(self, pointer: str, chunk: str) -> None:
        self.used += len(chunk.encode()) if self.limits.unit == "bytes" else len(chunk)
        if self.used > self.limits.max_output:
            raise limit_error(
                pointer,
                "output_size",
                f"The rendered message exceeds {self.limits.max_output} {self.limits.unit}.",
            )


def _compiled(pointer: str, source: str, is_html: bool) -> _Plan:
    try:
        return _plan(is_html, source)
    except TemplateSyntaxError as exc:
        _parse(pointer, source)  # raises the syntax error with its line
        raise RenderError(pointer, f"Template syntax error: {exc.message}", "syntax_error") from exc


def _render_fields(
    content: dict[str, Any], variables: dict[str, Any], budget: _Budget
) -> dict[str, str]:
    values: dict[str, str] = {}
    for pointer, source, is_html in template_fields(content):
        if not _MARKERS.search(source):  # plain text renders as itself
            budget.spend(pointer, source)
            values[pointer] = source
            continue
        template = _compiled(pointer, source, is_html).template
        values[pointer] = _bounded(pointer, template, variables, budget)
    return values


def _bounded(pointer: str, template: Template, variables: dict[str, Any], budget: _Budget) -> str:
    """Render one field, stopping as soon as the message passes its output budget."""
    parts: list[str] = []
    try:
        for chunk in template.generate(variables):
            budget.spend(pointer, chunk)
            parts.append(chunk)
    except LimitExceeded as exc:
        raise limit_error(pointer, exc.limit, f"Template limit: {exc.message}") from exc
    except MemoryError as exc:
        raise limit_error(pointer, "memory", "The render ran out of its memory budget.") from exc
    except RecursionError as exc:
        raise limit_error(pointer, "recursion", "The template recurses too deeply.") from exc
    except TemplateSyntaxError as exc:
        raise RenderError(pointer, f"Template syntax error: {exc.message}", "syntax_error") from exc
    except TemplateError as exc:  # SecurityError, UndefinedError
        raise RenderError(pointer, f"Template error: {exc.message}", "render_error") from exc
    except (ArithmeticError, TypeError, ValueError, LookupError, AttributeError) as exc:
        raise RenderError(pointer, f"Template error: {exc}", "render_error") from exc
    return "".join(parts)


# -- inside the sandbox process ---------------------------------------------------------------

LINK_MARK = re.compile("\ue000(\\d+)\ue001")  # private-use characters: never in real text


def render_marked(
    content: dict[str, Any], data: dict[str, Any], limits: RenderLimits
) -> tuple[str, Any]:
    """The sandbox process's entry point. `link(url)` cannot cross the process boundary (it
    signs with the tracking secret), so it leaves a numbered mark the caller replaces.

    Returns `("ok", (content, undefined_fields, urls))` or `("error", RenderError.as_tuple())`.
    """
    urls: list[Any] = []

    def mark(url: Any) -> Any:
        if not isinstance(url, str):
            return url
        urls.append(url)
        return f"\ue000{len(urls) - 1}\ue001"

    try:
        result = render_variables(content, {**data, "link": mark}, limits)
    except RenderError as exc:
        return ("error", exc.as_tuple())
    except MemoryError:
        return ("error", ("", "The render ran out of its memory budget.", LIMIT_CODE, "memory"))
    return ("ok", (result.content, result.undefined_fields, urls))
