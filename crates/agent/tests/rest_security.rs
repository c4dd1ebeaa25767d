//! `restapi` security settings on a live cluster: what `crates/api/tests/security.rs` checks on a stand-alone
//! server, here through the agent's own configuration. Unsafe requests need the credentials (401 otherwise, with
//! a Basic challenge); safe ones do not. `allowlist` is in force: only `allowlist_include_members` lets the
//! members' own address (127.0.0.1) in, and `POST /failsafe`, which Patroni never opens to members by that rule,
//! stays refused. The members still call each other with the credentials (see the failsafe test in
//! `cluster_dcs.rs`).

mod common;

use common::{Cluster, Options, WAIT};
use reqwest::Method;

const USER: &str = "admin";
const PASSWORD: &str = "s3cret";

async fn call(url: &str, method: Method, credentials: Option<(&str, &str)>) -> (u16, String, Option<String>) {
    let http = reqwest::Client::new();
    let mut req = http.request(method, url).header("Content-Type", "application/json").body("{}");
    if let Some((user, password)) = credentials {
        req = req.basic_auth(user, Some(password));
    }
    let response = req.send().await.expect("the REST API answers");
    let status = response.status().as_u16();
    let challenge = response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (status, response.text().await.unwrap_or_default(), challenge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_requests_need_credentials_and_an_allowed_address() {
    let c = Cluster::start_with(
        Options {
            members: 2,
            restapi_extra: vec![
                format!("authentication: {{username: {USER}, password: {PASSWORD}}}"),
                "allowlist: [192.0.2.1]".into(),
                "allowlist_include_members: true".into(),
            ],
            ..Options::default()
        },
        false,
    )
    .await;
    let p = c.wait_primary(WAIT, &[]).await;
    let api = c.node(p).api_url();

    // Safe requests need nothing.
    let (code, body, _) = call(&format!("{api}/patroni"), Method::GET, None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(call(&format!("{api}/primary"), Method::GET, None).await.0, 200);

    // Unsafe ones: no or wrong credentials are 401 with a challenge, the right ones pass.
    for (method, path) in [(Method::POST, "/reload"), (Method::POST, "/restart"), (Method::DELETE, "/switchover")] {
        for credentials in [None, Some((USER, "wrong")), Some(("someone", PASSWORD))] {
            let (code, body, challenge) = call(&format!("{api}{path}"), method.clone(), credentials).await;
            assert_eq!(code, 401, "{method} {path} with {credentials:?}: {body}");
            assert_eq!(challenge.as_deref(), Some("Basic realm=\"Patroni\""), "{method} {path}");
        }
    }
    let (code, body, _) = call(&format!("{api}/reload"), Method::POST, Some((USER, PASSWORD))).await;
    assert_eq!(code, 202, "POST /reload with the credentials: {body}");
    let (code, body, _) = call(&format!("{api}/switchover"), Method::DELETE, Some((USER, PASSWORD))).await;
    assert_eq!((code, body.as_str()), (404, "no switchover is scheduled"), "authenticated and allowed");

    // The allowlist (192.0.2.1 only) is in force: POST /failsafe does not let members in by their address.
    let (code, body, _) = call(&format!("{api}/failsafe"), Method::POST, Some((USER, PASSWORD))).await;
    assert_eq!((code, body.as_str()), (403, "Access is denied"));
}
