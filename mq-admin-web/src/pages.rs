//! The pages and handlers every site shares: the error page, reading a
//! page (or being sent to sign in), parsing an action form, JSON errors,
//! and signing in and out.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};

use crate::html::{self, esc, pct, Viewer};
use crate::{clear_cookie, set_cookie, Caller, Gate, Site};

/// A JSON error body, `{"error": msg}`, with `status`.
///
/// # Examples
///
/// ```
/// use axum::http::StatusCode;
/// let r = mq_admin_web::pages::json_error(StatusCode::NOT_FOUND, "no such page or endpoint");
/// assert_eq!(r.status(), StatusCode::NOT_FOUND);
/// ```
pub fn json_error(status: StatusCode, msg: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": msg.into() });
    (status, Json(body)).into_response()
}

/// An HTML error page of site `S`: the status, `msg`, and a link back to
/// the start page.
///
/// # Examples
///
/// ```
/// # use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
/// # struct Demo;
/// # impl mq_admin_web::Site for Demo {
/// #     const PRODUCT: &'static str = "demo";
/// #     const NAV: &'static [(&'static str, &'static str)] = &[("/", "Home")];
/// #     const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7000));
/// #     const OPEN_READS_FLAG: &'static str = "--open-reads";
/// #     const TOKEN_HINT: &'static str = "";
/// # }
/// use axum::http::StatusCode;
/// let r = mq_admin_web::pages::error_page::<Demo>(StatusCode::BAD_REQUEST, "Select at least one row.");
/// assert_eq!(r.status(), StatusCode::BAD_REQUEST);
/// ```
pub fn error_page<S: Site>(status: StatusCode, msg: &str) -> Response {
    let (href, label) = S::NAV.first().copied().unwrap_or(("/", "the start page"));
    let body = format!(
        r#"<h1>{}</h1><div class="flash err">{}</div><p><a href="{}">Back to {}</a></p>"#,
        status.as_u16(),
        esc(msg),
        esc(href),
        esc(&label.to_lowercase())
    );
    let page = html::page::<S>("", "Error", &Viewer::Anonymous, 0, &body);
    (status, Html(page)).into_response()
}

/// Who is reading page `here` of site `S`, or the response that replaces
/// the page: a redirect to sign in (no token, no session, reads not
/// open), or an error page (a wrong token).
///
/// # Errors
///
/// The response to send instead of the page.
///
/// # Examples
///
/// ```
/// # use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
/// # struct Demo;
/// # impl mq_admin_web::Site for Demo {
/// #     const PRODUCT: &'static str = "demo";
/// #     const NAV: &'static [(&'static str, &'static str)] = &[("/", "Home")];
/// #     const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7000));
/// #     const OPEN_READS_FLAG: &'static str = "--open-reads";
/// #     const TOKEN_HINT: &'static str = "";
/// # }
/// let gate = mq_admin_web::Gate::new(Some("s3cret-token".into()), false);
/// let r = mq_admin_web::pages::read_page::<Demo>(&gate, &Default::default(), "/topics/a b").unwrap_err();
/// assert_eq!(r.headers()["location"], "/login?next=%2Ftopics%2Fa%20b");
/// ```
pub fn read_page<S: Site>(
    gate: &Gate,
    headers: &HeaderMap,
    here: &str,
) -> Result<Caller, Box<Response>> {
    match gate.may_read(headers) {
        Ok(c) => Ok(c),
        Err((StatusCode::UNAUTHORIZED, _)) if gate.caller(headers).is_ok() => Err(Box::new(
            Redirect::to(&format!("/login?next={}", pct(here))).into_response(),
        )),
        Err((status, msg)) => Err(Box::new(error_page::<S>(status, &msg))),
    }
}

/// The items an action form of site `S` names, once the caller may act:
/// the form's `csrf` field is checked, then the clicked row's `one` button
/// wins over the ticked `field` checkboxes (repeated).
///
/// # Errors
///
/// The error page to send: a malformed form, a refusal, or no item
/// ("Select at least one `what`.").
///
/// # Examples
///
/// ```
/// # use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
/// # struct Demo;
/// # impl mq_admin_web::Site for Demo {
/// #     const PRODUCT: &'static str = "demo";
/// #     const NAV: &'static [(&'static str, &'static str)] = &[("/", "Home")];
/// #     const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7000));
/// #     const OPEN_READS_FLAG: &'static str = "--open-reads";
/// #     const TOKEN_HINT: &'static str = "";
/// # }
/// use axum::http::{header, HeaderMap};
/// use axum::Form;
/// let gate = mq_admin_web::Gate::new(Some("s3cret-token".into()), false);
/// let mut h = HeaderMap::new();
/// h.insert(header::AUTHORIZATION, "Bearer s3cret-token".parse().unwrap());
/// let fields = vec![("seq".to_owned(), "1".to_owned()), ("seq".to_owned(), "2".to_owned())];
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let picked = mq_admin_web::pages::action_form::<Demo>(&gate, &h, Ok(Form(fields)), "seq", "row").unwrap();
/// assert_eq!(picked, ["1", "2"]);
/// # });
/// ```
pub fn action_form<S: Site>(
    gate: &Gate,
    headers: &HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
    field: &str,
    what: &str,
) -> Result<Vec<String>, Box<Response>> {
    let Form(fields) = form.map_err(|e| Box::new(error_page::<S>(e.status(), &e.body_text())))?;
    let csrf = fields
        .iter()
        .find(|(k, _)| k == "csrf")
        .map_or("", |(_, v)| v.as_str());
    gate.may_act(headers, Some(csrf))
        .map_err(|(status, msg)| Box::new(error_page::<S>(status, &msg)))?;
    let picked: Vec<String> = match fields.iter().find(|(k, _)| k == "one") {
        Some((_, one)) => vec![one.clone()],
        None => fields
            .iter()
            .filter(|(k, _)| k == field)
            .map(|(_, v)| v.clone())
            .collect(),
    };
    if picked.is_empty() {
        return Err(Box::new(error_page::<S>(
            StatusCode::BAD_REQUEST,
            &format!("Select at least one {what}."),
        )));
    }
    Ok(picked)
}

/// What an action does to the items it names.
///
/// # Examples
///
/// ```
/// assert_eq!(mq_admin_web::pages::Action::Purge.done(), "purged");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send the items again.
    Requeue,
    /// Delete the items.
    Purge,
}

impl Action {
    /// The past tense, lowercase: `"requeued"` or `"purged"`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(mq_admin_web::pages::Action::Requeue.done(), "requeued");
    /// ```
    pub fn done(self) -> &'static str {
        match self {
            Action::Requeue => "requeued",
            Action::Purge => "purged",
        }
    }
}

/// The answer to a form action: back to page `path`, with what was done
/// in the query (`did`, `n`, and `left_key` for the items that were not)
/// for [`action_flash`] to show.
///
/// # Examples
///
/// ```
/// use mq_admin_web::pages::{action_done, Action};
/// let r = action_done("/dead-letters", Action::Requeue, 1, "failed", 0);
/// assert_eq!(r.headers()["location"], "/dead-letters?did=requeued&n=1&failed=0");
/// ```
pub fn action_done(
    path: &str,
    action: Action,
    done: usize,
    left_key: &str,
    left: usize,
) -> Response {
    Redirect::to(&format!(
        "{path}?did={}&n={done}&{}={left}",
        action.done(),
        pct(left_key)
    ))
    .into_response()
}

/// The flash message after [`action_done`]: "Requeued 3 rows." (`noun`
/// pluralised with an `s`), then the count under `left_key` and
/// `left_note` when some were not done; empty without an action in `q`.
///
/// # Examples
///
/// ```
/// let q = [("did", "purged"), ("n", "2"), ("skipped", "1")]
///     .map(|(k, v)| (k.to_owned(), v.to_owned()))
///     .into();
/// let h = mq_admin_web::pages::action_flash(&q, "row", "skipped", " were no longer failed.");
/// assert_eq!(h, r#"<div class="flash" role="status">Purged 2 rows. 1 were no longer failed.</div>"#);
/// ```
pub fn action_flash(
    q: &HashMap<String, String>,
    noun: &str,
    left_key: &str,
    left_note: &str,
) -> String {
    let (Some(did), Some(n)) = (q.get("did"), q.get("n")) else {
        return String::new();
    };
    let n: usize = n.parse().unwrap_or(0);
    let verb = if did == Action::Purge.done() {
        "Purged"
    } else {
        "Requeued"
    };
    let plural = if n == 1 { "" } else { "s" };
    let mut h = format!(
        r#"<div class="flash" role="status">{verb} {n} {}{plural}."#,
        esc(noun)
    );
    if let Some(left) = q
        .get(left_key)
        .and_then(|f| f.parse::<usize>().ok())
        .filter(|f| *f > 0)
    {
        let _ = write!(h, " {left}{}", esc(left_note));
    }
    h.push_str("</div>");
    h
}

/// `GET /login`, `POST /login` and `POST /logout` for site `S`, on the
/// state `Arc<A>` the site's own routes use (`A` hands out its [`Gate`]).
/// Merge them into the site's router.
///
/// # Examples
///
/// ```
/// # use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
/// # struct Demo;
/// # impl mq_admin_web::Site for Demo {
/// #     const PRODUCT: &'static str = "demo";
/// #     const NAV: &'static [(&'static str, &'static str)] = &[("/", "Home")];
/// #     const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7000));
/// #     const OPEN_READS_FLAG: &'static str = "--open-reads";
/// #     const TOKEN_HINT: &'static str = "";
/// # }
/// use std::sync::Arc;
/// use mq_admin_web::Gate;
/// struct App { gate: Gate }
/// impl AsRef<Gate> for App {
///     fn as_ref(&self) -> &Gate { &self.gate }
/// }
/// let app = Arc::new(App { gate: Gate::new(Some("s3cret-token".into()), false) });
/// let router: axum::Router = mq_admin_web::pages::sign_in_routes::<Demo, App>().with_state(app);
/// ```
pub fn sign_in_routes<S, A>() -> Router<Arc<A>>
where
    S: Site,
    A: AsRef<Gate> + Send + Sync + 'static,
{
    Router::new()
        .route("/login", get(login_form::<S>).post(login::<S, A>))
        .route("/logout", post(logout::<S, A>))
}

/// Only local paths: never an open redirect.
fn safe_next(next: Option<&String>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.clone(),
        _ => "/".to_owned(),
    }
}

fn login_page<S: Site>(status: StatusCode, next: &str, msg: Option<&str>) -> Response {
    let mut h = String::from("<h1>Sign in</h1>");
    if let Some(m) = msg {
        let _ = write!(h, r#"<div class="flash err">{}</div>"#, esc(m));
    }
    let _ = write!(
        h,
        r#"<form method="post" action="/login"><input type="hidden" name="next" value="{}"><p><label for="token">Admin token</label></p><div class="bar"><input type="password" id="token" name="token" autocomplete="current-password" required><button type="submit" class="primary">Sign in</button></div></form><p class="mut">{} Signing in sets a session cookie for this browser; actions also need the session's CSRF token, which every form carries.</p>"#,
        esc(next),
        S::TOKEN_HINT
    );
    let page = html::page::<S>("/login", "Sign in", &Viewer::Nobody, 0, &h);
    (status, Html(page)).into_response()
}

async fn login_form<S: Site>(Query(q): Query<HashMap<String, String>>) -> Response {
    login_page::<S>(StatusCode::OK, &safe_next(q.get("next")), None)
}

async fn login<S: Site, A: AsRef<Gate>>(
    State(app): State<Arc<A>>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let Form(f) = match form {
        Ok(f) => f,
        Err(e) => return error_page::<S>(e.status(), &e.body_text()),
    };
    let next = safe_next(f.get("next"));
    let token = f.get("token").map_or("", |s| s.as_str());
    match (*app).as_ref().sign_in(token) {
        Ok(s) => {
            tracing::info!(site = S::PRODUCT, "a browser signed in");
            ([(header::SET_COOKIE, set_cookie(&s))], Redirect::to(&next)).into_response()
        }
        Err((status, msg)) => {
            tracing::warn!(site = S::PRODUCT, "a sign-in was refused");
            login_page::<S>(status, &next, Some(&msg))
        }
    }
}

async fn logout<S: Site, A: AsRef<Gate>>(
    State(app): State<Arc<A>>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let gate = (*app).as_ref();
    let csrf = form.ok().and_then(|Form(f)| f.get("csrf").cloned());
    if let Err((status, msg)) = gate.may_act(&headers, Some(csrf.as_deref().unwrap_or(""))) {
        return error_page::<S>(status, &msg);
    }
    gate.sign_out(&headers);
    ([(header::SET_COOKIE, clear_cookie())], Redirect::to("/")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_a_local_path() {
        let n = |s: &str| safe_next(Some(&s.to_owned()));
        assert_eq!(n("/dead-letters"), "/dead-letters");
        assert_eq!(n("//evil.example"), "/");
        assert_eq!(n("https://evil.example"), "/");
        assert_eq!(n("/\\evil.example"), "/");
        assert_eq!(safe_next(None), "/");
    }
}
