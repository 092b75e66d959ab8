//! The MCP ACL (Gravitee's `mcp-acl`, then more): compiled once per configuration snapshot into
//! per-method lookup tables, then asked two questions on the hot path — "may this message pass?"
//! ([`Acl::decide`], [`Acl::decide_server_message`]) and "which entries of this list answer stay?"
//! ([`Acl::list_filter`]).
//!
//! Rules only grant; what no rule grants is refused (implicit deny). Methods the ACL does not
//! govern pass, except near-misses of governed names, which are refused. See `docs/acl.md`.

pub(crate) mod condition;
mod config;
pub mod el;
mod method;
pub(crate) mod pattern;
pub mod uri;

use std::borrow::Cow;
use std::sync::Arc;

use ahash::AHashMap;
use regex::Regex;
use smallvec::SmallVec;

pub use condition::{
    AuthInfo, ConditionContext, ConditionFailure, McpFacts, RequestInfo, MAX_CONDITION_LEN,
};
pub use config::{
    AclConfig, AclMethod, FeatureType, GraviteeAcl, GraviteeAuthorization, GraviteeFeature,
    PatternType, Permission, RefusalConfig, RuleConfig, ServerRequestsConfig,
};
pub use method::{governed, is_disguised_governed, Governed, ListKind};
pub use pattern::MAX_PATTERN_LEN;

use condition::{Condition, Evaluator};
use pattern::Pattern;

/// JSON-RPC "Invalid params": what an unknown tool or prompt gets from an MCP server.
pub const INVALID_PARAMS: i64 = -32602;
/// MCP "Resource not found" (2025-11-25; 2026-07-28 moves to -32602, clients still accept it).
pub const RESOURCE_NOT_FOUND: i64 = -32002;
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Longest client-supplied name echoed in a default refusal message.
const MAX_ECHOED_NAME_CHARS: usize = 128;
const MAX_REFUSAL_MESSAGE_LEN: usize = 1024;

// ---------------------------------------------------------------------------------------------
// Inputs

/// What the message names, as the codec classified it (escapes already decoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    None,
    /// `params.name` of `tools/call`, `prompts/get`.
    Name(&'a str),
    /// `params.uri` of `resources/read|subscribe|unsubscribe`, `notifications/resources/updated`.
    Uri(&'a str),
    /// `completion/complete` with `ref/prompt`.
    PromptRef(&'a str),
    /// `completion/complete` with `ref/resource`.
    ResourceRef(&'a str),
}

/// One JSON-RPC request or notification (one element of a batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct McpRequest<'a> {
    /// Exact method string, escapes decoded; never normalised.
    pub method: &'a str,
    pub target: Target<'a>,
}

impl<'a> McpRequest<'a> {
    pub fn new(method: &'a str, target: Target<'a>) -> Self {
        McpRequest { method, target }
    }
}

// ---------------------------------------------------------------------------------------------
// Outputs

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Answer the sender with [`Decision::error`] (for a notification: drop it, there is no id).
    Refuse,
    /// Drop silently (a server→client notification about something the client may not see).
    Drop,
}

/// Why the ACL decided as it did; what the exchange log shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// This rule granted (index in [`Acl::rule_label`] numbering).
    Rule(u32),
    /// No rule granted.
    ImplicitDeny,
    /// A list method: it passes, its answer is filtered (see [`ListFilter::record`]).
    ListFiltered,
    /// The method is outside the ACL (`initialize`, `ping`, notifications…).
    NotGoverned,
    /// Server→client request judged by the API's `server_requests` setting.
    ServerRequests,
    /// A near-miss of a governed method name ("Tools/Call").
    DisguisedMethod,
    /// A governed method without the name / uri it needs (or with the wrong kind).
    MissingTarget,
    /// A resource URI not in normal form (see [`uri`]): the upstream would act on another text
    /// than the one the rules would match.
    NonNormalUri,
}

/// A JSON-RPC error for the gateway to answer with, in the request's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError<'a> {
    pub code: i64,
    /// Plain text; the engine JSON-escapes it when writing the answer.
    pub message: Cow<'a, str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'a> {
    pub verdict: Verdict,
    pub basis: Basis,
    /// The ACL is in dry-run mode and would not have let this through: let it through anyway.
    pub dry_run: bool,
    /// Set when `verdict` is `Refuse`.
    pub error: Option<RpcError<'a>>,
    /// The answer to this request is a list that must go through [`Acl::list_filter`].
    pub list: Option<ListKind>,
    /// First condition that failed to evaluate (the rule then did not apply).
    pub condition_failure: Option<ConditionFailure>,
}

impl<'a> Decision<'a> {
    fn new(verdict: Verdict, basis: Basis) -> Self {
        Decision {
            verdict,
            basis,
            dry_run: false,
            error: None,
            list: None,
            condition_failure: None,
        }
    }

    fn allow(basis: Basis) -> Self {
        Decision::new(Verdict::Allow, basis)
    }

    fn refuse(basis: Basis, error: RpcError<'a>) -> Self {
        Decision {
            error: Some(error),
            ..Decision::new(Verdict::Refuse, basis)
        }
    }

    /// Whether the message goes on its way (allowed, or refused/dropped in dry-run).
    pub fn lets_through(&self) -> bool {
        self.verdict == Verdict::Allow || self.dry_run
    }

    pub fn record(&self) -> DecisionRecord {
        DecisionRecord {
            rule: match self.basis {
                Basis::Rule(rule) => Some(rule),
                _ => None,
            },
            basis: self.basis,
            outcome: match (self.verdict, self.dry_run) {
                (Verdict::Allow, _) => Outcome::Allowed,
                (Verdict::Refuse, false) => Outcome::Refused,
                (Verdict::Refuse, true) => Outcome::DryRunRefused,
                (Verdict::Drop, false) => Outcome::Dropped,
                (Verdict::Drop, true) => Outcome::DryRunDropped,
            },
            filtered: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    Refused,
    Dropped,
    /// Would have been refused; let through because the ACL is in dry-run mode.
    DryRunRefused,
    DryRunDropped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Refused => "refused",
            Outcome::Dropped => "dropped",
            Outcome::DryRunRefused => "dry_run_refused",
            Outcome::DryRunDropped => "dry_run_dropped",
        }
    }
}

/// What the exchange log keeps of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionRecord {
    pub rule: Option<u32>,
    pub basis: Basis,
    pub outcome: Outcome,
    /// List entries removed (in dry-run: that would have been removed).
    pub filtered: u32,
}

// ---------------------------------------------------------------------------------------------
// Errors

/// A configuration the ACL refuses to load. `at` names the rule and field
/// (`authorizations[2].authorizedFeatures[0].patternValue`, `rule[1].condition`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ACL {at}: {message}")]
pub struct AclError {
    pub at: String,
    pub message: String,
}

impl AclError {
    fn new(at: impl Into<String>, message: impl Into<String>) -> Self {
        AclError {
            at: at.into(),
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The compiled ACL

/// One grant a conditional rule makes for one method.
#[derive(Debug)]
struct ConditionalGrant {
    rule: u32,
    pattern: Arc<Pattern>,
    condition: usize,
}

/// Everything that grants one [`AclMethod`]. Unconditional grants are looked up first and
/// report the lowest rule index among them; conditional ones are tried in rule order after.
#[derive(Debug, Default)]
struct MethodGrants {
    any: Option<u32>,
    literal: AHashMap<Box<str>, u32>,
    /// Sorted by rule index.
    regex: Vec<(u32, Regex)>,
    /// Sorted by rule index.
    conditional: Vec<ConditionalGrant>,
}

impl MethodGrants {
    #[inline]
    fn unconditional(&self, name: &str) -> Option<u32> {
        let mut best = self.any;
        if let Some(&rule) = self.literal.get(name) {
            best = Some(best.map_or(rule, |b| b.min(rule)));
        }
        for (rule, regex) in &self.regex {
            if best.is_some_and(|b| b < *rule) {
                break;
            }
            if regex.is_match(name) {
                best = Some(*rule);
                break;
            }
        }
        best
    }

    fn grants_nothing(&self) -> bool {
        self.any.is_none()
            && self.literal.is_empty()
            && self.regex.is_empty()
            && self.conditional.is_empty()
    }
}

#[derive(Debug)]
struct Refuser {
    rule: u32,
    pattern: Arc<Pattern>,
}

#[derive(Debug)]
struct RuleMeta {
    label: String,
    refusal: Option<(i64, Box<str>)>,
}

/// A compiled ACL: immutable, `Send + Sync`, shared by every worker of a config snapshot.
pub struct Acl {
    rules: Vec<RuleMeta>,
    conditions: Vec<Condition>,
    grants: [MethodGrants; 8],
    /// Per feature type, rules with an explicit refusal, in rule order.
    refusers: [Vec<Refuser>; 3],
    dry_run: bool,
    server_requests: ServerRequestsConfig,
    env: Arc<cel::Env>,
    warnings: Vec<String>,
    /// Conditions written in Gravitee EL and the CEL they were compiled as (`mcpgate check`
    /// and the startup summary show them).
    el_translations: Vec<ElTranslation>,
}

/// A condition written in Gravitee EL, translated by [`el::translate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElTranslation {
    /// `authorizations[0].condition`, `rule[2].condition`.
    pub at: String,
    pub el: String,
    pub cel: String,
}

impl std::fmt::Debug for Acl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acl")
            .field("rules", &self.rules)
            .field("conditions", &self.conditions)
            .field("grants", &self.grants)
            .field("dry_run", &self.dry_run)
            .field("server_requests", &self.server_requests)
            .finish_non_exhaustive()
    }
}

/// A validated rule before indexing.
struct RuleSpec {
    label: String,
    features: Vec<(FeatureType, Vec<AclMethod>, Arc<Pattern>)>,
    condition: Option<String>,
    refusal: Option<(i64, Box<str>)>,
}

fn type_index(t: FeatureType) -> usize {
    match t {
        FeatureType::Tools => 0,
        FeatureType::Resources => 1,
        FeatureType::Prompts => 2,
    }
}

impl Acl {
    /// Parses Gravitee's JSON strictly (unknown fields, methods, types and duplicate keys are
    /// errors naming their path).
    pub fn parse_gravitee(json: &str) -> Result<GraviteeAcl, AclError> {
        let mut de = serde_json::Deserializer::from_str(json);
        let acl: GraviteeAcl = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            AclError::new(
                if path == "." { "(top)".into() } else { path },
                e.into_inner().to_string(),
            )
        })?;
        de.end()
            .map_err(|e| AclError::new("(top)", e.to_string()))?;
        Ok(acl)
    }

    /// A Gravitee ACL file on its own (`mcpgate run --acl FILE`), default options.
    pub fn from_gravitee_json(json: &str) -> Result<Acl, AclError> {
        let gravitee = Acl::parse_gravitee(json)?;
        Acl::build(&AclConfig::default(), Some(&gravitee))
    }

    /// Compiles an API's `[api.acl]`. `gravitee_file_json` is the text of `gravitee_file`, read
    /// by the engine (this crate does no I/O).
    pub fn compile(config: &AclConfig, gravitee_file_json: Option<&str>) -> Result<Acl, AclError> {
        let gravitee = match (&config.gravitee, &config.gravitee_file, gravitee_file_json) {
            (Some(_), Some(_), _) => {
                return Err(AclError::new(
                    "gravitee",
                    "give either `gravitee` or `gravitee_file`, not both",
                ))
            }
            (Some(inline), None, _) => Some(
                Acl::parse_gravitee(inline)
                    .map_err(|e| AclError::new(format!("gravitee: {}", e.at), e.message))?,
            ),
            (None, Some(path), Some(text)) => Some(Acl::parse_gravitee(text).map_err(|e| {
                AclError::new(format!("gravitee_file {path}: {}", e.at), e.message)
            })?),
            (None, Some(path), None) => {
                return Err(AclError::new(
                    "gravitee_file",
                    format!("{path}: contents not provided"),
                ))
            }
            (None, None, _) => None,
        };
        Acl::build(config, gravitee.as_ref())
    }

    fn build(config: &AclConfig, gravitee: Option<&GraviteeAcl>) -> Result<Acl, AclError> {
        let mut warnings = Vec::new();
        let mut specs = Vec::new();
        if let Some(gravitee) = gravitee {
            for (i, auth) in gravitee.authorizations.iter().enumerate() {
                specs.push(gravitee_rule(i, auth, &mut warnings)?);
            }
        }
        for (i, rule) in config.rules.iter().enumerate() {
            specs.push(native_rule(i, rule, &mut warnings)?);
        }
        if u32::try_from(specs.len()).is_err() {
            return Err(AclError::new("rule", "too many rules"));
        }

        let env = Arc::new(cel::Env::stdlib());
        let mut acl = Acl {
            rules: Vec::with_capacity(specs.len()),
            conditions: Vec::new(),
            grants: Default::default(),
            refusers: Default::default(),
            dry_run: config.dry_run,
            server_requests: config.server_requests,
            env,
            warnings,
            el_translations: Vec::new(),
        };
        for (index, spec) in specs.into_iter().enumerate() {
            let rule = index as u32; // bounded above
            let condition = match spec.condition.as_deref().map(str::trim) {
                Some(source) if !source.is_empty() => {
                    let at = format!("{}.condition", spec.label);
                    let source = if el::is_el(source) {
                        let cel = el::translate(source)
                            .map_err(|e| AclError::new(at.clone(), e.to_string()))?;
                        acl.el_translations.push(ElTranslation {
                            at: at.clone(),
                            el: source.to_string(),
                            cel: cel.clone(),
                        });
                        cel
                    } else {
                        source.to_string()
                    };
                    let compiled =
                        Condition::compile(&acl.env, &source).map_err(|e| AclError::new(at, e))?;
                    acl.conditions.push(compiled);
                    Some(acl.conditions.len() - 1)
                }
                _ => None,
            };
            for (feature_type, methods, pattern) in &spec.features {
                for method in methods {
                    let grants = &mut acl.grants[method.index()];
                    match (condition, &**pattern) {
                        (Some(condition), _) => grants.conditional.push(ConditionalGrant {
                            rule,
                            pattern: Arc::clone(pattern),
                            condition,
                        }),
                        (None, Pattern::Any) => {
                            grants.any.get_or_insert(rule);
                        }
                        (None, Pattern::Names(names)) => {
                            for name in names {
                                grants.literal.entry(name.clone()).or_insert(rule);
                            }
                        }
                        (None, Pattern::Expression(regex)) => {
                            grants.regex.push((rule, regex.clone()));
                        }
                    }
                }
                if spec.refusal.is_some() {
                    acl.refusers[type_index(*feature_type)].push(Refuser {
                        rule,
                        pattern: Arc::clone(pattern),
                    });
                }
            }
            acl.rules.push(RuleMeta {
                label: spec.label,
                refusal: spec.refusal,
            });
        }
        Ok(acl)
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// `authorizations[i]` (Gravitee) or `rule[i]` (native), for logs.
    pub fn rule_label(&self, rule: u32) -> Option<&str> {
        self.rules.get(rule as usize).map(|r| r.label.as_str())
    }

    /// Things that load but are probably mistakes (a feature with no methods…).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The conditions that were written in Gravitee EL, with their CEL.
    pub fn el_translations(&self) -> &[ElTranslation] {
        &self.el_translations
    }

    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    /// Judges a client→server request or notification.
    pub fn decide<'s>(&'s self, req: &McpRequest<'_>, ctx: &dyn ConditionContext) -> Decision<'s> {
        let decision = match method::governed(req.method) {
            None => self.ungoverned(req.method),
            Some(Governed::List(kind)) => Decision {
                list: Some(kind),
                ..Decision::allow(Basis::ListFiltered)
            },
            Some(Governed::ToolsCall) => match req.target {
                Target::Name(name) => self.judge(AclMethod::ToolsCall, name, req, ctx),
                _ => missing_target(),
            },
            Some(Governed::PromptsGet) => match req.target {
                Target::Name(name) => self.judge(AclMethod::PromptsGet, name, req, ctx),
                _ => missing_target(),
            },
            Some(Governed::ResourcesRead) => match req.target {
                Target::Uri(uri) => self.judge_uri(AclMethod::ResourcesRead, uri, req, ctx),
                _ => missing_target(),
            },
            Some(Governed::ResourcesSubscribe) => match req.target {
                Target::Uri(uri) => self.judge_uri(AclMethod::ResourcesSubscribe, uri, req, ctx),
                _ => missing_target(),
            },
            Some(Governed::CompletionComplete) => match req.target {
                Target::PromptRef(name) => self.judge(AclMethod::PromptsGet, name, req, ctx),
                Target::ResourceRef(template) => {
                    self.judge_uri(AclMethod::ResourcesRead, template, req, ctx)
                }
                // No ref: nothing the ACL hides is named; the upstream answers it.
                Target::None => Decision::allow(Basis::NotGoverned),
                Target::Name(_) | Target::Uri(_) => missing_target(),
            },
            // Server→client methods sent the wrong way: not the ACL's business.
            Some(
                Governed::ResourceUpdated
                | Governed::Sampling
                | Governed::Elicitation
                | Governed::Roots,
            ) => Decision::allow(Basis::NotGoverned),
        };
        self.finish(decision)
    }

    /// Judges a server→client request or notification (relayed on an SSE stream).
    pub fn decide_server_message<'s>(
        &'s self,
        req: &McpRequest<'_>,
        ctx: &dyn ConditionContext,
    ) -> Decision<'s> {
        let permission = |p: Permission| match p {
            Permission::Allow => Decision::allow(Basis::ServerRequests),
            Permission::Deny => Decision::refuse(
                Basis::ServerRequests,
                RpcError {
                    code: METHOD_NOT_FOUND,
                    message: Cow::Borrowed("Method not found"),
                },
            ),
        };
        let decision = match method::governed(req.method) {
            None => self.ungoverned(req.method),
            Some(Governed::ResourceUpdated) => match req.target {
                Target::Uri(uri) => {
                    let mut d = self.judge_uri(AclMethod::ResourcesRead, uri, req, ctx);
                    if d.verdict == Verdict::Refuse {
                        d.verdict = Verdict::Drop;
                        d.error = None;
                    }
                    d
                }
                _ => Decision::new(Verdict::Drop, Basis::MissingTarget),
            },
            Some(Governed::Sampling) => permission(self.server_requests.sampling),
            Some(Governed::Elicitation) => permission(self.server_requests.elicitation),
            Some(Governed::Roots) => permission(self.server_requests.roots),
            Some(_) => Decision::allow(Basis::NotGoverned),
        };
        self.finish(decision)
    }

    fn ungoverned<'s>(&'s self, method: &str) -> Decision<'s> {
        if method::is_disguised_governed(method) {
            Decision::refuse(
                Basis::DisguisedMethod,
                RpcError {
                    code: METHOD_NOT_FOUND,
                    message: Cow::Borrowed("Method not found"),
                },
            )
        } else {
            Decision::allow(Basis::NotGoverned)
        }
    }

    #[inline]
    fn finish<'s>(&'s self, mut decision: Decision<'s>) -> Decision<'s> {
        decision.dry_run = self.dry_run && decision.verdict != Verdict::Allow;
        decision
    }

    /// [`Acl::judge`] for a resource URI, which must first be in normal form.
    fn judge_uri<'s>(
        &'s self,
        method: AclMethod,
        uri: &str,
        req: &McpRequest<'_>,
        ctx: &dyn ConditionContext,
    ) -> Decision<'s> {
        let form = match req.target {
            // A completion reference names a resource template (RFC 6570).
            Target::ResourceRef(_) => uri::check_template(uri),
            _ => uri::check(uri),
        };
        match form {
            Ok(()) => self.judge(method, uri, req, ctx),
            Err(problem) => Decision::refuse(
                Basis::NonNormalUri,
                RpcError {
                    code: INVALID_PARAMS,
                    message: Cow::Owned(format!("Invalid params: {problem}")),
                },
            ),
        }
    }

    fn judge<'s>(
        &'s self,
        method: AclMethod,
        key: &str,
        req: &McpRequest<'_>,
        ctx: &dyn ConditionContext,
    ) -> Decision<'s> {
        let grants = &self.grants[method.index()];
        if let Some(rule) = grants.unconditional(key) {
            return Decision::allow(Basis::Rule(rule));
        }
        let mut failure = None;
        if !grants.conditional.is_empty() {
            let facts = mcp_facts(req);
            let mut evaluator = Evaluator::new(&self.env, ctx);
            for grant in &grants.conditional {
                if !grant.pattern.matches(key) {
                    continue;
                }
                match evaluator.eval(&self.conditions[grant.condition], facts) {
                    Ok(true) => {
                        return Decision {
                            condition_failure: failure,
                            ..Decision::allow(Basis::Rule(grant.rule))
                        }
                    }
                    Ok(false) => {}
                    Err(message) => {
                        failure.get_or_insert(ConditionFailure {
                            rule: grant.rule,
                            message: message.into(),
                        });
                    }
                }
            }
        }
        let error = self
            .explicit_refusal(method.feature_type(), key)
            .unwrap_or_else(|| default_refusal(method, key));
        Decision {
            condition_failure: failure,
            ..Decision::refuse(Basis::ImplicitDeny, error)
        }
    }

    fn explicit_refusal(&self, feature_type: FeatureType, key: &str) -> Option<RpcError<'_>> {
        self.refusers[type_index(feature_type)]
            .iter()
            .find(|r| r.pattern.matches(key))
            .and_then(|r| self.rules.get(r.rule as usize))
            .and_then(|meta| meta.refusal.as_ref())
            .map(|(code, message)| RpcError {
                code: *code,
                message: Cow::Borrowed(message),
            })
    }

    /// The filter for one list answer (`tools/list`, …) of one request. Cheap to build: it
    /// evaluates nothing until [`ListFilter::keep`] needs a condition.
    pub fn list_filter<'s>(
        &'s self,
        kind: ListKind,
        ctx: &'s dyn ConditionContext,
    ) -> ListFilter<'s> {
        let method = match kind {
            ListKind::Tools => AclMethod::ToolsList,
            ListKind::Prompts => AclMethod::PromptsList,
            ListKind::Resources => AclMethod::ResourcesList,
            ListKind::ResourceTemplates => AclMethod::ResourcesTemplatesList,
        };
        let grants = &self.grants[method.index()];
        ListFilter {
            acl: self,
            grants,
            kind,
            evaluator: Evaluator::new(&self.env, ctx),
            cached: grants.conditional.iter().map(|_| None).collect(),
            kept: 0,
            removed: 0,
            failure: None,
        }
    }
}

fn missing_target<'s>() -> Decision<'s> {
    Decision::refuse(
        Basis::MissingTarget,
        RpcError {
            code: INVALID_PARAMS,
            message: Cow::Borrowed("Invalid params"),
        },
    )
}

fn mcp_facts<'r>(req: &McpRequest<'r>) -> McpFacts<'r> {
    let (name, uri) = match req.target {
        Target::Name(name) | Target::PromptRef(name) => (name, ""),
        Target::Uri(uri) | Target::ResourceRef(uri) => ("", uri),
        Target::None => ("", ""),
    };
    McpFacts {
        method: req.method,
        name,
        uri,
    }
}

/// The refusal that reveals nothing: what the server says for a name it does not have.
fn default_refusal(method: AclMethod, key: &str) -> RpcError<'static> {
    let echoed = || key.chars().take(MAX_ECHOED_NAME_CHARS).collect::<String>();
    match method.feature_type() {
        FeatureType::Tools => RpcError {
            code: INVALID_PARAMS,
            message: Cow::Owned(format!("Unknown tool: {}", echoed())),
        },
        FeatureType::Prompts => RpcError {
            code: INVALID_PARAMS,
            message: Cow::Owned(format!("Unknown prompt: {}", echoed())),
        },
        FeatureType::Resources => RpcError {
            code: RESOURCE_NOT_FOUND,
            message: Cow::Borrowed("Resource not found"),
        },
    }
}

/// Decides, entry by entry, what stays in one list answer.
pub struct ListFilter<'a> {
    acl: &'a Acl,
    grants: &'a MethodGrants,
    kind: ListKind,
    evaluator: Evaluator<'a>,
    /// Per conditional grant: the result of a condition that does not read `mcp`, once known.
    cached: SmallVec<[Option<bool>; 4]>,
    kept: u32,
    removed: u32,
    failure: Option<ConditionFailure>,
}

impl ListFilter<'_> {
    /// Every entry is visible: the engine may relay the answer without parsing it. (In dry-run
    /// mode this stays false when entries would be hidden, so the engine still runs the filter
    /// — which keeps everything — and can record the would-be removals.)
    /// Resource and template lists are always scanned: an entry whose URI is not in normal form
    /// goes.
    pub fn keeps_all(&self) -> bool {
        self.grants.any.is_some() && matches!(self.kind, ListKind::Tools | ListKind::Prompts)
    }

    /// No entry stays (no rule grants this list at all).
    pub fn keeps_none(&self) -> bool {
        !self.acl.dry_run && self.grants.grants_nothing()
    }

    /// Whether the entry keyed `key` (name, or uri / uriTemplate for resources) stays.
    /// In dry-run mode every entry stays and would-be removals are counted.
    pub fn keep(&mut self, key: &str) -> bool {
        let visible = self.visible(key);
        if visible {
            self.kept = self.kept.saturating_add(1);
        } else {
            self.removed = self.removed.saturating_add(1);
        }
        visible || self.acl.dry_run
    }

    fn visible(&mut self, key: &str) -> bool {
        // A listed URI the gateway would refuse to read is not shown either.
        let form = match self.kind {
            ListKind::Resources => uri::check(key),
            ListKind::ResourceTemplates => uri::check_template(key),
            ListKind::Tools | ListKind::Prompts => Ok(()),
        };
        if form.is_err() {
            return false;
        }
        if self.grants.unconditional(key).is_some() {
            return true;
        }
        let facts = match self.kind {
            ListKind::Tools | ListKind::Prompts => McpFacts {
                method: self.kind.method(),
                name: key,
                uri: "",
            },
            ListKind::Resources | ListKind::ResourceTemplates => McpFacts {
                method: self.kind.method(),
                name: "",
                uri: key,
            },
        };
        for (i, grant) in self.grants.conditional.iter().enumerate() {
            if !grant.pattern.matches(key) {
                continue;
            }
            let condition = &self.acl.conditions[grant.condition];
            let cached = self.cached.get(i).copied().flatten();
            let holds = match cached {
                Some(holds) => holds,
                None => {
                    let holds = match self.evaluator.eval(condition, facts) {
                        Ok(holds) => holds,
                        Err(message) => {
                            self.failure.get_or_insert(ConditionFailure {
                                rule: grant.rule,
                                message: message.into(),
                            });
                            false
                        }
                    };
                    if !condition.uses_mcp() {
                        if let Some(slot) = self.cached.get_mut(i) {
                            *slot = Some(holds);
                        }
                    }
                    holds
                }
            };
            if holds {
                return true;
            }
        }
        false
    }

    /// Entries judged visible / hidden so far.
    pub fn counts(&self) -> (u32, u32) {
        (self.kept, self.removed)
    }

    pub fn condition_failure(&self) -> Option<&ConditionFailure> {
        self.failure.as_ref()
    }

    pub fn record(&self) -> DecisionRecord {
        DecisionRecord {
            rule: None,
            basis: Basis::ListFiltered,
            outcome: Outcome::Allowed,
            filtered: self.removed,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Validation of the two configuration forms

fn gravitee_rule(
    i: usize,
    auth: &GraviteeAuthorization,
    warnings: &mut Vec<String>,
) -> Result<RuleSpec, AclError> {
    let label = format!("authorizations[{i}]");
    let mut features = Vec::with_capacity(auth.authorized_features.len());
    for (j, feature) in auth.authorized_features.iter().enumerate() {
        let at = format!("{label}.authorizedFeatures[{j}]");
        check_methods(&at, "methods", feature.feature_type, &feature.methods)?;
        if feature.methods.is_empty() {
            warnings.push(format!("{at}: no methods, grants nothing"));
        }
        let value = feature.pattern_value.as_deref();
        let pattern = match feature.pattern_type {
            PatternType::Any => {
                if value.is_some_and(|v| !v.is_empty()) {
                    warnings.push(format!("{at}.patternValue: ignored, patternType is ANY"));
                }
                Pattern::Any
            }
            PatternType::Literal => match value {
                Some(v) if !v.is_empty() => Pattern::Names([Box::from(v)].into_iter().collect()),
                _ => {
                    return Err(AclError::new(
                        format!("{at}.patternValue"),
                        "required for LITERAL",
                    ))
                }
            },
            PatternType::Expression => match value {
                Some(v) if !v.is_empty() => Pattern::Expression(
                    pattern::compile_anchored(v)
                        .map_err(|e| AclError::new(format!("{at}.patternValue"), e.to_string()))?,
                ),
                _ => {
                    return Err(AclError::new(
                        format!("{at}.patternValue"),
                        "required for EXPRESSION",
                    ))
                }
            },
        };
        features.push((
            feature.feature_type,
            feature.methods.clone(),
            Arc::new(pattern),
        ));
    }
    if features.is_empty() {
        warnings.push(format!("{label}: no authorizedFeatures, grants nothing"));
    }
    Ok(RuleSpec {
        label,
        features,
        condition: auth.condition.clone(),
        refusal: None,
    })
}

fn native_rule(
    i: usize,
    rule: &RuleConfig,
    warnings: &mut Vec<String>,
) -> Result<RuleSpec, AclError> {
    let label = format!("rule[{i}]");
    let feature_type = match (rule.feature_type, rule.methods.first()) {
        (Some(t), _) => t,
        (None, Some(m)) => m.feature_type(),
        (None, None) => {
            return Err(AclError::new(
                format!("{label}.methods"),
                "give `methods` (or `type` for all of its methods)",
            ))
        }
    };
    check_methods(&label, "methods", feature_type, &rule.methods)?;
    let methods = if rule.methods.is_empty() {
        feature_type.methods().to_vec()
    } else {
        rule.methods.clone()
    };
    let pattern = match (&rule.names, &rule.pattern) {
        (Some(_), Some(_)) => {
            return Err(AclError::new(label, "`names` and `pattern` are exclusive"))
        }
        (Some(names), None) => {
            if names.is_empty() || names.iter().any(String::is_empty) {
                return Err(AclError::new(
                    format!("{label}.names"),
                    "names must be non-empty strings (omit `names` to match any)",
                ));
            }
            Pattern::Names(names.iter().map(|n| Box::from(n.as_str())).collect())
        }
        (None, Some(source)) => Pattern::Expression(
            pattern::compile_anchored(source)
                .map_err(|e| AclError::new(format!("{label}.pattern"), e.to_string()))?,
        ),
        (None, None) => Pattern::Any,
    };
    let refusal = match &rule.refusal {
        None => None,
        Some(refusal) => {
            if i32::try_from(refusal.code).is_err() {
                return Err(AclError::new(
                    format!("{label}.refusal.code"),
                    "must fit a 32-bit integer",
                ));
            }
            if refusal.message.is_empty() || refusal.message.len() > MAX_REFUSAL_MESSAGE_LEN {
                return Err(AclError::new(
                    format!("{label}.refusal.message"),
                    format!("must be 1..={MAX_REFUSAL_MESSAGE_LEN} bytes"),
                ));
            }
            Some((refusal.code, Box::from(refusal.message.as_str())))
        }
    };
    if rule
        .condition
        .as_deref()
        .is_some_and(|c| c.trim().is_empty())
    {
        warnings.push(format!("{label}.condition: empty, rule is unconditional"));
    }
    Ok(RuleSpec {
        label,
        features: vec![(feature_type, methods, Arc::new(pattern))],
        condition: rule.condition.clone(),
        refusal,
    })
}

fn check_methods(
    at: &str,
    field: &str,
    feature_type: FeatureType,
    methods: &[AclMethod],
) -> Result<(), AclError> {
    for (k, method) in methods.iter().enumerate() {
        if method.feature_type() != feature_type {
            return Err(AclError::new(
                format!("{at}.{field}[{k}]"),
                format!(
                    "{} is not a {} method",
                    method.as_str(),
                    feature_type.as_str()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn acl_is_shareable() {
        assert_send_sync::<Acl>();
    }
}
