#!/usr/bin/env python3
"""Writes the grammar bench corpus: realistic schemas (API and function-calling payloads,
configuration files in the style of JSON Schema Store and Kubernetes, GeoJSON, package
manifests) with hand-made valid instances and mutated ones, every instance labelled valid or
invalid by Debian's python3-jsonschema (the oracle, with format checking), never by Corral.

Usage: make_corpus.py OUT_DIR"""
import copy, json, os, random, sys

import jsonschema

S = {}  # name -> (schema, [valid instances])

S["person"] = ({
    "type": "object",
    "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 40},
                   "age": {"type": "integer", "minimum": 0, "maximum": 150},
                   "email": {"type": "string", "format": "email"},
                   "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5}},
    "required": ["name", "age"], "additionalProperties": False},
    [{"name": "Ada Lovelace", "age": 36, "email": "ada@example.org", "tags": ["math", "poetry"]},
     {"name": "Bob", "age": 0}, {"name": "Zoë Ñandú 日本", "age": 150, "tags": []}])

S["weather_tool"] = ({
    "type": "object",
    "properties": {"location": {"type": "string", "description": "City and country"},
                   "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                   "days": {"type": "integer", "minimum": 1, "maximum": 14}},
    "required": ["location", "unit"], "additionalProperties": False},
    [{"location": "Paris, France", "unit": "celsius"}, {"location": "Tokyo", "unit": "fahrenheit", "days": 7}])

S["search_call"] = ({
    "type": "object",
    "properties": {"query": {"type": "string"}, "top_k": {"type": "integer", "minimum": 1},
                   "filters": {"type": "object", "properties": {"site": {"type": "string"},
                                                               "after": {"type": "string", "format": "date"}},
                               "additionalProperties": False},
                   "safe": {"type": "boolean"}},
    "required": ["query"]},
    [{"query": "llama license 700M MAU", "top_k": 5, "filters": {"site": "meta.com", "after": "2024-07-23"}},
     {"query": "x", "safe": False, "extra": {"anything": [1, 2.5, None]}}])

S["k8s_deployment"] = ({
    "$defs": {
        "container": {"type": "object", "properties": {
            "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
            "image": {"type": "string"},
            "ports": {"type": "array", "items": {"type": "object", "properties": {
                "containerPort": {"type": "integer", "minimum": 1, "maximum": 65535},
                "protocol": {"enum": ["TCP", "UDP", "SCTP"]}}, "required": ["containerPort"],
                "additionalProperties": False}},
            "env": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "value": {"type": "string"}}, "required": ["name"],
                "additionalProperties": False}}},
            "required": ["name", "image"], "additionalProperties": False}},
    "type": "object",
    "properties": {"apiVersion": {"const": "apps/v1"}, "kind": {"const": "Deployment"},
                   "metadata": {"type": "object", "properties": {"name": {"type": "string"},
                                "labels": {"type": "object", "additionalProperties": {"type": "string"}}},
                                "required": ["name"]},
                   "spec": {"type": "object", "properties": {
                       "replicas": {"type": "integer", "minimum": 0},
                       "template": {"type": "object", "properties": {"spec": {"type": "object", "properties": {
                           "containers": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/container"}}},
                           "required": ["containers"]}}}},
                       "required": ["template"]}},
    "required": ["apiVersion", "kind", "metadata", "spec"]},
    [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
      "spec": {"replicas": 3, "template": {"spec": {"containers": [
          {"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80, "protocol": "TCP"}],
           "env": [{"name": "MODE", "value": "prod"}]}]}}}},
     {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"},
      "spec": {"template": {"spec": {"containers": [{"name": "a-1", "image": "busybox"}]}}}}])

S["geojson_point"] = ({
    "type": "object",
    "properties": {"type": {"const": "Feature"},
                   "geometry": {"type": "object", "properties": {
                       "type": {"const": "Point"},
                       "coordinates": {"type": "array", "prefixItems": [
                           {"type": "number", "minimum": -180, "maximum": 180},
                           {"type": "number", "minimum": -90, "maximum": 90}], "items": False, "minItems": 2}},
                       "required": ["type", "coordinates"]},
                   "properties": {"type": ["object", "null"]}},
    "required": ["type", "geometry"]},
    [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [2.35, 48.85]}, "properties": {"name": "Paris"}},
     {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-180, 90]}, "properties": None}])

S["package_json"] = ({
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 214, "pattern": "^(?:@[a-z0-9-*~][a-z0-9-*._~]*/)?[a-z0-9-~][a-z0-9-._~]*$"},
                   "version": {"type": "string", "pattern": "^\\d+\\.\\d+\\.\\d+(-[0-9A-Za-z.-]+)?$"},
                   "private": {"type": "boolean"},
                   "scripts": {"type": "object", "additionalProperties": {"type": "string"}},
                   "dependencies": {"type": "object", "additionalProperties": {"type": "string"}},
                   "license": {"type": "string"}},
    "required": ["name", "version"]},
    [{"name": "corral-web", "version": "1.2.3", "private": True, "scripts": {"test": "node --test"},
      "dependencies": {"openai": "6.30.1", "playwright-core": "^1.49.0"}},
     {"name": "@scope/pkg", "version": "0.0.1-beta.1", "license": "MIT"}])

S["invoice"] = ({
    "type": "object",
    "properties": {"id": {"type": "string", "format": "uuid"},
                   "issued": {"type": "string", "format": "date"},
                   "currency": {"enum": ["USD", "EUR", "GBP", "JPY"]},
                   "lines": {"type": "array", "minItems": 1, "maxItems": 20, "items": {
                       "type": "object", "properties": {"sku": {"type": "string", "pattern": "^[A-Z]{3}-\\d{4}$"},
                                                          "qty": {"type": "integer", "exclusiveMinimum": 0},
                                                          "unit_price_micros": {"type": "integer", "minimum": 0}},
                       "required": ["sku", "qty", "unit_price_micros"], "additionalProperties": False}},
                   "paid": {"type": "boolean"}},
    "required": ["id", "currency", "lines"], "additionalProperties": False},
    [{"id": "123e4567-e89b-12d3-a456-426614174000", "issued": "2026-12-01", "currency": "EUR",
      "lines": [{"sku": "ABC-0001", "qty": 2, "unit_price_micros": 1500000}], "paid": False},
     {"id": "00000000-0000-0000-0000-000000000000", "currency": "JPY",
      "lines": [{"sku": "XYZ-9999", "qty": 1, "unit_price_micros": 0}] * 3}])

S["chat_message"] = ({
    "type": "object",
    "properties": {"role": {"enum": ["system", "user", "assistant", "tool"]},
                   "content": {"anyOf": [{"type": "string"}, {"type": "array", "items": {
                       "type": "object", "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
                       "required": ["type", "text"], "additionalProperties": False}}, {"type": "null"}]},
                   "name": {"type": "string", "maxLength": 64}},
    "required": ["role", "content"], "additionalProperties": False},
    [{"role": "user", "content": "Hello!"}, {"role": "assistant", "content": None},
     {"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "two"}], "name": "ann"}])

S["tree"] = ({
    "$defs": {"node": {"type": "object", "properties": {"value": {"type": "integer"},
                                                       "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
                       "required": ["value"], "additionalProperties": False}},
    "$ref": "#/$defs/node"},
    [{"value": 1, "children": [{"value": 2}, {"value": 3, "children": [{"value": -4, "children": []}]}]}, {"value": 0}])

S["settings"] = ({
    "type": "object",
    "properties": {"editor.fontSize": {"type": "number", "minimum": 6, "maximum": 100},
                   "editor.tabSize": {"type": "integer", "minimum": 1, "maximum": 8},
                   "files.exclude": {"type": "object", "additionalProperties": {"type": "boolean"}},
                   "workbench.colorTheme": {"type": "string"},
                   "telemetry.level": {"enum": ["all", "error", "crash", "off"]}},
    "additionalProperties": False},
    [{"editor.fontSize": 13.5, "editor.tabSize": 2, "files.exclude": {"**/.git": True}, "telemetry.level": "off"}, {}])

S["server_config"] = ({
    "type": "object",
    "properties": {"host": {"type": "string", "format": "ipv4"},
                   "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                   "tls": {"type": "object", "properties": {"cert": {"type": "string"}, "key": {"type": "string"}},
                           "required": ["cert", "key"], "additionalProperties": False},
                   "log_level": {"type": "string", "enum": ["debug", "info", "warn", "error"]},
                   "workers": {"type": "integer", "minimum": 1, "maximum": 256},
                   "upstreams": {"type": "array", "items": {"type": "string", "format": "uri"}, "minItems": 1}},
    "required": ["host", "port"], "additionalProperties": False},
    [{"host": "10.0.0.1", "port": 8080, "log_level": "info", "upstreams": ["http://a.example:80/x"]},
     {"host": "255.255.255.255", "port": 65535, "tls": {"cert": "/etc/c.pem", "key": "/etc/k.pem"}, "workers": 16}])

S["event"] = ({
    "type": "object",
    "properties": {"event": {"type": "string", "enum": ["click", "view", "purchase"]},
                   "ts": {"type": "integer", "minimum": 0},
                   "user": {"type": "object", "properties": {"id": {"type": "string", "minLength": 3, "maxLength": 12},
                                                            "country": {"type": "string", "pattern": "^[A-Z]{2}$"}},
                            "required": ["id"]},
                   "props": {"type": "object"}},
    "required": ["event", "ts", "user"]},
    [{"event": "click", "ts": 1733011200, "user": {"id": "u-123", "country": "FR"}, "props": {"button": "buy"}},
     {"event": "purchase", "ts": 0, "user": {"id": "abc"}}])

S["extraction"] = ({
    "type": "object",
    "properties": {"entities": {"type": "array", "items": {"type": "object", "properties": {
        "text": {"type": "string"}, "label": {"enum": ["PERSON", "ORG", "LOC", "DATE"]},
        "start": {"type": "integer", "minimum": 0}, "end": {"type": "integer", "minimum": 0}},
        "required": ["text", "label", "start", "end"], "additionalProperties": False}},
        "sentiment": {"type": "number", "minimum": -1, "maximum": 1},
        "summary": {"type": "string", "maxLength": 200}},
    "required": ["entities", "sentiment"], "additionalProperties": False},
    [{"entities": [{"text": "Meta", "label": "ORG", "start": 0, "end": 4}], "sentiment": 0.25, "summary": "ok"},
     {"entities": [], "sentiment": -1}])

S["nullable_fields"] = ({
    "type": "object",
    "properties": {"a": {"type": ["string", "null"]}, "b": {"type": ["integer", "null"]},
                   "c": {"oneOf": [{"type": "boolean"}, {"type": "null"}]}},
    "required": ["a", "b", "c"], "additionalProperties": False},
    [{"a": None, "b": 5, "c": True}, {"a": "x", "b": None, "c": None}])

S["allof_merge"] = ({
    "$defs": {"base": {"type": "object", "properties": {"id": {"type": "integer"}, "created": {"type": "string", "format": "date"}},
                       "required": ["id"]}},
    "allOf": [{"$ref": "#/$defs/base"}, {"properties": {"title": {"type": "string"}}, "required": ["title"]}]},
    [{"id": 1, "created": "2026-01-31", "title": "hello"}, {"id": 2, "title": ""}])

S["matrix"] = ({
    "type": "array", "minItems": 1, "maxItems": 4,
    "items": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number"}}},
    [[[1, 2], [3.5, -4e-05]], [[0, 0]]])

S["enum_mixed"] = ({"enum": ["red", 42, None, True, {"k": [1, 2]}, [1, "x"]]},
                   ["red", 42, None, True, {"k": [1, 2]}, [1, "x"]])

S["min_max_props"] = ({
    "type": "object", "additionalProperties": {"type": "integer"}, "minProperties": 1, "maxProperties": 3},
    [{"a": 1}, {"x": 1, "y": 2, "z": 3}])

S["openapi_user"] = ({
    "type": "object",
    "properties": {"id": {"type": "integer", "minimum": 1}, "username": {"type": "string", "pattern": "^[a-zA-Z0-9_]{3,16}$"},
                   "profile": {"type": "object", "properties": {"bio": {"type": "string", "maxLength": 160},
                                                               "website": {"type": "string", "format": "uri"},
                                                               "birthday": {"type": "string", "format": "date"}},
                               "additionalProperties": False},
                   "roles": {"type": "array", "items": {"enum": ["admin", "editor", "viewer"]}, "minItems": 1},
                   "last_login": {"type": ["string", "null"], "format": "date"}},
    "required": ["id", "username", "roles"], "additionalProperties": False},
    [{"id": 7, "username": "ada_l", "profile": {"bio": "Analyst", "website": "https://ada.example"}, "roles": ["admin"],
      "last_login": None},
     {"id": 1, "username": "bob", "roles": ["viewer", "editor"], "last_login": "2026-11-30"}])

S["recipe"] = ({
    "type": "object",
    "properties": {"title": {"type": "string"}, "servings": {"type": "integer", "minimum": 1, "maximum": 100},
                   "ingredients": {"type": "array", "items": {"type": "object", "properties": {
                       "item": {"type": "string"}, "grams": {"type": "number", "exclusiveMinimum": 0}},
                       "required": ["item", "grams"], "additionalProperties": False}, "minItems": 1},
                   "steps": {"type": "array", "items": {"type": "string", "minLength": 5}},
                   "vegetarian": {"type": "boolean"}},
    "required": ["title", "ingredients", "steps"], "additionalProperties": False},
    [{"title": "Crêpes", "servings": 4, "ingredients": [{"item": "flour", "grams": 250}, {"item": "milk", "grams": 500.5}],
      "steps": ["Mix everything.", "Rest 1 hour.", "Cook thin."], "vegetarian": True}])

S["sql_tool"] = ({
    "type": "object",
    "properties": {"sql": {"type": "string", "minLength": 6}, "params": {"type": "array", "items": {"type": ["string", "number", "boolean", "null"]}},
                   "timeout_ms": {"type": "integer", "minimum": 100, "maximum": 60000}},
    "required": ["sql"], "additionalProperties": False},
    [{"sql": "SELECT * FROM t WHERE id = ?", "params": [1, "a", None, True], "timeout_ms": 5000},
     {"sql": "DELETE FROM \"quoted\"\nWHERE x"}])

S["time_window"] = ({
    "type": "object",
    "properties": {"start": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"}, "end": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"},
                   "days": {"type": "array", "items": {"enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]},
                            "minItems": 1, "maxItems": 7}},
    "required": ["start", "end"], "additionalProperties": False},
    [{"start": "09:00", "end": "17:30", "days": ["mon", "fri"]}, {"start": "00:00", "end": "23:59"}])

S["numbers"] = ({
    "type": "object",
    "properties": {"i": {"type": "integer", "minimum": -273, "maximum": 1000}, "n": {"type": "number", "exclusiveMinimum": -5, "maximum": 5},
                   "neg": {"type": "integer", "maximum": -10}, "big": {"type": "integer", "minimum": 1000000}},
    "additionalProperties": False},
    [{"i": -273, "n": 5, "neg": -10, "big": 1000000}, {"i": 1000, "n": -4.999, "neg": -123456789, "big": 98765432109}, {"n": 0.0}])

S["strict_function"] = ({
    "type": "object",
    "properties": {"city": {"type": "string"}, "state": {"type": ["string", "null"]},
                   "units": {"type": "string", "enum": ["metric", "imperial"]}},
    "required": ["city", "state", "units"], "additionalProperties": False},
    [{"city": "Austin", "state": "TX", "units": "imperial"}, {"city": "Lyon", "state": None, "units": "metric"}])

S["any_json"] = ({}, [{"a": [1, 2, {"b": None}]}, [], "text", 3.25, None, True])

S["tuple_items"] = ({
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "array", "items": [{"type": "string"}, {"type": "integer"}], "additionalItems": {"type": "boolean"}},
    [["a", 1], ["b", 2, True, False], ["only"]])

S["docker_compose"] = ({
    "type": "object",
    "properties": {"version": {"type": "string"},
                   "services": {"type": "object", "minProperties": 1, "additionalProperties": {
                       "type": "object", "properties": {"image": {"type": "string"},
                                                        "ports": {"type": "array", "items": {"type": "string", "pattern": "^\\d+:\\d+$"}},
                                                        "environment": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
                                                        "restart": {"enum": ["no", "always", "on-failure", "unless-stopped"]}},
                       "additionalProperties": False}}},
    "required": ["services"], "additionalProperties": False},
    [{"version": "3.9", "services": {"web": {"image": "nginx", "ports": ["80:80"], "restart": "always"},
                                     "db": {"image": "postgres:16", "environment": {"POSTGRES_PASSWORD": "x", "N": 3}}}}])

S["github_issue"] = ({
    "type": "object",
    "properties": {"title": {"type": "string", "minLength": 1, "maxLength": 256},
                   "body": {"type": "string"},
                   "labels": {"type": "array", "items": {"type": "string"}, "maxItems": 10},
                   "assignees": {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z0-9-]+$"}},
                   "milestone": {"type": ["integer", "null"], "minimum": 1}},
    "required": ["title"], "additionalProperties": False},
    [{"title": "Bill exactly what reached the client", "body": "Under kill -9...\n\n```\ncode\n```", "labels": ["bug", "billing"],
      "assignees": ["corral-bot"], "milestone": None}, {"title": "x" * 256}])

S["translation"] = ({
    "type": "object",
    "properties": {"source_lang": {"type": "string", "pattern": "^[a-z]{2}(-[A-Z]{2})?$"},
                   "target_lang": {"type": "string", "pattern": "^[a-z]{2}(-[A-Z]{2})?$"},
                   "text": {"type": "string", "maxLength": 5000},
                   "glossary": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 50}},
    "required": ["source_lang", "target_lang", "text"], "additionalProperties": False},
    [{"source_lang": "en", "target_lang": "pt-BR", "text": "The llama grazes.", "glossary": {"llama": "lhama"}},
     {"source_lang": "ja", "target_lang": "fr", "text": "ラマは草を食べる。\t\"引用\""}])

S["color"] = ({"type": "string", "pattern": "^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"}, ["#fff", "#A0b1C2"])

S["contains_word"] = ({"type": "string", "pattern": "llama"}, ["a llama here", "llama", "xxllamaxx"])

# oneOf: exactly one branch. A third element lists probes, values the oracle labels too (here
# values matching two branches at once, which oneOf refuses and anyOf would take).
S["payment_oneof"] = ({
    "type": "object",
    "properties": {"amount": {"type": "integer", "minimum": 1}, "method": {"oneOf": [
        {"type": "object", "properties": {"kind": {"const": "card"}, "number": {"type": "string", "pattern": "^[0-9]{12,19}$"}},
         "required": ["kind", "number"]},
        {"type": "object", "properties": {"kind": {"const": "bank"}, "iban": {"type": "string"}},
         "required": ["kind", "iban"]},
        {"type": "string", "enum": ["cash", "voucher"]}]}},
    "required": ["amount", "method"], "additionalProperties": False},
    [{"amount": 5, "method": {"kind": "card", "number": "4111111111111111"}},
     {"amount": 12, "method": {"kind": "bank", "iban": "DE89370400440532013000", "note": "x"}},
     {"amount": 1, "method": "cash"}],
    [{"amount": 5, "method": {"kind": "card", "iban": "x"}}, {"amount": 5, "method": {"kind": "bank", "number": "411111111111"}}])

S["shape_oneof"] = ({
    "$defs": {"circle": {"type": "object", "properties": {"radius": {"type": "number", "minimum": 0}}, "required": ["radius"]},
              "rect": {"type": "object", "properties": {"width": {"type": "number"}, "height": {"type": "number"}},
                       "required": ["width", "height"]}},
    "type": "array", "items": {"oneOf": [{"$ref": "#/$defs/circle"}, {"$ref": "#/$defs/rect"}]}},
    [[{"radius": 1.5}, {"width": 2, "height": 3}], [], [{"radius": 0, "label": "dot"}]],
    [[{"radius": 1, "width": 2, "height": 3}], [{"width": 2, "height": 3, "radius": 1}], [{"radius": 2, "width": 1}]])

S["id_oneof"] = ({"oneOf": [{"type": "string", "format": "uuid"}, {"type": "integer", "minimum": 1},
                            {"type": "array", "items": {"type": "integer"}, "maxItems": 3}]},
                 ["123e4567-e89b-12d3-a456-426614174000", 42, [1, 2]], [0, 1.5, [1, 2, 3, 4]])


def mutations(schema, inst, rnd):
    """Candidate instances near a valid one: types swapped, fields dropped or added, values
    pushed past their bounds. The oracle decides which are invalid."""
    out = []
    def walk(x, path):
        yield path, x
        if isinstance(x, dict):
            for k, v in x.items():
                yield from walk(v, path + [k])
        elif isinstance(x, list):
            for i, v in enumerate(x):
                yield from walk(v, path + [i])
    def replace(root, path, v):
        if not path:
            return v
        r = copy.deepcopy(root)
        cur = r
        for p in path[:-1]:
            cur = cur[p]
        cur[path[-1]] = v
        return r
    def delete(root, path):
        r = copy.deepcopy(root)
        cur = r
        for p in path[:-1]:
            cur = cur[p]
        del cur[path[-1]]
        return r
    for path, x in walk(inst, []):
        for v in [None, "str", 7, -1, 2.5, True, [], {}, "x" * 300, 10 ** 6, -10 ** 6, "ZZ", "2026-13-45", "not an email"]:
            if type(v) != type(x) or v != x:
                out.append(replace(inst, path, v))
        if isinstance(x, dict):
            for k in list(x):
                out.append(delete(inst, path + [k]))
            y = copy.deepcopy(x); y["unexpected_key"] = 1
            out.append(replace(inst, path, y))
        if isinstance(x, list) and x:
            out.append(replace(inst, path, x + [x[-1]] * 10))
            out.append(replace(inst, path, []))
        if isinstance(x, str):
            out.append(replace(inst, path, x + "!"))
            out.append(replace(inst, path, x.upper()))
            out.append(replace(inst, path, ""))
        if isinstance(x, (int, float)) and not isinstance(x, bool):
            for d in (1, -1, 0.5):
                out.append(replace(inst, path, x + d))
    rnd.shuffle(out)
    return out


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    rnd = random.Random(1234)
    checker = jsonschema.FormatChecker()
    for name, entry in S.items():
        schema, valids = entry[0], entry[1]
        probes = entry[2] if len(entry) > 2 else []
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        v = cls(schema, format_checker=checker)
        tests = []
        for inst in valids:
            assert v.is_valid(inst), (name, inst, list(v.iter_errors(inst)))
            tests.append({"data": inst, "valid": True})
        seen = set()
        invalid, valid_more = [], []
        for inst in valids:
            for m in mutations(schema, inst, rnd):
                key = json.dumps(m, sort_keys=True)
                if key in seen:
                    continue
                seen.add(key)
                (valid_more if v.is_valid(m) else invalid).append(m)
        for m in invalid[:12]:
            tests.append({"data": m, "valid": False})
        for m in valid_more[:4]:
            tests.append({"data": m, "valid": True})
        for m in probes:
            tests.append({"data": m, "valid": v.is_valid(m)})
        with open(os.path.join(out_dir, name + ".json"), "w", encoding="utf-8") as f:
            json.dump({"schema": schema, "tests": tests}, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
