//! Who may read and who may act: the admin token (a bearer header for API
//! clients), browser sessions started with the token, and each session's
//! CSRF token.

use std::collections::VecDeque;
use std::time::Duration;

use axum::http::{header, HeaderMap, StatusCode};
use tokio::time::Instant;

use super::App;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "mq_admin_session";
/// Sessions kept at once; signing in past it ends the oldest.
const MAX_SESSIONS: usize = 256;
/// A session ends this long after it started.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// One signed-in browser.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    id: String,
    pub(crate) csrf: String,
    started: Instant,
}

/// Live sessions, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    list: VecDeque<Session>,
}

impl Sessions {
    fn expire(&mut self, now: Instant) {
        while self
            .list
            .front()
            .is_some_and(|s| now.saturating_duration_since(s.started) > SESSION_TTL)
        {
            self.list.pop_front();
        }
    }
}

/// 128 random bits as hex, from the OS-seeded CSPRNG.
fn random_hex() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Equality in time independent of where the inputs differ.
pub(crate) fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A refusal: status and message.
pub(crate) type Refusal = (StatusCode, String);

/// What a request brings.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    /// The right bearer token.
    Token,
    /// A live session.
    Session(Session),
    /// Neither.
    Anonymous,
}

impl App {
    /// Starts a session if `token` is the admin token.
    pub(crate) fn sign_in(&self, token: &str) -> Result<Session, Refusal> {
        let Some(want) = &self.token else {
            return Err((
                StatusCode::FORBIDDEN,
                "no admin token is configured: signing in and actions are disabled".into(),
            ));
        };
        if !same(token, want) {
            return Err((StatusCode::UNAUTHORIZED, "wrong admin token".into()));
        }
        let s = Session {
            id: random_hex(),
            csrf: random_hex(),
            started: Instant::now(),
        };
        let mut all = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        all.expire(s.started);
        if all.list.len() >= MAX_SESSIONS {
            all.list.pop_front();
        }
        all.list.push_back(s.clone());
        Ok(s)
    }

    /// Ends the session named by the request's cookie, if any.
    pub(crate) fn sign_out(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers) {
            let mut all = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            all.list.retain(|s| !same(&s.id, id));
        }
    }

    /// Who is calling. A wrong bearer token is refused outright.
    pub(crate) fn caller(&self, headers: &HeaderMap) -> Result<Caller, Refusal> {
        if let Some(given) = bearer(headers) {
            return match &self.token {
                Some(want) if same(given, want) => Ok(Caller::Token),
                _ => Err((StatusCode::UNAUTHORIZED, "wrong admin token".into())),
            };
        }
        if let Some(id) = cookie(headers) {
            let mut all = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            all.expire(Instant::now());
            if let Some(s) = all.list.iter().find(|s| same(&s.id, id)) {
                return Ok(Caller::Session(s.clone()));
            }
        }
        Ok(Caller::Anonymous)
    }

    /// Reads: open reads, the token or a session.
    pub(crate) fn may_read(&self, headers: &HeaderMap) -> Result<Caller, Refusal> {
        let c = self.caller(headers)?;
        match c {
            Caller::Anonymous if !self.open_reads => Err((
                StatusCode::UNAUTHORIZED,
                "the admin token is required: send Authorization: Bearer TOKEN, or sign in at /login"
                    .into(),
            )),
            c => Ok(c),
        }
    }

    /// Actions: the bearer token, or a session plus its CSRF token (from
    /// the form or the `X-CSRF-Token` header).
    pub(crate) fn may_act(&self, headers: &HeaderMap, csrf: Option<&str>) -> Result<(), Refusal> {
        if self.token.is_none() {
            return Err((
                StatusCode::FORBIDDEN,
                "no admin token is configured: actions are disabled".into(),
            ));
        }
        match self.caller(headers)? {
            Caller::Token => Ok(()),
            Caller::Session(s) => {
                let given = csrf.or_else(|| {
                    headers
                        .get("x-csrf-token")
                        .and_then(|v| v.to_str().ok())
                });
                match given {
                    Some(g) if same(g, &s.csrf) => Ok(()),
                    Some(_) => Err((StatusCode::FORBIDDEN, "wrong CSRF token".into())),
                    None => Err((StatusCode::FORBIDDEN, "missing CSRF token".into())),
                }
            }
            Caller::Anonymous => Err((
                StatusCode::UNAUTHORIZED,
                "the admin token is required for actions: send Authorization: Bearer TOKEN, or sign in at /login"
                    .into(),
            )),
        }
    }
}

/// The `Set-Cookie` value starting `s`.
pub(crate) fn set_cookie(s: &Session) -> String {
    format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        s.id,
        SESSION_TTL.as_secs()
    )
}

/// The `Set-Cookie` value ending a session.
pub(crate) fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_compares_whole_strings() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
        assert!(same("", ""));
    }

    #[test]
    fn cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; mq_admin_session=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h), Some("xyz"));
    }
}
