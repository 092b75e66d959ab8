//! The end-to-end scenarios shared by both SDK drivers: start server-everything (and a gateway
//! in front of it), run one client scenario, and check what the client observed. The checks are
//! the same for the TypeScript and Python clients, because the protocol is.

use serde_json::Value;

use crate::gateway::{Driver, Gateway, GatewaySpec};
use crate::peers::{run_client, Sdk, ServerEverything};

/// The gateway's entrypoint path in these tests (the seed guide's).
pub const API_PATH: &str = "/mcp-proxy";

/// What sits between the client and server-everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Nothing: the control run that shows the driver and the server agree without a gateway.
    Direct,
    /// The real `mcpgate` binary on the given engine driver.
    Through(Driver),
}

/// Runs `scenario` of `sdk` over `route` and checks its observations; skips (with the reason
/// printed) when the route's engine driver cannot run on this machine.
pub fn run_scenario(sdk: Sdk, route: Route, scenario: &str) {
    if let Route::Through(driver) = route {
        if let Err(reason) = driver.available() {
            crate::record_skip(
                &format!("{sdk:?}/{scenario} on --driver {}", driver.flag()),
                &reason,
            );
            return;
        }
    }
    let server = ServerEverything::start();
    let gateway = match route {
        Route::Direct => None,
        Route::Through(driver) => Some(Gateway::start(
            &GatewaySpec::cli(server.upstream_url(), API_PATH).driver(driver),
        )),
    };
    let url = gateway
        .as_ref()
        .map_or_else(|| server.mcp_url(), |g| g.url(API_PATH));
    let observed = run_client(sdk, &url, scenario);
    check(
        scenario,
        &Observed {
            sdk,
            route,
            value: &observed,
        },
    );
}

/// A client's observations, with enough context to make a failure message self-explanatory.
pub struct Observed<'a> {
    pub sdk: Sdk,
    pub route: Route,
    pub value: &'a Value,
}

impl Observed<'_> {
    fn fail(&self, what: &str) -> ! {
        panic!(
            "{:?} client via {:?}, scenario {}: {what}\nobservations: {}",
            self.sdk,
            self.route,
            self.value
                .get("scenario")
                .and_then(Value::as_str)
                .unwrap_or("?"),
            serde_json::to_string_pretty(self.value).unwrap_or_default()
        )
    }

    fn get(&self, key: &str) -> &Value {
        match self.value.get(key) {
            Some(value) => value,
            None => self.fail(&format!("no `{key}` observed")),
        }
    }

    fn str(&self, key: &str) -> &str {
        match self.get(key).as_str() {
            Some(text) => text,
            None => self.fail(&format!("`{key}` is not a string")),
        }
    }

    fn bool(&self, key: &str) -> bool {
        match self.get(key).as_bool() {
            Some(flag) => flag,
            None => self.fail(&format!("`{key}` is not a boolean")),
        }
    }

    fn f64(&self, key: &str) -> f64 {
        match self.get(key).as_f64() {
            Some(number) => number,
            None => self.fail(&format!("`{key}` is not a number")),
        }
    }

    fn array(&self, key: &str) -> &Vec<Value> {
        match self.get(key).as_array() {
            Some(items) => items,
            None => self.fail(&format!("`{key}` is not an array")),
        }
    }

    fn strings(&self, key: &str) -> Vec<&str> {
        self.array(key).iter().filter_map(Value::as_str).collect()
    }

    fn ensure(&self, condition: bool, what: &str) {
        if !condition {
            self.fail(what);
        }
    }
}

fn num(value: &Value, key: &str) -> Option<f64> {
    value.get(key).and_then(Value::as_f64)
}

/// Dispatches to the checks of `scenario`.
pub fn check(scenario: &str, o: &Observed<'_>) {
    match scenario {
        "initialize" => check_initialize(o),
        "tools_list" => check_tools_list(o),
        "tools_call" => check_tools_call(o),
        "resources" => check_resources(o),
        "prompts" => check_prompts(o),
        "progress" => check_progress(o),
        "sampling" => check_sampling(o),
        "elicitation" => check_elicitation(o),
        "roots" => check_roots(o),
        "ping" => check_ping(o),
        "terminate" => check_terminate(o),
        "concurrent" => check_concurrent(o),
        other => o.fail(&format!("no checks for scenario {other:?}")),
    }
}

fn check_initialize(o: &Observed<'_>) {
    o.ensure(
        o.str("serverName") == "mcp-servers/everything",
        "serverInfo.name is not server-everything's",
    );
    o.ensure(
        o.str("protocolVersion") == "2025-11-25",
        "negotiated protocol version is not 2025-11-25",
    );
    o.ensure(
        o.bool("sessionIdPresent"),
        "no Mcp-Session-Id reached the client",
    );
    let caps = o.strings("capabilities");
    for wanted in ["tools", "resources", "prompts", "logging"] {
        o.ensure(
            caps.contains(&wanted),
            &format!("server capability `{wanted}` missing"),
        );
    }
    o.ensure(
        o.f64("instructionsLength") > 100.0,
        "the server's instructions were lost",
    );
}

fn check_tools_list(o: &Observed<'_>) {
    let names = o.strings("toolNames");
    for wanted in [
        "echo",
        "get-sum",
        "trigger-long-running-operation",
        // Registered only once the server has seen the client's capabilities in `initialize`.
        "trigger-sampling-request",
        "trigger-elicitation-request",
        "get-roots-list",
    ] {
        o.ensure(
            names.contains(&wanted),
            &format!("tool `{wanted}` missing from tools/list"),
        );
    }
    o.ensure(
        names.len() >= 15,
        "tools/list is shorter than server-everything's",
    );
}

fn check_tools_call(o: &Observed<'_>) {
    o.ensure(
        o.str("echoText") == "Echo: hello through mcpgate",
        "echo did not echo the message",
    );
    o.ensure(!o.bool("echoIsError"), "echo returned isError");
    o.ensure(
        o.str("sumText").contains("42"),
        "get-sum of 19 and 23 did not say 42",
    );
}

fn check_resources(o: &Observed<'_>) {
    let uris = o.strings("resourceUris");
    o.ensure(!uris.is_empty(), "resources/list is empty");
    o.ensure(
        o.f64("resourceCount") as usize == uris.len(),
        "resource count and URIs disagree",
    );
    let templates = o.strings("templateUris");
    o.ensure(
        templates.contains(&"demo://resource/dynamic/text/{resourceId}"),
        "resources/templates/list lacks the text template",
    );
    let first_uri = o.str("firstUri");
    let read_first = o.array("readFirst");
    o.ensure(
        read_first.len() == 1,
        "resources/read of the first resource did not return one content",
    );
    o.ensure(
        read_first
            .first()
            .and_then(|c| c.get("uri"))
            .and_then(Value::as_str)
            == Some(first_uri),
        "resources/read returned another resource",
    );
    o.ensure(
        read_first
            .first()
            .and_then(|c| num(c, "textLength"))
            .is_some_and(|n| n > 0.0),
        "the first resource's text is empty",
    );
    let templated = o.array("readTemplated");
    o.ensure(
        templated
            .first()
            .and_then(|c| c.get("uri"))
            .and_then(Value::as_str)
            == Some("demo://resource/dynamic/text/7"),
        "reading a templated URI returned another resource",
    );
    o.ensure(
        o.str("templatedText").starts_with("Resource 7:"),
        "templated resource text is wrong",
    );
}

fn check_prompts(o: &Observed<'_>) {
    let names = o.strings("promptNames");
    for wanted in ["simple-prompt", "args-prompt"] {
        o.ensure(
            names.contains(&wanted),
            &format!("prompt `{wanted}` missing from prompts/list"),
        );
    }
    o.ensure(
        o.str("simpleText") == "This is a simple prompt without arguments.",
        "prompts/get simple-prompt",
    );
    o.ensure(
        o.str("argsText") == "What's weather in Oslo, Viken?",
        "prompts/get args-prompt lost its arguments",
    );
}

fn check_progress(o: &Observed<'_>) {
    let progress = o.array("progress");
    let result_at = o.f64("resultAtMs");
    let step = o.f64("stepIntervalMs");
    o.ensure(
        o.str("resultText")
            .contains("Long running operation completed"),
        "the tool did not complete",
    );
    o.ensure(
        progress.len() == 4,
        "expected exactly 4 progress notifications (steps: 4)",
    );
    let mut previous_at = f64::MIN;
    for (index, event) in progress.iter().enumerate() {
        let expected = (index + 1) as f64;
        o.ensure(
            num(event, "progress") == Some(expected),
            &format!("progress #{index} is not {expected}"),
        );
        o.ensure(
            num(event, "total") == Some(4.0),
            &format!("progress #{index} lost its total"),
        );
        let at = num(event, "atMs").unwrap_or(f64::MAX);
        o.ensure(
            at > previous_at,
            "progress notifications arrived out of order",
        );
        o.ensure(
            at <= result_at,
            &format!("progress #{index} arrived after the result"),
        );
        previous_at = at;
    }
    // The server sends progress k at k*step and the result right after the last one. Relayed as
    // they happen, each of the first three precedes the result by >= one step; a buffering hop
    // delivers them all together with the result. Half a step of slack absorbs scheduling noise.
    for (index, event) in progress.iter().take(3).enumerate() {
        let lead = result_at - num(event, "atMs").unwrap_or(result_at);
        o.ensure(
            lead >= step * 0.5,
            &format!(
                "progress #{index} reached the client only {lead} ms before the result (buffered?)"
            ),
        );
    }
    let first = progress.first().and_then(|e| num(e, "atMs")).unwrap_or(0.0);
    let last = progress.last().and_then(|e| num(e, "atMs")).unwrap_or(0.0);
    o.ensure(
        last - first >= step * 1.5,
        &format!(
            "progress spread over only {} ms, expected ~{} ms",
            last - first,
            step * 3.0
        ),
    );
}

fn check_sampling(o: &Observed<'_>) {
    let requests = o.array("samplingRequests");
    o.ensure(
        requests.len() == 1,
        "the client's sampling handler was not called exactly once",
    );
    let request = requests.first().unwrap_or(&Value::Null);
    o.ensure(
        num(request, "maxTokens") == Some(77.0),
        "sampling/createMessage lost maxTokens",
    );
    o.ensure(
        request
            .get("firstMessageText")
            .and_then(Value::as_str)
            .is_some_and(|t| t.contains("what is a gateway?")),
        "sampling/createMessage lost the prompt",
    );
    let text = o.str("resultText");
    o.ensure(
        text.contains(o.str("model")),
        "the tool result does not carry the client's sampling answer",
    );
    o.ensure(
        text.contains("sampled answer to:"),
        "the client's sampled text did not reach the server",
    );
}

fn check_elicitation(o: &Observed<'_>) {
    let requests = o.array("elicitationRequests");
    o.ensure(
        requests.len() == 1,
        "the client's elicitation handler was not called exactly once",
    );
    let required = requests
        .first()
        .and_then(|r| r.get("requiredFields"))
        .cloned()
        .unwrap_or(Value::Null);
    o.ensure(
        required == serde_json::json!(["name"]),
        "elicitation/create lost its requestedSchema",
    );
    let text = o.str("resultText");
    o.ensure(
        text.contains(&format!("- Name: {}", o.str("elicitedName"))),
        "the client's elicitation answer did not reach the server",
    );
    o.ensure(
        text.contains("\"action\": \"accept\""),
        "the server did not see an accepted elicitation",
    );
}

fn check_roots(o: &Observed<'_>) {
    o.ensure(
        o.bool("rootsRequestAfterListChanged"),
        "roots/list after notifications/roots/list_changed never reached the client",
    );
    // Every roots/list up to the one answering list_changed came while no request of ours was
    // open, so on the standalone GET stream. (The server's own first one, sent 350 ms after
    // `initialized`, may be lost by server-everything if the GET stream opens later: not asserted.)
    let requests = o.array("rootsRequests");
    let triggered = o.f64("countBeforeListChanged") as usize;
    o.ensure(
        requests.len() > triggered,
        "no roots/list recorded after list_changed",
    );
    for (index, request) in requests.iter().enumerate().take(triggered + 1) {
        o.ensure(
            num(request, "clientRequestsInFlight") == Some(0.0),
            &format!("roots/list #{index} arrived while a request of ours was open: not on the GET stream"),
        );
    }
    o.ensure(
        o.bool("rootsUpdatedLogged"),
        "the server's log notification about our roots never arrived",
    );
    o.ensure(
        o.str("rootsToolText").contains(o.str("rootUri")),
        "get-roots-list does not show the root the client answered with",
    );
}

fn check_ping(o: &Observed<'_>) {
    o.ensure(
        o.get("pingResult") == &serde_json::json!({}),
        "ping did not return an empty result",
    );
}

fn check_terminate(o: &Observed<'_>) {
    o.ensure(o.bool("sessionIdPresent"), "no session to terminate");
    o.ensure(
        o.get("pingBeforeTerminate") == &serde_json::json!({}),
        "the session did not work before DELETE",
    );
    if let Some(after) = o.value.get("sessionIdAfterTerminate") {
        o.ensure(
            after.is_null(),
            "the SDK still holds the session id after DELETE",
        );
    }
    // The spec says 404 for a terminated session; server-everything drops the session from its
    // map on DELETE and then answers any unknown id with 400 + JSON-RPC -32000. Either way the
    // old id must be refused with a JSON-RPC error, never served.
    let status = o.f64("followUpStatus") as u16;
    o.ensure(
        status == 400 || status == 404,
        &format!("the terminated session was answered with {status}"),
    );
    let body: Value = serde_json::from_str(o.str("followUpBody")).unwrap_or(Value::Null);
    o.ensure(
        body.get("error").is_some() && body.get("result").is_none(),
        "the refusal is not a JSON-RPC error",
    );
}

fn check_concurrent(o: &Observed<'_>) {
    let clients = o.f64("clients") as usize;
    let results = o.array("results");
    o.ensure(
        results.len() == clients,
        "not every concurrent client finished",
    );
    let mut sessions = std::collections::HashSet::new();
    for result in results {
        let index = num(result, "index").unwrap_or(-1.0);
        let session = result
            .get("sessionId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        o.ensure(
            !session.is_empty(),
            &format!("client {index} had no session"),
        );
        o.ensure(
            sessions.insert(session.to_owned()),
            &format!("client {index} shares a session id"),
        );
        for echo in result
            .get("echoes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let sent = echo.get("sent").and_then(Value::as_str).unwrap_or("?");
            let got = echo.get("got").and_then(Value::as_str).unwrap_or_default();
            o.ensure(
                got == format!("Echo: {sent}"),
                &format!("client {index} sent {sent:?} but got {got:?}"),
            );
        }
        o.ensure(
            result.get("progress") == Some(&serde_json::json!([1, 2])),
            &format!("client {index} saw another progress sequence"),
        );
        o.ensure(
            result
                .get("longText")
                .and_then(Value::as_str)
                .is_some_and(|t| t.contains("Duration: 1 seconds, Steps: 2")),
            &format!("client {index} got another long operation's result"),
        );
    }
}

/// Generates one `#[test]` per scenario for one SDK and one route.
#[macro_export]
macro_rules! scenario_tests {
    ($sdk:expr, $route:expr; $($scenario:ident),+ $(,)?) => {
        $(
            #[test]
            fn $scenario() {
                $crate::scenarios::run_scenario($sdk, $route, stringify!($scenario));
            }
        )+
    };
}

/// The whole suite for one SDK: every scenario directly (control), through the gateway on
/// epoll, and through the gateway on io_uring.
#[macro_export]
macro_rules! sdk_suite {
    ($sdk:expr) => {
        mod direct {
            $crate::scenario_tests!($sdk, $crate::scenarios::Route::Direct;
                initialize, tools_list, tools_call, resources, prompts, progress, sampling,
                elicitation, roots, ping, terminate);
        }
        mod via_gateway_epoll {
            $crate::scenario_tests!($sdk, $crate::scenarios::Route::Through($crate::Driver::Epoll);
                initialize, tools_list, tools_call, resources, prompts, progress, sampling,
                elicitation, roots, ping, terminate);
        }
        mod via_gateway_uring {
            $crate::scenario_tests!($sdk, $crate::scenarios::Route::Through($crate::Driver::Uring);
                initialize, tools_list, tools_call, resources, prompts, progress, sampling,
                elicitation, roots, ping, terminate);
        }
    };
}

#[cfg(test)]
mod tests {
    //! The checks must reject what a broken gateway would produce; these feed them such
    //! observations (shaped like the drivers' output) and expect a failure.

    use super::*;
    use serde_json::json;

    fn observed(value: &Value) -> Observed<'_> {
        Observed {
            sdk: Sdk::TypeScript,
            route: Route::Through(Driver::Epoll),
            value,
        }
    }

    fn progress_at(times: [f64; 4], result_at: f64) -> Value {
        json!({
            "scenario": "progress",
            "progress": times.iter().enumerate().map(|(i, t)| json!({"progress": i + 1, "total": 4, "atMs": t})).collect::<Vec<_>>(),
            "resultAtMs": result_at,
            "resultText": "Long running operation completed. Duration: 2 seconds, Steps: 4.",
            "stepIntervalMs": 500
        })
    }

    #[test]
    fn progress_relayed_as_it_happens_passes() {
        check(
            "progress",
            &observed(&progress_at([510.0, 1010.0, 1512.0, 2013.0], 2016.0)),
        );
    }

    #[test]
    #[should_panic(expected = "buffered?")]
    fn progress_buffered_until_the_result_fails() {
        check(
            "progress",
            &observed(&progress_at([2010.0, 2010.5, 2011.0, 2011.5], 2012.0)),
        );
    }

    #[test]
    #[should_panic(expected = "after the result")]
    fn progress_after_the_result_fails() {
        check(
            "progress",
            &observed(&progress_at([510.0, 1010.0, 1512.0, 2020.0], 2016.0)),
        );
    }

    #[test]
    #[should_panic(expected = "not on the GET stream")]
    fn roots_request_on_a_post_stream_fails() {
        let value = json!({
            "scenario": "roots", "rootsRequestAfterListChanged": true, "countBeforeListChanged": 0,
            "rootsRequests": [{"atMs": 900.0, "clientRequestsInFlight": 1}],
            "rootsUpdatedLogged": true, "rootsToolText": "1. root URI: file:///r", "rootUri": "file:///r"
        });
        check("roots", &observed(&value));
    }

    #[test]
    #[should_panic(expected = "terminated session was answered with 200")]
    fn terminated_session_still_served_fails() {
        let value = json!({
            "scenario": "terminate", "sessionIdPresent": true, "pingBeforeTerminate": {},
            "sessionIdAfterTerminate": null, "followUpStatus": 200,
            "followUpBody": "{\"jsonrpc\":\"2.0\",\"id\":4242,\"result\":{}}"
        });
        check("terminate", &observed(&value));
    }

    #[test]
    #[should_panic(expected = "did not reach the server")]
    fn sampling_answer_lost_on_the_way_back_fails() {
        let value = json!({
            "scenario": "sampling", "model": "m",
            "samplingRequests": [{"maxTokens": 77, "firstMessageText": "ctx: what is a gateway?"}],
            "resultText": "LLM sampling result: m (error: request timed out)"
        });
        check("sampling", &observed(&value));
    }
}
