//! Pinning tools and prompts against silent changes (a "rug pull": a server that changes a
//! reviewed tool's description, which is an instruction to the model, or its schema).
//!
//! - A **definition** is the part of a list entry that says what the tool does: `name`, `title`,
//!   `description`, `inputSchema`, `outputSchema`, `annotations` for a tool; `name`, `title`,
//!   `description`, `arguments` for a prompt. Its digest is SHA-256 over canonical JSON
//!   (`super::canonical`), so key order and whitespace do not count. Icons, `_meta` and
//!   `execution` are not pinned: they change without changing what the model is told.
//! - The **lockfile** ([`Lockfile`]) holds, per upstream URL, every pinned definition with its
//!   digest: the operator reviews it and commits it (`mcpgate pin` writes it from a live
//!   upstream), or the gateway writes it on first use (TOFU).
//! - [`PinState`] is one upstream's pins plus what the gateway saw of it: every list answer's
//!   entries are compared, and a new or changed definition becomes a [`Finding`] (with a readable
//!   diff). Findings stay until the pins change (a reload with an updated lockfile): a server
//!   that changes a tool back does not clear its finding by itself.
//! - [`OnChange`] is what an API does about findings: `alert` (pass, log, count), `hide` (flagged
//!   entries removed from lists, their calls refused), `block` (every list and call of the
//!   upstream refused).

use std::collections::BTreeMap;

use mcpgate_codec::filter::ListKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::canonical::digest;
use super::diff;

/// The lockfile format this build reads and writes (`"mcpgate_pins": 1`).
pub const LOCKFILE_VERSION: u32 = 1;

/// JSON-RPC code of the gateway's integrity refusals (implementation-defined server error).
pub const INTEGRITY_REFUSED: i64 = -32001;

/// What is pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PinKind {
    Tool,
    Prompt,
}

const TOOL_FIELDS: &[&str] = &[
    "name",
    "title",
    "description",
    "inputSchema",
    "outputSchema",
    "annotations",
];
const PROMPT_FIELDS: &[&str] = &["name", "title", "description", "arguments"];

impl PinKind {
    pub const ALL: [PinKind; 2] = [PinKind::Tool, PinKind::Prompt];

    /// Position in [`PinKind::ALL`].
    pub fn index(self) -> usize {
        match self {
            PinKind::Tool => 0,
            PinKind::Prompt => 1,
        }
    }
    /// The member of a list result (and of a lockfile entry) holding them.
    pub fn list_key(self) -> &'static str {
        match self {
            PinKind::Tool => "tools",
            PinKind::Prompt => "prompts",
        }
    }
    /// `tool` / `prompt`, for messages and metric labels.
    pub fn label(self) -> &'static str {
        match self {
            PinKind::Tool => "tool",
            PinKind::Prompt => "prompt",
        }
    }
    /// The members of an entry that are pinned.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            PinKind::Tool => TOOL_FIELDS,
            PinKind::Prompt => PROMPT_FIELDS,
        }
    }
    /// The list method returning them.
    pub fn list_method(self) -> &'static str {
        match self {
            PinKind::Tool => "tools/list",
            PinKind::Prompt => "prompts/list",
        }
    }
    /// The method that uses one of them by name.
    pub fn use_method(self) -> &'static str {
        match self {
            PinKind::Tool => "tools/call",
            PinKind::Prompt => "prompts/get",
        }
    }
    pub fn of_list(kind: ListKind) -> Option<PinKind> {
        match kind {
            ListKind::Tools => Some(PinKind::Tool),
            ListKind::Prompts => Some(PinKind::Prompt),
            ListKind::Resources | ListKind::ResourceTemplates => None,
        }
    }
    pub fn list_kind(self) -> ListKind {
        match self {
            PinKind::Tool => ListKind::Tools,
            PinKind::Prompt => ListKind::Prompts,
        }
    }
    /// The kind whose entries `method` uses by name (`tools/call` → tools).
    pub fn of_use_method(method: &str) -> Option<PinKind> {
        PinKind::ALL.into_iter().find(|k| k.use_method() == method)
    }
}

/// The name and pinned definition of one list entry; `None` when the entry is not an object
/// with a string `name` (the ACL's filter removes those anyway).
pub fn definition(kind: PinKind, entry: &Value) -> Option<(String, Value)> {
    let object = entry.as_object()?;
    let name = object.get("name")?.as_str()?.to_owned();
    let mut picked = serde_json::Map::new();
    for field in kind.fields() {
        if let Some(v) = object.get(*field) {
            picked.insert((*field).to_owned(), v.clone());
        }
    }
    Some((name, Value::Object(picked)))
}

/// Every entry of `kind` in a list `result` object (unusable entries skipped).
pub fn definitions(kind: PinKind, result: &Value) -> Vec<(String, Value)> {
    result
        .get(kind.list_key())
        .and_then(Value::as_array)
        .map(|entries| entries.iter().filter_map(|e| definition(kind, e)).collect())
        .unwrap_or_default()
}

/// One pinned definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedDef {
    /// `sha256:<hex>` of the canonical definition (checked against it when read).
    pub digest: String,
    pub definition: Value,
}

impl PinnedDef {
    pub fn of(definition: Value) -> Self {
        PinnedDef {
            digest: digest(&definition),
            definition,
        }
    }
}

/// One upstream's pins. A kind that is absent is not pinned (not checked); present and empty,
/// every entry of that kind is new.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamPins {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<BTreeMap<String, PinnedDef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompts: Option<BTreeMap<String, PinnedDef>>,
}

impl UpstreamPins {
    /// Both kinds pinned and empty: what an upstream absent from a lockfile is held to.
    pub fn empty_pinned() -> Self {
        UpstreamPins {
            tools: Some(BTreeMap::new()),
            prompts: Some(BTreeMap::new()),
        }
    }
    pub fn kind(&self, kind: PinKind) -> Option<&BTreeMap<String, PinnedDef>> {
        match kind {
            PinKind::Tool => self.tools.as_ref(),
            PinKind::Prompt => self.prompts.as_ref(),
        }
    }
    pub fn kind_mut(&mut self, kind: PinKind) -> &mut Option<BTreeMap<String, PinnedDef>> {
        match kind {
            PinKind::Tool => &mut self.tools,
            PinKind::Prompt => &mut self.prompts,
        }
    }
}

/// The lockfile: per upstream URL, its pins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lockfile {
    /// The format version ([`LOCKFILE_VERSION`]).
    pub mcpgate_pins: u32,
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamPins>,
}

impl Default for Lockfile {
    fn default() -> Self {
        Lockfile {
            mcpgate_pins: LOCKFILE_VERSION,
            upstreams: BTreeMap::new(),
        }
    }
}

/// Why a lockfile cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockfileError {
    #[error("not a pin lockfile: {0}")]
    Json(String),
    #[error("lockfile format {0} is not supported (this build reads {LOCKFILE_VERSION})")]
    Version(u32),
    #[error("{upstream}: {kind} `{name}`: the digest does not match the definition (edited by hand? run `mcpgate pin` again)")]
    Digest {
        upstream: String,
        kind: &'static str,
        name: String,
    },
    #[error("{upstream}: {kind} `{name}`: the definition's name is not `{name}`")]
    Name {
        upstream: String,
        kind: &'static str,
        name: String,
    },
}

impl Lockfile {
    /// Reads a lockfile and checks that every digest is its definition's.
    pub fn parse(text: &str) -> Result<Lockfile, LockfileError> {
        let lock: Lockfile =
            serde_json::from_str(text).map_err(|e| LockfileError::Json(e.to_string()))?;
        if lock.mcpgate_pins != LOCKFILE_VERSION {
            return Err(LockfileError::Version(lock.mcpgate_pins));
        }
        for (upstream, pins) in &lock.upstreams {
            for kind in PinKind::ALL {
                for (name, pinned) in pins.kind(kind).into_iter().flatten() {
                    if pinned.definition.get("name").and_then(Value::as_str) != Some(name) {
                        return Err(LockfileError::Name {
                            upstream: upstream.clone(),
                            kind: kind.label(),
                            name: name.clone(),
                        });
                    }
                    if digest(&pinned.definition) != pinned.digest {
                        return Err(LockfileError::Digest {
                            upstream: upstream.clone(),
                            kind: kind.label(),
                            name: name.clone(),
                        });
                    }
                }
            }
        }
        Ok(lock)
    }

    /// The text written to disk: pretty JSON, members sorted, a final newline (diffs well in
    /// review).
    pub fn to_text(&self) -> String {
        let value = serde_json::to_value(self).unwrap_or(Value::Null);
        let mut text = pretty_sorted(&value, 0);
        text.push('\n');
        text
    }

    /// Pins built from whole lists (`mcpgate pin`): `None` for a kind the server does not have.
    pub fn pins_from(
        tools: Option<&[(String, Value)]>,
        prompts: Option<&[(String, Value)]>,
    ) -> UpstreamPins {
        let map = |entries: &[(String, Value)]| {
            entries
                .iter()
                .map(|(name, def)| (name.clone(), PinnedDef::of(def.clone())))
                .collect::<BTreeMap<_, _>>()
        };
        UpstreamPins {
            tools: tools.map(map),
            prompts: prompts.map(map),
        }
    }
}

/// Pretty JSON with members sorted at every level (two-space indent).
fn pretty_sorted(value: &Value, indent: usize) -> String {
    let pad = |n: usize| " ".repeat(n);
    match value {
        Value::Object(map) if !map.is_empty() => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_unstable_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = members
                .into_iter()
                .map(|(k, v)| {
                    format!(
                        "{}{}: {}",
                        pad(indent + 2),
                        serde_json::to_string(k).unwrap_or_default(),
                        pretty_sorted(v, indent + 2)
                    )
                })
                .collect();
            format!("{{\n{}\n{}}}", inner.join(",\n"), pad(indent))
        }
        Value::Array(items) if !items.is_empty() => {
            let inner: Vec<String> = items
                .iter()
                .map(|v| format!("{}{}", pad(indent + 2), pretty_sorted(v, indent + 2)))
                .collect();
            format!("[\n{}\n{}]", inner.join(",\n"), pad(indent))
        }
        other => super::canonical::canonical(other),
    }
}

/// How an observed definition differs from its pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Not pinned at all.
    New,
    /// Pinned with another digest.
    Changed,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Changed => "changed",
        }
    }
}

/// A new or changed definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub kind: PinKind,
    pub name: String,
    pub change: Change,
    /// What differs from the pin (every member, for a new one).
    pub diff: Vec<String>,
    /// The observed definition's digest.
    pub digest: String,
}

/// The last definition the gateway saw for a name.
#[derive(Debug, Clone, PartialEq)]
struct Observed {
    digest: String,
    definition: Value,
}

/// What one list answer changed.
#[derive(Debug, Default, PartialEq)]
pub struct Observation {
    /// Findings this answer raised (a definition flagged for the first time, or changed again).
    pub new_findings: Vec<Finding>,
    /// TOFU: the pins changed (learnt entries, or a kind's learning completed) and should be
    /// written to disk.
    pub learned: bool,
}

/// One upstream's pins and what the gateway saw of it (see the module docs).
#[derive(Debug, Clone)]
pub struct PinState {
    pins: UpstreamPins,
    tofu: bool,
    /// TOFU: per kind, whether its whole list was seen once (then entries not pinned are new).
    /// A kind present in the pins is complete: the gateway writes a kind only once complete.
    complete: [bool; 2],
    observed: BTreeMap<(PinKind, String), Observed>,
    findings: BTreeMap<(PinKind, String), Finding>,
    /// TOFU: entries of kinds still being learnt (written once the kind completes).
    learning: [BTreeMap<String, PinnedDef>; 2],
}

impl PinState {
    /// `tofu`: entries of a kind the pins lack are learnt from the first complete listing.
    pub fn new(pins: UpstreamPins, tofu: bool) -> Self {
        let complete = PinKind::ALL.map(|k| pins.kind(k).is_some());
        PinState {
            pins,
            tofu,
            complete,
            observed: BTreeMap::new(),
            findings: BTreeMap::new(),
            learning: Default::default(),
        }
    }

    pub fn pins(&self) -> &UpstreamPins {
        &self.pins
    }

    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.findings.values()
    }

    pub fn finding_count(&self) -> usize {
        self.findings.len()
    }

    /// Whether `name` of `kind` is flagged (new or changed).
    pub fn is_flagged(&self, kind: PinKind, name: &str) -> bool {
        self.findings.contains_key(&(kind, name.to_owned()))
    }

    /// Compares one list answer's entries of `kind` (name and definition each) with the pins;
    /// `last_page`: the answer had no `nextCursor`.
    pub fn observe(
        &mut self,
        kind: PinKind,
        entries: &[(String, Value)],
        last_page: bool,
    ) -> Observation {
        let mut out = Observation::default();
        let learning = self.tofu && !self.complete[kind.index()];
        for (name, definition) in entries {
            let digest = digest(definition);
            let key = (kind, name.clone());
            let unchanged = self.observed.get(&key).is_some_and(|o| o.digest == digest);
            if !unchanged {
                self.observed.insert(
                    key.clone(),
                    Observed {
                        digest: digest.clone(),
                        definition: definition.clone(),
                    },
                );
            }
            if learning {
                // First use: trusted as it is (the last page naming it wins).
                self.learning[kind.index()].insert(name.clone(), PinnedDef::of(definition.clone()));
                continue;
            }
            let finding = self.judge(kind, name, definition, &digest);
            match finding {
                None => {}
                Some(f) => {
                    let known = self
                        .findings
                        .get(&key)
                        .is_some_and(|old| old.digest == f.digest);
                    if !known {
                        self.findings.insert(key, f.clone());
                        out.new_findings.push(f);
                    }
                }
            }
        }
        if learning && last_page {
            let learnt = std::mem::take(&mut self.learning[kind.index()]);
            *self.pins.kind_mut(kind) = Some(learnt);
            self.complete[kind.index()] = true;
            out.learned = true;
        }
        out
    }

    /// The finding for one observed definition against the pins, if any.
    fn judge(
        &self,
        kind: PinKind,
        name: &str,
        definition: &Value,
        digest: &str,
    ) -> Option<Finding> {
        let pinned = self.pins.kind(kind)?;
        match pinned.get(name) {
            Some(p) if p.digest == digest => None,
            Some(p) => Some(Finding {
                kind,
                name: name.to_owned(),
                change: Change::Changed,
                diff: diff::diff(&p.definition, definition),
                digest: digest.to_owned(),
            }),
            None => Some(Finding {
                kind,
                name: name.to_owned(),
                change: Change::New,
                diff: diff::added(definition),
                digest: digest.to_owned(),
            }),
        }
    }

    /// New pins (a reload read the lockfile again): the findings are judged again against the
    /// last definitions seen. Returns whether the set of findings changed.
    pub fn replace_pins(&mut self, pins: UpstreamPins) -> bool {
        if pins == self.pins {
            return false;
        }
        self.pins = pins;
        self.complete = PinKind::ALL.map(|k| self.pins.kind(k).is_some());
        let mut findings = BTreeMap::new();
        for ((kind, name), seen) in &self.observed {
            if let Some(f) = self.judge(*kind, name, &seen.definition, &seen.digest) {
                findings.insert((*kind, name.clone()), f);
            }
        }
        let changed = findings.keys().ne(self.findings.keys());
        self.findings = findings;
        changed
    }
}

/// What an API does when its upstream's definitions differ from the pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnChange {
    /// Pass everything; log, count, show on the console.
    #[default]
    Alert,
    /// Remove flagged entries from lists and refuse their use.
    Hide,
    /// Refuse every list and use of the upstream while anything is flagged.
    Block,
}

impl OnChange {
    pub fn parse(s: &str) -> Option<OnChange> {
        match s {
            "alert" => Some(OnChange::Alert),
            "hide" => Some(OnChange::Hide),
            "block" => Some(OnChange::Block),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            OnChange::Alert => "alert",
            OnChange::Hide => "hide",
            OnChange::Block => "block",
        }
    }
}

/// The methods `block` refuses: every list and every use of a tool, prompt or resource.
pub fn blocked_method(method: &str) -> bool {
    matches!(
        method,
        "tools/list"
            | "tools/call"
            | "prompts/list"
            | "prompts/get"
            | "resources/list"
            | "resources/templates/list"
            | "resources/read"
            | "completion/complete"
    )
}

/// A refusal the gateway answers instead of the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: i64,
    pub message: String,
}

/// The verdict on a client's request: `method` with its target `name` (if any), under `policy`,
/// given the upstream's findings (`flagged`: whether this name is flagged; `findings`: how many
/// there are).
pub fn request_verdict(
    policy: OnChange,
    method: &str,
    name: Option<&str>,
    flagged: bool,
    findings: usize,
) -> Option<Refusal> {
    match policy {
        OnChange::Alert => None,
        OnChange::Block if findings > 0 && blocked_method(method) => Some(Refusal {
            code: INTEGRITY_REFUSED,
            message: format!(
                "the gateway blocks this server: {findings} tool or prompt definition{} changed \
                 since {} pinned; an operator must review and update the pin",
                if findings == 1 { "" } else { "s" },
                if findings == 1 { "it was" } else { "they were" }
            ),
        }),
        OnChange::Block => None,
        OnChange::Hide => {
            let kind = PinKind::of_use_method(method)?;
            let name = name?;
            flagged.then(|| Refusal {
                code: INTEGRITY_REFUSED,
                message: format!(
                    "{} `{name}` is withheld by the gateway: its definition changed since it was \
                     pinned; an operator must review and update the pin",
                    kind.label()
                ),
            })
        }
    }
}

/// What a list answer from an upstream with findings becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListVerdict {
    Pass,
    /// Remove the flagged entries.
    HideFlagged,
    /// Replace the answer with a refusal.
    Block,
}

pub fn list_verdict(policy: OnChange, findings: usize) -> ListVerdict {
    match policy {
        _ if findings == 0 => ListVerdict::Pass,
        OnChange::Alert => ListVerdict::Pass,
        OnChange::Hide => ListVerdict::HideFlagged,
        OnChange::Block => ListVerdict::Block,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(name: &str, description: &str) -> (String, Value) {
        definition(
            PinKind::Tool,
            &json!({"name": name, "description": description, "inputSchema": {"type": "object"}, "icons": [{"src": "x"}]}),
        )
        .unwrap_or_else(|| panic!("no definition"))
    }

    fn pins_of(entries: &[(String, Value)]) -> UpstreamPins {
        Lockfile::pins_from(Some(entries), Some(&[]))
    }

    #[test]
    fn definitions_keep_the_pinned_members_only() {
        let (name, def) = tool("a", "A");
        assert_eq!(name, "a");
        assert_eq!(
            def,
            json!({"name": "a", "description": "A", "inputSchema": {"type": "object"}})
        );
        assert!(definition(PinKind::Tool, &json!({"description": "no name"})).is_none());
        let (_, p) = definition(
            PinKind::Prompt,
            &json!({"name": "p", "arguments": [{"name": "x"}], "_meta": {"a": 1}}),
        )
        .unwrap_or_else(|| panic!("no definition"));
        assert_eq!(p, json!({"name": "p", "arguments": [{"name": "x"}]}));
    }

    #[test]
    fn changed_and_new_definitions_are_found_once() {
        let mut state = PinState::new(pins_of(&[tool("a", "A"), tool("b", "B")]), false);
        let same = state.observe(PinKind::Tool, &[tool("a", "A"), tool("b", "B")], true);
        assert_eq!(same, Observation::default());
        let changed = state.observe(
            PinKind::Tool,
            &[tool("a", "A!"), tool("b", "B"), tool("c", "C")],
            true,
        );
        let found: Vec<_> = changed
            .new_findings
            .iter()
            .map(|f| (f.name.as_str(), f.change))
            .collect();
        assert_eq!(found, [("a", Change::Changed), ("c", Change::New)]);
        assert_eq!(
            changed.new_findings[0].diff,
            vec!["~ description: \"A\" → \"A!\"".to_string()]
        );
        assert!(state.is_flagged(PinKind::Tool, "a") && !state.is_flagged(PinKind::Tool, "b"));
        // Seen again: nothing new. Changed back: still flagged until the pins change.
        assert!(state
            .observe(PinKind::Tool, &[tool("a", "A!")], true)
            .new_findings
            .is_empty());
        assert!(state
            .observe(PinKind::Tool, &[tool("a", "A")], true)
            .new_findings
            .is_empty());
        assert!(state.is_flagged(PinKind::Tool, "a"));
        // Changed again: a new finding.
        assert_eq!(
            state
                .observe(PinKind::Tool, &[tool("a", "A?")], true)
                .new_findings
                .len(),
            1
        );
        // The operator pins what is served now: findings cleared.
        assert!(state.replace_pins(pins_of(&[tool("a", "A?"), tool("b", "B"), tool("c", "C")])));
        assert_eq!(state.finding_count(), 0);
    }

    #[test]
    fn trust_on_first_use_learns_the_first_complete_listing() {
        let mut state = PinState::new(UpstreamPins::default(), true);
        let page1 = state.observe(PinKind::Tool, &[tool("a", "A")], false);
        assert_eq!(page1, Observation::default());
        let page2 = state.observe(PinKind::Tool, &[tool("b", "B")], true);
        assert!(page2.learned && page2.new_findings.is_empty());
        assert_eq!(
            state
                .pins()
                .tools
                .as_ref()
                .map(|t| t.keys().cloned().collect::<Vec<_>>()),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        // Prompts were never listed: still not pinned.
        assert!(state.pins().prompts.is_none());
        let later = state.observe(
            PinKind::Tool,
            &[tool("a", "A"), tool("b", "B2"), tool("z", "Z")],
            true,
        );
        assert_eq!(later.new_findings.len(), 2);
        assert!(!later.learned);
    }

    #[test]
    fn without_tofu_a_kind_absent_from_the_pins_is_not_checked() {
        let mut state = PinState::new(
            UpstreamPins {
                tools: None,
                prompts: Some(BTreeMap::new()),
            },
            false,
        );
        assert_eq!(
            state.observe(PinKind::Tool, &[tool("a", "A")], true),
            Observation::default()
        );
        let p = definition(PinKind::Prompt, &json!({"name": "p"})).unwrap_or_else(|| panic!("p"));
        assert_eq!(
            state
                .observe(PinKind::Prompt, &[p], true)
                .new_findings
                .len(),
            1
        );
    }

    #[test]
    fn lockfiles_round_trip_and_refuse_edited_digests() {
        let mut lock = Lockfile::default();
        lock.upstreams
            .insert("http://127.0.0.1:1/mcp".into(), pins_of(&[tool("a", "A")]));
        let text = lock.to_text();
        assert_eq!(Lockfile::parse(&text), Ok(lock.clone()));
        assert!(
            text.contains("\"mcpgate_pins\": 1") && text.ends_with("}\n"),
            "{text}"
        );
        let edited = text.replace("\"A\"", "\"A (edited)\"");
        assert!(matches!(
            Lockfile::parse(&edited),
            Err(LockfileError::Digest { .. })
        ));
        assert!(matches!(
            Lockfile::parse("{\"mcpgate_pins\": 2}"),
            Err(LockfileError::Version(2))
        ));
        assert!(matches!(Lockfile::parse("{}"), Err(LockfileError::Json(_))));
    }

    #[test]
    fn policies_decide_lists_and_uses() {
        assert_eq!(
            request_verdict(OnChange::Alert, "tools/call", Some("a"), true, 1),
            None
        );
        let hidden = request_verdict(OnChange::Hide, "tools/call", Some("a"), true, 1);
        assert!(hidden.is_some_and(|r| r.code == INTEGRITY_REFUSED && r.message.contains("`a`")));
        assert_eq!(
            request_verdict(OnChange::Hide, "tools/call", Some("b"), false, 1),
            None
        );
        assert_eq!(
            request_verdict(OnChange::Hide, "tools/list", None, false, 1),
            None
        );
        assert!(request_verdict(OnChange::Block, "tools/list", None, false, 1).is_some());
        assert!(request_verdict(OnChange::Block, "resources/read", None, false, 2).is_some());
        assert_eq!(
            request_verdict(OnChange::Block, "ping", None, false, 1),
            None
        );
        assert_eq!(
            request_verdict(OnChange::Block, "tools/call", Some("a"), false, 0),
            None
        );
        assert_eq!(list_verdict(OnChange::Hide, 0), ListVerdict::Pass);
        assert_eq!(list_verdict(OnChange::Hide, 1), ListVerdict::HideFlagged);
        assert_eq!(list_verdict(OnChange::Block, 1), ListVerdict::Block);
    }
}
