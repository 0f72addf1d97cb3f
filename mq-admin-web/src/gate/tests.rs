use super::*;

const TOKEN: &str = "s3cret-token";

fn with_cookie(s: &Session) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::COOKIE,
        format!("a=1; {COOKIE}={}; b=2", s.id).parse().unwrap(),
    );
    h
}

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

#[tokio::test(start_paused = true)]
async fn sessions_need_their_csrf_token_and_end() {
    let gate = Gate::new(Some(TOKEN.into()), false);
    assert_eq!(
        gate.sign_in("wrong-token").unwrap_err().0,
        StatusCode::UNAUTHORIZED
    );
    let s = gate.sign_in(TOKEN).unwrap();
    assert_ne!(s.id, s.csrf);
    let h = with_cookie(&s);
    assert!(matches!(gate.may_read(&h), Ok(Caller::Session(_))));
    assert_eq!(gate.may_act(&h, None).unwrap_err().1, "missing CSRF token");
    assert_eq!(
        gate.may_act(&h, Some("nope")).unwrap_err().1,
        "wrong CSRF token"
    );
    assert!(gate.may_act(&h, Some(s.csrf())).is_ok());
    let mut hh = h.clone();
    hh.insert("x-csrf-token", s.csrf().parse().unwrap());
    assert!(gate.may_act(&hh, None).is_ok());
    // Twelve hours later the session is gone.
    tokio::time::advance(SESSION_TTL + Duration::from_secs(1)).await;
    assert!(gate.may_read(&h).is_err());
}

#[tokio::test(start_paused = true)]
async fn signing_in_past_the_bound_ends_the_oldest() {
    let gate = Gate::new(Some(TOKEN.into()), false);
    let first = gate.sign_in(TOKEN).unwrap();
    for _ in 0..MAX_SESSIONS {
        gate.sign_in(TOKEN).unwrap();
    }
    assert!(gate.may_read(&with_cookie(&first)).is_err());
    assert_eq!(gate.sessions().len(), MAX_SESSIONS);
}

#[test]
fn tokens_and_open_reads() {
    let open = Gate::new(None, true);
    assert!(matches!(
        open.may_read(&HeaderMap::new()),
        Ok(Caller::Anonymous)
    ));
    assert_eq!(
        open.may_act(&HeaderMap::new(), None).unwrap_err().0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(open.sign_in(TOKEN).unwrap_err().0, StatusCode::FORBIDDEN);
    let mut wrong = HeaderMap::new();
    wrong.insert(header::AUTHORIZATION, "Bearer wrong".parse().unwrap());
    assert!(
        open.may_read(&wrong).is_err(),
        "a wrong token is refused even with open reads"
    );
    let closed = Gate::new(Some(TOKEN.into()), false);
    let mut right = HeaderMap::new();
    right.insert(
        header::AUTHORIZATION,
        format!("bearer  {TOKEN}").parse().unwrap(),
    );
    assert!(matches!(closed.may_read(&right), Ok(Caller::Token)));
    assert!(closed.may_act(&right, None).is_ok());
    assert_eq!(
        closed.may_act(&HeaderMap::new(), None).unwrap_err().0,
        StatusCode::UNAUTHORIZED
    );
}
