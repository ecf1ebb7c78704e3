#!/usr/bin/env python3
"""Generates crates/schema/data/definitions.json.z: upstream's OpenAPI
definitions of every GA Kubernetes type, with their `x-kubernetes-*`
extensions and descriptions, zlib-compressed for embedding in the binary.

The source is a pinned version of PyPI's `kubernetes-validate`, which ships
upstream's definitions converted to JSON Schema. This script turns them back
into the OpenAPI v2 shape upstream's API server serves:
  - nullable types (`["string", "null"]`) become plain types;
  - IntOrString and Quantity become `type: string` (IntOrString keeps
    `format: int-or-string`), as upstream's swagger has them;
  - `$ref`s point at `#/definitions/NAME`;
  - the apiVersion/kind enums the converter added are dropped;
  - alpha and beta types (not served by default) are left out, except those
    a GA type refers to (a GA field may use an alpha enum type).

To refresh for a new Kubernetes release, change VALIDATE and VERSION below and
run from the repository root: python3 scripts/gen-openapi.py
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
import zlib

VALIDATE = "1.37.0"
VERSION = "v1.37.0-local"
OUT = "crates/schema/data/definitions.json.z"
PRERELEASE = re.compile(r"\.v\d+(alpha|beta)\d*\.")


def fetch():
    tmp = tempfile.mkdtemp()
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", tmp, f"kubernetes-validate=={VALIDATE}"],
        check=True,
    )
    wheel = next(f for f in os.listdir(tmp) if f.endswith(".whl"))
    with zipfile.ZipFile(os.path.join(tmp, wheel)) as z:
        return json.loads(z.read(f"kubernetes_validate/kubernetes-json-schema/{VERSION}/_definitions.json"))["$defs"]


def convert(s, in_properties=False):
    if isinstance(s, list):
        return [convert(x) for x in s]
    if not isinstance(s, dict):
        return s
    out = {}
    for k, v in s.items():
        if k == "type" and isinstance(v, list):
            kinds = [t for t in v if t != "null"]
            if len(kinds) == 1:
                out[k] = kinds[0]
            elif kinds:
                out[k] = kinds
        elif k == "$ref":
            out[k] = v.replace("#/$defs/", "#/definitions/")
        elif k == "properties":
            out[k] = {name: convert(p) for name, p in v.items()}
            for tm in ("apiVersion", "kind"):
                if tm in out[k]:
                    out[k][tm].pop("enum", None)
        elif k in ("enum", "default", "required", "x-kubernetes-group-version-kind", "x-kubernetes-list-map-keys"):
            out[k] = v
        else:
            out[k] = convert(v)
    return out


def refs(s, found):
    if isinstance(s, dict):
        for k, v in s.items():
            if k == "$ref" and isinstance(v, str):
                found.add(v.rsplit("/", 1)[-1])
            else:
                refs(v, found)
    elif isinstance(s, list):
        for x in s:
            refs(x, found)


def main():
    defs = fetch()
    keep = {n for n in defs if not PRERELEASE.search(n)}
    stack = list(keep)
    while stack:
        found = set()
        refs(defs[stack.pop()], found)
        for n in found - keep:
            if n in defs:
                keep.add(n)
                stack.append(n)
    out = {}
    for name, schema in sorted(defs.items()):
        if name not in keep:
            continue
        s = convert(schema)
        if name.endswith("util.intstr.IntOrString"):
            s = {"description": s.get("description", ""), "type": "string", "format": "int-or-string"}
        elif name.endswith("api.resource.Quantity"):
            s = {"description": s.get("description", ""), "type": "string"}
        s.pop("oneOf", None) if name.endswith(("IntOrString", "Quantity")) else None
        out[name] = s
    data = json.dumps(out, separators=(",", ":"), sort_keys=True).encode()
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "wb") as f:
        f.write(zlib.compress(data, 9))
    print(f"{OUT}: {len(out)} definitions, {len(data)} bytes of JSON, {os.path.getsize(OUT)} compressed")


if __name__ == "__main__":
    main()
