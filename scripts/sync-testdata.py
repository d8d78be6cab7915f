#!/usr/bin/env python3
"""Copies trimmed upstream schemas into testdata/, so tests pass on a clone without ../shared.

Sources are the upstream copies in ../shared (see their SOURCES.md):
  - CRDs: the openAPIV3Schema of one version, with every `description` removed;
  - Cozystack values schemas: copied as they are.
Each output records the source file and its sha256, so drift is visible.

Usage:
  scripts/sync-testdata.py            write testdata/
  scripts/sync-testdata.py --check    exit 1 if testdata/ differs from what ../shared gives
Needs PyYAML (installed in .tools/venv by scripts/install-tools.sh).
"""
import argparse
import hashlib
import json
import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent

# output path (under testdata/) -> (source path under shared/, CRD version or None for a plain copy)
OUTPUTS = {}
for release, folder in (("forklift-v2.12.5", "crds/forklift/v2.12.5"), ("forklift-main", "crds/forklift")):
    for plural in ("providers", "networkmaps", "storagemaps", "plans", "migrations"):
        OUTPUTS[f"crds/{release}/{plural}.json"] = (f"{folder}/forklift.konveyor.io_{plural}.yaml", "v1beta1")
OUTPUTS["crds/helmreleases.json"] = ("crds/helm-controller/helm.toolkit.fluxcd.io_helmreleases.yaml", "v2")
OUTPUTS["crds/virtualmachines.json"] = ("crds/kubevirt/kubevirt.io_virtualmachines.yaml", "v1")
OUTPUTS["crds/virtualmachineinstances.json"] = ("crds/kubevirt/kubevirt.io_virtualmachineinstances.yaml", "v1")
OUTPUTS["crds/datavolumes.json"] = ("crds/cdi/cdi.kubevirt.io_datavolumes.yaml", "v1beta1")
OUTPUTS["cozystack/vm-instance.values.schema.json"] = ("cozystack/vm-instance/values.schema.json", None)
OUTPUTS["cozystack/vm-disk.values.schema.json"] = ("cozystack/vm-disk/values.schema.json", None)

SCHEMA_MAPS = ("properties", "patternProperties", "definitions")
SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
SCHEMA_ONE = ("items", "additionalProperties", "not")


def strip_descriptions(node):
    """Removes `description` from a schema node and every schema nested in it.

    Only schema keywords are touched: a property that happens to be called
    `description` (a key of `properties`) is kept."""
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "description" and isinstance(value, str):
            continue
        if key in SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: strip_descriptions(sub) for name, sub in value.items()}
        elif key in SCHEMA_LISTS and isinstance(value, list):
            out[key] = [strip_descriptions(sub) for sub in value]
        elif key in SCHEMA_ONE:
            out[key] = strip_descriptions(value)
        else:
            out[key] = value
    return out


def render(shared, source, version):
    raw = (shared / source).read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if version is None:
        doc = json.loads(raw)
        doc["$comment"] = f"copied from shared/{source} (sha256 {digest})"
        return doc
    crd = yaml.safe_load(raw)
    matches = [v for v in crd["spec"]["versions"] if v["name"] == version]
    if len(matches) != 1:
        sys.exit(f"sync-testdata: {source} has no single version {version}")
    return {
        "source": f"shared/{source}",
        "sha256": digest,
        "group": crd["spec"]["group"],
        "kind": crd["spec"]["names"]["kind"],
        "version": version,
        "scope": crd["spec"]["scope"],
        "openAPIV3Schema": strip_descriptions(matches[0]["schema"]["openAPIV3Schema"]),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if testdata/ is out of date")
    parser.add_argument("--shared", type=pathlib.Path, default=ROOT.parent / "shared")
    args = parser.parse_args()
    if not args.shared.is_dir():
        print(f"sync-testdata: {args.shared} not found; keeping testdata/ as committed")
        return 0
    stale = []
    for out, (source, version) in sorted(OUTPUTS.items()):
        text = json.dumps(render(args.shared, source, version), indent=1, sort_keys=True) + "\n"
        path = ROOT / "testdata" / out
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(out)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("sync-testdata: out of date, run scripts/sync-testdata.py:\n  " + "\n  ".join(stale), file=sys.stderr)
        return 1
    print(f"sync-testdata: {len(OUTPUTS)} files {'up to date' if args.check else 'written'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
