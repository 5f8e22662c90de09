"""Write config/README.md, every config key with its allowed values, default and description, from the config schema.

    python scripts/config_docs.py > config/README.md

Reads workflow/schemas/config.schema.yaml (descriptions, types, enums, minimum and maximum, required keys) and takes
each key's default from config/config.yaml, the default run (a papers'-method key of `train` absent from it: the
value a run gets without it, rnngrad.config.TRAIN_DEFAULTS). tests/test_docs.py fails when the committed file
differs from this script's output, so a new schema key only needs this command rerun.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from rnngrad.config import TRAIN_DEFAULTS

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_CONFIG = ROOT / "config" / "config.yaml"

HEADER = """# Configuration

<!-- Written by `python scripts/config_docs.py > config/README.md` from workflow/schemas/config.schema.yaml; edit the
schema's descriptions, not this file. -->

Every key a config may hold, generated from [the config schema](../workflow/schemas/config.schema.yaml): what it
allows, whether it is required, its default and what it does. The default is the key's value in
[`config/config.yaml`](config.yaml), the default run (`make figures`); "when unset" marks the value a run gets
without the key, and a description may name the default of a key that config.yaml leaves out. Every config
(`config.yaml`, `smoke.yaml`, `paper.yaml`, `reproduce/*.yaml`) is checked against the schema, and then by the
cross-key checks of `rnngrad.config.check`, before any job runs (`rnngrad validate CONFIG` alone); an error names
the key, the bad value and what is allowed. How to write your own config:
[the README](../README.md#your-own-config); the papers' methods that several `train` keys switch on:
[docs/papers-methods.md](../docs/papers-methods.md).
"""


def resolve(node: dict, defs: dict) -> dict:
    """The node with its $ref followed and its allOf parts merged (properties, required)."""
    while "$ref" in node:
        target = defs[node["$ref"].split("/")[-1]]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}, "_def": node["$ref"].split("/")[-1]}
    if "allOf" in node:
        merged = {k: v for k, v in node.items() if k != "allOf"}
        for part in node["allOf"]:
            if "if" in part:  # conditional requirements: the descriptions say them
                continue
            part = resolve(part, defs)
            merged.setdefault("_def", part.get("_def"))
            merged["properties"] = {**merged.get("properties", {}), **part.get("properties", {})}
            merged["required"] = [*merged.get("required", []), *part.get("required", [])]
            for key in ("type", "description", "additionalProperties"):
                if key in part:
                    merged.setdefault(key, part[key])
        node = merged
    return node


def bounds(node: dict) -> str:
    low = [f">= {node['minimum']}"] if "minimum" in node else []
    low += [f"> {node['exclusiveMinimum']}"] if "exclusiveMinimum" in node else []
    high = [f"<= {node['maximum']}"] if "maximum" in node else []
    high += [f"< {node['exclusiveMaximum']}"] if "exclusiveMaximum" in node else []
    return ", ".join(low + high)


def allowed(node: dict, defs: dict) -> str:
    """What values a key allows, in a few words."""
    node = resolve(node, defs)
    if "enum" in node:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" if not isinstance(v, str) else f"`{v}`" for v in node["enum"])
    if "const" in node:
        return f"`{node['const']}`"
    for key in ("oneOf", "anyOf"):
        if key in node:
            return " or ".join(allowed(option, defs) for option in node[key])
    kind = node.get("type")
    if kind in ("integer", "number"):
        return " ".join(filter(None, [kind, bounds(node)]))
    if kind == "boolean":
        return "`true` or `false`"
    if kind == "null":
        return "`null`"
    if kind == "string":
        return f"string matching `{node['pattern']}`" if "pattern" in node else "string"
    if kind == "array":
        count = f"{node['minItems']} " if "minItems" in node and node.get("maxItems") == node["minItems"] else ""
        size = "non-empty " if node.get("minItems") and not count else ""
        unique = "unique " if node.get("uniqueItems") else ""
        return f"{size}list of {count}{unique}items: {allowed(node['items'], defs)}"
    if kind == "object" or "properties" in node or "additionalProperties" in node:
        if node.get("properties"):
            return "mapping (keys below)"
        extra = node.get("additionalProperties")
        names = f"names matching `{node['propertyNames']['pattern']}`" if "propertyNames" in node else "any names"
        if isinstance(extra, dict) and extra:
            return f"mapping, {names}, each: {allowed(extra, defs)}"
        return f"mapping, {names}"
    return "any"


def show(value) -> str:
    return "`" + yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("\n...") + "`"


def default(path: list[str], config: dict) -> str:
    """The key's value in config/config.yaml; for a papers'-method key of train absent there, the value when unset."""
    value = config
    for key in path:
        if not isinstance(value, dict) or key not in value:
            if path[0] == "train" and len(path) == 2 and path[1] in TRAIN_DEFAULTS:
                return f"{show(TRAIN_DEFAULTS[path[1]])} when unset"
            return ""
        value = value[key]
    if isinstance(value, dict | list) and len(json.dumps(value)) > 40:
        return "(in config.yaml)"
    return show(value)


def cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def sections(schema: dict) -> list[tuple[str, str, list[str]]]:
    """(title, intro, table rows) for the top level and every nested mapping, parents before children."""
    defs = schema.get("$defs", {})
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    out: list[tuple[str, str, list[str]]] = []
    walked: dict[str, str] = {}  # a $defs name -> the section that documents it

    def walk(title: str, path: list[str], node: dict) -> None:
        node = resolve(node, defs)
        if node.get("_def"):
            walked[node["_def"]] = title
        rows, children = [], []
        for key, sub in node.get("properties", {}).items():
            full = resolve(sub, defs)
            name = f"{title}.{key}" if title != "top level" else key
            kind = allowed(sub, defs)
            extra = full.get("additionalProperties")
            items = full.get("items") if full.get("type") == "array" else None
            if full.get("_def") in walked and full.get("properties"):
                kind = f"mapping, any key of [`{walked[full['_def']]}`](#{slug(walked[full['_def']])})"
            elif full.get("properties"):
                children.append((name, [*path, key], sub))
            elif isinstance(extra, dict) and resolve(extra, defs).get("properties"):
                kind = f"mapping of names to [`{name}.<name>`](#{slug(name + '.<name>')})"
                children.append((f"{name}.<name>", [*path, key, "<name>"], extra))
            elif items and resolve(items, defs).get("properties"):
                kind = f"non-empty list of [`{name}[]`](#{slug(name + '[]')}) blocks"
                children.append((f"{name}[]", [*path, key, "[]"], items))
            required = "yes" if key in node.get("required", []) else ""
            value = "(below)" if children and children[-1][0] == name else default([*path, key], config)
            description = sub.get("description") or full.get("description", "")
            rows.append(f"| `{key}` | {cell(kind)} | {required} | {cell(value)} | {cell(description)} |")
        out.append((title, node.get("description", "") if title != "top level" else "", rows))
        for child in children:
            walk(*child)

    walk("top level", [], schema)
    return out


def slug(title: str) -> str:
    """GitHub's anchor for a heading (lower case, punctuation but hyphens and underscores dropped, spaces to -)."""
    return "".join(c for c in title.lower() if c.isalnum() or c in "-_ ").replace(" ", "-")


def render() -> str:
    schema = yaml.safe_load(SCHEMA.read_text())
    lines = [HEADER]
    for title, intro, rows in sections(schema):
        lines += [f"## {title}", ""]
        if intro:
            lines += [cell(intro), ""]
        lines += ["| key | allowed | required | default | description |", "|---|---|---|---|---|", *rows, ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render())
