"""Generate gateway/ocpp/v16.py and gateway/ocpp/v201.py from the OCPP JSON schemas.

The schemas are the official OCA ones shipped by the `ocpp` package (ocpp/v16/schemas,
ocpp/v201/schemas). Usage, from the repository root:

    .venv/bin/python scripts/gen_ocpp_messages.py            # rewrite the two modules
    .venv/bin/python scripts/gen_ocpp_messages.py --check    # exit 1 if they are out of date

The output is deterministic (schema files and properties in a fixed order) and passed through
`ruff format`, so it is byte-for-byte reproducible with the same schemas and ruff.

Mapping (JSON schema -> msgspec):
- object -> Struct(kw_only, frozen, gc=False); forbid_unknown_fields unless the object leaves
  additionalProperties open (2.0.1 CustomDataType); field names exactly as in the JSON.
- required -> a field without default; optional -> `T | UnsetType = UNSET` (omitted on encode,
  `null` rejected as in the schema).
- enum -> Literal alias; string maxLength/pattern, integer/number minimum/maximum, array
  minItems/maxItems -> msgspec.Meta; date-time -> timezone-aware datetime; number -> float;
  a property without a type (2.0.1 DataTransfer data, "anyType") -> Any.
- number multipleOf (1.6 charging schedules, 0.1) -> a __post_init__ check on the decimal value:
  msgspec's Meta(multiple_of=0.1) works on binary floats and rejects 0.3.
- format uri -> str (jsonschema does not check formats by default either).
Any schema keyword not listed here stops the generator rather than being silently ignored.
"""

from __future__ import annotations

import argparse
import difflib
import json
import keyword
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

KNOWN_KEYWORDS = frozenset(
    {
        "$schema",
        "$id",
        "title",
        "comment",
        "description",
        "javaType",
        "type",
        "properties",
        "required",
        "additionalProperties",
        "definitions",
        "$ref",
        "items",
        "additionalItems",
        "minItems",
        "maxItems",
        "maxLength",
        "pattern",
        "format",
        "enum",
        "default",
        "minimum",
        "maximum",
        "multipleOf",
    }
)
# Keywords that do not change the payload's shape or constraints.
DOC_KEYWORDS = frozenset({"$schema", "$id", "title", "comment", "description", "javaType"})
# Names the generated annotations use; a field of the same name would shadow them in the class body.
RESERVED = frozenset(
    {"int", "str", "float", "bool", "list", "datetime", "Any", "Annotated", "Literal", "Meta"}
    | {"UNSET", "UnsetType", "DateTime", "Struct"}
)


@dataclass(frozen=True)
class Version:
    package_dir: str  # folder inside the ocpp package
    label: str  # "1.6" / "2.0.1"
    module: str  # output path, relative to the repository root
    request_suffix: str  # schema file name suffix of requests ("" in 1.6, "Request" in 2.0.1)


VERSIONS = (
    Version("v16", "1.6", "gateway/ocpp/v16.py", ""),
    Version("v201", "2.0.1", "gateway/ocpp/v201.py", "Request"),
)


def _canonical(node: Any) -> str:
    """Schema content without documentation keywords, for comparing two definitions."""

    def strip(n: Any) -> Any:
        if isinstance(n, dict):
            return {k: strip(v) for k, v in n.items() if k not in DOC_KEYWORDS}
        if isinstance(n, list):
            return [strip(x) for x in n]
        return n

    return json.dumps(strip(node), sort_keys=True)


def _cap(name: str) -> str:
    return name[:1].upper() + name[1:]


def _py_literal(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        raise SystemExit(f"unsupported literal {value!r}")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


@dataclass
class Context:
    """Where a schema node sits: for naming inline types and resolving $ref."""

    schema_file: str
    action: str
    definitions: dict[str, Any]
    owner: str  # the Struct the property belongs to
    prop: str  # the property name ("" for a top-level message)


@dataclass
class ModuleBuilder:
    version: Version
    blocks: list[str] = field(default_factory=list)
    # name -> canonical content of every emitted Struct / alias (a name is never reused for
    # different content); content -> name for Structs (identical objects share one class).
    emitted: dict[str, str] = field(default_factory=dict)
    struct_by_content: dict[str, str] = field(default_factory=dict)
    uses: set[str] = field(default_factory=set)
    messages: set[str] = field(default_factory=set)  # top-level Request / Response names
    enum_by_prop: dict[tuple[str, str], str] = field(default_factory=dict)

    # -- types -------------------------------------------------------------------------------

    def type_expr(self, node: dict[str, Any], ctx: Context) -> str:
        unknown = set(node) - KNOWN_KEYWORDS
        if unknown:
            raise SystemExit(f"{ctx.schema_file}: unsupported keywords {sorted(unknown)}")
        if "$ref" in node:
            return self._ref(node["$ref"], ctx)
        if "enum" in node:
            # The same property of two nested objects (1.6 SampledValue in MeterValues and in
            # StopTransaction) shares one alias when the values are the same.
            key = (ctx.prop, _canonical(node["enum"]))
            if ctx.owner not in self.messages and key in self.enum_by_prop:
                return self.enum_by_prop[key]
            name = self._enum(node, ctx, name=f"{ctx.owner}{_cap(ctx.prop)}")
            if ctx.owner not in self.messages:
                self.enum_by_prop.setdefault(key, name)
            return name
        kind = node.get("type")
        if kind is None:
            self.uses.add("Any")
            return "Any"
        if kind == "object":
            return self._inline_struct(node, ctx)
        if kind == "array":
            return self._array(node, ctx)
        if kind == "string":
            return self._string(node, ctx)
        if kind == "integer":
            return self._number("int", node, ctx)
        if kind == "number":
            return self._number("float", node, ctx)
        if kind == "boolean":
            return "bool"
        raise SystemExit(f"{ctx.schema_file}: unsupported type {kind!r}")

    def _meta(self, **constraints: Any) -> str:
        parts = [f"{k}={_py_literal(v)}" for k, v in constraints.items() if v is not None]
        return ", ".join(parts)

    def _annotated(self, base: str, meta: str) -> str:
        if not meta:
            return base
        self.uses.update({"Annotated", "Meta"})
        return f"Annotated[{base}, Meta({meta})]"

    def _string(self, node: dict[str, Any], ctx: Context) -> str:
        fmt = node.get("format")
        if fmt == "date-time":
            if "maxLength" in node or "pattern" in node:
                raise SystemExit(f"{ctx.schema_file}: constrained date-time is not supported")
            self.uses.add("DateTime")
            return "DateTime"
        if fmt not in (None, "uri"):
            raise SystemExit(f"{ctx.schema_file}: unsupported string format {fmt!r}")
        meta = self._meta(max_length=node.get("maxLength"), pattern=node.get("pattern"))
        return self._annotated("str", meta)

    def _number(self, base: str, node: dict[str, Any], ctx: Context) -> str:
        if "multipleOf" in node and base != "float":
            raise SystemExit(f"{ctx.schema_file}: multipleOf on {base} is not supported")
        meta = self._meta(ge=node.get("minimum"), le=node.get("maximum"))
        return self._annotated(base, meta)

    def _array(self, node: dict[str, Any], ctx: Context) -> str:
        items = node.get("items")
        if not isinstance(items, dict):
            raise SystemExit(f"{ctx.schema_file}: array without a single items schema")
        if "multipleOf" in items:
            raise SystemExit(f"{ctx.schema_file}: multipleOf inside an array is not supported")
        inner = self.type_expr(items, ctx)
        meta = self._meta(min_length=node.get("minItems"), max_length=node.get("maxItems"))
        return self._annotated(f"list[{inner}]", meta)

    def _ref(self, ref: str, ctx: Context) -> str:
        prefix = "#/definitions/"
        if not ref.startswith(prefix) or ref[len(prefix) :] not in ctx.definitions:
            raise SystemExit(f"{ctx.schema_file}: unresolvable $ref {ref!r}")
        name = ref[len(prefix) :]
        target = ctx.definitions[name]
        if "enum" in target:
            return self._enum(target, ctx, name=name)
        if target.get("type") == "object":
            sub = Context(ctx.schema_file, ctx.action, ctx.definitions, name, "")
            return self._struct(name, target, sub, doc=f"{name} (OCPP {self.version.label}).")
        return self.type_expr(target, ctx)

    def _enum(self, node: dict[str, Any], ctx: Context, name: str) -> str:
        if node.get("type") != "string":
            raise SystemExit(f"{ctx.schema_file}: non-string enum {name}")
        content = _canonical(node["enum"])
        if name in self.emitted:
            if self.emitted[name] != content:
                raise SystemExit(f"{ctx.schema_file}: {name} defined twice with different values")
            return name
        self.emitted[name] = content
        self.uses.add("Literal")
        values = "".join(f"    {json.dumps(v)},\n" for v in node["enum"])
        self.blocks.append(f"{name} = Literal[\n{values}]\n")
        return name

    def _inline_struct(self, node: dict[str, Any], ctx: Context) -> str:
        content = _canonical(node)
        if content in self.struct_by_content:
            return self.struct_by_content[content]
        name = _cap(ctx.prop)
        if name in self.emitted:
            name = f"{ctx.action}{name}"
        sub = Context(ctx.schema_file, ctx.action, ctx.definitions, name, "")
        doc = f"`{ctx.prop}` of {ctx.owner} (OCPP {self.version.label})."
        return self._struct(name, node, sub, doc=doc)

    # -- Structs -----------------------------------------------------------------------------

    def _struct(
        self, name: str, node: dict[str, Any], ctx: Context, doc: str, shared: bool = True
    ) -> str:
        content = _canonical(node)
        if name in self.emitted:
            if self.emitted[name] != content:
                raise SystemExit(f"{ctx.schema_file}: {name} defined twice with different content")
            return name
        if set(node) - KNOWN_KEYWORDS:
            raise SystemExit(f"{ctx.schema_file}: unsupported keywords in {name}")
        self.emitted[name] = content
        if shared:  # a nested object; top-level messages keep their own classes
            self.struct_by_content.setdefault(content, name)
        props: dict[str, Any] = node.get("properties", {})
        required: list[str] = node.get("required", [])
        missing = set(required) - set(props)
        if missing:
            raise SystemExit(f"{ctx.schema_file}: {name} requires undefined {sorted(missing)}")
        closed = node.get("additionalProperties", True)
        if closed not in (True, False):
            raise SystemExit(f"{ctx.schema_file}: {name}: additionalProperties must be a bool")

        lines: list[str] = []
        checks: list[str] = []
        for prop, sub in props.items():
            if not prop.isidentifier() or keyword.iskeyword(prop) or prop in RESERVED:
                raise SystemExit(f"{ctx.schema_file}: field name {prop!r} is not usable")
            sub_ctx = Context(ctx.schema_file, ctx.action, ctx.definitions, name, prop)
            expr = self.type_expr(sub, sub_ctx)
            if "default" in sub:
                lines.append(f"    # schema default: {json.dumps(sub['default'])}")
            if prop in required:
                lines.append(f"    {prop}: {expr}")
            else:
                self.uses.add("UNSET")
                lines.append(f"    {prop}: {expr} | UnsetType = UNSET")
            if "multipleOf" in sub:
                self.uses.add("multiple_of")
                step = json.dumps(sub["multipleOf"])
                checks.append(f'        _check_multiple_of(self.{prop}, "{step}", "{prop}")')
        base = "_Closed" if closed is False else "_Open"
        if len(doc) > 90:  # keep the docstring line within 100 columns
            doc = doc[: doc.index(" (OCPP")] + "."
        body = [f'    """{doc}"""']
        if lines:
            body += ["", *lines]
        if checks:
            body += ["", "    def __post_init__(self) -> None:", *checks]
        self.blocks.append(
            f"class {name}({base}, kw_only=True, frozen=True):\n" + "\n".join(body) + "\n"
        )
        return name

    def message(self, name: str, schema: dict[str, Any], schema_file: str, action: str) -> None:
        self.messages.add(name)
        ctx = Context(schema_file, action, schema.get("definitions", {}), name, "")
        direction = "Request" if name.endswith("Request") else "Response"
        doc = f"{direction} of {action} (OCPP {self.version.label}, {schema_file})."
        self._struct(name, schema, ctx, doc=doc, shared=False)

    # -- module ------------------------------------------------------------------------------

    def render(self, actions: list[str]) -> str:
        v = self.version
        head = [
            f"# GENERATED by scripts/gen_ocpp_messages.py from the OCPP {v.label} JSON schemas",
            f"# shipped by the `ocpp` package (ocpp/{v.package_dir}/schemas). Do not edit by hand;",
            "# regenerate with:  .venv/bin/python scripts/gen_ocpp_messages.py",
            f'"""OCPP {v.label} message payloads as msgspec Structs, from the JSON schemas."""',
            "",
        ]
        typing_names = sorted(self.uses & {"Annotated", "Any", "Literal"})
        msgspec_names = ["UNSET"]  # isort order: constants, then classes
        if "Meta" in self.uses or "DateTime" in self.uses:
            msgspec_names.append("Meta")
        msgspec_names += ["Struct", "UnsetType"]
        imports = []
        if "DateTime" in self.uses:
            imports.append("from datetime import datetime")
        if "multiple_of" in self.uses:
            imports.append("from decimal import Decimal")
        if "DateTime" in self.uses:
            typing_names = sorted({*typing_names, "Annotated"})
        if typing_names:
            imports.append(f"from typing import {', '.join(typing_names)}")
        imports += ["", f"from msgspec import {', '.join(msgspec_names)}", "", ""]
        pre = [
            "class _Closed(Struct, frozen=True, gc=False, forbid_unknown_fields=True):",
            '    """A schema object with additionalProperties false: unknown fields are errors."""',
            "",
            "",
            "class _Open(Struct, frozen=True, gc=False):",
            '    """A schema object open to extra properties: they are accepted and dropped."""',
            "",
            "",
        ]
        if "DateTime" in self.uses:
            pre += [
                "# RFC 3339 date-time with an offset (Z or +hh:mm); one without is refused.",
                "DateTime = Annotated[datetime, Meta(tz=True)]",
                "",
                "",
            ]
        if "multiple_of" in self.uses:
            pre += [
                "def _check_multiple_of(value: float | UnsetType, step: str, name: str) -> None:",
                "    # On the shortest decimal form of the value, as jsonschema does with Decimal:",
                "    # msgspec's Meta(multiple_of=0.1) works on binary floats and refuses 0.3.",
                "    if value is not UNSET and Decimal(repr(value)) % Decimal(step):",
                '        message = f"Expected `float` that\'s a multiple of {step} in `{name}`"',
                "        raise ValueError(message)",
                "",
                "",
            ]
        table = ["ACTIONS: dict[str, tuple[type[Struct], type[Struct]]] = {"]
        table += [f'    "{a}": ({a}Request, {a}Response),' for a in actions]
        table += ["}", '"""Action name -> (request Struct, response Struct)."""', ""]
        parts = ["\n".join(head + imports + pre)]
        parts += [block + "\n\n" for block in self.blocks]
        parts.append("\n".join(table))
        return "".join(parts)


def _schema_dir(version: Version) -> Any:
    return resources.files("ocpp").joinpath(version.package_dir, "schemas")


def generate(version: Version) -> str:
    files = sorted(
        (p for p in _schema_dir(version).iterdir() if p.name.endswith(".json")),
        key=lambda p: p.name,
    )
    schemas = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in files}
    actions: list[str] = []
    for fname in schemas:
        stem = fname[: -len(".json")]
        if stem.endswith("Response"):
            continue
        if not stem.endswith(version.request_suffix):
            raise SystemExit(f"unexpected schema file {fname}")
        action = stem[: len(stem) - len(version.request_suffix)]
        if f"{action}Response.json" not in schemas:
            raise SystemExit(f"{fname} has no response schema")
        actions.append(action)
    builder = ModuleBuilder(version)
    for action in actions:
        req_file = f"{action}{version.request_suffix}.json"
        builder.message(f"{action}Request", schemas[req_file], req_file, action)
        resp_file = f"{action}Response.json"
        builder.message(f"{action}Response", schemas[resp_file], resp_file, action)
    if len(actions) * 2 != len(schemas):
        raise SystemExit(f"{version.package_dir}: schema files without a matching pair")
    return _ruff_format(builder.render(actions), ROOT / version.module)


def _ruff_format(source: str, path: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(path), "-"],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"ruff format failed on {path}:\n{proc.stderr}")
    return proc.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the modules are stale")
    parser.add_argument(
        "--out-dir", type=Path, default=ROOT, help="root the module paths are relative to"
    )
    args = parser.parse_args(argv)
    stale = 0
    for version in VERSIONS:
        text = generate(version)
        target = args.out_dir / version.module
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if args.check:
            if current != text:
                stale += 1
                diff = difflib.unified_diff(
                    current.splitlines(), text.splitlines(), str(target), "generated", lineterm=""
                )
                print("\n".join(list(diff)[:40]), file=sys.stderr)
                print(f"{target} is out of date: run scripts/gen_ocpp_messages.py", file=sys.stderr)
        elif current != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
