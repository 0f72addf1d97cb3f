//! Who may read and who may act: the admin token (a bearer header for API
//! clients), browser sessions started with the token, each session's CSRF
//! token, and open reads.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::{header, HeaderMap, StatusCode};
use tokio::time::Instant;

/// The session cookie's name.
pub const COOKIE: &str = "mq_admin_session";
/// Sessions kept at once; signing in past it ends the oldest.
const MAX_SESSIONS: usize = 256;
/// A session ends this long after it started.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// A refusal: the status to answer with and a message for the caller.
pub type Refusal = (StatusCode, String);

/// One signed-in browser: its session id (the cookie) and its CSRF token
/// (every form's hidden field).
///
/// # Examples
///
/// ```
/// let gate = mq_admin_web::Gate::new(Some("s3cret-token".into()), false);
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let s = gate.sign_in("s3cret-token").unwrap();
/// assert_eq!(s.csrf().len(), 32);
/// # });
/// ```
#[derive(Clone)]
pub struct Session {
    id: String,
    csrf: String,
    started: Instant,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The CSRF token every action of this session must carry.
    ///
    /// # Examples
    ///
    /// ```
    /// let gate = mq_admin_web::Gate::new(Some("s3cret-token".into()), false);
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let s = gate.sign_in("s3cret-token").unwrap();
    /// assert!(s.csrf().chars().all(|c| c.is_ascii_hexdigit()));
    /// # });
    /// ```
    pub fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// What a request brings.
///
/// # Examples
///
/// ```
/// let gate = mq_admin_web::Gate::new(Some("s3cret-token".into()), true);
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let c = gate.caller(&Default::default()).unwrap();
/// assert!(matches!(c, mq_admin_web::Caller::Anonymous));
/// assert_eq!(c.csrf(), "");
/// # });
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Caller {
    /// The right bearer token.
    Token,
    /// A live session.
    Session(Session),
    /// Neither.
    Anonymous,
}

impl Caller {
    /// The session's CSRF token, or `""` for a caller without a session
    /// (for a form's hidden field).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(mq_admin_web::Caller::Token.csrf(), "");
    /// ```
    pub fn csrf(&self) -> &str {
        match self {
            Caller::Session(s) => s.csrf(),
            _ => "",
        }
    }

    /// Whether the caller may act (the token or a session), for showing
    /// action buttons enabled; the action itself is checked again by
    /// [`Gate::may_act`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(mq_admin_web::Caller::Token.can_act());
    /// assert!(!mq_admin_web::Caller::Anonymous.can_act());
    /// ```
    pub fn can_act(&self) -> bool {
        !matches!(self, Caller::Anonymous)
    }
}

/// The gate a site's handlers share: the admin token, whether reads are
/// open, and the live sessions (oldest first, at most 256, each for 12
/// hours).
///
/// # Examples
///
/// ```
/// use axum::http::{header, HeaderMap, StatusCode};
/// let gate = mq_admin_web::Gate::new(Some("s3cret-token".into()), false);
/// let mut h = HeaderMap::new();
/// assert_eq!(gate.may_read(&h).unwrap_err().0, StatusCode::UNAUTHORIZED);
/// h.insert(header::AUTHORIZATION, "Bearer s3cret-token".parse().unwrap());
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// assert!(gate.may_act(&h, None).is_ok());
/// # });
/// ```
#[derive(Debug)]
pub struct Gate {
    token: Option<String>,
    open_reads: bool,
    sessions: Mutex<VecDeque<Session>>,
}

impl Gate {
    /// A gate with `token` (none: no actions and no sign-in) and
    /// `open_reads`. [`Config::gate`](crate::Config::gate) makes one from a
    /// checked configuration.
    ///
    /// # Examples
    ///
    /// ```
    /// let gate = mq_admin_web::Gate::new(None, true);
    /// assert!(gate.may_read(&Default::default()).is_ok());
    /// ```
    pub fn new(token: Option<String>, open_reads: bool) -> Gate {
        Gate {
            token,
            open_reads,
            sessions: Mutex::new(VecDeque::new()),
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, VecDeque<Session>> {
        let mut all = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        while all
            .front()
            .is_some_and(|s| now.saturating_duration_since(s.started) > SESSION_TTL)
        {
            all.pop_front();
        }
        all
    }

    /// Starts a session if `token` is the admin token.
    ///
    /// # Errors
    ///
    /// 403 when no token is configured, 401 for a wrong token.
    ///
    /// # Examples
    ///
    /// ```
    /// let gate = mq_admin_web::Gate::new(Some("s3cret-token".into()), false);
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// assert!(gate.sign_in("wrong-token").is_err());
    /// assert!(gate.sign_in("s3cret-token").is_ok());
    /// # });
    /// ```
    pub fn sign_in(&self, token: &str) -> Result<Session, Refusal> {
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
        let mut all = self.sessions();
        if all.len() >= MAX_SESSIONS {
            all.pop_front();
        }
        all.push_back(s.clone());
        Ok(s)
    }

    /// Ends the session named by the request's cookie, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use axum::http::{header, HeaderMap};
    /// let gate = mq_admin_web::Gate::new(Some("s3cret-token".into()), false);
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let s = gate.sign_in("s3cret-token").unwrap();
    /// let mut h = HeaderMap::new();
    /// let cookie = mq_admin_web::set_cookie(&s);
    /// h.insert(header::COOKIE, cookie.split(';').next().unwrap().parse().unwrap());
    /// assert!(gate.may_read(&h).is_ok());
    /// gate.sign_out(&h);
    /// assert!(gate.may_read(&h).is_err());
    /// # });
    /// ```
    pub fn sign_out(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers) {
            self.sessions().retain(|s| !same(&s.id, id));
        }
    }

    /// Who is calling.
    ///
    /// # Errors
    ///
    /// A wrong bearer token is refused outright (401).
    ///
    /// # Examples
    ///
    /// ```
    /// use axum::http::{header, HeaderMap};
    /// let gate = mq_admin_web::Gate::new(Some("s3cret-token".into()), false);
    /// let mut h = HeaderMap::new();
    /// h.insert(header::AUTHORIZATION, "Bearer wrong-token".parse().unwrap());
    /// assert!(gate.caller(&h).is_err());
    /// ```
    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, Refusal> {
        if let Some(given) = bearer(headers) {
            return match &self.token {
                Some(want) if same(given, want) => Ok(Caller::Token),
                _ => Err((StatusCode::UNAUTHORIZED, "wrong admin token".into())),
            };
        }
        if let Some(id) = cookie(headers) {
            if let Some(s) = self.sessions().iter().find(|s| same(&s.id, id)) {
                return Ok(Caller::Session(s.clone()));
            }
        }
        Ok(Caller::Anonymous)
    }

    /// Reads: open reads, the token or a session.
    ///
    /// # Errors
    ///
    /// 401 for a wrong token, or for no token and no session when reads
    /// are not open.
    ///
    /// # Examples
    ///
    /// ```
    /// let gate = mq_admin_web::Gate::new(Some("s3cret-token".into()), false);
    /// assert!(gate.may_read(&Default::default()).is_err());
    /// ```
    pub fn may_read(&self, headers: &HeaderMap) -> Result<Caller, Refusal> {
        match self.caller(headers)? {
            Caller::Anonymous if !self.open_reads => Err((
                StatusCode::UNAUTHORIZED,
                "the admin token is required: send Authorization: Bearer TOKEN, or sign in at /login"
                    .into(),
            )),
            c => Ok(c),
        }
    }

    /// Actions: the bearer token, or a session plus its CSRF token (`csrf`
    /// from the form, else the `X-CSRF-Token` header).
    ///
    /// # Errors
    ///
    /// 403 without a configured token or with a wrong or missing CSRF
    /// token; 401 without the token or a session.
    ///
    /// # Examples
    ///
    /// ```
    /// let gate = mq_admin_web::Gate::new(None, true);
    /// assert_eq!(gate.may_act(&Default::default(), None).unwrap_err().0, 403);
    /// ```
    pub fn may_act(&self, headers: &HeaderMap, csrf: Option<&str>) -> Result<(), Refusal> {
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

/// The `Set-Cookie` value starting session `s`.
///
/// # Examples
///
/// ```
/// let gate = mq_admin_web::Gate::new(Some("s3cret-token".into()), false);
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let c = mq_admin_web::set_cookie(&gate.sign_in("s3cret-token").unwrap());
/// assert!(c.starts_with("mq_admin_session=") && c.contains("HttpOnly; SameSite=Strict"));
/// # });
/// ```
pub fn set_cookie(s: &Session) -> String {
    format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        s.id,
        SESSION_TTL.as_secs()
    )
}

/// The `Set-Cookie` value ending a session.
///
/// # Examples
///
/// ```
/// assert!(mq_admin_web::clear_cookie().ends_with("Max-Age=0"));
/// ```
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// 128 random bits as hex, from the OS-seeded CSPRNG.
fn random_hex() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Equality in time independent of where the inputs differ.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
mod tests;
