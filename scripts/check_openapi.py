#!/usr/bin/env python3
"""Validates posterior's OpenAPI document and lists its operations.

    python scripts/check_openapi.py FILE_OR_URL

FILE_OR_URL is a path (e.g. src/http/openapi.json) or an http(s):// URL
(e.g. http://127.0.0.1:50051/v1/openapi.json). The document is validated
against the OpenAPI 3.1 schema with openapi-spec-validator
(pip install openapi-spec-validator); then every operation is printed as
`METHOD PATH`, one per line, with the path exactly as the document writes it
(e.g. `POST /v1/experiments/{name}:choose`).

Exit status: 0 valid, 1 invalid document, 2 usage or loading error
(unreadable file, HTTP failure, not JSON, validator not installed).
Diagnostics go to stderr, so stdout holds only the operation lines.
"""

import json
import sys
import urllib.error
import urllib.request

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def fail(code, msg):
    print(f"check_openapi: {msg}", file=sys.stderr)
    sys.exit(code)


def load(source):
    if source.startswith(("http://", "https://")):
        try:
            req = urllib.request.Request(source, headers={"accept": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            fail(2, f"GET {source}: HTTP {e.code} {e.reason}")
        except (urllib.error.URLError, OSError) as e:
            fail(2, f"GET {source}: {getattr(e, 'reason', e)}")
    else:
        try:
            with open(source, "rb") as f:
                raw = f.read()
        except OSError as e:
            fail(2, f"cannot read {source}: {e.strerror}")
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        fail(2, f"{source} is not valid JSON: {e}")
    if not isinstance(doc, dict):
        fail(1, f"{source}: the document is not a JSON object")
    return doc


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(2)
    source = argv[1]
    try:
        from openapi_spec_validator import OpenAPIV31SpecValidator, validate
        from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
    except ImportError:
        fail(2, "openapi-spec-validator is not installed: pip install openapi-spec-validator")

    doc = load(source)
    version = doc.get("openapi")
    if not (isinstance(version, str) and version.startswith("3.1.")):
        fail(1, f"{source}: expected an OpenAPI 3.1.x document, got openapi: {version!r}")
    try:
        validate(doc, cls=OpenAPIV31SpecValidator)
    except OpenAPIValidationError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "(document root)"
        fail(1, f"{source} is not a valid OpenAPI 3.1 document:\n  at {where}: {e.message}")
    except Exception as e:  # e.g. an unresolvable $ref
        msg = str(e).split("\n")[0]
        if len(msg) > 200:  # referencing errors quote the whole document
            msg = msg[:200] + "..."
        fail(1, f"{source} is not a valid OpenAPI 3.1 document:\n  {type(e).__name__}: {msg}")

    ops, ids = [], {}
    for path, item in (doc.get("paths") or {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            ops.append(f"{method.upper()} {path}")
            op_id = op.get("operationId")
            if op_id is None:
                fail(1, f"{method.upper()} {path}: no operationId")
            if op_id in ids:
                fail(1, f"operationId {op_id} used by both {ids[op_id]} and "
                        f"{method.upper()} {path}")
            ids[op_id] = f"{method.upper()} {path}"
    if not ops:
        fail(1, f"{source}: no operations")
    for line in ops:
        print(line)
    print(f"check_openapi: {source}: valid OpenAPI {version}, {len(ops)} operations",
          file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv)
