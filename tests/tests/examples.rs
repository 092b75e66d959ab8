//! The examples in `examples/` work against the current server-everything (issue 18): every
//! configuration passes `mcpgate check`; every ACL example loads (through `mcpgate check` with it
//! as an API's `acl_file`), and each of its features names tools, resources or prompts the real
//! server has — so an example cannot silently grant nothing after the server renames things.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mcpgate_policies::acl::{Acl, AclMethod, ListKind, McpRequest, RequestInfo, Target};
use mcpgate_tests::peers::repo_root;
use mcpgate_tests::process::run_to_completion;
use mcpgate_tests::{mcpgate_bin, run_client, Sdk, ServerEverything};
use serde_json::{json, Value};

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    out
}

/// `mcpgate check FILE`: its stdout, or a panic with its stderr.
fn check(file: &Path) -> String {
    let mut command = Command::new(mcpgate_bin());
    command
        .arg("check")
        .arg(file)
        .env_remove("MCPGATE_ADMIN_TOKEN");
    let done = run_to_completion(command, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("mcpgate check: {e}"));
    assert!(
        done.status.is_some_and(|s| s.success()),
        "mcpgate check {} failed:\n{}{}",
        file.display(),
        done.stdout,
        done.stderr
    );
    done.stdout
}

#[test]
fn every_example_configuration_passes_mcpgate_check() {
    let configs = files(&repo_root().join("examples"), "toml");
    assert!(configs.len() >= 5, "{configs:?}");
    for file in configs {
        let out = check(&file);
        assert!(out.contains(": ok ("), "{}: {out}", file.display());
    }
}

/// The real server's names, asked directly with the official SDK client.
fn server_names(server: &ServerEverything) -> Value {
    let direct = run_client(Sdk::TypeScript, &server.mcp_url(), "acl_probe");
    for list in ["tools", "resources", "templates", "prompts"] {
        assert!(
            direct[list].as_array().is_some_and(|a| !a.is_empty()),
            "server-everything lists no {list}: {direct}"
        );
    }
    direct
}

fn names(direct: &Value, list: &str) -> Vec<String> {
    direct[list]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The real entries one method of one feature grants (the condition left out: these checks are
/// about names).
fn granted(feature: &Value, method: AclMethod, direct: &Value) -> Vec<String> {
    let mut feature = feature.clone();
    feature["methods"] = json!([method]);
    let acl = Acl::from_gravitee_json(
        &json!({ "authorizations": [{ "authorizedFeatures": [feature] }] }).to_string(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let ctx = RequestInfo::default();
    let list = |kind: ListKind, entries: Vec<String>| {
        let mut filter = acl.list_filter(kind, &ctx);
        entries.into_iter().filter(|e| filter.keep(e)).collect()
    };
    let decide = |method: &str, entries: Vec<String>, by_uri: bool| -> Vec<String> {
        entries
            .into_iter()
            .filter(|e| {
                let target = if by_uri {
                    Target::Uri(e)
                } else {
                    Target::Name(e)
                };
                acl.decide(&McpRequest::new(method, target), &ctx)
                    .lets_through()
            })
            .collect()
    };
    match method {
        AclMethod::ToolsList => list(ListKind::Tools, names(direct, "tools")),
        AclMethod::PromptsList => list(ListKind::Prompts, names(direct, "prompts")),
        AclMethod::ResourcesList => list(ListKind::Resources, names(direct, "resources")),
        AclMethod::ResourcesTemplatesList => {
            list(ListKind::ResourceTemplates, names(direct, "templates"))
        }
        AclMethod::ToolsCall => decide("tools/call", names(direct, "tools"), false),
        AclMethod::PromptsGet => decide("prompts/get", names(direct, "prompts"), false),
        AclMethod::ResourcesRead => decide("resources/read", names(direct, "resources"), true),
        AclMethod::ResourcesSubscribe => {
            decide("resources/subscribe", names(direct, "resources"), true)
        }
    }
}

#[test]
fn every_acl_example_loads_and_names_what_server_everything_has() {
    let acls = files(&repo_root().join("examples/acl"), "json");
    assert!(acls.len() >= 5, "{acls:?}");
    let scratch = std::env::temp_dir().join(format!("mcpgate-examples-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap_or_else(|e| panic!("{e}"));
    let server = ServerEverything::start();
    let direct = server_names(&server);
    for file in &acls {
        // It loads as an API's acl_file.
        let config = scratch.join("acl-example.toml");
        std::fs::write(
            &config,
            format!(
                "[[api]]\npath = \"/mcp\"\nupstream = \"{}\"\nacl_file = \"{}\"\n",
                server.upstream_url(),
                file.display()
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        check(&config);

        // Each feature grants something real for each of its methods.
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{e}"));
        let acl: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        for authorization in acl["authorizations"].as_array().into_iter().flatten() {
            for feature in authorization["authorizedFeatures"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let methods: Vec<AclMethod> = serde_json::from_value(feature["methods"].clone())
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                for method in methods {
                    let found = granted(feature, method, &direct);
                    assert!(
                        !found.is_empty(),
                        "{}: {feature} grants {method:?} on nothing server-everything has \
                         ({direct})",
                        file.display()
                    );
                }
            }
        }
    }
    // The one that names resources and prompts grants exactly the documents, the text
    // template and three prompts.
    let rp = std::fs::read_to_string(repo_root().join("examples/acl/resources-and-prompts.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    let rp: Value = serde_json::from_str(&rp).unwrap_or_else(|e| panic!("{e}"));
    let features = &rp["authorizations"][0]["authorizedFeatures"];
    assert_eq!(
        granted(&features[0], AclMethod::ResourcesRead, &direct),
        names(&direct, "resources")
            .into_iter()
            .filter(|r| r.starts_with("demo://resource/static/document/"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        granted(&features[1], AclMethod::ResourcesTemplatesList, &direct),
        ["demo://resource/dynamic/text/{resourceId}"]
    );
    assert_eq!(
        granted(&features[2], AclMethod::PromptsGet, &direct),
        ["args-prompt", "completable-prompt", "simple-prompt"]
    );
    let _ = std::fs::remove_dir_all(&scratch);
}
