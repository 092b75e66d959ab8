//! Admin authentication over real HTTP (issue 18): the real binary with a token from a file,
//! from `MCPGATE_ADMIN_TOKEN` and from `--admin-token-file`; 401 without the token and 200 with
//! it on every admin route, the probes open, the scrape token limited to `/metrics`, the login
//! page's cookie opening the console API, and the refusal to start an open admin listener on a
//! non-loopback address unless explicitly allowed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use mcpgate_tests::http::{build_request, exchange, RawResponse};
use mcpgate_tests::net::{free_port, wait_for_listener};
use mcpgate_tests::process::{run_to_completion, ManagedChild};
use mcpgate_tests::{mcpgate_bin, Gateway, GatewaySpec};

const TOKEN: &str = "e2e-admin-token-4f1c9a2b7d";
const SCRAPE: &str = "e2e-scrape-token-8e3d0c6a51";

/// A file holding `contents`, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("mcpgate-admin-auth-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn get(admin: SocketAddr, path: &str, headers: &[(&str, &str)]) -> RawResponse {
    let request = build_request("GET", path, &admin.to_string(), headers, b"");
    exchange(admin, &request, Duration::from_secs(10)).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn post(admin: SocketAddr, path: &str, headers: &[(&str, &str)]) -> RawResponse {
    let request = build_request("POST", path, &admin.to_string(), headers, b"");
    exchange(admin, &request, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

const ROUTES: [&str; 5] = [
    "/metrics",
    "/api/summary",
    "/api/logs?limit=5",
    "/console.js",
    "/index.html",
];

/// Every admin route: 401 (or the login redirect) without a credential, 200 with the token.
fn assert_enforced(admin: SocketAddr, token: &str) {
    for probe in ["/healthz", "/readyz"] {
        assert_eq!(get(admin, probe, &[]).status, 200, "{probe} must stay open");
    }
    let bearer = format!("Bearer {token}");
    for route in ROUTES {
        let refused = get(admin, route, &[]);
        if route == "/index.html" {
            assert_eq!(refused.status, 303, "{route}: {}", refused.body_text());
            assert_eq!(refused.header("location"), Some("login"));
        } else {
            assert_eq!(refused.status, 401, "{route}: {}", refused.body_text());
            assert!(
                refused
                    .header("www-authenticate")
                    .is_some_and(|c| c.starts_with("Bearer")),
                "{route}: no Bearer challenge"
            );
        }
        let wrong = get(
            admin,
            route,
            &[("Authorization", "Bearer not-the-token-at-all")],
        );
        assert_eq!(wrong.status, 401, "{route} with a wrong token");
        let ok = get(admin, route, &[("Authorization", &bearer)]);
        assert_eq!(ok.status, 200, "{route} with the token: {}", ok.body_text());
    }
    assert_eq!(get(admin, "/", &[]).status, 303);
}

#[test]
fn token_file_scrape_token_and_login_cookie() {
    let token = TempFile::new("token", &format!("{TOKEN}\n"));
    let scrape = TempFile::new("scrape", SCRAPE);
    let gateway = Gateway::start(&GatewaySpec::config(format!(
        "[gateway]\nlisten = \"{{listen}}\"\nadmin = \"{{admin}}\"\nworkers = 1\n\n\
         [gateway.admin_auth]\ntoken_file = \"{}\"\nmetrics_token_file = \"{}\"\n\n\
         [[api]]\npath = \"/mcp\"\nupstream = \"http://127.0.0.1:9/mcp\"\n",
        token.0.display(),
        scrape.0.display()
    )));
    let admin = gateway.admin_addr();
    assert_enforced(admin, TOKEN);
    assert!(
        gateway
            .output()
            .contains("bearer token from gateway.admin_auth.token_file"),
        "the startup summary does not say the admin listener is authenticated:\n{}",
        gateway.output()
    );

    // The scrape token opens /metrics and nothing else.
    let scrape_bearer = format!("Bearer {SCRAPE}");
    let metrics = get(admin, "/metrics", &[("Authorization", &scrape_bearer)]);
    assert_eq!(metrics.status, 200);
    assert!(metrics.body_text().contains("mcpgate_build_info"));
    assert_eq!(
        get(admin, "/api/summary", &[("Authorization", &scrape_bearer)]).status,
        403
    );

    // The console's login: the page, then the token posted as a bearer header, then a cookie.
    let page = get(admin, "/login", &[]);
    assert_eq!(page.status, 200);
    assert!(page.body_text().contains("<form"), "{}", page.body_text());
    assert_eq!(
        post(admin, "/login", &[("Authorization", &scrape_bearer)]).status,
        401
    );
    let login = post(
        admin,
        "/login",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
    );
    assert_eq!(login.status, 204, "{}", login.body_text());
    let set_cookie = login
        .header("set-cookie")
        .unwrap_or_else(|| panic!("login set no cookie"))
        .to_string();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let pair = set_cookie.split(';').next().unwrap_or_default().to_string();
    assert_eq!(get(admin, "/api/summary", &[("Cookie", &pair)]).status, 200);
    assert_eq!(get(admin, "/", &[("Cookie", &pair)]).status, 200);
    let tampered = format!("{pair}0");
    assert_eq!(
        get(admin, "/api/summary", &[("Cookie", &tampered)]).status,
        401
    );
}

/// Starts `mcpgate run` with `args` and `env`; returns it with its admin address once the admin
/// listener accepts.
fn run_with(args: &[&str], env: &[(&str, &str)]) -> (ManagedChild, SocketAddr) {
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut command = Command::new(mcpgate_bin());
    command
        .args([
            "run",
            "--workers",
            "1",
            "--upstream",
            "http://127.0.0.1:9/mcp",
        ])
        .args([
            "--listen",
            &listen.to_string(),
            "--admin",
            &admin.to_string(),
        ])
        .args(args)
        .env_remove("MCPGATE_ADMIN_TOKEN")
        .envs(env.iter().copied());
    let mut child = ManagedChild::spawn("mcpgate", command).unwrap_or_else(|e| panic!("{e}"));
    wait_for_listener(admin, &mut child, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"));
    (child, admin)
}

#[test]
fn token_from_the_environment_and_from_the_command_line() {
    let (_env_gateway, admin) = run_with(&[], &[("MCPGATE_ADMIN_TOKEN", TOKEN)]);
    assert_enforced(admin, TOKEN);

    let file = TempFile::new("cli-token", "cli-admin-token-77aa99bb\n");
    let path = file.0.display().to_string();
    // The flag wins over the environment.
    let (_cli_gateway, admin) = run_with(
        &["--admin-token-file", &path],
        &[("MCPGATE_ADMIN_TOKEN", TOKEN)],
    );
    assert_enforced(admin, "cli-admin-token-77aa99bb");
    assert_eq!(
        get(
            admin,
            "/metrics",
            &[("Authorization", &format!("Bearer {TOKEN}"))]
        )
        .status,
        401
    );
}

#[test]
fn an_open_admin_listener_off_loopback_is_refused_unless_allowed() {
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([0, 0, 0, 0], free_port()));
    let mut command = Command::new(mcpgate_bin());
    command
        .args([
            "run",
            "--workers",
            "1",
            "--upstream",
            "http://127.0.0.1:9/mcp",
        ])
        .args([
            "--listen",
            &listen.to_string(),
            "--admin",
            &admin.to_string(),
        ])
        .env_remove("MCPGATE_ADMIN_TOKEN");
    let finished =
        run_to_completion(command, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        finished.status.and_then(|s| s.code()),
        Some(1),
        "{}",
        finished.stderr
    );
    assert!(
        finished.stderr.contains("--admin") && finished.stderr.contains("not a loopback address"),
        "{}",
        finished.stderr
    );

    // Explicitly allowed: it runs, open, and warns.
    let loopback_admin = SocketAddr::from(([127, 0, 0, 1], admin.port()));
    let mut command = Command::new(mcpgate_bin());
    command
        .args([
            "run",
            "--workers",
            "1",
            "--upstream",
            "http://127.0.0.1:9/mcp",
        ])
        .args([
            "--listen",
            &listen.to_string(),
            "--admin",
            &admin.to_string(),
        ])
        .arg("--allow-unauthenticated-admin")
        .env_remove("MCPGATE_ADMIN_TOKEN");
    let mut child = ManagedChild::spawn("mcpgate", command).unwrap_or_else(|e| panic!("{e}"));
    wait_for_listener(loopback_admin, &mut child, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(get(loopback_admin, "/metrics", &[]).status, 200);
    assert!(
        mcpgate_tests::net::wait_for_ready_line(
            &mut child,
            "has no authentication",
            Duration::from_secs(10)
        )
        .is_ok(),
        "no warning about the open admin listener:\n{}",
        child.output()
    );
}
