//! Keeps docs/configuration.md and examples/full.toml honest: the set of keys the parser accepts
//! is derived from the serde "user" structs themselves (a deserializer that walks them and
//! records every field name, with `deny_unknown_fields` making that list the exact set), and
//! compared with the keys the reference documents in its tables and the keys full.toml shows.
//! A key added to a struct without a row fails the test, and so does a row for a key the parser
//! would refuse.
//!
//! Paths: `gateway.limits.max_body_bytes`; arrays of tables use their table name
//! (`api.acl.rule.pattern`); plan keys carry the plan type (`api.plan(jwt).issuer`).

use std::cell::RefCell;
use std::collections::BTreeSet;

use mcpgate_policies::acl::AclConfig;
use mcpgate_policies::auth::config::{
    ApiKeyUser, ClientCertUser, JwtUser, KeylessUser, OAuth2User, PlanUser,
};
use mcpgate_policies::auth::AuthConfigUser;
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::Deserialize;

use super::UserConfig;

/// What the walk found: leaf keys (values) and tables (structs, whose keys are listed too).
#[derive(Debug, Default)]
pub struct Schema {
    pub keys: BTreeSet<String>,
    pub tables: BTreeSet<String>,
}

#[derive(Debug)]
struct WalkError(String);

impl std::fmt::Display for WalkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WalkError {}

impl de::Error for WalkError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        WalkError(msg.to_string())
    }
}

/// A deserializer that answers every request with a minimal value and records, for each struct
/// it is asked for, the struct's path as a table and each field's path.
struct Walker<'s> {
    path: String,
    schema: &'s RefCell<Schema>,
    /// Whether this value is a struct field (recorded as a key unless it turns out a table).
    is_field: bool,
}

impl<'s> Walker<'s> {
    fn child(&self, name: &str) -> Walker<'s> {
        Walker {
            path: if self.path.is_empty() {
                name.to_string()
            } else {
                format!("{}.{name}", self.path)
            },
            schema: self.schema,
            is_field: true,
        }
    }

    fn same(&self) -> Walker<'s> {
        Walker {
            path: self.path.clone(),
            schema: self.schema,
            is_field: self.is_field,
        }
    }

    fn leaf(&self) {
        if self.is_field {
            self.schema.borrow_mut().keys.insert(self.path.clone());
        }
    }
}

const SPANNED: &str = "$__serde_spanned_private_Spanned";

macro_rules! leaf_with {
    ($($method:ident => $visit:ident($($value:expr)?)),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
            self.leaf();
            visitor.$visit($($value)?)
        })*
    };
}

impl<'de, 's> de::Deserializer<'de> for Walker<'s> {
    type Error = WalkError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        // A value of any shape (toml::Value, serde_json::Value, an untagged enum): a leaf.
        self.leaf();
        visitor.visit_str("")
    }

    leaf_with! {
        deserialize_bool => visit_bool(false),
        deserialize_i8 => visit_i64(0),
        deserialize_i16 => visit_i64(0),
        deserialize_i32 => visit_i64(0),
        deserialize_i64 => visit_i64(0),
        deserialize_u8 => visit_u64(0),
        deserialize_u16 => visit_u64(0),
        deserialize_u32 => visit_u64(0),
        deserialize_u64 => visit_u64(0),
        deserialize_f32 => visit_f64(0.0),
        deserialize_f64 => visit_f64(0.0),
        deserialize_char => visit_char('a'),
        deserialize_str => visit_str(""),
        deserialize_string => visit_str(""),
        deserialize_bytes => visit_bytes(&[]),
        deserialize_byte_buf => visit_bytes(&[]),
        deserialize_unit => visit_unit(),
        deserialize_identifier => visit_str(""),
        deserialize_ignored_any => visit_unit(),
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        visitor.visit_some(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, WalkError> {
        self.leaf();
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, WalkError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        // One element, at the same path: `[[api]]` elements are `api.*`, arrays of values are
        // leaves.
        visitor.visit_seq(One(Some(self)))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, WalkError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, WalkError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        // A free-form map: a leaf (its keys are data, not configuration keys).
        self.leaf();
        visitor.visit_map(Fields {
            walker: self,
            fields: &[],
            at: 0,
            spanned: false,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, WalkError> {
        if name == SPANNED {
            // toml's Spanned<T>: start, end, then T itself at this path.
            return visitor.visit_map(Fields {
                walker: self,
                fields,
                at: 0,
                spanned: true,
            });
        }
        {
            let mut schema = self.schema.borrow_mut();
            if !self.path.is_empty() {
                schema.tables.insert(self.path.clone());
            }
        }
        visitor.visit_map(Fields {
            walker: self,
            fields,
            at: 0,
            spanned: false,
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, WalkError> {
        // A unit-variant enum (FeatureType, AclMethod, …): a leaf; answer its first variant.
        self.leaf();
        let first = variants.first().copied().unwrap_or("");
        visitor.visit_enum(first.into_deserializer())
    }
}

struct One<'s>(Option<Walker<'s>>);

impl<'de, 's> de::SeqAccess<'de> for One<'s> {
    type Error = WalkError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, WalkError> {
        match self.0.take() {
            Some(walker) => seed.deserialize(walker).map(Some),
            None => Ok(None),
        }
    }
}

/// A struct's (or a free-form map's) fields, handed out in order. For toml's `Spanned<T>`
/// (`spanned`), the start and end are numbers and `value` is `T` itself at the same path.
struct Fields<'s> {
    walker: Walker<'s>,
    fields: &'static [&'static str],
    at: usize,
    spanned: bool,
}

impl<'de, 's> de::MapAccess<'de> for Fields<'s> {
    type Error = WalkError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, WalkError> {
        match self.fields.get(self.at) {
            Some(field) => seed
                .deserialize(de::value::BorrowedStrDeserializer::new(field))
                .map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, WalkError> {
        let field = self.fields.get(self.at).copied().unwrap_or("");
        self.at += 1;
        if !self.spanned {
            seed.deserialize(self.walker.child(field))
        } else if field.ends_with("value") {
            seed.deserialize(self.walker.same())
        } else {
            seed.deserialize(0u64.into_deserializer())
        }
    }
}

/// Walks `T` at `path` into `schema`. Errors are ignored: every struct's fields are recorded
/// before its values are asked for, so a value the walker cannot fake (an internally tagged
/// enum) only stops the walk below it.
fn walk<'de, T: Deserialize<'de>>(path: &str, schema: &RefCell<Schema>) {
    let walker = Walker {
        path: path.to_string(),
        schema,
        is_field: !path.is_empty(),
    };
    let _ = T::deserialize(walker);
}

/// Every key the configuration parser accepts (see the module doc for the paths).
pub fn accepted() -> Schema {
    let schema = RefCell::new(Schema::default());
    walk::<UserConfig>("", &schema);
    {
        // `acl`, `plan`, `limit` and `redis` are read as plain values first, then as these
        // types.
        let mut s = schema.borrow_mut();
        s.keys.remove("api.acl");
        s.keys.remove("api.plan");
        s.keys.remove("api.limit");
        s.keys.remove("gateway.redis");
    }
    walk::<super::limits::UserLimitRule>("api.limit", &schema);
    walk::<super::limits::UserRedis>("gateway.redis", &schema);
    // `upstream` is a URL string or `[[api.upstream]]` tables (a virtual server).
    walk::<super::virtual_server::UserUpstream>("api.upstream", &schema);
    walk::<AclConfig>("api.acl", &schema);
    walk::<AuthConfigUser>("api.plan", &schema);
    let mut schema = schema.into_inner();
    // `plans` is the list of plan tables of the full form (`[[api.plan.plans]]`).
    schema.keys.remove("api.plan.plans");
    schema.tables.insert("api.plan.plans".into());
    // The plan's tag and its variants, read from the parser's own error messages.
    let (tag, variants) = plan_variants();
    schema.keys.insert(format!("api.plan.{tag}"));
    for variant in variants {
        let path = format!("api.plan({variant})");
        schema.tables.insert(path.clone());
        let cell = RefCell::new(Schema::default());
        match variant.as_str() {
            "keyless" => walk::<KeylessUser>(&path, &cell),
            "api_key" => walk::<ApiKeyUser>(&path, &cell),
            "jwt" => walk::<JwtUser>(&path, &cell),
            "oauth2" => walk::<OAuth2User>(&path, &cell),
            "client_cert" => walk::<ClientCertUser>(&path, &cell),
            other => panic!("a plan type this test does not know: {other} (add its struct here)"),
        }
        let cell = cell.into_inner();
        schema.keys.extend(cell.keys);
        schema.tables.extend(cell.tables);
    }
    schema
}

/// `("type", ["keyless", "api_key", …])`: what `PlanUser` says when given no tag and an
/// unknown one.
fn plan_variants() -> (String, Vec<String>) {
    let missing = toml::from_str::<PlanUser>("x = 1\n")
        .err()
        .map(|e| e.message().to_string())
        .unwrap_or_default();
    let tag = between(&missing, "missing field `", "`").unwrap_or_else(|| panic!("{missing}"));
    let unknown = toml::from_str::<PlanUser>(&format!("{tag} = \"no-such-plan\"\n"))
        .err()
        .map(|e| e.message().to_string())
        .unwrap_or_default();
    let list = unknown
        .split_once("expected one of ")
        .map(|(_, l)| l)
        .unwrap_or_else(|| panic!("{unknown}"));
    let variants = list
        .split(',')
        .filter_map(|v| between(v, "`", "`"))
        .collect();
    (tag, variants)
}

fn between(s: &str, open: &str, close: &str) -> Option<String> {
    let start = s.find(open)? + open.len();
    let rest = s.get(start..)?;
    Some(rest.get(..rest.find(close)?)?.to_string())
}

/// The keys docs/configuration.md documents: each table's heading names it in backticks
/// (`` `[gateway.limits]` ``, `` `[[api.acl.rule]]` ``, `` `[api.plan]` `type = "jwt"` ``) and
/// its rows start with the key in backticks.
pub fn documented(markdown: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut table: Option<String> = None;
    let mut in_code = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        if line.starts_with('#') {
            table = heading_table(line);
            continue;
        }
        let Some(table) = &table else { continue };
        let Some(row) = line.trim().strip_prefix('|') else {
            continue;
        };
        let first = row.split('|').next().unwrap_or("").trim();
        if let Some(key) = first.strip_prefix('`').and_then(|k| k.strip_suffix('`')) {
            if key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            {
                keys.insert(format!("{table}.{key}"));
            }
        }
    }
    keys
}

fn heading_table(line: &str) -> Option<String> {
    let start = line.find("`[")? + 1;
    let rest = line.get(start..)?;
    let end = rest.find('`')?;
    let name = rest.get(..end)?.trim_matches(['[', ']']).to_string();
    match between(line, "`type = \"", "\"`") {
        Some(variant) => Some(format!("{name}({variant})")),
        None => Some(name),
    }
}

/// The keys examples/full.toml shows: set in the file (its TOML parsed), or written as a
/// commented assignment (`# key = …`) under a table header, for alternatives that cannot be set
/// together (token_file / token_env) or need a secret.
pub fn shown(toml_text: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let value: toml::Value =
        toml::from_str(toml_text).unwrap_or_else(|e| panic!("examples/full.toml: {e}"));
    collect(&value, "", &mut keys);
    // Commented assignments, in the table they are written under.
    let mut table = String::new();
    for line in toml_text.lines() {
        let t = line.trim();
        // A commented table header (`# [gateway.tls]`) opens a table shown only commented (it
        // needs files the example cannot ship); its commented keys belong to it.
        let header = t
            .strip_prefix('#')
            .map(str::trim_start)
            .filter(|h| h.starts_with('[') && h.contains(']') && !h.contains('='))
            .map(|h| h.split('#').next().unwrap_or(h).trim())
            .unwrap_or(t);
        if header.starts_with('[') {
            table = header.trim_matches(['[', ']', ' ']).to_string();
            continue;
        }
        if table == "api.plan" || table == "api.plan.plans" {
            if let Some(v) = between(t, "type = \"", "\"") {
                if !t.starts_with('#') {
                    table = format!("api.plan({v})");
                }
            }
        }
        if let Some(assignment) = t.strip_prefix('#').map(str::trim_start) {
            if let Some((key, _)) = assignment.split_once('=') {
                let key = key.trim();
                if !key.is_empty()
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                {
                    keys.insert(format!("{table}.{key}"));
                }
            }
        }
    }
    keys
}

fn collect(value: &toml::Value, path: &str, keys: &mut BTreeSet<String>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    if !path.is_empty() && (value.is_table() || value.is_array()) {
        // A table or an array of them is shown too (`keys = [{ key, subject }]` is a key).
        keys.insert(path.replace("api.plan.plans", "api.plan"));
    }
    match value {
        toml::Value::Table(t) => {
            // A plan table is named by its type.
            let plan_path = (path == "api.plan" || path == "api.plan.plans")
                .then(|| t.get("type").and_then(toml::Value::as_str))
                .flatten();
            for (k, v) in t {
                let child = match plan_path {
                    Some(variant) if k != "type" => format!("api.plan({variant}).{k}"),
                    Some(_) => "api.plan.type".to_string(),
                    None => join(k),
                };
                collect(v, &child, keys);
            }
        }
        toml::Value::Array(items)
            if items.iter().all(toml::Value::is_table) && !items.is_empty() =>
        {
            for item in items {
                collect(item, path, keys);
            }
        }
        _ => {
            let path = path.replace("api.plan.plans.", "api.plan.");
            keys.insert(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_file(path: &str) -> String {
        let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(path);
        std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
    }

    /// Leaves of free-form values are data, not keys: `keys.jwk` holds a JWK object.
    fn is_data(accepted: &Schema, key: &str) -> bool {
        accepted
            .keys
            .iter()
            .any(|k| key.starts_with(&format!("{k}.")))
    }

    #[test]
    #[ignore = "prints the accepted keys (cargo test -p mcpgate-core reference::tests::print -- --ignored --nocapture)"]
    fn print() {
        let a = accepted();
        for k in &a.keys {
            println!("{k}");
        }
    }

    #[test]
    fn the_walk_finds_what_the_structs_declare() {
        let a = accepted();
        for key in [
            "gateway.listen",
            "gateway.limits.max_body_bytes",
            "gateway.timeouts.sse_idle",
            "gateway.dns.refresh",
            "gateway.log.redact_fields",
            "gateway.admin_auth.token_file",
            "gateway.allow_unauthenticated_admin",
            "api.upstream",
            "api.upstream.command",
            "api.upstream.transport",
            "api.virtual.separator",
            "api.acl_file",
            "api.acl.server_requests.sampling",
            "api.acl.rule.type",
            "api.acl.rule.refusal.code",
            "api.log.capture",
            "api.plan.type",
            "api.plan.public_url",
            "api.plan(jwt).keys.pem_file",
            "api.plan(oauth2).issuer",
            "api.plan(api_key).keys",
        ] {
            assert!(a.keys.contains(key), "{key} not found in {:#?}", a.keys);
        }
        assert!(!a.keys.contains("api.acl") && !a.keys.contains("api.plan"));
        assert!(a.tables.contains("gateway.limits") && a.tables.contains("api.acl.rule"));
        let (tag, variants) = plan_variants();
        assert_eq!(tag, "type");
        assert_eq!(
            variants,
            ["keyless", "api_key", "jwt", "oauth2", "client_cert"]
        );
    }

    #[test]
    fn the_reference_documents_exactly_the_accepted_keys() {
        let accepted = accepted();
        let documented = documented(&repo_file("docs/configuration.md"));
        let undocumented: Vec<_> = accepted.keys.difference(&documented).collect();
        let refused: Vec<_> = documented
            .iter()
            .filter(|k| !accepted.keys.contains(*k) && !accepted.tables.contains(*k))
            .collect();
        assert!(
            undocumented.is_empty() && refused.is_empty(),
            "docs/configuration.md is out of step with the parser:\n\
             accepted but not documented: {undocumented:#?}\n\
             documented but refused by the parser: {refused:#?}"
        );
    }

    #[test]
    fn full_example_shows_every_key() {
        let accepted = accepted();
        let shown = shown(&repo_file("examples/full.toml"));
        let missing: Vec<_> = accepted.keys.difference(&shown).collect();
        let unknown: Vec<_> = shown
            .iter()
            .filter(|k| {
                !accepted.keys.contains(*k)
                    && !accepted.tables.contains(*k)
                    && !is_data(&accepted, k)
            })
            .collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "examples/full.toml:\nkeys it does not show: {missing:#?}\nkeys the parser refuses: {unknown:#?}"
        );
    }

    #[test]
    fn the_comparison_can_fail() {
        // A documented key the parser refuses, and an accepted key without a row.
        let md =
            "## `[gateway.limits]`\n\n| Key |\n|---|\n| `max_body_bytes` |\n| `max_bodies` |\n";
        let rows = documented(md);
        assert!(rows.contains("gateway.limits.max_bodies"));
        assert!(!accepted().keys.contains("gateway.limits.max_bodies"));
        assert!(!rows.contains("gateway.limits.max_head_bytes"));
        let plan = documented("### `[api.plan]` `type = \"jwt\"`\n| `issuer` | x |\n");
        assert!(plan.contains("api.plan(jwt).issuer"), "{plan:?}");
        let seen = shown("[gateway.admin_auth]\n# token_env = \"X\"\n[[api]]\npath = \"/\"\nupstream = \"http://127.0.0.1:1/\"\n[[api.plan]]\ntype = \"jwt\"\nissuer = \"x\"\n# hmac_secret_file = \"s\"\n");
        for key in [
            "gateway.admin_auth.token_env",
            "api.plan.type",
            "api.plan(jwt).issuer",
            "api.plan(jwt).hmac_secret_file",
            "api.path",
        ] {
            assert!(seen.contains(key), "{key}: {seen:?}");
        }
    }
}
