#!/usr/bin/env python3
"""Generates src/http/openapi.json, the OpenAPI 3.1 document of the HTTP/JSON API.

    python scripts/gen_openapi.py            # rewrite src/http/openapi.json
    python scripts/gen_openapi.py --check    # exit 1 if the file is stale

The schemas come from proto/posterior/v1/*.proto, parsed by the small parser
below, so the document follows the protos: field names, types and the proto
comments (as descriptions). The routes, summaries, path bindings and error
responses are the hand-written ROUTES table.

JSON bodies are the proto3 JSON mapping as pbjson generates it:
lowerCamelCase names (snake_case also accepted on input, not documented here),
64-bit integers as strings (numbers accepted on input), enums as their names,
oneof members as ordinary optional properties (at most one present), maps as
objects, defaults omitted from responses. Requests refuse unknown fields, so
every message a request can carry has `additionalProperties: false`.

The parser handles what these protos use (messages, enums, oneofs,
optional/repeated/map fields, services, `//` comments) and fails loudly on
anything else rather than guessing. Python 3.8+, standard library only
(jsonschema, when installed, is used to check the examples).
"""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = [
    ROOT / "proto/posterior/v1/bandit.proto",
    ROOT / "proto/posterior/v1/optimizer.proto",
]
OUT = ROOT / "src/http/openapi.json"
VERSION = "0.1.0"

# ---------------------------------------------------------------- proto parser

SCALARS = {
    "double", "float", "int32", "int64", "uint32", "uint64", "sint32", "sint64",
    "fixed32", "fixed64", "sfixed32", "sfixed64", "bool", "string", "bytes",
}

RE_FIELD = re.compile(
    r"^(?:(optional|repeated)\s+)?"
    r"(map\s*<\s*(\w+)\s*,\s*([\w.]+)\s*>|[\w.]+)\s+"
    r"(\w+)\s*=\s*(\d+)\s*(?:\[[^\]]*\])?\s*;$"
)
RE_ENUM_VALUE = re.compile(r"^(\w+)\s*=\s*(-?\d+)\s*(?:\[[^\]]*\])?\s*;$")
RE_RPC = re.compile(
    r"^rpc\s+(\w+)\s*\(\s*(stream\s+)?([\w.]+)\s*\)\s*returns\s*"
    r"\(\s*(stream\s+)?([\w.]+)\s*\)\s*(;|\{\s*\}\s*;?)$"
)


class ProtoError(Exception):
    pass


def camel(name):
    """proto3 JSON name: snake_case -> lowerCamelCase."""
    out, up = [], False
    for ch in name:
        if ch == "_":
            up = True
        elif up:
            out.append(ch.upper())
            up = False
        else:
            out.append(ch)
    return "".join(out)


def parse_proto(path, messages, enums, services):
    """Adds the file's messages, enums and services to the given dicts.

    messages[name] = {"doc", "file", "fields": [{"name", "type", "label", "key",
                      "oneof", "doc"}], "oneofs": {name: doc}}
    enums[name]    = {"doc", "values": [(name, number, doc)]}
    services[name] = {"doc", "rpcs": {name: {"doc", "input", "output"}}}
    """
    file_doc = None
    pending = []  # comment lines waiting for the next declaration
    stack = []  # ("message", name) / ("enum", name) / ("oneof", (msg, name)) / ("service", name)
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        where = f"{path.name}:{lineno}"
        line = raw.strip()
        trailing = None
        if line.startswith("//"):
            pending.append(line[2:].strip())
            continue
        if "//" in line:  # trailing comment on a declaration
            line, trailing = line.split("//", 1)
            line, trailing = line.strip(), trailing.strip()
        if not line:
            if not stack and file_doc is None and pending:
                file_doc = pending
            pending = []
            continue
        doc = "\n".join(pending + ([trailing] if trailing else [])).strip() or None
        if not stack and file_doc is None and pending and line.startswith("syntax"):
            file_doc, doc = pending, None
        pending = []

        if re.match(r"^(syntax|package|option|import)\b", line):
            if stack:
                raise ProtoError(f"{where}: unsupported inside a block: {line}")
            if line.startswith("import"):
                raise ProtoError(f"{where}: imports are not supported: {line}")
            continue
        if line == "}" or line == "};":
            if not stack:
                raise ProtoError(f"{where}: unbalanced '}}'")
            stack.pop()
            continue

        m = re.match(r"^(message|enum|service)\s+(\w+)\s*\{\s*(\}?)$", line)
        if m:
            kind, name, closed = m.groups()
            # An enum nested in a message (GetVerdictResponse.Status) becomes
            # the schema GetVerdictResponseStatus; nothing else may nest.
            if stack and kind == "enum" and stack[-1][0] == "message":
                name = stack[-1][1] + name
            elif stack:
                raise ProtoError(f"{where}: nested declarations are not supported: {line}")
            table = {"message": messages, "enum": enums, "service": services}[kind]
            if name in messages or name in enums or name in services:
                raise ProtoError(f"{where}: {name} declared twice")
            if kind == "message":
                table[name] = {"doc": doc, "fields": [], "oneofs": {}, "file": path.name}
            elif kind == "enum":
                table[name] = {"doc": doc, "values": []}
            else:
                table[name] = {"doc": doc, "rpcs": {}}
            if not closed:
                stack.append((kind, name))
            continue

        if not stack:
            raise ProtoError(f"{where}: unexpected top-level line: {line}")
        kind, owner = stack[-1]

        if kind == "service":
            m = RE_RPC.match(line)
            if not m:
                raise ProtoError(f"{where}: unsupported service line: {line}")
            name, s_in, req, s_out, resp, _ = m.groups()
            if s_in or s_out:
                raise ProtoError(f"{where}: streaming RPCs are not supported")
            services[owner]["rpcs"][name] = {"doc": doc, "input": req, "output": resp}
            continue

        if kind == "enum":
            m = RE_ENUM_VALUE.match(line)
            if not m:
                raise ProtoError(f"{where}: unsupported enum line: {line}")
            enums[owner]["values"].append((m.group(1), int(m.group(2)), doc))
            continue

        m = re.match(r"^oneof\s+(\w+)\s*\{$", line)
        if m:
            if kind != "message":
                raise ProtoError(f"{where}: nested oneof")
            messages[owner]["oneofs"][m.group(1)] = doc
            stack.append(("oneof", (owner, m.group(1))))
            continue
        if line.startswith(("reserved", "extensions", "extend", "group")):
            raise ProtoError(f"{where}: unsupported: {line}")

        m = RE_FIELD.match(line)
        if not m:
            raise ProtoError(f"{where}: cannot parse field: {line}")
        label, typ, key, value, name, _number = m.groups()
        msg = owner if kind == "message" else owner[0]
        oneof = owner[1] if kind == "oneof" else None
        if oneof and label:
            raise ProtoError(f"{where}: label inside a oneof")
        field = {"name": name, "label": label, "doc": doc, "oneof": oneof}
        if key:
            field.update(label="map", key=key, type=value)
        else:
            field["type"] = typ
        messages[msg]["fields"].append(field)
    if stack:
        raise ProtoError(f"{path.name}: unclosed block {stack[-1]}")
    return "\n".join(file_doc or []).strip() or None


def load_protos():
    messages, enums, services, file_docs = {}, {}, {}, {}
    for p in PROTOS:
        file_docs[p.name] = parse_proto(p, messages, enums, services)
    for mname, m in messages.items():
        for f in m["fields"]:
            if "." in f["type"]:
                f["type"] = f["type"].replace(".", "")
            elif mname + f["type"] in enums:
                f["type"] = mname + f["type"]
            t = f["type"]
            if f["type"] not in SCALARS and t not in messages and t not in enums:
                raise ProtoError(f"{mname}.{f['name']}: unknown type {f['type']}")
            f["type"] = f["type"] if f["type"] in SCALARS else t
    return messages, enums, services, file_docs


# ------------------------------------------------------------- schema builder


def field_names(messages):
    return {f["name"] for m in messages.values() for f in m["fields"] if "_" in f["name"]}


def jsonify_doc(text, snake_names):
    """Proto comments name fields in snake_case; the JSON API uses camelCase.

    Rewrites the known snake_case field names (and only those: config keys
    such as bandit.fallback_arms stay as they are) and joins the comment's
    lines into paragraphs.
    """
    if not text:
        return None
    for n in sorted(snake_names, key=len, reverse=True):
        text = re.sub(rf"(?<![\w]){re.escape(n)}(?![\w])", camel(n), text)
    # Keep line breaks only where the comment starts a new item or paragraph.
    out = ""
    for ln in text.split("\n"):
        ln = ln.strip()
        if not out or out.endswith("\n"):
            out += ln
        elif not ln:
            out += "\n\n"
        elif re.match(r"^([A-Z_]+:|\S+\s*~|-\s)", ln):
            out += "\n" + ln
        else:
            out += " " + ln
    return out.strip()


def scalar_schema(t):
    if t in ("double", "float"):
        return {"type": "number", "format": t}
    if t in ("int32", "sint32", "sfixed32"):
        return {"type": "integer", "format": "int32"}
    if t in ("uint32", "fixed32"):
        return {"type": "integer", "format": "uint32", "minimum": 0, "maximum": 4294967295}
    if t in ("int64", "sint64", "sfixed64"):
        return {"type": ["string", "integer"], "format": "int64", "pattern": r"^-?[0-9]+$"}
    if t in ("uint64", "fixed64"):
        return {"type": ["string", "integer"], "format": "uint64", "pattern": r"^[0-9]+$",
                "minimum": 0}
    if t == "bool":
        return {"type": "boolean"}
    if t == "string":
        return {"type": "string"}
    if t == "bytes":
        return {"type": "string", "contentEncoding": "base64"}
    raise ProtoError(f"unknown scalar {t}")


def type_schema(t, messages, enums):
    if t in SCALARS:
        return scalar_schema(t)
    return {"$ref": f"#/components/schemas/{t}"}


INT64_NOTE = "64-bit integer: a decimal string in responses; a string or a number in requests."


def field_schema(f, m, messages, enums, snake):
    item = type_schema(f["type"], messages, enums)
    if f["label"] == "repeated":
        s = {"type": "array", "items": item}
    elif f["label"] == "map":
        if f["key"] != "string":
            raise ProtoError(f"map key {f['key']} not supported")
        s = {"type": "object", "additionalProperties": item}
    elif f["label"] == "optional":
        if f["type"] in SCALARS and f["type"] not in ("int64", "uint64", "fixed64", "sint64",
                                                       "sfixed64"):
            s = dict(item)
            s["type"] = [s["type"], "null"]
        else:
            s = {"oneOf": [item, {"type": "null"}]}
    else:
        s = dict(item)
    doc = jsonify_doc(f["doc"], snake)
    notes = []
    if f["oneof"]:
        members = [camel(g["name"]) for g in m["fields"] if g["oneof"] == f["oneof"]]
        group_doc = jsonify_doc(m["oneofs"][f["oneof"]], snake)
        notes.append(
            f"Member of oneof `{f['oneof']}`: at most one of "
            + ", ".join(f"`{x}`" for x in members)
            + " is present (a member is present even when it holds its default value)."
            + (f" {group_doc}" if group_doc else "")
        )
    if f["label"] == "optional":
        notes.append("Optional: absent (or null) when not set.")
    if f["type"] in ("int64", "uint64", "sint64", "fixed64", "sfixed64"):
        notes.append(INT64_NOTE)
    desc = "\n\n".join(x for x in [doc] + notes if x)
    if desc:
        s["description"] = desc
    return s


def message_schema(name, messages, enums, snake, strict, drop=()):
    m = messages[name]
    props = {}
    for f in m["fields"]:
        if f["name"] in drop:
            continue
        props[camel(f["name"])] = field_schema(f, m, messages, enums, snake)
    s = {"type": "object"}
    doc = jsonify_doc(m["doc"], snake)
    if doc:
        s["description"] = doc
    s["properties"] = props
    if strict:
        s["additionalProperties"] = False
    # At most one member of each oneof.
    exclusions = []
    for oneof in m["oneofs"]:
        members = [camel(f["name"]) for f in m["fields"]
                   if f["oneof"] == oneof and f["name"] not in drop]
        for i, a in enumerate(members):
            for b in members[i + 1:]:
                exclusions.append({"required": [a, b]})
    if exclusions:
        s["not"] = {"anyOf": exclusions} if len(exclusions) > 1 else exclusions[0]
    return s


def enum_schema(name, enums, snake):
    e = enums[name]
    lines = [jsonify_doc(e["doc"], snake) or "Values:"]
    for vname, num, vdoc in e["values"]:
        vd = jsonify_doc(vdoc, snake)
        lines.append(f"- `{vname}`" + (f": {vd}" if vd else ""))
    lines.append(
        "\nThe first value is the default: responses omit a field holding it."
    )
    return {"type": "string", "enum": [v[0] for v in e["values"]],
            "description": "\n".join(lines)}


def reachable(roots, messages):
    seen, todo = set(), list(roots)
    while todo:
        n = todo.pop()
        if n in seen or n not in messages:
            continue
        seen.add(n)
        todo.extend(f["type"] for f in messages[n]["fields"])
    return seen


# ---------------------------------------------------------------------- routes

NAME_PARAM_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": 128,
    "pattern": "^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
}
COLLECTION = {"experiments": "experiment", "studies": "study"}
NAME_RULE = ("1 to 128 characters from `[A-Za-z0-9_.:-]`, starting with a letter or digit "
             "(percent-encode `:` in a path segment when in doubt).")

# Each route: method, path, operationId (= gRPC method), tag, summary,
# path bindings {path param: request field}, request message, response message,
# body: "body" (request minus path fields as JSON body), "query" (as query
# parameters), "none", or "empty" (optional empty body), 409 description or
# None, scope (None for open routes), example request body.
# RPCs in the proto contract still answering UNIMPLEMENTED, so without an
# HTTP route yet (their branch adds the route and removes them from here).
UNROUTED = {"RewardAggregate", "RewardBatch"}

GATE_HEADERS = [{
    "name": "x-gate-status", "in": "header", "required": False,
    "description": "`200`: answer every verdict with 200 (the verdict only in the "
                   "body), for callers that treat any non-2xx answer as an error "
                   "without reading it (Argo Rollouts' `web` metric).",
    "schema": {"type": "string", "enum": ["200"]},
}]

# The gate answers its verdict in the status too (not errors: the body is
# the GateResponse).
GATE_STATUSES = {
    "412": "FAIL: the candidate is worse than the baseline by more than the margin, "
           "or breaches the SLO, with probability >= confidence. The body is the "
           "GateResponse.",
    "425": "INCONCLUSIVE (Too Early): not enough evidence yet for PASS or FAIL; ask "
           "again later. The body is the GateResponse.",
}

ROUTES = [
    dict(method="post", path="/v1/experiments", op="CreateExperiment", tag="Bandits",
         summary="Create an experiment", bind={}, req="CreateExperimentRequest",
         resp="CreateExperimentResponse", body="body", scope="admin",
         conflict="`ALREADY_EXISTS`: an experiment with this name but a different "
                  "definition exists (an identical re-create is a 200 with `created: false`).",
         example={"name": "checkout-button", "arms": ["blue", "green"], "model": "BERNOULLI"}),
    dict(method="get", path="/v1/experiments", op="ListExperiments", tag="Bandits",
         summary="List experiment names, a page at a time", bind={},
         req="ListExperimentsRequest", resp="ListExperimentsResponse", body="query",
         scope="decide", not_found=False),
    dict(method="get", path="/v1/experiments/{name}", op="GetExperiment", tag="Bandits",
         summary="Get an experiment and the posterior of every arm", bind={"name": "name"},
         req="GetExperimentRequest", resp="GetExperimentResponse", body="query",
         scope="decide"),
    dict(method="delete", path="/v1/experiments/{name}", op="DeleteExperiment", tag="Bandits",
         summary="Delete an experiment", bind={"name": "name"},
         req="DeleteExperimentRequest", resp="DeleteExperimentResponse", body="query",
         scope="admin"),
    dict(method="post", path="/v1/experiments/{name}/arms", op="AddArm", tag="Bandits",
         summary="Add an arm to an experiment", bind={"name": "experiment"},
         req="AddArmRequest", resp="AddArmResponse", body="body", scope="admin",
         conflict="`FAILED_PRECONDITION`: the arm was retired (a retired arm cannot be "
                  "re-added); `ABORTED`: concurrent definition changes kept winning, retry.",
         example={"arm": "red"}),
    dict(method="post", path="/v1/experiments/{name}/arms/{arm}:retire", op="RetireArm",
         tag="Bandits", summary="Retire an arm", bind={"name": "experiment", "arm": "arm"},
         req="RetireArmRequest", resp="RetireArmResponse", body="empty", scope="admin",
         conflict="`FAILED_PRECONDITION`: it is the last active arm; `ABORTED`: concurrent "
                  "definition changes kept winning, retry."),
    dict(method="post", path="/v1/experiments/{name}:choose", op="Choose", tag="Bandits",
         summary="Choose an arm (Thompson sampling)", bind={"name": "experiment"},
         req="ChooseRequest", resp="ChooseResponse", body="body", scope="decide",
         optional_body=True,
         conflict="`FAILED_PRECONDITION`: every arm in `eligibleArms` is retired.",
         example={}),
    dict(method="post", path="/v1/experiments/{name}:reward", op="Reward", tag="Bandits",
         summary="Report the reward of a decision (or of an arm)", bind={"name": "experiment"},
         req="RewardRequest", resp="RewardResponse", body="body", scope="report",
         conflict="`FAILED_PRECONDITION`: the decision id is older than the dedupe window "
                  "(reward by `arm` to ingest it anyway).",
         example={"decisionId": "<decisionId from Choose>", "value": 1}),
    dict(method="get", path="/v1/experiments/{name}:verdict", op="GetVerdict",
         tag="Bandits", summary="The experiment's verdict under its stopping rule",
         bind={"name": "name"}, req="GetVerdictRequest", resp="GetVerdictResponse",
         body="query", scope="decide"),
    dict(method="get", path="/v1/experiments/{name}:gate", op="Gate", tag="Bandits",
         summary="Canary gate: may the candidate arm replace the baseline?",
         bind={"name": "experiment"}, req="GateRequest", resp="GateResponse", body="query",
         scope="decide",
         header_params=GATE_HEADERS,
         gate_statuses=GATE_STATUSES),
    dict(method="post", path="/v1/experiments/{name}:gate", op="Gate", op_id="GateWebhook",
         tag="Bandits",
         summary="Canary gate for webhooks that only POST (Flagger): the query string as "
                 "with GET, the body is not read",
         bind={"name": "experiment"}, req="GateRequest", resp="GateResponse", body="query",
         scope="decide", header_params=GATE_HEADERS, gate_statuses=GATE_STATUSES),
    dict(method="get", path="/v1/experiments/{name}/history", op="GetExperimentHistory",
         tag="Bandits",
         summary="The experiment's history: a point per interval with every arm's posterior "
                 "and decisions",
         bind={"name": "name"}, req="GetExperimentHistoryRequest",
         resp="GetExperimentHistoryResponse", body="query", scope="decide"),
    dict(method="post", path="/v1/studies", op="CreateStudy", tag="Optimizer",
         summary="Create a study", bind={}, req="CreateStudyRequest",
         resp="CreateStudyResponse", body="body", scope="admin",
         conflict="`ALREADY_EXISTS`: a study with this name but a different definition "
                  "exists (an identical re-create is a 200 with `created: false`).",
         example={
             "name": "lambda-memory",
             "parameters": [
                 {"name": "memory_mb", "ordinal": {"values": [512, 1024, 2048, 4096]}},
                 {"name": "arch", "categorical": {"values": ["x86_64", "arm64"]}},
             ],
             "objective": {"name": "cost", "goal": "MINIMIZE"},
             "constraints": [{"metric": "p95_ms", "upperBound": 200}],
             "metrics": ["p95_ms"],
             "seed": "42",
         }),
    dict(method="get", path="/v1/studies", op="ListStudies", tag="Optimizer",
         summary="List study names, a page at a time", bind={}, req="ListStudiesRequest",
         resp="ListStudiesResponse", body="query", scope="decide", not_found=False),
    dict(method="get", path="/v1/studies/{name}", op="GetStudy", tag="Optimizer",
         summary="Get a study, its trials and the recommendation", bind={"name": "name"},
         req="GetStudyRequest", resp="GetStudyResponse", body="query", scope="decide"),
    dict(method="get", path="/v1/studies/{name}/slices", op="GetStudySlices", tag="Optimizer",
         summary="The objective's GP posterior along each parameter through the "
                 "recommended configuration, and the GP's calibration",
         bind={"name": "name"}, req="GetStudySlicesRequest", resp="GetStudySlicesResponse",
         body="query", scope="decide"),
    dict(method="delete", path="/v1/studies/{name}", op="DeleteStudy", tag="Optimizer",
         summary="Delete a study", bind={"name": "name"}, req="DeleteStudyRequest",
         resp="DeleteStudyResponse", body="query", scope="admin"),
    dict(method="post", path="/v1/studies/{name}:suggest", op="Suggest", tag="Optimizer",
         summary="Suggest configurations to evaluate", bind={"name": "study"},
         req="SuggestRequest", resp="SuggestResponse", body="body", scope="decide",
         optional_body=True,
         conflict="`FAILED_PRECONDITION`: every configuration of the finite search space has "
                  "been suggested (exhausted); `ABORTED`: concurrent updates of the study kept "
                  "winning, retry.",
         example={"count": 2}),
    dict(method="post", path="/v1/studies/{name}:observe", op="Observe", tag="Optimizer",
         summary="Report the outcome of a trial", bind={"name": "study"},
         req="ObserveRequest", resp="ObserveResponse", body="body", scope="report",
         conflict="`FAILED_PRECONDITION`: the trial was already observed (never counted "
                  "twice); `ABORTED`: concurrent updates of the study kept winning, retry.",
         example={"trialId": "3", "value": 0.0021, "metrics": {"p95_ms": 180}}),
]

ERRORS = {
    # status: (component name, description, gRPC codes)
    400: ("BadRequest", "Invalid request: malformed JSON, an unknown field, or a field that "
          "breaks a rule (`INVALID_ARGUMENT`; the message starts with the field name).",
          ["INVALID_ARGUMENT"]),
    401: ("Unauthenticated", "API keys are configured and the request carries none, or an "
          "unknown one (`UNAUTHENTICATED`). Send `x-api-key: KEY` or "
          "`authorization: Bearer KEY`.", ["UNAUTHENTICATED"]),
    403: ("PermissionDenied", "The API key lacks the scope this operation needs "
          "(`PERMISSION_DENIED`).", ["PERMISSION_DENIED"]),
    404: ("NotFound", "The experiment, study, arm or trial does not exist (`NOT_FOUND`).",
          ["NOT_FOUND"]),
    429: ("TooManyRequests", "Load shedding: too many requests in flight "
          "(`RESOURCE_EXHAUSTED`). Retry with backoff, after `Retry-After` seconds when the "
          "header is present.", ["RESOURCE_EXHAUSTED"]),
    500: ("Internal", "Internal error, e.g. a corrupt stored record or a numerical failure "
          "(`INTERNAL`).", ["INTERNAL"]),
    503: ("Unavailable", "The store is unreachable (`UNAVAILABLE`); retry with backoff.",
          ["UNAVAILABLE"]),
    504: ("DeadlineExceeded", "The request ran out of time (`DEADLINE_EXCEEDED`).",
          ["DEADLINE_EXCEEDED"]),
}

GRPC_CODES = [
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
]

ERROR_EXAMPLES = {
    400: "arms[1]: must use only letters, digits, '_', '.', ':' and '-', and start with a "
         "letter or digit; got \"a b\"",
    401: "missing API key: send 'authorization: Bearer KEY' or 'x-api-key: KEY'",
    403: "API key lacks the 'admin' scope",
    404: "experiment: \"checkout-button\" not found",
    429: "server overloaded: too many requests in flight (server.max_concurrent_requests); "
         "retry with backoff",
    500: "internal error: ...",
    503: "store unavailable: ...",
    504: "deadline exceeded",
}

SCOPE_TEXT = {
    "decide": "`decide`",
    "report": "`report`",
    "admin": "`admin`",
}


INFO_DESCRIPTION = (
    "The HTTP/JSON API of posterior, served on the same port as the gRPC API "
    "(`posterior.v1.Bandits` and `posterior.v1.Optimizer`), one route per RPC; "
    "each `operationId` is the gRPC method name.\n\n"
    "Bodies follow the proto3 JSON mapping of the messages in `proto/posterior/v1/`: "
    "field names in lowerCamelCase (requests also accept the proto's snake_case "
    "names), 64-bit integers as decimal strings (requests also accept numbers), enums "
    "as their names, `oneof` members as ordinary optional properties (at most one "
    "present). Responses write every field, defaults included (0, \"\", false, "
    "the first enum value, empty lists and maps); only an unset `optional` field or "
    "`oneof` member or message is left out. "
    "Requests refuse unknown fields.\n\n"
    "Errors: `{\"error\": {\"code\": <HTTP status>, \"status\": \"<gRPC code name>\", "
    "\"message\": \"<field>: <rule>\"}}`.\n\n"
    "Authentication: only when the server configures API keys, sent as "
    "`x-api-key: KEY` or `authorization: Bearer KEY`. Keys carry scopes (`decide`, "
    "`report`, `admin`); each operation's security requirements name the scope it "
    "needs as the role."
)


def error_response(status):
    name, desc, codes = ERRORS[status]
    resp = {
        "description": desc,
        "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Error"},
            "example": {"error": {"code": status, "status": codes[0],
                                  "message": ERROR_EXAMPLES[status]}},
        }},
    }
    if status == 429:
        resp["headers"] = {"Retry-After": {"$ref": "#/components/headers/Retry-After"}}
    return name, resp


def build():
    messages, enums, services, file_docs = load_protos()
    snake = field_names(messages)
    rpcs = {}
    for sname, s in services.items():
        for rname, r in s["rpcs"].items():
            rpcs[rname] = dict(r, service=sname)

    # Check the route table against the protos.
    for r in ROUTES:
        rpc = rpcs.get(r["op"])
        if rpc is None:
            raise ProtoError(f"route {r['op']}: no such RPC")
        if (rpc["input"], rpc["output"]) != (r["req"], r["resp"]):
            raise ProtoError(f"route {r['op']}: RPC types are {rpc['input']} -> {rpc['output']}")
        fields = {f["name"] for f in messages[r["req"]]["fields"]}
        for field in r["bind"].values():
            if field not in fields:
                raise ProtoError(f"route {r['op']}: {r['req']} has no field {field}")
    missing = set(rpcs) - {r["op"] for r in ROUTES} - UNROUTED
    if missing:
        raise ProtoError(f"RPCs without a route: {sorted(missing)}")

    # Body schemas: the request message minus the fields bound to the path.
    bodies = {}
    for r in ROUTES:
        if r["body"] in ("body", "empty"):
            bodies[r["op"]] = (r["req"], set(r["bind"].values()))
    request_roots = set()
    for req, drop in bodies.values():
        request_roots |= {f["type"] for f in messages[req]["fields"] if f["name"] not in drop}
    strict = reachable(request_roots, messages)
    response_roots = {r["resp"] for r in ROUTES}
    used = reachable(response_roots | request_roots, messages)

    schemas = {}
    for r in ROUTES:
        if r["op"] not in bodies:
            continue
        req, drop = bodies[r["op"]]
        name = req if not drop else f"{r['op']}Body"
        s = message_schema(req, messages, enums, snake, strict=True, drop=drop)
        if drop:
            bound = " and ".join(f"`{camel(f)}`" for f in r["bind"].values())
            note = f"`{req}` without {bound}, which the path carries."
            doc = s.pop("description", None)
            s = {"type": s.pop("type"),
                 "description": f"{doc}\n\n{note}" if doc else note, **s}
        r["body_schema"] = name
        schemas[name] = s
    for name in sorted(used | response_roots):
        if name in schemas:
            continue
        schemas[name] = message_schema(name, messages, enums, snake, strict=name in strict)
    for name in sorted(enums):
        schemas[name] = enum_schema(name, enums, snake)
    schemas["Error"] = {
        "type": "object",
        "description": "Every error response. `code` is the HTTP status, `status` the gRPC "
                       "code name, and `message` names the field and the rule it breaks "
                       "(`<field>: <rule>`) where a field is at fault.",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "status", "message"],
            "properties": {
                "code": {"type": "integer", "format": "int32",
                         "description": "The HTTP status code."},
                "status": {"type": "string", "enum": GRPC_CODES,
                           "description": "The gRPC status code name."},
                "message": {"type": "string",
                            "description": "What went wrong, e.g. `<field>: <rule>`."},
            },
        }},
    }
    schemas["HealthStatus"] = {
        "type": "object",
        "description": "The serving status.",
        "required": ["status"],
        "properties": {"status": {"type": "string", "description": "`SERVING`.",
                                  "examples": ["SERVING"]}},
    }
    schemas = dict(sorted(schemas.items()))

    responses = {}
    for status in ERRORS:
        name, resp = error_response(status)
        responses[name] = resp

    paths = {}
    for r in ROUTES:
        rpc = rpcs[r["op"]]
        req = messages[r["req"]]
        byname = {f["name"]: f for f in req["fields"]}
        params = []
        for pname, fname in r["bind"].items():
            what = "arm" if fname == "arm" else COLLECTION[r["path"].split("/")[2]]
            params.append({
                "name": pname, "in": "path", "required": True,
                "description": f"The {what} name: {NAME_RULE}",
                "schema": dict(NAME_PARAM_SCHEMA),
            })
        if r["body"] == "query":
            for f in req["fields"]:
                if f["name"] in r["bind"].values():
                    continue
                if f["label"] in ("repeated", "map") or f["type"] not in SCALARS:
                    raise ProtoError(f"{r['op']}: field {f['name']} cannot be a query parameter")
                s = scalar_schema(f["type"])
                desc = jsonify_doc(f["doc"], snake)
                if f["type"] == "int32" and f["name"] == "page_size":
                    s.update(minimum=0, maximum=1000)
                p = {"name": camel(f["name"]), "in": "query", "required": False, "schema": s}
                if desc:
                    p["description"] = desc
                params.append(p)
        params += r.get("header_params", [])
        desc = jsonify_doc(rpc["doc"], snake) or (r["summary"] + ".")
        desc += f"\n\ngRPC: `posterior.v1.{rpc['service']}/{r['op']}`."
        desc += f" Needs the {SCOPE_TEXT[r['scope']]} scope when API keys are configured."
        op = {
            "operationId": r.get("op_id", r["op"]),
            "summary": r["summary"],
            "description": desc,
            "tags": [r["tag"]],
        }
        if params:
            op["parameters"] = params
        if r["body"] in ("body", "empty"):
            media = {"schema": {"$ref": f"#/components/schemas/{r['body_schema']}"}}
            if "example" in r:
                media["example"] = r["example"]
            op["requestBody"] = {
                # Choose and Suggest work without a body (every arm; one trial).
                "required": r["body"] == "body" and not r.get("optional_body"),
                "content": {"application/json": media},
            }
            if r["body"] == "empty":
                op["requestBody"]["description"] = "An empty body or `{}`."
        resp = {
            "200": {
                "description": jsonify_doc(messages[r["resp"]]["doc"], snake) or "OK.",
                "content": {"application/json": {
                    "schema": {"$ref": f"#/components/schemas/{r['resp']}"}}},
            },
        }
        if "gate_statuses" in r:
            resp["200"]["description"] = (
                "PASS: the candidate is not worse than the baseline by more than the margin "
                "(and keeps the SLO) with probability >= confidence. " + resp["200"]["description"])
            for code, text in r["gate_statuses"].items():
                resp[code] = {"description": text, "content": {"application/json": {
                    "schema": {"$ref": f"#/components/schemas/{r['resp']}"}}}}
        # FAILED_PRECONDITION is a 400 (the standard gRPC -> HTTP mapping,
        # src/error.rs); ALREADY_EXISTS and ABORTED are 409s.
        precondition, conflict = [], []
        for part in (r.get("conflict") or "").split("; "):
            if part:
                (precondition if part.startswith("`FAILED_PRECONDITION`")
                 else conflict).append(part)
        codes = [400, 401, 403]
        if r.get("not_found", True):
            codes.append(404)
        if conflict:
            codes.append(409)
        codes += [429, 500, 503, 504]
        error_json = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        for c in codes:
            if c == 409:
                resp["409"] = {
                    "description": "Conflict with the resource's state: "
                                   + "; ".join(conflict),
                    "content": error_json,
                }
            elif c == 400 and precondition:
                resp["400"] = {
                    "description": ERRORS[400][1] + " Also a request the resource's state "
                                   "forbids: " + "; ".join(precondition),
                    "content": error_json,
                }
            else:
                resp[str(c)] = {"$ref": f"#/components/responses/{ERRORS[c][0]}"}
        op["responses"] = resp
        op["security"] = [{}, {"apiKey": [r["scope"]]}, {"bearer": [r["scope"]]}]
        paths.setdefault(r["path"], {})[r["method"]] = op

    open_note = " Open: no API key needed, even when keys are configured."
    paths["/v1/openapi.json"] = {"get": {
        "operationId": "GetOpenApi", "summary": "This OpenAPI document",
        "description": "The OpenAPI 3.1 document of the HTTP/JSON API." + open_note,
        "tags": ["Service"], "security": [{}],
        "responses": {
            "200": {"description": "This document.", "content": {"application/json": {
                "schema": {"type": "object"}}}},
            "429": {"$ref": "#/components/responses/TooManyRequests"},
        },
    }}
    paths["/healthz"] = {"get": {
        "operationId": "Healthz", "summary": "Liveness",
        "description": "200 while the process serves (it does not ask the store)." + open_note,
        "tags": ["Service"], "security": [{}],
        "responses": {
            "200": {"description": "The process serves.", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/HealthStatus"},
                "example": {"status": "SERVING"}}}},
            "429": {"$ref": "#/components/responses/TooManyRequests"},
        },
    }}
    paths["/readyz"] = {"get": {
        "operationId": "Readyz", "summary": "Readiness",
        "description": "200 when the store answers, 503 when it does not." + open_note,
        "tags": ["Service"], "security": [{}],
        "responses": {
            "200": {"description": "The store answers.", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/HealthStatus"},
                "example": {"status": "SERVING"}}}},
            "429": {"$ref": "#/components/responses/TooManyRequests"},
            "503": {"$ref": "#/components/responses/Unavailable"},
        },
    }}

    doc = {
        "openapi": "3.1.0",
        "info": {
            "title": "posterior",
            "version": VERSION,
            "summary": "A decision service: multi-armed bandits and Bayesian optimization.",
            "description": INFO_DESCRIPTION,
        },
        "servers": [{"url": "/"}],
        "security": [{}, {"apiKey": []}, {"bearer": []}],
        "tags": [
            {"name": "Bandits", "description": jsonify_doc(file_docs["bandit.proto"], snake)},
            {"name": "Optimizer",
             "description": jsonify_doc(file_docs["optimizer.proto"], snake)},
            {"name": "Service", "description": "This document, liveness and readiness."},
        ],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": responses,
            "headers": {"Retry-After": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "integer", "minimum": 0},
            }},
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key",
                           "description": "An API key (only when the server configures keys)."},
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "The same API key as `authorization: Bearer KEY`."},
            },
        },
    }
    return doc


def check_examples(doc):
    """Validates the request examples against their schemas (when jsonschema is installed)."""
    try:
        import jsonschema
    except ImportError:
        return
    for path, item in doc["paths"].items():
        for method, op in item.items():
            media = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            if "example" in media:
                schema = dict(media["schema"], components=doc["components"])
                jsonschema.Draft202012Validator(schema).validate(media["example"])
            for status, resp in op["responses"].items():
                resp = resp if "$ref" not in resp else doc["components"]["responses"][
                    resp["$ref"].split("/")[-1]]
                m = resp.get("content", {}).get("application/json", {})
                if "example" in m:
                    schema = dict(m["schema"], components=doc["components"])
                    jsonschema.Draft202012Validator(schema).validate(m["example"])


def main():
    doc = build()
    check_examples(doc)
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if "--check" in sys.argv[1:]:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT.relative_to(ROOT)} is stale: run python scripts/gen_openapi.py",
                  file=sys.stderr)
            sys.exit(1)
        print(f"{OUT.relative_to(ROOT)} is up to date")
        return
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    try:
        main()
    except ProtoError as e:
        print(f"gen_openapi: {e}", file=sys.stderr)
        sys.exit(2)
