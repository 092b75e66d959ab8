//! The OpenAPI 3.1 document of the management API, served at `GET /api/openapi.json`. Written
//! out by hand (one function, no generator dependency); a test in tests/tests/management_api.rs
//! checks that every route the router answers is in it.

use serde_json::{json, Value};

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn write_body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

fn write_responses(success: &str) -> Value {
    json!({
        "200": ok(success, json!({"$ref": "#/components/schemas/WriteResult"})),
        "400": error_response("the body is not the expected JSON"),
        "401": error_response("no or wrong admin token"),
        "403": error_response("cross-origin, missing CSRF token, or no admin token configured"),
        "404": error_response("no such API"),
        "409": error_response("stale version (`stale_version`: the file changed since it was read), an API of that name exists (`exists`), or no config file to edit (`no_config_file`)"),
        "422": error_response("the change does not validate (`messages` as `mcpgate check` prints them); the file was not touched"),
        "428": error_response("no version given"),
    })
}

/// The document.
pub fn document() -> Value {
    let name_param = json!({"name": "name", "in": "path", "required": true, "description": "the API's name (its path when it has no name), percent-encoded", "schema": {"type": "string"}});
    let dry_run = json!({"name": "dry_run", "in": "query", "required": false, "description": "validate and diff only; nothing is written", "schema": {"type": "boolean"}});
    let if_match = json!({"name": "If-Match", "in": "header", "required": false, "description": "the version the write is based on (instead of `version` in the body)", "schema": {"type": "string"}});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "mcpgate management API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Edits the gateway's config file (the source of truth) and reloads it. Every call needs the admin token (`Authorization: Bearer`, or the console's session cookie plus `X-CSRF-Token` on writes). Reads return the file's `version`; writes must name it and are refused 409 when it is stale. Secrets are shown as `********`; sending the marker back keeps the secret. See docs/management.md."
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": {
            "/api/openapi.json": {"get": {"summary": "This document", "responses": {"200": ok("OpenAPI 3.1", json!({"type": "object"}))}}},
            "/api/session": {"get": {"summary": "Who the caller is, and the console's CSRF token", "responses": {"200": ok("identity and csrf (null for bearer callers)", json!({"type": "object", "properties": {"identity": {"type": "string"}, "csrf": {"type": ["string", "null"]}}}))}}},
            "/api/manage": {"get": {"summary": "The config file, its version, whether it can be edited, where history and audit go", "responses": {"200": ok("status", json!({"$ref": "#/components/schemas/Status"})), "403": error_response("no admin token configured")}}},
            "/api/manage/apis": {
                "get": {"summary": "List APIs", "responses": {"200": ok("the APIs and the file's version", json!({"type": "object", "properties": {"version": {"type": "string"}, "editable": {"type": "boolean"}, "apis": {"type": "array", "items": {"$ref": "#/components/schemas/Api"}}}}))}},
                "post": {"summary": "Create an API (validated, written, reloaded)", "parameters": [dry_run, if_match], "requestBody": write_body(json!({"$ref": "#/components/schemas/ApiWrite"})), "responses": {"201": ok("created", json!({"$ref": "#/components/schemas/WriteResult"})), "200": ok("dry run", json!({"$ref": "#/components/schemas/WriteResult"})), "409": error_response("stale version, name exists, or no config file"), "422": error_response("does not validate"), "428": error_response("no version")}}
            },
            "/api/manage/apis/{name}": {
                "parameters": [name_param],
                "get": {"summary": "One API", "responses": {"200": ok("the API and the file's version", json!({"type": "object", "properties": {"version": {"type": "string"}, "api": {"$ref": "#/components/schemas/Api"}}})), "404": error_response("no such API")}},
                "put": {"summary": "Replace an API (keys left out are removed; `log`, `tls`, `cache`, `pin` and others too unless sent back)", "parameters": [dry_run, if_match], "requestBody": write_body(json!({"$ref": "#/components/schemas/ApiWrite"})), "responses": write_responses("updated")},
                "delete": {"summary": "Delete an API", "parameters": [dry_run, if_match], "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object", "properties": {"version": {"type": "string"}}}}}}, "responses": write_responses("deleted")}
            },
            "/api/manage/apis/{name}/live": {"parameters": [name_param], "get": {"summary": "The upstream's live tools, prompts and resources (fetched now, as an MCP client)", "responses": {"200": ok("lists", json!({"$ref": "#/components/schemas/Live"})), "404": error_response("no such API"), "502": error_response("the upstream could not be reached or answered an error")}}},
            "/api/manage/live": {"get": {"summary": "Live lists of any upstream URL (for an API not created yet)", "parameters": [{"name": "upstream", "in": "query", "required": true, "schema": {"type": "string"}}], "responses": {"200": ok("lists", json!({"$ref": "#/components/schemas/Live"})), "400": error_response("no upstream"), "502": error_response("unreachable")}}},
            "/api/manage/validate": {"post": {"summary": "Validate a change against the file as it is (the checks and messages of `mcpgate check`); nothing is written", "requestBody": write_body(json!({"$ref": "#/components/schemas/Changes"})), "responses": {"200": ok("valid, with the diff", json!({"$ref": "#/components/schemas/Validation"})), "422": ok("invalid, with messages", json!({"$ref": "#/components/schemas/Validation"}))}}},
            "/api/manage/diff": {"post": {"summary": "Dry run: the diff of the file a change would write (secrets masked), and whether it validates", "requestBody": write_body(json!({"$ref": "#/components/schemas/Changes"})), "responses": {"200": ok("diff", json!({"$ref": "#/components/schemas/Validation"})), "422": ok("invalid", json!({"$ref": "#/components/schemas/Validation"}))}}},
            "/api/manage/deploy": {"post": {"summary": "Apply several changes in one atomic write and reload", "parameters": [dry_run, if_match], "requestBody": write_body(json!({"allOf": [{"$ref": "#/components/schemas/Changes"}, {"type": "object", "properties": {"version": {"type": "string"}}}]})), "responses": write_responses("deployed")}},
            "/api/manage/history": {"get": {"summary": "Deployed versions, newest first", "responses": {"200": ok("entries", json!({"type": "object", "properties": {"version": {"type": "string"}, "entries": {"type": "array", "items": {"$ref": "#/components/schemas/HistoryEntry"}}}}))}}},
            "/api/manage/history/{id}": {"parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}], "get": {"summary": "One deployed version: the diff a rollback to it would make", "responses": {"200": ok("entry", json!({"type": "object", "properties": {"id": {"type": "string"}, "version": {"type": "string"}, "current_version": {"type": "string"}, "diff": {"type": "string"}}})), "404": error_response("no such entry")}}},
            "/api/manage/history/{id}/rollback": {"parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}], "post": {"summary": "Deploy a previous version again (validated first)", "parameters": [dry_run, if_match], "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object", "properties": {"version": {"type": "string"}}}}}}, "responses": write_responses("rolled back")}},
            "/api/manage/audit": {"get": {"summary": "The audit log, newest first", "parameters": [{"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 10000}}], "responses": {"200": ok("records", json!({"type": "object", "properties": {"file": {"type": "string"}, "records": {"type": "array", "items": {"$ref": "#/components/schemas/AuditRecord"}}}}))}}}
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "the admin token ([gateway.admin_auth], MCPGATE_ADMIN_TOKEN, --admin-token-file)"},
                "session": {"type": "apiKey", "in": "cookie", "name": "mcpgate-admin", "description": "the console's session (POST /login); writes also need X-CSRF-Token from GET /api/session"}
            },
            "schemas": {
                "Error": {"type": "object", "required": ["error", "code"], "properties": {"error": {"type": "string"}, "code": {"type": "string", "enum": ["no_config_file", "not_found", "bad_request", "exists", "stale_version", "version_required", "invalid", "upstream_unreachable", "forbidden", "method_not_allowed", "io"]}, "messages": {"type": "array", "items": {"type": "string"}}, "version": {"type": "string", "description": "with stale_version: the current version"}}},
                "Status": {"type": "object", "properties": {"file": {"type": ["string", "null"]}, "version": {"type": "string"}, "editable": {"type": "boolean"}, "reason": {"type": ["string", "null"]}, "history_dir": {"type": ["string", "null"]}, "history_keep": {"type": "integer"}, "audit_log": {"type": ["string", "null"]}, "secret_marker": {"type": "string"}}},
                "Api": {"type": "object", "description": "An [[api]] table as JSON (docs/configuration.md), secrets as `********`", "required": ["name", "path", "upstream"], "properties": {
                    "name": {"type": "string"}, "path": {"type": "string"}, "upstream": {"type": "string"}, "public_url": {"type": "string"},
                    "plan": {"description": "[api.plan]: one plan or an array", "oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]},
                    "acl": {"$ref": "#/components/schemas/Acl"}, "acl_file": {"type": "string"},
                    "limit": {"type": "array", "items": {"type": "object"}}, "log": {"type": "object"}, "tls": {"type": "object"}, "cache": {"type": "object"}, "pin": {"type": "object"}
                }},
                "ApiWrite": {"type": "object", "properties": {"version": {"type": "string"}, "dry_run": {"type": "boolean"}, "api": {"$ref": "#/components/schemas/Api"}}},
                "Acl": {"type": "object", "properties": {"dry_run": {"type": "boolean"}, "gravitee": {"type": "string"}, "server_requests": {"type": "object"}, "rule": {"type": "array", "items": {"$ref": "#/components/schemas/AclRule"}}}},
                "AclRule": {"type": "object", "properties": {"type": {"enum": ["TOOLS", "RESOURCES", "PROMPTS"]}, "methods": {"type": "array", "items": {"type": "string"}}, "names": {"type": "array", "items": {"type": "string"}, "description": "LITERAL"}, "pattern": {"type": "string", "description": "EXPRESSION (anchored regex)"}, "condition": {"type": "string", "description": "CEL"}, "refusal": {"type": "object"}}},
                "Changes": {"type": "object", "description": "`changes`, or a single `{api, name?}` / `{delete: name}`", "properties": {"changes": {"type": "array", "items": {"type": "object", "properties": {"op": {"enum": ["upsert", "delete"]}, "name": {"type": "string", "description": "the API replaced or deleted; absent: create"}, "api": {"$ref": "#/components/schemas/Api"}}}}, "api": {"$ref": "#/components/schemas/Api"}, "name": {"type": "string"}, "delete": {"type": "string"}}},
                "Validation": {"type": "object", "properties": {"valid": {"type": "boolean"}, "version": {"type": "string"}, "diff": {"type": "string"}, "messages": {"type": "array", "items": {"type": "string"}}, "summary": {"type": "array", "items": {"type": "string"}}, "warnings": {"type": "array", "items": {"type": "string"}}}},
                "WriteResult": {"type": "object", "properties": {"changed": {"type": "boolean"}, "dry_run": {"type": "boolean"}, "version": {"type": "string"}, "previous_version": {"type": "string"}, "new_version": {"type": "string"}, "diff": {"type": "string"}, "history_id": {"type": ["string", "null"]}, "reload": {"type": ["object", "null"], "properties": {"ok": {"type": "boolean"}, "message": {"type": "string"}}}, "warnings": {"type": "array", "items": {"type": "string"}}}},
                "Live": {"type": "object", "properties": {"upstream": {"type": "string"}, "tools": {"type": "array", "items": {"type": "object"}}, "prompts": {"type": "array", "items": {"type": "object"}}, "resources": {"type": "array", "items": {"type": "object"}}, "errors": {"type": "object"}}},
                "HistoryEntry": {"type": "object", "properties": {"id": {"type": "string"}, "time_ms": {"type": "integer"}, "version": {"type": "string"}, "bytes": {"type": "integer"}, "current": {"type": "boolean"}}},
                "AuditRecord": {"type": "object", "properties": {"time_ms": {"type": "integer"}, "who": {"type": "string"}, "action": {"type": "string"}, "apis": {"type": "array", "items": {"type": "string"}}, "from_version": {"type": "string"}, "to_version": {"type": "string"}, "history_id": {"type": ["string", "null"]}, "reload": {"type": "object"}, "diff": {"type": "string"}}}
            }
        }
    })
}
