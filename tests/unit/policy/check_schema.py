#!/usr/bin/env python3
"""Every example launch policy (policy/examples/*.json) is valid under the JSON Schema
(policy/schema/vmm-launch-policy-1.schema.json), and a policy the schema must refuse is refused.
Usage: check_schema.py SOURCE_DIR. Exit 77 (skipped) without python3-jsonschema."""
import glob
import json
import sys

try:
    import jsonschema
except ImportError:
    print("SKIP: python3-jsonschema is not installed")
    sys.exit(77)

src = sys.argv[1]
with open(f"{src}/policy/schema/vmm-launch-policy-1.schema.json", encoding="utf-8") as f:
    schema = json.load(f)
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
examples = sorted(glob.glob(f"{src}/policy/examples/*.json"))
if len(examples) < 2:
    print("FAIL: expected the strict and the permissive example")
    sys.exit(1)
failures = 0
for path in examples:
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    for error in validator.iter_errors(doc):
        print(f"FAIL: {path}: {error.message}")
        failures += 1
    # The schema is not vacuous: an unknown key and a role with both ids are refused.
    for bad in ({**doc, "extra": 1},
                {**doc, "roles": [{"uid": 0, "gid": 0, "role": "admin"}]}):
        if validator.is_valid(bad):
            print(f"FAIL: {path}: the schema accepts a broken copy")
            failures += 1
    print(f"{path}: valid")
sys.exit(1 if failures else 0)
