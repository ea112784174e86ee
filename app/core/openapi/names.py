"""Stable component names: pages named after their items, enums named and shared.

Pydantic names a generic page `Page_ContactOut_`; we call it `ContactPage`. Enums (Literal
types in the models) arrive inline, one copy per use: each distinct set of values becomes one
named component, referenced everywhere it is used, so a generated client has one `Channel`
type instead of thirty. The shared ones carry the names of `ENUM_NAMES`; any other enum is
named after where it first appears (schema + property, e.g. `ImportFormat`), so an enum added
later gets a name without anyone editing this file. `tests/test_openapi_contract.py` fails on
any name with a module path in it or two models sharing a name.
"""

from __future__ import annotations

import re
from typing import Any

ENUM_NAMES: dict[tuple[str, ...], str] = {
    ("email", "sms", "webhook"): "Channel",
    ("email", "sms"): "MessageChannel",
    ("owner", "admin", "editor", "viewer"): "Role",
    (
        "draft",
        "in_review",
        "approved",
        "scheduled",
        "running",
        "paused",
        "completed",
        "cancelled",
        "archived",
    ): "CampaignStatus",
    ("queued", "sending", "sent", "delivered", "bounced", "failed", "unknown"): "MessageStatus",
    ("active", "waiting", "paused", "completed", "exited", "failed"): "EnrollmentState",
    ("subscribed", "unsubscribed", "unknown"): "ConsentStatus",
    (
        "delivered",
        "bounced",
        "complained",
        "opened",
        "clicked",
        "replied",
    ): "ProviderEventType",
    ("unsubscribed", "hard_bounce", "complaint", "manual", "erased"): "SuppressionReason",
    ("unsubscribed", "hard_bounce", "complaint", "manual"): "ManualSuppressionReason",
    ("pending", "approved", "rejected", "changes_requested", "voided"): "ApprovalStatus",
    ("approve", "reject", "request_changes"): "ReviewDecision",
    ("queued", "running", "completed", "failed"): "ImportStatus",
    ("pending", "succeeded", "failed"): "DeliveryStatus",
    ("collecting", "inconclusive", "significant", "winner_declared"): "ExperimentStatus",
    ("open", "click", "reply", "conversion"): "ExperimentMetric",
    ("first_touch", "last_touch", "linear", "position_based"): "AttributionModel",
    ("one_off", "triggered"): "CampaignType",
    ("hard", "soft"): "BounceType",
    ("dynamic", "static"): "SegmentKind",
    ("mon", "tue", "wed", "thu", "fri", "sat", "sun"): "Weekday",
    ("member", "key", "system"): "ActorType",
    ("entered", "left"): "MembershipChange",
    ("once", "once_per", "always"): "ReentryPolicy",
}

# Keys kept beside a `$ref` that replaces an inline enum (OpenAPI 3.1 allows siblings).
_KEPT_BESIDE_REF = ("description", "default", "examples", "deprecated")
_PAGE = re.compile(r"^Page_(?P<item>[A-Za-z0-9]+?)(?:Out)?_$")


def rename_components(document: dict[str, Any]) -> None:
    """`Page_XOut_` -> `XPage`, every `$ref` rewritten."""
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    renames: dict[str, str] = {}
    for name in schemas:
        match = _PAGE.match(name)
        if match and f"{match['item']}Page" not in schemas:
            renames[name] = f"{match['item']}Page"
    if not renames:
        return
    document["components"]["schemas"] = {
        renames.get(name, name): schema for name, schema in schemas.items()
    }
    prefix = "#/components/schemas/"
    _rewrite_refs(document, {prefix + old: prefix + new for old, new in renames.items()})
    for new in renames.values():
        document["components"]["schemas"][new]["title"] = new


def _rewrite_refs(node: Any, refs: dict[str, str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref in refs:
            node["$ref"] = refs[ref]
        for value in node.values():
            _rewrite_refs(value, refs)
    elif isinstance(node, list):
        for value in node:
            _rewrite_refs(value, refs)


def name_enums(document: dict[str, Any]) -> None:
    """Hoist every inline string enum into a named component schema."""
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    names: dict[tuple[str, ...], str] = {}
    for name, schema in list(schemas.items()):
        for key, prop in schema.get("properties", {}).items():
            _hoist(prop, _pascal(_strip_suffix(name)) + _pascal(key), schemas, names)
        for key in ("items", "anyOf", "oneOf", "allOf", "additionalProperties"):
            if key in schema:
                _hoist(schema[key], _pascal(_strip_suffix(name)), schemas, names)
    for item in document.get("paths", {}).values():
        for operation in item.values():
            operation_label = _pascal(operation.get("operationId", ""))
            for parameter in operation.get("parameters", []):
                if "schema" in parameter:
                    label = operation_label + _pascal(parameter["name"])
                    _hoist(parameter["schema"], label, schemas, names)
            bodies = [operation.get("requestBody", {}), *operation["responses"].values()]
            for body in bodies:
                for media in body.get("content", {}).values():
                    if "schema" in media:
                        _hoist(media["schema"], operation_label, schemas, names)


def _hoist(
    node: Any, label: str, schemas: dict[str, Any], names: dict[tuple[str, ...], str]
) -> None:
    if isinstance(node, list):
        for item in node:
            _hoist(item, label, schemas, names)
        return
    if not isinstance(node, dict) or "$ref" in node:
        return
    values = node.get("enum")
    if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
        key = tuple(values)
        name = names.get(key) or _new_enum_name(key, label, schemas)
        names[key] = name
        kept = {k: node[k] for k in _KEPT_BESIDE_REF if k in node}
        node.clear()
        node.update({"$ref": f"#/components/schemas/{name}", **kept})
        return
    for part in ("items", "anyOf", "oneOf", "allOf", "additionalProperties"):
        if part in node:
            _hoist(node[part], label, schemas, names)
    for key, prop in node.get("properties", {}).items():
        _hoist(prop, label + _pascal(key), schemas, names)


def _new_enum_name(values: tuple[str, ...], label: str, schemas: dict[str, Any]) -> str:
    name = ENUM_NAMES.get(values) or label
    if name in schemas:
        name = f"{name}Enum"
    schemas[name] = {"type": "string", "enum": list(values), "title": name}
    return name


def _strip_suffix(name: str) -> str:
    for suffix in ("-Input", "-Output"):
        name = name.removesuffix(suffix)
    for suffix in ("Out", "In", "Create", "Update", "Body"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name.removesuffix(suffix)
    return name


def _pascal(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", text))
