//! The shared sign-in pages over real HTTP: a browser signs in with the
//! token, gets a session cookie, reads with it, must send the CSRF token
//! to sign out, and is signed out after. Plain HTTP/1.1 over a TCP stream.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use mq_admin_web::{html, pages, Config, Gate, Server, Site};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Demo;
impl Site for Demo {
    const PRODUCT: &'static str = "demo";
    const NAV: &'static [(&'static str, &'static str)] = &[("/", "Home")];
    const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7000));
    const OPEN_READS_FLAG: &'static str = "--open-reads";
    const TOKEN_HINT: &'static str = "The token given to <code>demo --admin-token</code>.";
}

struct App {
    gate: Gate,
}
impl AsRef<Gate> for App {
    fn as_ref(&self) -> &Gate {
        &self.gate
    }
}

const TOKEN: &str = "demo-admin-token";

async fn home(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let caller = match pages::read_page::<Demo>(&app.gate, &headers, "/") {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let body = format!(r#"<h1>Home</h1><p id="csrf">{}</p>"#, caller.csrf());
    Html(html::page::<Demo>("/", "Home", &(&caller).into(), 0, &body)).into_response()
}

async fn start() -> Server {
    let config = Config::<Demo>::default()
        .listen(([127, 0, 0, 1], 0).into())
        .token(TOKEN);
    let app = Arc::new(App {
        gate: config.gate(),
    });
    let router = axum::Router::new()
        .route("/", axum::routing::get(home))
        .merge(pages::sign_in_routes::<Demo, App>())
        .fallback(|| async { pages::json_error(axum::http::StatusCode::NOT_FOUND, "no such page") })
        .with_state(app);
    Server::start(&config, router, std::future::pending())
        .await
        .unwrap()
}

/// Sends one request and returns the status line's code and the whole
/// answer.
async fn request(addr: SocketAddr, head: &str, body: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{head}\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let code = out[9..12].parse().unwrap();
    (code, out)
}

fn between<'a>(s: &'a str, from: &str, to: &str) -> &'a str {
    let start = s.find(from).unwrap() + from.len();
    let len = s[start..].find(to).unwrap();
    &s[start..start + len]
}

#[tokio::test]
async fn sign_in_read_and_sign_out() {
    let server = start().await;
    let a = server.addr();

    let (code, r) = request(a, "GET / HTTP/1.1", "").await;
    assert_eq!(code, 303, "{r}");
    assert!(r.contains("location: /login?next=%2F"), "{r}");

    let (code, r) = request(a, "GET /login?next=//evil.example HTTP/1.1", "").await;
    assert_eq!(code, 200);
    assert!(
        r.contains(r#"name="next" value="/""#),
        "no open redirect: {r}"
    );
    assert!(r.contains("demo --admin-token"));

    let (code, r) = request(a, "POST /login HTTP/1.1", "token=wrong-token&next=%2F").await;
    assert_eq!(code, 401);
    assert!(r.contains("wrong admin token"));

    let (code, r) = request(
        a,
        "POST /login HTTP/1.1",
        &format!("token={TOKEN}&next=%2F"),
    )
    .await;
    assert_eq!(code, 303, "{r}");
    let cookie = between(&r, "set-cookie: ", ";").to_owned();
    assert!(cookie.starts_with("mq_admin_session="));
    assert!(!cookie.contains(TOKEN), "the cookie is a session id");

    let (code, r) = request(a, &format!("GET / HTTP/1.1\r\nCookie: {cookie}"), "").await;
    assert_eq!(code, 200, "{r}");
    assert!(r.contains("signed in"));
    let csrf = between(&r, r#"<p id="csrf">"#, "</p>").to_owned();
    assert_eq!(csrf.len(), 32);

    let (code, r) = request(
        a,
        &format!("POST /logout HTTP/1.1\r\nCookie: {cookie}"),
        "csrf=wrong",
    )
    .await;
    assert_eq!(code, 403, "{r}");
    assert!(r.contains("wrong CSRF token"));

    let (code, r) = request(
        a,
        &format!("POST /logout HTTP/1.1\r\nCookie: {cookie}"),
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(code, 303, "{r}");
    assert!(r.contains("Max-Age=0"));
    let (code, _) = request(a, &format!("GET / HTTP/1.1\r\nCookie: {cookie}"), "").await;
    assert_eq!(code, 303, "signed out");

    let (code, r) = request(a, "GET /nope HTTP/1.1", "").await;
    assert_eq!(code, 404);
    assert!(r.contains(r#"{"error":"no such page"}"#));

    server.shutdown().await;
    assert!(tokio::net::TcpStream::connect(a).await.is_err());
}

#[tokio::test]
async fn stops_when_until_completes() {
    let config = Config::<Demo>::default()
        .listen(([127, 0, 0, 1], 0).into())
        .open_reads(true);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = Server::start(&config, axum::Router::new(), async move {
        let _ = rx.await;
    })
    .await
    .unwrap();
    let stopping = server.stopping();
    assert!(!stopping.is_cancelled());
    tx.send(()).unwrap();
    stopping.cancelled().await;
    server.shutdown().await;
    assert!(tokio::net::TcpStream::connect(server.addr()).await.is_err());
}

#[tokio::test]
async fn refuses_a_bad_config_and_a_taken_address() {
    let bad = Config::<Demo>::default();
    let e = Server::start(&bad, axum::Router::new(), std::future::pending())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("--open-reads"), "{e}");
    let first = start().await;
    let taken = Config::<Demo>::default().listen(first.addr()).token(TOKEN);
    let e = Server::start(&taken, axum::Router::new(), std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(e, mq_admin_web::StartError::Bind { .. }), "{e}");
}
