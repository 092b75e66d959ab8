//! The config file as the management API edits it: read as JSON (one object per `[[api]]`,
//! through the `toml` crate), written back through `toml_edit`, which keeps every comment,
//! blank line and key order of what a change does not touch. An update replaces only the keys
//! whose value changed, so `[api.acl]` edited in the console leaves `[api.plan]` byte for byte
//! as it was written.
//!
//! Secrets (API keys, HMAC secrets, client secrets, symmetric JWK `k`) are write-only: every
//! view, diff and history listing shows [`SECRET_MARKER`] in their place, and a write that sends
//! the marker back keeps the value already in the file at the same place.

use serde_json::{Map, Value};
use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table};

/// What a secret reads as, and what a write sends to keep the secret it had.
pub const SECRET_MARKER: &str = "********";

/// Keys whose string values (or arrays of strings) are secrets wherever they appear. Not `key`:
/// elsewhere it is a rate-limit dimension (`[[api.limit]] key = "subject"`) or a file path
/// (`[api.tls] client_key`, certificates' `key`).
const SECRET_KEYS: &[&str] = &[
    "hmac_secret",
    "client_secret",
    "secret",
    "k",
    "password",
    "token",
];

/// `keys` holds secrets when its entries are strings (an API-key plan's keys) or tables with a
/// `key` (`{ key, subject }` entries); a JWT plan's public keys (`kid`, `pem`, `jwk`) are walked
/// by their own keys.
const KEYS_LIST: &str = "keys";
/// The secret of a `{ key, subject }` entry of `keys`.
const KEY_IN_KEYS: &str = "key";

/// Keys written first in a new `[[api]]` (the rest follow in name order).
const API_KEY_ORDER: &[&str] = &["name", "path", "upstream", "public_url"];

/// A change to the file.
#[derive(Debug, Clone)]
pub enum Change {
    /// `name: None` creates an API; `Some(n)` replaces the API named `n`.
    Upsert {
        name: Option<String>,
        api: Map<String, Value>,
    },
    Delete {
        name: String,
    },
}

/// Why a change cannot be applied (the caller maps these to status codes).
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error("the config file is not valid TOML: {0}")]
    Syntax(String),
    #[error("no API named `{0}`")]
    NotFound(String),
    #[error("an API named `{0}` exists already")]
    Exists(String),
    #[error("{0}")]
    Shape(String),
}

/// Every `[[api]]` table of `text` as written (no defaults filled in, secrets in clear).
pub fn apis(text: &str) -> Result<Vec<Map<String, Value>>, DocError> {
    let doc: toml::Table = toml::from_str(text).map_err(|e| DocError::Syntax(e.to_string()))?;
    let Some(list) = doc.get("api") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| DocError::Shape("`api` must be an array of tables ([[api]])".into()))?;
    list.iter()
        .map(|t| match serde_json::to_value(t) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(DocError::Shape("each [[api]] must be a table".into())),
        })
        .collect()
}

/// An API's name as the gateway knows it: `name`, else its normalized path.
pub fn effective_name(api: &Map<String, Value>) -> String {
    if let Some(n) = api.get("name").and_then(Value::as_str) {
        return n.to_string();
    }
    let path = api.get("path").and_then(Value::as_str).unwrap_or_default();
    crate::config::normalize_entry_path(path).unwrap_or_else(|_| path.to_string())
}

/// The API as the management API shows it: `name` filled in, secrets masked.
pub fn view(api: &Map<String, Value>) -> Value {
    let mut v = Value::Object(api.clone());
    redact(&mut v, None);
    if let Some(m) = v.as_object_mut() {
        m.insert("name".into(), Value::String(effective_name(api)));
    }
    v
}

fn is_secret_key(key: Option<&str>) -> bool {
    key.is_some_and(|k| SECRET_KEYS.contains(&k))
}

/// Masks secrets in a JSON value (`key`: the key it sits under).
pub fn redact(v: &mut Value, key: Option<&str>) {
    match v {
        Value::String(s) if is_secret_key(key) => *s = SECRET_MARKER.into(),
        Value::Array(items) => {
            let in_keys = key == Some(KEYS_LIST);
            let strings_are_secret = is_secret_key(key) || in_keys;
            for item in items {
                match item {
                    Value::String(s) if strings_are_secret => *s = SECRET_MARKER.into(),
                    Value::Object(m) if in_keys => {
                        if let Some(Value::String(s)) = m.get_mut(KEY_IN_KEYS) {
                            *s = SECRET_MARKER.into();
                        }
                        for (k, x) in m.iter_mut() {
                            redact(x, Some(k));
                        }
                    }
                    other => redact(other, None),
                }
            }
        }
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                redact(x, Some(k));
            }
        }
        _ => {}
    }
}

/// Puts back the secrets a write sent as [`SECRET_MARKER`], from `old` at the same place.
pub fn restore_secrets(new: &mut Value, old: Option<&Value>, at: &str) -> Result<(), DocError> {
    match new {
        Value::String(s) if s == SECRET_MARKER => match old {
            Some(Value::String(o)) if o != SECRET_MARKER => {
                *s = o.clone();
                Ok(())
            }
            _ => Err(DocError::Shape(format!(
                "{at}: `{SECRET_MARKER}` stands for a secret already in the file, and there is \
                 none at this place; give the secret itself"
            ))),
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                restore_secrets(item, old.and_then(|o| o.get(i)), &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                let at = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                restore_secrets(x, old.and_then(|o| o.get(k)), &at)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `text` with the changes applied (layout of untouched parts kept).
pub fn apply(text: &str, changes: &[Change]) -> Result<String, DocError> {
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| DocError::Syntax(e.to_string()))?;
    for change in changes {
        let current = apis(&doc.to_string())?;
        let find = |name: &str| current.iter().position(|a| effective_name(a) == name);
        match change {
            Change::Delete { name } => {
                let i = find(name).ok_or_else(|| DocError::NotFound(name.clone()))?;
                if let Some(list) = doc.get_mut("api").and_then(Item::as_array_of_tables_mut) {
                    list.remove(i);
                    if list.is_empty() {
                        doc.remove("api");
                    }
                }
            }
            Change::Upsert { name, api } => {
                let mut new = Value::Object(api.clone());
                let new_name = effective_name(api);
                let index = match name {
                    Some(n) => Some(find(n).ok_or_else(|| DocError::NotFound(n.clone()))?),
                    None => None,
                };
                if let Some(j) = find(&new_name) {
                    if Some(j) != index {
                        return Err(DocError::Exists(new_name));
                    }
                }
                let old = index.and_then(|i| current.get(i)).cloned();
                let old_value = old.clone().map(Value::Object);
                restore_secrets(&mut new, old_value.as_ref(), "api")?;
                let Value::Object(mut new) = new else {
                    return Err(DocError::Shape("an API is a JSON object".into()));
                };
                let old = old.unwrap_or_default();
                // A name equal to the default (the path) is not written when the file had none.
                if !old.contains_key("name") && index.is_some() {
                    let mut unnamed = new.clone();
                    unnamed.remove("name");
                    if new.get("name").and_then(Value::as_str)
                        == Some(effective_name(&unnamed).as_str())
                    {
                        new = unnamed;
                    }
                }
                if !doc.contains_key("api") {
                    doc.insert("api", Item::ArrayOfTables(ArrayOfTables::new()));
                }
                let list = doc
                    .get_mut("api")
                    .and_then(Item::as_array_of_tables_mut)
                    .ok_or_else(|| DocError::Shape("`api` must be an array of tables".into()))?;
                match index.and_then(|i| list.get_mut(i)) {
                    Some(table) => update_table(table, &new, &old)?,
                    None => {
                        let mut table = Table::new();
                        update_table(&mut table, &new, &Map::new())?;
                        list.push(table);
                    }
                }
            }
        }
    }
    Ok(doc.to_string())
}

/// Sets the keys of `new` that differ from `old`, removes those `new` lacks.
fn update_table(
    table: &mut Table,
    new: &Map<String, Value>,
    old: &Map<String, Value>,
) -> Result<(), DocError> {
    for key in old.keys() {
        if new.get(key).is_none_or(Value::is_null) {
            table.remove(key);
        }
    }
    for (key, value) in ordered(new) {
        if value.is_null() || old.get(key) == Some(value) {
            continue;
        }
        let item = to_item(value).map_err(|m| DocError::Shape(format!("api.{key}: {m}")))?;
        table.insert(key, item);
    }
    Ok(())
}

fn ordered(m: &Map<String, Value>) -> Vec<(&str, &Value)> {
    let mut out: Vec<(&str, &Value)> = API_KEY_ORDER
        .iter()
        .filter_map(|k| m.get_key_value(*k).map(|(k, v)| (k.as_str(), v)))
        .collect();
    out.extend(
        m.iter()
            .filter(|(k, _)| !API_KEY_ORDER.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v)),
    );
    out
}

/// JSON to a TOML item: objects become tables, arrays of objects arrays of tables.
fn to_item(v: &Value) -> Result<Item, String> {
    match v {
        Value::Object(m) => {
            let mut t = Table::new();
            for (k, x) in m {
                if !x.is_null() {
                    t.insert(k, to_item(x).map_err(|e| format!("{k}: {e}"))?);
                }
            }
            Ok(Item::Table(t))
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            let mut list = ArrayOfTables::new();
            for (i, x) in items.iter().enumerate() {
                if let Item::Table(t) = to_item(x).map_err(|e| format!("[{i}].{e}"))? {
                    list.push(t);
                }
            }
            Ok(Item::ArrayOfTables(list))
        }
        other => to_value(other).map(Item::Value),
    }
}

fn to_value(v: &Value) -> Result<toml_edit::Value, String> {
    Ok(match v {
        Value::Null => return Err("null has no TOML form (leave the key out)".into()),
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.into(),
            (None, Some(f)) => f.into(),
            _ => return Err(format!("{n} does not fit a TOML number")),
        },
        Value::String(s) => s.as_str().into(),
        Value::Array(items) => {
            let mut a = Array::new();
            for x in items {
                a.push(to_value(x)?);
            }
            toml_edit::Value::Array(a)
        }
        Value::Object(m) => {
            let mut t = InlineTable::new();
            for (k, x) in m {
                if !x.is_null() {
                    t.insert(k, to_value(x)?);
                }
            }
            toml_edit::Value::InlineTable(t)
        }
    })
}

/// `text` with every secret masked, layout kept: what diffs and history views show.
pub fn redact_text(text: &str) -> String {
    let Ok(mut doc) = text.parse::<DocumentMut>() else {
        // Unparsable: nothing can be shown without risking a secret.
        return "# (not valid TOML: not shown)\n".into();
    };
    redact_table(doc.as_table_mut());
    doc.to_string()
}

fn redact_table(t: &mut Table) {
    for (k, item) in t.iter_mut() {
        let key = k.get().to_string();
        match item {
            Item::Value(v) => redact_toml(v, Some(&key)),
            Item::Table(sub) => redact_table(sub),
            Item::ArrayOfTables(list) => {
                for sub in list.iter_mut() {
                    if key == KEYS_LIST {
                        if let Some(v) = sub.get_mut(KEY_IN_KEYS).and_then(Item::as_value_mut) {
                            if v.is_str() {
                                mask(v);
                            }
                        }
                    }
                    redact_table(sub);
                }
            }
            Item::None => {}
        }
    }
}

fn mask(v: &mut toml_edit::Value) {
    let decor = v.decor().clone();
    *v = SECRET_MARKER.into();
    *v.decor_mut() = decor;
}

fn redact_toml(v: &mut toml_edit::Value, key: Option<&str>) {
    match v {
        toml_edit::Value::String(_) if is_secret_key(key) => mask(v),
        toml_edit::Value::Array(items) => {
            let in_keys = key == Some(KEYS_LIST);
            let strings_are_secret = is_secret_key(key) || in_keys;
            for item in items.iter_mut() {
                if item.is_str() && strings_are_secret {
                    mask(item);
                    continue;
                }
                if let (true, toml_edit::Value::InlineTable(t)) = (in_keys, &mut *item) {
                    if let Some(v) = t.get_mut(KEY_IN_KEYS).filter(|v| v.is_str()) {
                        mask(v);
                    }
                }
                redact_toml(item, None);
            }
        }
        toml_edit::Value::InlineTable(t) => {
            for (k, x) in t.iter_mut() {
                let key = k.get().to_string();
                redact_toml(x, Some(&key));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FILE: &str = "# The gateway.\n[gateway]\nlisten = \"127.0.0.1:8080\"  # clients\n\n\
        # First API: keep this comment.\n[[api]]\nname = \"one\"\npath = \"/one\"\n\
        upstream = \"http://127.0.0.1:3001/mcp\"\n\n[api.plan]\ntype = \"api_key\"\n\
        keys = [\"key-0123456789abcdef\"]  # rotate monthly\n\n\
        [[api]]\npath = \"/two\"\nupstream = \"http://127.0.0.1:3002/mcp\"\n";

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn views_mask_secrets_and_name_unnamed_apis() {
        let apis = apis(FILE).unwrap_or_default();
        let one = view(&apis[0]);
        assert_eq!(one["plan"]["keys"][0], SECRET_MARKER);
        assert!(!one.to_string().contains("key-0123"));
        assert_eq!(view(&apis[1])["name"], "/two");
        let text = redact_text(FILE);
        assert!(!text.contains("key-0123"), "{text}");
        assert!(
            text.contains("keys = [\"********\"]  # rotate monthly"),
            "{text}"
        );
    }

    #[test]
    fn only_secrets_are_masked() {
        let text = "[[api]]\npath = \"/a\"\nupstream = \"http://h/mcp\"\n\
            [api.plan]\ntype = \"api_key\"\nkeys = [{ key = \"sk-0123456789abcdef\", subject = \"alice\" }]\n\
            [api.tls]\nclient_key = \"certs/gw.key\"\n\
            [[api.limit]]\nkey = \"subject\"\nrate = \"5/60s\"\n\
            [[api.plan.more]]\nhmac_secret = \"0123456789abcdef0123456789abcdef\"\n";
        let api = view(&apis(text).unwrap_or_default()[0]);
        assert_eq!(api["plan"]["keys"][0]["key"], SECRET_MARKER, "{api}");
        assert_eq!(api["plan"]["keys"][0]["subject"], "alice");
        assert_eq!(api["tls"]["client_key"], "certs/gw.key");
        assert_eq!(api["limit"][0]["key"], "subject");
        assert_eq!(api["plan"]["more"][0]["hmac_secret"], SECRET_MARKER);
        let shown = redact_text(text);
        assert!(
            !shown.contains("sk-0123") && !shown.contains("0123456789abcdef0123"),
            "{shown}"
        );
        assert!(
            shown.contains("key = \"subject\"") && shown.contains("certs/gw.key"),
            "{shown}"
        );
        let tables = "[[api]]\npath = \"/a\"\nupstream = \"http://h/mcp\"\n\
            [api.plan]\ntype = \"api_key\"\n[[api.plan.keys]]\nkey = \"sk-0123456789abcdef\"\nsubject = \"bob\"\n";
        let shown = redact_text(tables);
        assert!(
            !shown.contains("sk-0123") && shown.contains("bob"),
            "{shown}"
        );
    }

    #[test]
    fn an_update_touches_only_what_changed() {
        let mut one = obj(view(&apis(FILE).unwrap_or_default()[0]));
        one.insert("upstream".into(), json!("http://127.0.0.1:4001/mcp"));
        one.insert(
            "acl".into(),
            json!({"rule": [{"type": "TOOLS", "methods": ["tools/list"]}]}),
        );
        let out = apply(
            FILE,
            &[Change::Upsert {
                name: Some("one".into()),
                api: one,
            }],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.contains("# First API: keep this comment.\n[[api]]\nname = \"one\""),
            "{out}"
        );
        assert!(
            out.contains("upstream = \"http://127.0.0.1:4001/mcp\""),
            "{out}"
        );
        assert!(
            out.contains("keys = [\"key-0123456789abcdef\"]  # rotate monthly"),
            "the secret sent back as the marker is kept, comment too: {out}"
        );
        assert!(out.contains("[[api.acl.rule]]"), "{out}");
        assert!(
            out.contains("listen = \"127.0.0.1:8080\"  # clients"),
            "{out}"
        );
        let parsed = apis(&out).unwrap_or_default();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0]["acl"]["rule"][0]["methods"][0], "tools/list");
        assert_eq!(parsed[1]["path"], "/two");
        // Unchanged: the same text.
        let same = apply(
            FILE,
            &[Change::Upsert {
                name: Some("/two".into()),
                api: obj(view(&apis(FILE).unwrap_or_default()[1])),
            }],
        )
        .unwrap_or_default();
        assert_eq!(same, FILE);
    }

    #[test]
    fn create_delete_and_conflicts() {
        let out = apply(
            FILE,
            &[Change::Upsert {
                name: None,
                api: obj(json!({"name": "three", "path": "/three", "upstream": "http://127.0.0.1:3003/mcp"})),
            }],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.starts_with(FILE), "appended: {out}");
        assert!(out.ends_with("[[api]]\nname = \"three\"\npath = \"/three\"\nupstream = \"http://127.0.0.1:3003/mcp\"\n"), "{out}");
        let e = apply(
            FILE,
            &[Change::Upsert {
                name: None,
                api: obj(json!({"name": "one", "path": "/x", "upstream": "http://h/mcp"})),
            }],
        );
        assert!(matches!(e, Err(DocError::Exists(_))), "{e:?}");
        let e = apply(
            FILE,
            &[Change::Upsert {
                name: None,
                api: obj(
                    json!({"path": "/x", "upstream": "http://h/mcp", "plan": {"type": "api_key", "keys": [SECRET_MARKER]}}),
                ),
            }],
        );
        assert!(
            matches!(e, Err(DocError::Shape(ref m)) if m.contains("api.plan.keys[0]")),
            "{e:?}"
        );
        let out = apply(FILE, &[Change::Delete { name: "one".into() }]).unwrap_or_default();
        assert!(!out.contains("/one") && out.contains("/two"), "{out}");
        assert!(matches!(
            apply(
                FILE,
                &[Change::Delete {
                    name: "nope".into()
                }]
            ),
            Err(DocError::NotFound(_))
        ));
    }
}
