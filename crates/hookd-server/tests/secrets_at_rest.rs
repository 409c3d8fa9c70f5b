//! Secrets at rest (docs/security.md#secrets-at-rest): every secret hookd keeps is
//! sealed, and a source's URL token kept as its digest beside its sealed self, so the
//! database (its files, or its rows on PostgreSQL) holds none in clear;
//! a server with the wrong key refuses to start; a database from before sealing is
//! sealed when it opens; and `hookd secrets rotate-key` re-seals under a new key while
//! the server runs, after which the old key is no longer needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::process::{self, command};
use common::receiver::{Answer, Receiver};
use common::{TestDatabase, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

/// Secrets planted in every place hookd keeps one, each findable as plain bytes.
const ENDPOINT_SECRET_B64: &str = "c2VjcmV0LWF0LXJlc3QtdGVzdC1rZXktMTIzNDU2Nzg";
const HEADER_CREDENTIAL: &str = "header-credential-7781";
const GITHUB_SECRET: &str = "github-hook-secret-5531";
const HMAC_SECRET: &str = "options-hmac-secret-4417";
const BASIC_PASSWORD: &str = "basic-auth-password-9902";
const FLOW_SECRET: &str = "smtp-password-3306";
const OPERATIONAL_SECRET_B64: &str = "b3BlcmF0aW9uYWwtd2ViaG9vay1zZWNyZXQtODg4ODk";

const PLANTED: [&str; 7] = [
    ENDPOINT_SECRET_B64,
    HEADER_CREDENTIAL,
    GITHUB_SECRET,
    HMAC_SECRET,
    BASIC_PASSWORD,
    FLOW_SECRET,
    OPERATIONAL_SECRET_B64,
];

async fn send(base: &str, token: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn ok(base: &str, token: &str, method: Method, path: &str, body: Option<Value>) -> Value {
    let (status, out) = send(base, token, method, path, body).await;
    assert!((200..300).contains(&status), "{path}: {status} {out}");
    out
}

/// Plants a secret everywhere one is kept, through the API: an endpoint (secret and a
/// credential header, then a rotation so a previous secret is kept too), a source with
/// a verification secret and secret options, a flow secret, an operational webhook
/// endpoint. Answers the endpoint's path.
async fn plant(base: &str, token: &str, receiver: &str) -> String {
    ok(
        base,
        token,
        Method::POST,
        "/api/v1/app",
        Some(json!({"name": "shop", "uid": "shop"})),
    )
    .await;
    ok(
        base,
        token,
        Method::POST,
        "/api/v1/app/shop/endpoint",
        Some(json!({
            "uid": "main",
            "url": receiver,
            "secret": format!("whsec_{ENDPOINT_SECRET_B64}="),
            "headers": {"Authorization": format!("Bearer {HEADER_CREDENTIAL}")},
        })),
    )
    .await;
    // Rotated away and back: the planted secret is current again (deliveries below are
    // signed with it), and another is kept as the previous one.
    for key in [OPERATIONAL_SECRET_B64, ENDPOINT_SECRET_B64] {
        ok(
            base,
            token,
            Method::POST,
            "/api/v1/app/shop/endpoint/main/secret/rotate",
            Some(json!({"key": format!("whsec_{key}=")})),
        )
        .await;
    }
    ok(
        base,
        token,
        Method::POST,
        "/ingest/api/v1/source",
        Some(json!({
            "name": "gh", "uid": "gh", "type": "github", "config": {"secret": GITHUB_SECRET},
            "options": {
                "basicAuth": {"username": "u", "password": BASIC_PASSWORD},
                "hmac": {"header": "X-Sig", "algorithm": "sha256", "encoding": "hex", "secret": HMAC_SECRET},
            },
        })),
    )
    .await;
    ok(
        base,
        token,
        Method::PUT,
        "/api/v1/flow-secret/smtp",
        Some(json!({"value": {"smtpUrl": format!("smtp://u:{FLOW_SECRET}@mail.example.com"), "from": "a@example.com"}})),
    )
    .await;
    ok(
        base,
        token,
        Method::POST,
        "/api/v1/operational-webhook/endpoint",
        Some(json!({"url": "https://ops.example.com/hook", "secret": format!("whsec_{OPERATIONAL_SECRET_B64}=")})),
    )
    .await;
    "/api/v1/app/shop/endpoint/main".into()
}

/// The source `gh`'s URL token (the last part of its `ingestUrl`), after rotating it
/// once so an old token is kept too; answers (current, old).
async fn ingest_tokens(base: &str, token: &str) -> (String, String) {
    let tail = |source: &Value| {
        let url = source["ingestUrl"].as_str().unwrap();
        url.rsplit('/').next().unwrap().to_owned()
    };
    let before = ok(base, token, Method::GET, "/ingest/api/v1/source/gh", None).await;
    let after = ok(
        base,
        token,
        Method::POST,
        "/ingest/api/v1/source/gh/token/rotate",
        None,
    )
    .await;
    (tail(&after), tail(&before))
}

/// Every planted secret (and each of `also`) found in the files of directory `dir`
/// (the database, its WAL), once the closing connections have checkpointed and
/// removed the WAL (or 5 s passed).
async fn found_in_files(dir: &Path, also: &[&str]) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while dir.join("hookd.db-wal").exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "key") {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        for secret in PLANTED.iter().chain(also) {
            if bytes.windows(secret.len()).any(|w| w == secret.as_bytes()) {
                found.push(format!("{secret} in {}", path.display()));
            }
        }
    }
    found
}

/// Every planted secret (and each of `also`) found in the sealed columns' text (either
/// backend), and in the columns sources are found by.
async fn found_in_rows(server: &TestServer, also: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for sql in ["SELECT token FROM source", "SELECT old_token FROM source"] {
        for value in server.raw_sql(sql).await {
            for secret in PLANTED.iter().chain(also) {
                if value.contains(secret) {
                    found.push(format!("{secret} in {sql}"));
                }
            }
        }
    }
    for sql in [
        "SELECT secret FROM endpoint",
        "SELECT CAST(previous_secrets AS TEXT) FROM endpoint",
        "SELECT CAST(headers AS TEXT) FROM endpoint",
        "SELECT CAST(config AS TEXT) FROM source",
        "SELECT CAST(options AS TEXT) FROM source",
        "SELECT token_sealed FROM source",
        "SELECT sealed FROM flow_secret",
    ] {
        let values = server.raw_sql(sql).await;
        assert!(!values.is_empty(), "{sql}: no rows");
        for value in values {
            assert!(value.contains("hks1."), "{sql}: not sealed: {value}");
            for secret in PLANTED.iter().chain(also) {
                if value.contains(secret) {
                    found.push(format!("{secret} in {sql}"));
                }
            }
        }
    }
    found
}

#[tokio::test]
async fn no_secret_is_kept_in_clear_and_each_still_works() {
    let receiver = Receiver::start().await;
    receiver.answer_always(Answer::status(204));
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(&[("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8")]).await;
    let endpoint = plant(&server.url, &server.token, &receiver.url).await;
    let (current, old) = ingest_tokens(&server.url, &server.token).await;
    assert_eq!(
        found_in_rows(&server, &[&current, &old]).await,
        Vec::<String>::new()
    );

    // Sealed, yet every secret does its job: the API shows the endpoint's secret and
    // headers, and a delivery is signed with the secret and carries the header.
    let secret = ok(
        &server.url,
        &server.token,
        Method::GET,
        &format!("{endpoint}/secret"),
        None,
    )
    .await;
    assert_eq!(secret["key"], format!("whsec_{ENDPOINT_SECRET_B64}="));
    let headers = ok(
        &server.url,
        &server.token,
        Method::GET,
        &format!("{endpoint}/headers"),
        None,
    )
    .await;
    assert!(headers.to_string().contains("Authorization"), "{headers}");
    ok(
        &server.url,
        &server.token,
        Method::POST,
        "/api/v1/app/shop/msg",
        Some(json!({"eventType": "order.paid", "payload": {"n": 1}})),
    )
    .await;
    let got = receiver.wait_for("/", 1, Duration::from_secs(10)).await;
    let mut map = std::collections::HashMap::new();
    for (k, v) in &got[0].headers {
        map.insert(k.as_str().to_owned(), v.to_str().unwrap().to_owned());
    }
    assert_eq!(
        map.get("authorization").map(String::as_str),
        Some(format!("Bearer {HEADER_CREDENTIAL}").as_str())
    );
    standardwebhooks::Webhook::new(&format!("whsec_{ENDPOINT_SECRET_B64}="))
        .unwrap()
        .verify(&got[0].body, &got[0].headers)
        .unwrap();
    // The source's secrets still verify: a request signed with the GitHub secret, the
    // options' HMAC secret and the basic-auth password passes; a wrong one does not.
    let source = ok(
        &server.url,
        &server.token,
        Method::GET,
        "/ingest/api/v1/source/gh",
        None,
    )
    .await;
    assert!(!source.to_string().contains(GITHUB_SECRET), "{source}");
    let ingest_url = source["ingestUrl"].as_str().unwrap();
    let body = br#"{"zen": "sealed"}"#;
    let mac = |secret: &str| {
        use hmac::Mac as _;
        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        m.update(body);
        hex::encode(m.finalize().into_bytes())
    };
    let post = |github: &str| {
        reqwest::Client::new()
            .post(ingest_url)
            .basic_auth("u", Some(BASIC_PASSWORD))
            .header("X-Sig", mac(HMAC_SECRET))
            .header("X-Hub-Signature-256", format!("sha256={}", mac(github)))
            .header("X-GitHub-Event", "ping")
            .header("X-GitHub-Delivery", "d-1")
            .header("Content-Type", "application/json")
            .body(body.to_vec())
            .send()
    };
    let good = post(GITHUB_SECRET).await.unwrap();
    assert!(good.status().is_success(), "{}", good.text().await.unwrap());
    assert_eq!(post("another-secret").await.unwrap().status(), 401);
    // The rotated-away URL still finds the source in its grace period; a URL that is
    // the stored digest itself finds nothing.
    let old_url = ingest_url.replace(&current, &old);
    let reply = reqwest::Client::new()
        .post(&old_url)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 401, "the old URL no longer finds its source");
    let digest = hookd_core::ingest::token_digest(&current);
    let reply = reqwest::Client::new()
        .post(ingest_url.replace(&current, &digest))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 404);
    server.stop().await;

    // The embedded database's files hold no secret at all (SQLite only: on PostgreSQL
    // the rows above are what the database keeps).
    if hookd_store_postgres::testing::test_database_url().is_none() {
        let db = dir.path().join("hookd.db");
        let server = TestServer::start_sqlite_at(&db, &[]).await;
        plant(&server.url, &server.token, &receiver.url).await;
        let (current, old) = ingest_tokens(&server.url, &server.token).await;
        server.stop().await;
        assert_eq!(
            found_in_files(dir.path(), &[&current, &old]).await,
            Vec::<String>::new()
        );
        // The key file was made beside the database, for its owner only.
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("hookd.db.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

fn key() -> String {
    hookd_core::sealed::SealingKey::generate().to_base64()
}

/// `hookd ARGS` on `db` with `settings`; answers (success, stderr).
fn run(db: &str, settings: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let mut cmd = command();
    cmd.args(args).env("HOOKD_DATABASE_URL", db);
    for (k, v) in settings {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_stops_start_up_and_rotate_key_moves_to_a_new_one_while_serving() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::new(dir.path()).await;
    let (old, new) = (key(), key());
    let receiver = Receiver::start().await;
    receiver.answer_always(Answer::status(204));

    let server = process::serve(
        &[],
        &[
            ("HOOKD_DATABASE_URL", &db.url),
            ("HOOKD_SECRET_KEY", &old),
            ("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8"),
        ],
    )
    .await;
    let token = {
        let (done, out, err) = run(
            &db.url,
            &[("HOOKD_SECRET_KEY", &old)],
            &["token", "create", "--org", "acme"],
        );
        assert!(done, "{err}");
        process::last_line(out.as_bytes())
    };
    let endpoint = plant(&server.base, &token, &receiver.url).await;
    drop(server);

    // Another key: refused at start, saying why; nothing is changed.
    let (done, _, err) = run(&db.url, &[("HOOKD_SECRET_KEY", &new)], &["migrate"]);
    assert!(!done);
    assert!(err.contains("does not open this database's secrets"), "{err}");

    // The new key with the old one as previous: the server opens both, and
    // rotate-key re-seals everything while it serves.
    let both = [
        ("HOOKD_DATABASE_URL", db.url.as_str()),
        ("HOOKD_SECRET_KEY", new.as_str()),
        ("HOOKD_SECRET_KEY_PREVIOUS", old.as_str()),
        ("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8"),
    ];
    let server = process::serve(&[], &both).await;
    let secret = ok(
        &server.base,
        &token,
        Method::GET,
        &format!("{endpoint}/secret"),
        None,
    )
    .await;
    assert_eq!(secret["key"], format!("whsec_{ENDPOINT_SECRET_B64}="));
    let (done, out, err) = run(
        &db.url,
        &[("HOOKD_SECRET_KEY", &new), ("HOOKD_SECRET_KEY_PREVIOUS", &old)],
        &["secrets", "rotate-key", "--batch", "2"],
    );
    assert!(done, "{err}");
    assert!(out.contains("re-sealed"), "{out}");
    assert!(
        err.contains("pass 2: ") && err.contains(" 0 values re-sealed"),
        "{err}"
    );
    // Still serving, and delivering signed with the same secret.
    ok(
        &server.base,
        &token,
        Method::POST,
        "/api/v1/app/shop/msg",
        Some(json!({"eventType": "order.paid", "payload": {"n": 2}})),
    )
    .await;
    let got = receiver.wait_for("/", 1, Duration::from_secs(10)).await;
    standardwebhooks::Webhook::new(&format!("whsec_{ENDPOINT_SECRET_B64}="))
        .unwrap()
        .verify(&got[0].body, &got[0].headers)
        .unwrap();
    drop(server);

    // The old key is no longer needed: the new one alone opens everything; the old one
    // alone is refused.
    let server = process::serve(
        &[],
        &[("HOOKD_DATABASE_URL", &db.url), ("HOOKD_SECRET_KEY", &new)],
    )
    .await;
    let secret = ok(
        &server.base,
        &token,
        Method::GET,
        &format!("{endpoint}/secret"),
        None,
    )
    .await;
    assert_eq!(secret["key"], format!("whsec_{ENDPOINT_SECRET_B64}="));
    let (status, source) = send(
        &server.base,
        &token,
        Method::GET,
        "/ingest/api/v1/source/gh",
        None,
    )
    .await;
    assert_eq!(status, 200, "{source}");
    drop(server);
    let (done, _, err) = run(&db.url, &[("HOOKD_SECRET_KEY", &old)], &["migrate"]);
    assert!(!done);
    assert!(err.contains("does not open this database's secrets"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_before_sealing_is_sealed_when_it_opens() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::new(dir.path()).await;
    let k = key();
    let settings = [
        ("HOOKD_DATABASE_URL", db.url.as_str()),
        ("HOOKD_SECRET_KEY", k.as_str()),
    ];
    let server = process::serve(&[], &settings).await;
    let (done, out, err) = run(
        &db.url,
        &[("HOOKD_SECRET_KEY", &k)],
        &["token", "create", "--org", "acme"],
    );
    assert!(done, "{err}");
    let token = process::last_line(out.as_bytes());
    let endpoint = plant(&server.base, &token, "https://example.com/hook").await;
    let (ingest_token, old_token) = ingest_tokens(&server.base, &token).await;
    drop(server);

    // Put the values back in clear, as a database from before sealing kept them, and
    // forget the key check; the source's URL tokens too, as kept before digests.
    let secret = format!("whsec_{ENDPOINT_SECRET_B64}=");
    let headers = format!(r#"{{"Authorization": "Bearer {HEADER_CREDENTIAL}"}}"#);
    let config = format!(r#"{{"secret": "{GITHUB_SECRET}"}}"#);
    let sqls = [
        format!("UPDATE endpoint SET secret = '{secret}', previous_secrets = '[]', headers = '{headers}'"),
        format!("UPDATE source SET config = '{config}', options = 'null'"),
        format!("UPDATE source SET token = '{ingest_token}', old_token = '{old_token}', token_sealed = NULL"),
        "DELETE FROM key_check".to_owned(),
    ];
    for sql in &sqls {
        db.raw_sql(sql).await;
    }
    let clear = db.raw_sql("SELECT secret FROM endpoint").await;
    assert!(clear.iter().all(|s| s.starts_with("whsec_")), "{clear:?}");

    let server = process::serve(&[], &settings).await;
    for sql in [
        "SELECT secret FROM endpoint",
        "SELECT CAST(headers AS TEXT) FROM endpoint",
        "SELECT CAST(config AS TEXT) FROM source",
        "SELECT CAST(options AS TEXT) FROM source",
        "SELECT token_sealed FROM source",
        "SELECT sealed FROM key_check",
    ] {
        for value in db.raw_sql(sql).await {
            assert!(value.contains("hks1."), "{sql}: {value}");
            assert!(
                !value.contains(GITHUB_SECRET) && !value.contains(ENDPOINT_SECRET_B64),
                "{value}"
            );
        }
    }
    let got = ok(
        &server.base,
        &token,
        Method::GET,
        &format!("{endpoint}/secret"),
        None,
    )
    .await;
    assert_eq!(got["key"], secret);
    let headers = ok(
        &server.base,
        &token,
        Method::GET,
        &format!("{endpoint}/headers"),
        None,
    )
    .await;
    assert!(headers.to_string().contains("Authorization"), "{headers}");
    // The source's tokens are digests now; both URLs still find it (a request without
    // GitHub's signature: 401, not 404) and the API shows the same URL.
    let digests = db.raw_sql("SELECT token || ' ' || old_token FROM source").await;
    assert_eq!(
        digests,
        vec![format!(
            "{} {}",
            hookd_core::ingest::token_digest(&ingest_token),
            hookd_core::ingest::token_digest(&old_token)
        )]
    );
    for t in [&ingest_token, &old_token] {
        let reply = reqwest::Client::new()
            .post(format!("{}/in/{t}", server.base))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 401, "/in/{t}");
    }
    let source = ok(
        &server.base,
        &token,
        Method::GET,
        "/ingest/api/v1/source/gh",
        None,
    )
    .await;
    assert!(
        source["ingestUrl"].as_str().unwrap().ends_with(&ingest_token),
        "{source}"
    );
    drop(server);
}
