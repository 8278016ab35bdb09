#!/usr/bin/env python3
"""Vendors CRD schemas for the deploy check: reads CustomResourceDefinition YAML files (as the
operators publish them) and writes, for every served version, its openAPIV3Schema without the
`description` fields (they are most of the size and are never checked) to
deploy/check/crds/<group>_<kind>_<version>.json. Record the source in crds/README.md.

Usage: vendor-crds.py CRD.yaml...
"""

import json
import sys
from pathlib import Path

import yaml

OUT = Path(__file__).resolve().parent / "crds"


def strip(node):
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


for f in sys.argv[1:]:
    for crd in yaml.safe_load_all(Path(f).read_text()):
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if not version.get("served"):
                continue
            out = OUT / f"{group}_{kind.lower()}_{version['name']}.json"
            schema = strip(version["schema"]["openAPIV3Schema"])
            out.write_text(json.dumps(schema, separators=(",", ":"), sort_keys=True))
            print(out.relative_to(OUT.parents[2]))
