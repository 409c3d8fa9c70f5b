//! The web UI's sessions from outside, over HTTP: the consumer portal's Svix contract
//! (`app-portal-access`, `logout`, `expire-all`) driven with the official `svix`
//! crate, what a portal session can and cannot reach, operator sign-in, CSRF, the
//! security headers and escaping. The browser scenarios are `tests/ui/browser.py`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestServer, call, status_of};
use reqwest::{Method, StatusCode, redirect};
use serde_json::json;
use svix::models::*;

/// A client that shows redirects instead of following them.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `name=value` of a `Set-Cookie` of `response` named `name`.
fn cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

fn set_cookie_line(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap()
        .to_owned()
}

async fn get(server: &TestServer, path: &str, cookie: &str) -> reqwest::Response {
    browser()
        .get(server.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

/// The CSRF token of a page (in the `hx-headers` of its body).
fn csrf_of(html: &str) -> String {
    let start = html.find("X-CSRF-Token\": \"").unwrap() + "X-CSRF-Token\": \"".len();
    html[start..start + 64].to_owned()
}

/// An operator session of the server's organisation, signed in with its API token.
async fn operator_cookie(server: &TestServer) -> String {
    let r = browser()
        .post(server.url("/ui/sign-in"))
        .form(&[("token", server.token.as_str())])
        .send()
        .await
        .unwrap();
    cookie(&r, "hookd_ui").expect("an operator cookie")
}

async fn portal_cookie(url: &str) -> String {
    let r = browser().get(url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    cookie(&r, "hookd_portal").expect("a portal cookie")
}

#[tokio::test]
async fn app_portal_access_opens_that_application_only() {
    let server = TestServer::start().await;
    let svix = server.svix();
    let app = svix
        .application()
        .create(ApplicationIn::new("Acme <b>Corp</b>".into()), None)
        .await
        .unwrap();
    let other = svix
        .application()
        .create(ApplicationIn::new("Other".into()), None)
        .await
        .unwrap();
    let (_, other_ep) = call(
        &server,
        Method::POST,
        &format!("/api/v1/app/{}/endpoint", other.id),
        Some(json!({"url": "https://other.example.com/hook"})),
    )
    .await;

    let access = svix
        .authentication()
        .app_portal_access(app.id.clone(), AppPortalAccessIn::default(), None)
        .await
        .unwrap();
    assert!(
        access.url.starts_with(&server.url("/portal/sign-in?token=hks_")),
        "{}",
        access.url
    );
    assert!(access.token.starts_with("hks_"));

    let r = browser().get(&access.url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let line = set_cookie_line(&r, "hookd_portal");
    assert!(
        line.contains("HttpOnly") && line.contains("Path=/portal"),
        "{line}"
    );
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("frame-ancestors 'self'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    let portal = cookie(&r, "hookd_portal").unwrap();
    // The link works once (as Svix's); the session it opened lives on.
    let again = browser().get(&access.url).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert!(cookie(&again, "hookd_portal").is_none());

    let page = get(&server, "/portal", &portal).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Acme &#60;b&#62;Corp&#60;/b&#62;") || html.contains("Acme &lt;b&gt;Corp&lt;/b&gt;"),
        "names are escaped"
    );
    assert!(!html.contains("<b>Corp</b>"));
    // Another application's endpoint is not found; the operator pages are closed.
    let id = other_ep["id"].as_str().unwrap();
    assert_eq!(
        get(&server, &format!("/portal/endpoints/{id}"), &portal)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let ui = get(&server, "/ui/apps", &portal.replace("hookd_portal", "hookd_ui")).await;
    assert_eq!(
        ui.status(),
        StatusCode::SEE_OTHER,
        "a portal token is no operator session"
    );
    // Nor is it an API token.
    let (status, _) = {
        let r = server
            .http()
            .get(server.url("/api/v1/app"))
            .bearer_auth(&access.token)
            .send()
            .await
            .unwrap();
        (r.status(), ())
    };
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Full access by default: the portal can add an endpoint (with its CSRF token).
    let csrf = csrf_of(&html);
    let created = browser()
        .post(server.url("/portal"))
        .header("cookie", &portal)
        .form(&[
            ("_csrf", csrf.as_str()),
            ("url", "https://customer.example.com/in"),
            ("description", ""),
            ("event_types", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let eps = svix.endpoint().list(app.id.clone(), None).await.unwrap();
    assert_eq!(eps.data.len(), 1);
    assert_eq!(eps.data[0].url, "https://customer.example.com/in");
    // Without the token, refused.
    let forged = browser()
        .post(server.url("/portal"))
        .header("cookie", &portal)
        .form(&[("url", "https://evil.example.com/")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    // Another organisation cannot make portal access to this application.
    let stranger = server.svix_with(&server.token_for("stranger").await);
    let err = stranger
        .authentication()
        .app_portal_access(app.id.clone(), AppPortalAccessIn::default(), None)
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), 404);

    // Logout with the portal token (as the SDK sends it) ends the session.
    server
        .svix_with(&access.token)
        .authentication()
        .logout(None)
        .await
        .unwrap();
    let after = get(&server, "/portal", &portal).await;
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    assert_eq!(after.headers()["location"], "/portal/signed-out");
    // An API token is not a portal token.
    let err = svix.authentication().logout(None).await.unwrap_err();
    assert_eq!(status_of(&err), 401);
}

#[tokio::test]
async fn capabilities_decide_what_a_portal_session_may_do() {
    let server = TestServer::start().await;
    let svix = server.svix();
    let app = svix
        .application()
        .create(ApplicationIn::new("shop".into()), None)
        .await
        .unwrap();
    let ep = svix
        .endpoint()
        .create(
            app.id.clone(),
            EndpointIn::new("https://a.example.com/x".into()),
            None,
        )
        .await
        .unwrap();

    let view_only = AppPortalAccessIn {
        capabilities: Some([AppPortalCapability::ViewBase].into()),
        ..Default::default()
    };
    let access = svix
        .authentication()
        .app_portal_access(app.id.clone(), view_only, None)
        .await
        .unwrap();
    let portal = portal_cookie(&access.url).await;
    let page = get(&server, &format!("/portal/endpoints/{}", ep.id), &portal).await;
    let html = page.text().await.unwrap();
    assert!(!html.contains("Reveal secret") && !html.contains("id=\"edit-endpoint\""));
    assert!(!html.contains("whsec_"));
    let csrf = csrf_of(&html);
    for (path, form) in [
        (
            format!("/portal/endpoints/{}/secret", ep.id),
            vec![("_csrf", csrf.as_str())],
        ),
        (
            format!("/portal/endpoints/{}/rotate", ep.id),
            vec![("_csrf", csrf.as_str())],
        ),
        (
            format!("/portal/endpoints/{}/delete", ep.id),
            vec![("_csrf", csrf.as_str())],
        ),
        (
            format!("/portal/endpoints/{}/recover", ep.id),
            vec![("_csrf", csrf.as_str()), ("since", "2026-01-01T00:00")],
        ),
        (
            format!("/portal/endpoints/{}/headers", ep.id),
            vec![("_csrf", csrf.as_str()), ("headers", "X-A: b")],
        ),
        (
            format!("/portal/endpoints/{}/filter", ep.id),
            vec![("_csrf", csrf.as_str()), ("filter", "{}")],
        ),
        (
            format!("/portal/endpoints/{}/transformation", ep.id),
            vec![
                ("_csrf", csrf.as_str()),
                ("code", "function handler(w) { return w }"),
            ],
        ),
        (
            format!("/portal/endpoints/{}/simulate", ep.id),
            vec![
                ("_csrf", csrf.as_str()),
                ("code", "function handler(w) { return w }"),
            ],
        ),
    ] {
        let r = browser()
            .post(server.url(&path))
            .header("cookie", &portal)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(
        svix.endpoint()
            .list(app.id.clone(), None)
            .await
            .unwrap()
            .data
            .len(),
        1
    );

    // ViewEndpointSecret reveals but cannot rotate.
    let secret_viewer = AppPortalAccessIn {
        capabilities: Some(
            [
                AppPortalCapability::ViewBase,
                AppPortalCapability::ViewEndpointSecret,
            ]
            .into(),
        ),
        ..Default::default()
    };
    let access = svix
        .authentication()
        .app_portal_access(app.id.clone(), secret_viewer, None)
        .await
        .unwrap();
    let portal = portal_cookie(&access.url).await;
    let html = get(&server, &format!("/portal/endpoints/{}", ep.id), &portal)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Reveal secret") && !html.contains("Rotate secret"));
    let csrf = csrf_of(&html);
    let shown = browser()
        .post(server.url(&format!("/portal/endpoints/{}/secret", ep.id)))
        .header("cookie", &portal)
        .form(&[("_csrf", csrf.as_str())])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let secret = svix
        .endpoint()
        .get_secret(app.id.clone(), ep.id.clone())
        .await
        .unwrap()
        .key;
    assert!(shown.contains(&secret));

    // Bad input is a 422.
    let (status, body) = call(
        &server,
        Method::POST,
        &format!("/api/v1/auth/app-portal-access/{}", app.id),
        Some(json!({"capabilities": ["Everything"]})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = call(
        &server,
        Method::POST,
        &format!("/api/v1/auth/app-portal-access/{}", app.id),
        Some(json!({"expiry": 60})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = call(
        &server,
        Method::POST,
        &format!("/api/v1/auth/app-portal-access/{}", app.id),
        Some(json!({"sessionId": "not allowed!"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // A missing application: 404, or created from `application`.
    let (status, _) = call(
        &server,
        Method::POST,
        "/api/v1/auth/app-portal-access/new-customer",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &server,
        Method::POST,
        "/api/v1/auth/app-portal-access/new-customer",
        Some(json!({"application": {"name": "New customer"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let created = svix.application().get("new-customer".into()).await.unwrap();
    assert_eq!(created.name, "New customer");
}

#[tokio::test]
async fn expire_all_ends_an_applications_sessions_or_only_named_ones() {
    let server = TestServer::start().await;
    let svix = server.svix();
    let app = svix
        .application()
        .create(ApplicationIn::new("shop".into()), None)
        .await
        .unwrap();
    let mut cookies = Vec::new();
    for session in ["alice", "bob"] {
        let access = svix
            .authentication()
            .app_portal_access(
                app.id.clone(),
                AppPortalAccessIn {
                    session_id: Some(session.into()),
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap();
        cookies.push(portal_cookie(&access.url).await);
    }
    svix.authentication()
        .expire_all(
            app.id.clone(),
            ApplicationTokenExpireIn {
                session_ids: Some(vec!["alice".into()]),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        get(&server, "/portal", &cookies[0]).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        get(&server, "/portal", &cookies[1]).await.status(),
        StatusCode::OK
    );
    svix.authentication()
        .expire_all(app.id.clone(), ApplicationTokenExpireIn::default(), None)
        .await
        .unwrap();
    assert_eq!(
        get(&server, "/portal", &cookies[1]).await.status(),
        StatusCode::SEE_OTHER
    );
    let err = svix
        .authentication()
        .expire_all("app_missing".into(), ApplicationTokenExpireIn::default(), None)
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), 404);
}

#[tokio::test]
async fn operators_sign_in_once_per_link_and_every_form_needs_its_csrf_token() {
    let server = TestServer::start().await;
    let store = server.running.as_ref().unwrap().store();
    let (_, link) = hookd_server::service::ui_session::issue_sign_in_link(
        store.as_ref(),
        "test-org",
        std::time::Duration::from_secs(60),
    )
    .await
    .unwrap();
    let url = server.url(&format!("/ui/sign-in?token={}", link.reveal()));
    let first = browser().get(&url).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let line = set_cookie_line(&first, "hookd_ui");
    assert!(
        line.contains("HttpOnly") && line.contains("SameSite=Strict") && line.contains("Path=/ui"),
        "{line}"
    );
    assert_eq!(first.headers()["x-frame-options"], "DENY");
    let ui = cookie(&first, "hookd_ui").unwrap();
    let again = browser().get(&url).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED, "a link works once");
    assert!(cookie(&again, "hookd_ui").is_none());

    // Pages need the session; without it, to the sign-in page.
    let none = browser().get(server.url("/ui/apps")).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::SEE_OTHER);
    assert_eq!(none.headers()["location"], "/ui/sign-in");

    // What an attacker names is escaped.
    server
        .svix()
        .application()
        .create(ApplicationIn::new("<script>alert(1)</script>".into()), None)
        .await
        .unwrap();
    let html = get(&server, "/ui/apps", &ui).await.text().await.unwrap();
    assert!(!html.contains("<script>alert(1)</script>"));
    assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"));

    // Forms: refused without the session's CSRF token, taken with it.
    let forged = browser()
        .post(server.url("/ui/apps"))
        .header("cookie", &ui)
        .form(&[("name", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let csrf = csrf_of(&html);
    let made = browser()
        .post(server.url("/ui/apps"))
        .header("cookie", &ui)
        .form(&[("_csrf", csrf.as_str()), ("name", "made in the UI"), ("uid", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), StatusCode::SEE_OTHER);
    let apps = server.svix().application().list(None).await.unwrap();
    assert!(apps.data.iter().any(|a| a.name == "made in the UI"));

    // A pasted API token signs in too; a wrong one does not.
    let bad = browser()
        .post(server.url("/ui/sign-in"))
        .form(&[("token", "hk_nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert!(!operator_cookie(&server).await.is_empty());

    // Signing out ends the session.
    let signed_out = browser()
        .post(server.url("/ui/sign-out"))
        .header("cookie", &ui)
        .form(&[("_csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        get(&server, "/ui/apps", &ui).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn the_ui_can_be_switched_off() {
    let server = TestServer::start_with(&[("HOOKD_UI_ENABLED", "false")]).await;
    let r = browser().get(server.url("/ui")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = browser().get(server.url("/portal")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_overview_lists_failing_endpoints() {
    let server = TestServer::start().await;
    let svix = server.svix();
    let app = svix
        .application()
        .create(ApplicationIn::new("shop".into()), None)
        .await
        .unwrap();
    let ep = svix
        .endpoint()
        .create(
            app.id.clone(),
            EndpointIn::new("https://down.example.com/hook".into()),
            None,
        )
        .await
        .unwrap();
    let store = server.running.as_ref().unwrap().store();
    let org = store.find_org("test-org").await.unwrap().unwrap().id;
    let now = chrono::Utc::now();
    store
        .note_exhausted(
            &org,
            &app.id.parse().unwrap(),
            &ep.id.parse().unwrap(),
            now,
            now - chrono::Duration::days(5),
        )
        .await
        .unwrap();
    let ui = operator_cookie(&server).await;
    let html = get(&server, "/ui", &ui).await.text().await.unwrap();
    assert!(html.contains("https://down.example.com/hook"), "{html}");
    assert!(html.contains(&format!("/ui/apps/{}/endpoints/{}", app.id, ep.id)));
}

/// An attempt's page shows the headers sent and answered, unless
/// `delivery_record_headers` is off.
#[tokio::test]
async fn attempt_headers_are_shown_unless_not_recorded() {
    for record in [true, false] {
        let server = TestServer::start_with(&[
            ("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8"),
            (
                "HOOKD_DELIVERY_RECORD_HEADERS",
                if record { "true" } else { "false" },
            ),
        ])
        .await;
        let receiver = common::receiver::Receiver::start().await;
        let svix = server.svix();
        let app = svix
            .application()
            .create(ApplicationIn::new("shop".into()), None)
            .await
            .unwrap();
        let mut ep = EndpointIn::new(format!("{}/h", receiver.url));
        ep.headers = Some([("Authorization".to_owned(), "Bearer s3cret".to_owned())].into());
        svix.endpoint().create(app.id.clone(), ep, None).await.unwrap();
        let msg = svix
            .message()
            .create(
                app.id.clone(),
                MessageIn::new("a.b".into(), json!({"x": 1})),
                None,
            )
            .await
            .unwrap();
        common::wait_for_attempts(&svix, &app.id, &msg.id, 1).await;
        let ui = operator_cookie(&server).await;
        let html = get(&server, &format!("/ui/apps/{}/msg/{}", app.id, msg.id), &ui)
            .await
            .text()
            .await
            .unwrap();
        assert!(
            !html.contains("s3cret"),
            "a credential header's value is never shown"
        );
        assert_eq!(html.contains("webhook-signature"), record, "{html}");
        assert_eq!(html.contains("[hidden]"), record);
        assert_eq!(html.contains("Response headers"), record);
    }
}

/// Event types behind a feature flag show in a portal only when its link has one of
/// the flags, as Svix hides them.
#[tokio::test]
async fn feature_flags_decide_which_event_types_a_portal_sees() {
    let server = TestServer::start().await;
    let svix = server.svix();
    let app = svix
        .application()
        .create(ApplicationIn::new("shop".into()), None)
        .await
        .unwrap();
    svix.event_type()
        .create(EventTypeIn::new("invoice.paid".into(), "paid".into()), None)
        .await
        .unwrap();
    let mut beta = EventTypeIn::new("invoice.beta".into(), "beta only".into());
    beta.feature_flags = Some(["beta".to_owned()].into());
    svix.event_type().create(beta, None).await.unwrap();
    for (flags, sees_beta) in [(None, false), (Some(["beta".to_owned()].into()), true)] {
        let access = svix
            .authentication()
            .app_portal_access(
                app.id.clone(),
                AppPortalAccessIn {
                    feature_flags: flags,
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap();
        let portal = portal_cookie(&access.url).await;
        let html = get(&server, "/portal/event-types", &portal)
            .await
            .text()
            .await
            .unwrap();
        assert!(html.contains("invoice.paid"));
        assert_eq!(html.contains("invoice.beta"), sees_beta);
    }
}
