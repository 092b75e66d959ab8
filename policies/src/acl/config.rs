//! The ACL as an operator writes it: Gravitee's `mcp-acl` JSON, accepted verbatim, and the native
//! TOML-friendly form the engine embeds as `[api.acl]`. Both are plain serde structs that refuse
//! unknown fields; [`super::Acl::compile`] validates them and turns them into the runtime form.

use serde::{Deserialize, Serialize};

/// A feature family of MCP that the ACL governs (Gravitee's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FeatureType {
    #[serde(rename = "TOOLS", alias = "tools")]
    Tools,
    #[serde(rename = "RESOURCES", alias = "resources")]
    Resources,
    #[serde(rename = "PROMPTS", alias = "prompts")]
    Prompts,
}

impl FeatureType {
    /// Gravitee's spelling, used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            FeatureType::Tools => "TOOLS",
            FeatureType::Resources => "RESOURCES",
            FeatureType::Prompts => "PROMPTS",
        }
    }

    /// Every method of this family: what a native rule without `methods` grants.
    pub fn methods(self) -> &'static [AclMethod] {
        match self {
            FeatureType::Tools => &[AclMethod::ToolsList, AclMethod::ToolsCall],
            FeatureType::Resources => &[
                AclMethod::ResourcesList,
                AclMethod::ResourcesRead,
                AclMethod::ResourcesTemplatesList,
                AclMethod::ResourcesSubscribe,
            ],
            FeatureType::Prompts => &[AclMethod::PromptsList, AclMethod::PromptsGet],
        }
    }
}

/// A grantable MCP operation (Gravitee's `methods` entries). Native configs may also spell them
/// as the MCP method name (`"tools/call"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AclMethod {
    #[serde(rename = "TOOLS_LIST", alias = "tools/list")]
    ToolsList,
    #[serde(rename = "TOOLS_CALL", alias = "tools/call")]
    ToolsCall,
    #[serde(rename = "RESOURCES_LIST", alias = "resources/list")]
    ResourcesList,
    #[serde(rename = "RESOURCES_READ", alias = "resources/read")]
    ResourcesRead,
    #[serde(
        rename = "RESOURCES_TEMPLATES_LIST",
        alias = "resources/templates/list"
    )]
    ResourcesTemplatesList,
    #[serde(rename = "RESOURCES_SUBSCRIBE", alias = "resources/subscribe")]
    ResourcesSubscribe,
    #[serde(rename = "PROMPTS_LIST", alias = "prompts/list")]
    PromptsList,
    #[serde(rename = "PROMPTS_GET", alias = "prompts/get")]
    PromptsGet,
}

impl AclMethod {
    pub const ALL: [AclMethod; 8] = [
        AclMethod::ToolsList,
        AclMethod::ToolsCall,
        AclMethod::ResourcesList,
        AclMethod::ResourcesRead,
        AclMethod::ResourcesTemplatesList,
        AclMethod::ResourcesSubscribe,
        AclMethod::PromptsList,
        AclMethod::PromptsGet,
    ];

    pub fn feature_type(self) -> FeatureType {
        match self {
            AclMethod::ToolsList | AclMethod::ToolsCall => FeatureType::Tools,
            AclMethod::ResourcesList
            | AclMethod::ResourcesRead
            | AclMethod::ResourcesTemplatesList
            | AclMethod::ResourcesSubscribe => FeatureType::Resources,
            AclMethod::PromptsList | AclMethod::PromptsGet => FeatureType::Prompts,
        }
    }

    /// Gravitee's spelling, used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            AclMethod::ToolsList => "TOOLS_LIST",
            AclMethod::ToolsCall => "TOOLS_CALL",
            AclMethod::ResourcesList => "RESOURCES_LIST",
            AclMethod::ResourcesRead => "RESOURCES_READ",
            AclMethod::ResourcesTemplatesList => "RESOURCES_TEMPLATES_LIST",
            AclMethod::ResourcesSubscribe => "RESOURCES_SUBSCRIBE",
            AclMethod::PromptsList => "PROMPTS_LIST",
            AclMethod::PromptsGet => "PROMPTS_GET",
        }
    }

    /// Dense index for per-method tables.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// How a feature's name (tools, prompts) or URI (resources) is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PatternType {
    #[default]
    #[serde(rename = "ANY")]
    Any,
    #[serde(rename = "LITERAL")]
    Literal,
    /// A regular expression matched against the whole name (anchored).
    #[serde(rename = "EXPRESSION")]
    Expression,
}

// ---------------------------------------------------------------------------------------------
// Gravitee's JSON, verbatim.

/// Gravitee's `mcp-acl` policy configuration: `{"authorizations":[…]}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraviteeAcl {
    #[serde(default)]
    pub authorizations: Vec<GraviteeAuthorization>,
}

/// One Gravitee ACL rule: the features it grants, under an optional condition.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GraviteeAuthorization {
    #[serde(default)]
    pub authorized_features: Vec<GraviteeFeature>,
    /// Gravitee writes this in its EL; mcpgate evaluates it as CEL. Empty means "always".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GraviteeFeature {
    #[serde(rename = "type")]
    pub feature_type: FeatureType,
    /// Missing or empty grants nothing (Gravitee's form has one checkbox per method; none
    /// ticked means none granted). Reported as a load warning.
    #[serde(default)]
    pub methods: Vec<AclMethod>,
    #[serde(default)]
    pub pattern_type: PatternType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern_value: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Native form (`[api.acl]` in the gateway's TOML).

/// An API's ACL in the gateway's own configuration.
///
/// ```toml
/// [api.acl]
/// dry_run = false
/// server_requests = { sampling = "allow", elicitation = "deny", roots = "allow" }
/// gravitee = '''{"authorizations":[…]}'''     # optional, Gravitee JSON inline
///
/// [[api.acl.rule]]
/// methods = ["tools/list", "tools/call"]      # or TOOLS_LIST…; the type follows from them
/// names = ["echo", "add"]                     # exact names (LITERAL); or
/// # pattern = "get_.*"                        # anchored regex (EXPRESSION); neither: ANY
/// condition = "request.headers['x-tier'] == 'gold'"
/// refusal = { code = -32001, message = "Upgrade your plan" }
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclConfig {
    /// Decide and record, but let everything through (lists unfiltered).
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub server_requests: ServerRequestsConfig,
    /// Gravitee JSON given inline; its authorizations come first (rule indices 0..n).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gravitee: Option<String>,
    /// Path of a Gravitee JSON file; the engine reads it and passes its text to
    /// [`super::Acl::compile`] (this crate does no I/O).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gravitee_file: Option<String>,
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleConfig>,
}

/// Whether the upstream may send each kind of server→client request through this API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerRequestsConfig {
    #[serde(default)]
    pub sampling: Permission,
    #[serde(default)]
    pub elicitation: Permission,
    #[serde(default)]
    pub roots: Permission,
}

impl Default for ServerRequestsConfig {
    fn default() -> Self {
        ServerRequestsConfig {
            sampling: Permission::Allow,
            elicitation: Permission::Allow,
            roots: Permission::Allow,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    #[default]
    Allow,
    Deny,
}

/// One native rule: one feature family, its granted methods, one pattern.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Optional: inferred from `methods`. When given with no `methods`, all of its methods.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub feature_type: Option<FeatureType>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<AclMethod>,
    /// Exact names / URIs (LITERAL). Exclusive with `pattern`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
    /// Anchored regular expression (EXPRESSION). Exclusive with `names`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// What to answer when this rule covers a refused request (instead of the default error
    /// that reveals nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<RefusalConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefusalConfig {
    pub code: i64,
    pub message: String,
}
