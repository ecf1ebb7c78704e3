#!/usr/bin/env python3
"""Generates crates/schema/data/protobuf.json: for every Kubernetes API message,
its protobuf field numbers, wire types and the exact JSON field names, so the
API server can decode the protobuf request bodies kubectl and client-go send.

Two pinned registry packages are the sources:
  - k8s-pb (crates.io) holds prost code generated from upstream's .proto files:
    field numbers and types;
  - kubernetes-validate (PyPI) holds upstream's OpenAPI definitions: exact JSON
    names, required fields, and group/version/kind of top-level types.

Run from the repository root: python3 scripts/gen-protobuf.py
"""
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile

K8S_PB = "0.9.0"
VALIDATE = "1.37.0"
OUT = "crates/schema/data/protobuf.json"

# k8s-pb's top-level modules and the OpenAPI name prefix of each.
PREFIX = {
    "api": "io.k8s.api",
    "apimachinery": "io.k8s.apimachinery",
    "apiextensions_apiserver": "io.k8s.apiextensions-apiserver",
    "kube_aggregator": "io.k8s.kube-aggregator",
}
WRAPPERS = {"Option", "Vec", "Box", "BTreeMap", "String", "HashMap"}


def fetch_k8s_pb():
    home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    found = glob.glob(f"{home}/registry/src/*/k8s-pb-{K8S_PB}")
    if found:
        return found[0]
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(f"{d}/src")
        open(f"{d}/src/lib.rs", "w").close()
        open(f"{d}/Cargo.toml", "w").write(
            f'[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nk8s-pb = "={K8S_PB}"\n'
        )
        subprocess.run(["cargo", "fetch", "--manifest-path", f"{d}/Cargo.toml"], check=True)
    return glob.glob(f"{home}/registry/src/*/k8s-pb-{K8S_PB}")[0]


def fetch_definitions():
    d = tempfile.mkdtemp()
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", d, f"kubernetes-validate=={VALIDATE}"], check=True)
    whl = glob.glob(f"{d}/*.whl")[0]
    with zipfile.ZipFile(whl) as z:
        name = [n for n in z.namelist() if n.endswith(f"v{VALIDATE}-local/_definitions.json")][0]
        return json.loads(z.read(name))["$defs"]


FIELD = re.compile(r"#\[prost\(([^)]*)\)\]\s*pub\s+(?:r#)?(\w+)\s*:\s*(.*?),\s*\n\s*(?=///|#|pub|\})", re.S)
STRUCT = re.compile(r"pub struct (\w+) \{(\}|.*?\n\})", re.S)
TYPE_PATH = re.compile(r"((?:super::)*(?:[a-z_0-9]+::)*[A-Z][A-Za-z0-9]*)")


def resolve(module, text):
    """The module path and name of the message a field's Rust type names."""
    paths = [p for p in TYPE_PATH.findall(text.replace(" ", "").replace("\n", "")) if p.split("::")[-1] not in WRAPPERS]
    if not paths:
        return None
    p = paths[-1].split("::")
    up = 0
    while p and p[0] == "super":
        up += 1
        p = p[1:]
    if up == 0 and p and p[0] in ("core", "prost", "alloc"):
        return None
    base = module[: len(module) - up] if up else module
    return base + p


def openapi_name(path, defs_lower):
    top = PREFIX.get(path[0])
    if not top:
        return None
    pkg = top + "." + ".".join(path[1:-1])
    return defs_lower.get((pkg + "." + path[-1]).lower(), pkg + "." + path[-1])


def main():
    root = fetch_k8s_pb() + "/src"
    defs = fetch_definitions()
    defs_lower = {k.lower(): k for k in defs}
    messages = {}
    for f in glob.glob(f"{root}/**/mod.rs", recursive=True):
        module = os.path.relpath(os.path.dirname(f), root).split(os.sep)
        if module[0] not in PREFIX:
            continue
        src = open(f).read()
        for sname, body in STRUCT.findall(src):
            full = openapi_name(module + [sname], defs_lower)
            d = defs.get(full, {})
            props = {k.lower(): k for k in d.get("properties", {})}
            required = set(d.get("required", []))
            fields = []
            for attr, fname, ftype in FIELD.findall(body + "\n}"):
                tag = int(re.search(r'tag\s*=\s*"(\d+)"', attr).group(1))
                kind = attr.split(",")[0].strip().split(" ")[0]
                repeated = "repeated" in attr
                mapv = None
                if kind.startswith("btree_map") or kind.startswith("map"):
                    mapv = re.search(r'map\s*=\s*"string,\s*(\w+)"', attr).group(1)
                    kind = "map"
                json_name = props.get(fname.replace("_", "").lower())
                if json_name is None:
                    parts = fname.split("_")
                    json_name = parts[0] + "".join(x[:1].upper() + x[1:] for x in parts[1:])
                ref = None
                if kind == "message" or mapv == "message":
                    target = resolve(module, ftype)
                    if target is None:
                        sys.exit(f"cannot resolve the message type of {sname}.{fname}: {ftype!r}")
                    ref = openapi_name(target, defs_lower)
                code = {"string": "s", "int32": "i", "int64": "l", "bool": "b", "double": "d", "bytes": "y", "message": "m"}
                k = "M" + code[mapv] if kind == "map" else code[kind]
                entry = [tag, json_name, k + ("*" if repeated else "")]
                if ref:
                    entry.append(ref)
                if json_name in required:
                    entry.append("!")
                fields.append(entry)
            if len(fields) != body.count("#[prost("):
                sys.exit(f"parsed {len(fields)} of {body.count('#[prost(')} fields of {sname}")
            messages[full] = fields
    gvk = {}
    for name, d in defs.items():
        for g in d.get("x-kubernetes-group-version-kind", []):
            av = g["version"] if not g["group"] else f'{g["group"]}/{g["version"]}'
            if name in messages:
                gvk[f'{av}/{g["kind"]}'] = name
    out = {"source": f"k8s-pb {K8S_PB}, kubernetes-validate {VALIDATE}", "gvk": dict(sorted(gvk.items())), "messages": dict(sorted(messages.items()))}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as fh:
        json.dump(out, fh, separators=(",", ":"))
        fh.write("\n")
    print(f"{OUT}: {len(messages)} messages, {len(gvk)} kinds, {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()
