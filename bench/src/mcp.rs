//! MCP message shapes used by the harness: what the load generator sends for each scenario and
//! what the mock upstream answers. Bodies are pre-built once and only the JSON-RPC id is spliced
//! in per message, so neither fixture spends its time formatting JSON.

use std::fmt;
use std::io::Write;
use std::str::FromStr;

pub const PROTOCOL_VERSION: &str = "2025-06-18";

/// The workloads the harness knows; the same names are used on the command line and in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// `tools/call` answered as one `application/json` response.
    CallJson,
    /// `tools/call` answered as a short SSE stream (progress notification + result).
    CallSse,
    /// `tools/list` with the mock's full catalogue (100 tools by default).
    List,
    /// `tools/list` through an MCP ACL that lets half of the tools through (mcpgate filters; the
    /// other legs relay the full list).
    ListAcl,
    /// `list-acl` with a JWT plan on the API: every request carries `Authorization: Bearer`.
    ListAclJwt,
    /// Many concurrent GET streams held open; measures memory and idle CPU, not requests.
    IdleSse,
}

impl Scenario {
    pub const ALL: [Scenario; 6] = [
        Scenario::CallJson,
        Scenario::CallSse,
        Scenario::List,
        Scenario::ListAcl,
        Scenario::ListAclJwt,
        Scenario::IdleSse,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::CallJson => "call-json",
            Scenario::CallSse => "call-sse",
            Scenario::List => "list",
            Scenario::ListAcl => "list-acl",
            Scenario::ListAclJwt => "list-acl-jwt",
            Scenario::IdleSse => "idle-sse",
        }
    }

    /// Sends `tools/list` (whose answer the load generator can count).
    pub fn is_list(self) -> bool {
        matches!(
            self,
            Scenario::List | Scenario::ListAcl | Scenario::ListAclJwt
        )
    }

    /// A gateway in this scenario runs the half-catalogue ACL.
    pub fn has_acl(self) -> bool {
        matches!(self, Scenario::ListAcl | Scenario::ListAclJwt)
    }

    /// A gateway in this scenario runs a JWT plan, so every request carries a bearer token.
    pub fn has_jwt(self) -> bool {
        self == Scenario::ListAclJwt
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Scenario::ALL.iter().map(|sc| sc.name()).collect();
                format!(
                    "unknown scenario {s:?} (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

/// Tool names that make the mock answer `tools/call` with SSE start with this prefix.
pub const SSE_TOOL_PREFIX: &str = "sse_";

pub fn initialize_body(id: u64) -> Vec<u8> {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"initialize","params":{{"protocolVersion":"{PROTOCOL_VERSION}","capabilities":{{}},"clientInfo":{{"name":"mcpgate-loadgen","version":"0.1.0"}}}}}}"#
    )
    .into_bytes()
}

pub fn initialized_notification() -> Vec<u8> {
    br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_vec()
}

/// A `tools/call` other than the mock's: the tool's name and its arguments (a JSON object), e.g.
/// server-everything's `echo` with `{"message":"x"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub name: String,
    pub arguments: String,
}

/// Writes the request body for one message of `scenario` with JSON-RPC id `id` into `out`. Call
/// scenarios call `call` when given, else the mock's `tool_7` (`sse_tool_7` for call-sse).
pub fn write_request_body(scenario: Scenario, id: u64, call: Option<&ToolCall>, out: &mut Vec<u8>) {
    out.clear();
    let (name, arguments) = match (scenario, call) {
        (_, Some(c)) => (c.name.as_str(), c.arguments.as_str()),
        (Scenario::CallSse, None) => ("sse_tool_7", MOCK_CALL_ARGUMENTS),
        _ => ("tool_7", MOCK_CALL_ARGUMENTS),
    };
    // Writing into a Vec cannot fail.
    let _ = match scenario {
        Scenario::CallJson | Scenario::CallSse => write!(
            out,
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{name}","arguments":{arguments},"_meta":{{"progressToken":"p{id}"}}}}}}"#
        ),
        Scenario::List | Scenario::ListAcl | Scenario::ListAclJwt | Scenario::IdleSse => {
            write!(
                out,
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list","params":{{}}}}"#
            )
        }
    };
}

/// The arguments of the mock's `tool_7` call.
const MOCK_CALL_ARGUMENTS: &str = r#"{"city":"Oslo","units":"metric"}"#;

/// The name of the mock's tool number `i`; `tools/list` lists `tool_0` .. `tool_{N-1}`.
pub fn tool_name(i: usize) -> String {
    format!("tool_{i}")
}

/// The tools the harness's ACL lets through: the first half of the catalogue, so a filtered
/// `tools/list` of `tools` entries has `tools / 2` of them.
pub fn acl_visible_tools(tools: usize) -> Vec<String> {
    (0..tools / 2).map(tool_name).collect()
}

/// The JSON-RPC message of an answer body: the body itself for `application/json`, or the first
/// `data:` event of an SSE answer that parses as JSON with a `result` or `error`.
pub fn answer_message(payload: &[u8]) -> Option<serde_json::Value> {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) {
        return Some(v);
    }
    let text = std::str::from_utf8(payload).ok()?;
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d.trim_start()).ok())
        .find(|v| v.get("result").is_some() || v.get("error").is_some())
}

/// What the harness needs to know about an origin's `tools/list`: the tool names in order, and
/// how many `"name"` keys [`count_list_entries`] finds in the whole answer and in the answer as
/// an ACL that keeps the first half of the tools leaves it (a tool's own schema may hold a
/// `"name"` key too, so this is counted, not assumed to be one per tool).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalogue {
    pub names: Vec<String>,
    pub entries_full: usize,
    pub entries_acl: usize,
}

impl Catalogue {
    /// The mock's catalogue of `tools` generated tools (one `"name"` each).
    pub fn mock(tools: usize) -> Self {
        Self {
            names: (0..tools).map(tool_name).collect(),
            entries_full: tools,
            entries_acl: tools / 2,
        }
    }

    /// From a `tools/list` answer body (JSON or SSE).
    pub fn from_answer(payload: &[u8]) -> Option<Self> {
        let msg = answer_message(payload)?;
        let tools = msg.get("result")?.get("tools")?.as_array()?;
        let names: Vec<String> = tools
            .iter()
            .map(|t| t.get("name").and_then(|n| n.as_str()).map(str::to_owned))
            .collect::<Option<_>>()?;
        let finder = list_entry_finder();
        let entries_full = count_list_entries(&finder, payload);
        let kept_names = Self::acl_half(&names);
        let removed: usize = tools
            .iter()
            .filter(|t| {
                t.get("name")
                    .and_then(|n| n.as_str())
                    .is_none_or(|n| !kept_names.iter().any(|k| k == n))
            })
            .map(|t| count_list_entries(&finder, t.to_string().as_bytes()))
            .sum();
        Some(Self {
            entries_acl: entries_full.saturating_sub(removed),
            names,
            entries_full,
        })
    }

    /// The names the harness's ACL lets through: the first half of the catalogue.
    pub fn acl_names(&self) -> Vec<String> {
        Self::acl_half(&self.names)
    }

    fn acl_half(names: &[String]) -> Vec<String> {
        names[..names.len() / 2].to_vec()
    }
}

/// Entries in a `tools/list` answer, counted as occurrences of the `"name"` key: every mock tool
/// has exactly one and nothing else in its answer has that key. A memmem scan, cheap next to the
/// request itself, so the load generator can check every answer.
pub fn count_list_entries(finder: &memchr::memmem::Finder<'_>, payload: &[u8]) -> usize {
    finder.find_iter(payload).count()
}

/// The needle for [`count_list_entries`].
pub fn list_entry_finder() -> memchr::memmem::Finder<'static> {
    memchr::memmem::Finder::new(b"\"name\"")
}

/// The mock's pre-rendered answers; `id` is spliced between a prefix and a suffix.
#[derive(Debug, Clone)]
pub struct MockAnswers {
    list_suffix: Vec<u8>,
    call_suffix: Vec<u8>,
}

const RESULT_PREFIX_BEFORE_ID: &[u8] = br#"{"jsonrpc":"2.0","id":"#;

impl MockAnswers {
    /// `tools`: size of the `tools/list` catalogue; `result_bytes`: length of the text content of
    /// a `tools/call` result.
    pub fn new(tools: usize, result_bytes: usize) -> Self {
        let mut list = String::from(r#","result":{"tools":["#);
        for i in 0..tools {
            if i > 0 {
                list.push(',');
            }
            let name = tool_name(i);
            list.push_str(&format!(
                r#"{{"name":"{name}","description":"Generated tool number {i} of the mock upstream; it echoes its arguments.","inputSchema":{{"type":"object","properties":{{"city":{{"type":"string","description":"A city name"}},"units":{{"type":"string","enum":["metric","imperial"]}}}},"required":["city"]}}}}"#
            ));
        }
        list.push_str("]}}");
        let text: String = std::iter::repeat_n('x', result_bytes).collect();
        let call = format!(
            r#","result":{{"content":[{{"type":"text","text":"{text}"}}],"isError":false}}}}"#
        );
        Self {
            list_suffix: list.into_bytes(),
            call_suffix: call.into_bytes(),
        }
    }

    pub fn write_list(&self, id: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(RESULT_PREFIX_BEFORE_ID);
        out.extend_from_slice(id);
        out.extend_from_slice(&self.list_suffix);
    }

    pub fn write_call(&self, id: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(RESULT_PREFIX_BEFORE_ID);
        out.extend_from_slice(id);
        out.extend_from_slice(&self.call_suffix);
    }

    pub fn write_initialize(id: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(RESULT_PREFIX_BEFORE_ID);
        out.extend_from_slice(id);
        let _ = write!(
            out,
            r#","result":{{"protocolVersion":"{PROTOCOL_VERSION}","capabilities":{{"tools":{{"listChanged":false}}}},"serverInfo":{{"name":"mcpgate-mock","version":"0.1.0"}}}}}}"#
        );
    }

    pub fn write_progress(token: &str, out: &mut Vec<u8>) {
        let _ = write!(
            out,
            r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":{token},"progress":1,"total":2}}}}"#
        );
    }
}

/// What the mock needs to know about an incoming JSON-RPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub method: Option<String>,
    /// The raw JSON of `id`, re-serialised (numbers and strings keep their type).
    pub id: Option<String>,
    pub tool_name: Option<String>,
    /// The raw JSON of `params._meta.progressToken`.
    pub progress_token: Option<String>,
}

#[derive(serde::Deserialize)]
struct RawEnvelope {
    method: Option<String>,
    id: Option<serde_json::Value>,
    params: Option<RawParams>,
}

#[derive(serde::Deserialize)]
struct RawParams {
    name: Option<String>,
    #[serde(rename = "_meta")]
    meta: Option<RawMeta>,
}

#[derive(serde::Deserialize)]
struct RawMeta {
    #[serde(rename = "progressToken")]
    progress_token: Option<serde_json::Value>,
}

/// Reads the envelope of one JSON-RPC message; `None` for anything that is not a JSON object of
/// the expected shape (the mock answers those with 400).
pub fn parse_envelope(body: &[u8]) -> Option<Envelope> {
    let raw: RawEnvelope = serde_json::from_slice(body).ok()?;
    let (tool_name, progress_token) = match raw.params {
        Some(p) => (
            p.name,
            p.meta.and_then(|m| m.progress_token).map(|t| t.to_string()),
        ),
        None => (None, None),
    };
    Some(Envelope {
        method: raw.method,
        id: raw.id.map(|v| v.to_string()),
        tool_name,
        progress_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bodies_parse_back() {
        let mut out = Vec::new();
        for sc in [
            Scenario::CallJson,
            Scenario::CallSse,
            Scenario::List,
            Scenario::ListAcl,
            Scenario::ListAclJwt,
        ] {
            write_request_body(sc, 41, None, &mut out);
            let env = parse_envelope(&out).unwrap_or_else(|| panic!("{sc} body parses"));
            assert_eq!(env.id.as_deref(), Some("41"));
            match sc {
                Scenario::CallSse => {
                    assert!(env
                        .tool_name
                        .as_deref()
                        .is_some_and(|n| n.starts_with(SSE_TOOL_PREFIX)))
                }
                Scenario::CallJson => assert_eq!(env.progress_token.as_deref(), Some("\"p41\"")),
                _ => assert_eq!(env.method.as_deref(), Some("tools/list")),
            }
        }
    }

    #[test]
    fn answers_are_valid_json_with_the_id() {
        let answers = MockAnswers::new(100, 256);
        let mut out = Vec::new();
        answers.write_list(b"\"abc\"", &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
        assert_eq!(v["id"], "abc");
        assert_eq!(v["result"]["tools"].as_array().map(Vec::len), Some(100));
        out.clear();
        answers.write_call(b"5", &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
        assert_eq!(
            v["result"]["content"][0]["text"].as_str().map(str::len),
            Some(256)
        );
    }

    #[test]
    fn list_entries_are_counted_and_the_acl_half_is_half() {
        let answers = MockAnswers::new(100, 16);
        let mut out = Vec::new();
        answers.write_list(b"1", &mut out);
        let finder = list_entry_finder();
        assert_eq!(count_list_entries(&finder, &out), 100);
        let visible = acl_visible_tools(100);
        assert_eq!(visible.len(), 50);
        // Keep only the visible entries, as a filtering gateway would, and count again.
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
        let kept: Vec<serde_json::Value> = v["result"]["tools"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|t| visible.iter().any(|n| t["name"] == n.as_str()))
            .collect();
        assert_eq!(kept.len(), 50);
        let filtered = serde_json::json!({"jsonrpc":"2.0","id":1,"result":{"tools":kept}});
        let text = serde_json::to_vec(&filtered).unwrap_or_default();
        assert_eq!(count_list_entries(&finder, &text), 50);
    }

    #[test]
    fn tool_call_override_and_catalogue_of_an_sse_answer() {
        let call = ToolCall {
            name: "echo".to_owned(),
            arguments: r#"{"message":"x"}"#.to_owned(),
        };
        let mut out = Vec::new();
        write_request_body(Scenario::CallSse, 9, Some(&call), &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
        assert_eq!(v["params"]["name"], "echo");
        assert_eq!(v["params"]["arguments"]["message"], "x");
        // An SSE tools/list answer whose second tool has a "name" property in its schema.
        let answer = br#"event: message
id: 1
data: {"result":{"tools":[{"name":"a","inputSchema":{}},{"name":"b","inputSchema":{"properties":{"name":{}}}},{"name":"c"},{"name":"d"}]},"jsonrpc":"2.0","id":6}

"#;
        let cat = Catalogue::from_answer(answer).unwrap_or_else(|| panic!("catalogue"));
        assert_eq!(cat.names, ["a", "b", "c", "d"]);
        assert_eq!(cat.acl_names(), ["a", "b"]);
        assert_eq!((cat.entries_full, cat.entries_acl), (5, 3));
        let mock = Catalogue::mock(100);
        assert_eq!(mock.acl_names(), acl_visible_tools(100));
        let mut list = Vec::new();
        MockAnswers::new(100, 16).write_list(b"1", &mut list);
        assert_eq!(Catalogue::from_answer(&list), Some(mock));
    }

    #[test]
    fn scenario_names_roundtrip() {
        for sc in Scenario::ALL {
            assert_eq!(sc.name().parse::<Scenario>(), Ok(sc));
        }
        assert!("nope".parse::<Scenario>().is_err());
    }
}
