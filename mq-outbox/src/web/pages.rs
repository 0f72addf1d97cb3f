//! The outbox's page, its JSON API and the requeue and purge actions.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::{Form, Json};
use mq_admin_web::html::{self, age_ms, bytes, card, esc, opt_age};
use mq_admin_web::pages::{action_done, action_flash, action_form, json_error, read_page, Action};
use serde::{Deserialize, Serialize};

use super::{App, OutboxSite};
use crate::{AdminError, FailedRow};

/// Most sequences one action request may name.
const MAX_SEQS: usize = 10_000;
/// Bytes of a payload shown in previews.
const PREVIEW: usize = 256;

fn db_error(e: AdminError) -> (StatusCode, String) {
    tracing::warn!(error = %e, "outbox web: database error");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the database did not answer: {e}"),
    )
}

fn error_page(status: StatusCode, msg: &str) -> Response {
    mq_admin_web::pages::error_page::<OutboxSite>(status, msg)
}

/// The counts and the oldest pending age.
#[derive(Debug, Serialize)]
pub(crate) struct StatsBody {
    pending: u64,
    confirmed: u64,
    failed: u64,
    oldest_pending_ms: Option<u64>,
}

/// One failed row for the API.
#[derive(Debug, Serialize)]
pub(crate) struct FailedBody {
    seq: u64,
    id: String,
    topic: String,
    attempts: u32,
    last_error: Option<String>,
    failed_at_ms: u64,
    headers: Vec<(String, String)>,
    payload_len: usize,
    payload_preview: String,
}

fn failed_body(r: &FailedRow) -> FailedBody {
    let cut = r.payload.len().min(PREVIEW);
    FailedBody {
        seq: r.seq,
        id: r.id.to_string(),
        topic: r.topic.clone(),
        attempts: r.attempts,
        last_error: r.last_error.clone(),
        failed_at_ms: r
            .failed_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        headers: r
            .headers
            .iter()
            .map(|(k, v)| (k.to_owned(), String::from_utf8_lossy(v).into_owned()))
            .collect(),
        payload_len: r.payload.len(),
        payload_preview: String::from_utf8_lossy(&r.payload[..cut]).into_owned(),
    }
}

impl App {
    async fn stats_body(&self) -> Result<StatsBody, AdminError> {
        let s = self.outbox.stats().await?;
        let age = self.outbox.oldest_pending_age().await?;
        Ok(StatsBody {
            pending: s.pending,
            confirmed: s.confirmed,
            failed: s.failed,
            oldest_pending_ms: age.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        })
    }
}

pub(crate) async fn api_stats(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err((s, m)) = app.gate.may_read(&headers) {
        return json_error(s, m);
    }
    match app.stats_body().await {
        Ok(b) => Json(b).into_response(),
        Err(e) => {
            let (s, m) = db_error(e);
            json_error(s, m)
        }
    }
}

pub(crate) async fn api_failed(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err((s, m)) = app.gate.may_read(&headers) {
        return json_error(s, m);
    }
    match app.outbox.list_failed().await {
        Ok(rows) => Json(rows.iter().map(failed_body).collect::<Vec<_>>()).into_response(),
        Err(e) => {
            let (s, m) = db_error(e);
            json_error(s, m)
        }
    }
}

#[derive(Debug, Serialize)]
struct Outcome {
    done: Vec<u64>,
    not_failed: Vec<u64>,
}

async fn apply(app: &App, action: Action, seqs: &[u64]) -> Result<Outcome, (StatusCode, String)> {
    if seqs.len() > MAX_SEQS {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("at most {MAX_SEQS} sequences per request"),
        ));
    }
    let done = match action {
        Action::Requeue => app.outbox.requeue(seqs).await,
        Action::Purge => app.outbox.purge_failed(seqs).await,
    }
    .map_err(db_error)?;
    let not_failed = seqs.iter().filter(|s| !done.contains(s)).copied().collect();
    Ok(Outcome { done, not_failed })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Seqs {
    seqs: Vec<u64>,
}

async fn api_act(
    app: &App,
    headers: &HeaderMap,
    body: Result<Json<Seqs>, JsonRejection>,
    action: Action,
) -> Response {
    if let Err((s, m)) = app.gate.may_act(headers, None) {
        return json_error(s, m);
    }
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return json_error(e.status(), e.body_text()),
    };
    match apply(app, action, &body.seqs).await {
        Ok(out) if out.done.is_empty() && !out.not_failed.is_empty() => {
            (StatusCode::NOT_FOUND, Json(out)).into_response()
        }
        Ok(out) => Json(out).into_response(),
        Err((s, m)) => json_error(s, m),
    }
}

pub(crate) async fn api_requeue(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Json<Seqs>, JsonRejection>,
) -> Response {
    api_act(&app, &headers, body, Action::Requeue).await
}

pub(crate) async fn api_purge(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Json<Seqs>, JsonRejection>,
) -> Response {
    api_act(&app, &headers, body, Action::Purge).await
}

pub(crate) async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "no such page or endpoint")
}

pub(crate) async fn index(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let caller = match read_page::<OutboxSite>(&app.gate, &headers, "/") {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let (stats, rows) = match (app.stats_body().await, app.outbox.list_failed().await) {
        (Ok(s), Ok(r)) => (s, r),
        (Err(e), _) | (_, Err(e)) => {
            let (s, m) = db_error(e);
            return error_page(s, &m);
        }
    };
    let mut h = String::from("<h1>Outbox</h1>");
    h.push_str(&action_flash(
        &q,
        "row",
        "skipped",
        " were no longer failed.",
    ));
    h.push_str(r#"<div class="cards">"#);
    card(
        &mut h,
        "Pending",
        &stats.pending.to_string(),
        "pending",
        false,
    );
    card(
        &mut h,
        "Oldest pending",
        &opt_age(stats.oldest_pending_ms),
        "oldest_pending",
        false,
    );
    card(
        &mut h,
        "Confirmed",
        &stats.confirmed.to_string(),
        "confirmed",
        false,
    );
    card(
        &mut h,
        "Failed",
        &stats.failed.to_string(),
        "failed",
        stats.failed > 0,
    );
    h.push_str("</div><h2>Failed rows</h2>");
    if rows.is_empty() {
        h.push_str(r#"<div class="empty">No failed rows. A row fails after the maximum attempts (or a permanent rejection) and waits here for a person.</div>"#);
    } else {
        let can_act = caller.can_act();
        if !can_act {
            h.push_str(r#"<p class="mut">Sign in with the admin token to requeue or purge.</p>"#);
        }
        let dis = if can_act { "" } else { " disabled" };
        let _ = write!(
            h,
            r#"<form method="post" action="/failed/requeue"><input type="hidden" name="csrf" value="{}"><div class="bar"><button type="submit" class="primary" formaction="/failed/requeue"{dis}>Requeue selected</button><button type="submit" class="danger" formaction="/failed/purge"{dis}>Purge selected</button><span class="mut" id="count">{} failed row{}</span></div><div class="scroll"><table class="stack"><thead><tr><th><input type="checkbox" aria-label="select all" onclick="for(const c of document.querySelectorAll('input[name=seq]'))c.checked=this.checked"></th><th class="n">Seq</th><th>Topic</th><th class="n">Attempts</th><th>Last error</th><th>Failed</th><th>Payload</th><th></th></tr></thead><tbody>"#,
            esc(caller.csrf()),
            rows.len(),
            if rows.len() == 1 { "" } else { "s" }
        );
        let now = SystemTime::now();
        for r in &rows {
            let b = failed_body(r);
            let ago = now
                .duration_since(r.failed_at)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            let more = if b.payload_len > b.payload_preview.len() {
                "…"
            } else {
                ""
            };
            let _ = write!(
                h,
                r#"<tr data-seq="{seq}"><td><input type="checkbox" name="seq" value="{seq}" aria-label="select row {seq}"></td><td class="n" data-label="Seq">{seq}<br><code class="mut">{id}</code></td><td data-label="Topic">{topic}</td><td class="n" data-label="Attempts">{att}</td><td data-label="Last error">{err}</td><td data-label="Failed">{ago} ago</td><td data-label="Payload"><div class="preview mono">{pv}{more}</div><span class="mut">{len}</span></td><td class="acts"><button type="submit" name="one" value="{seq}" formaction="/failed/requeue" class="primary"{dis}>Requeue</button> <button type="submit" name="one" value="{seq}" formaction="/failed/purge" class="danger"{dis}>Purge</button></td></tr>"#,
                seq = b.seq,
                id = esc(&b.id),
                topic = esc(&b.topic),
                att = b.attempts,
                err = esc(b
                    .last_error
                    .as_deref()
                    .unwrap_or("lease expired (no error reported)")),
                ago = age_ms(ago),
                pv = esc(&b.payload_preview),
                len = bytes(b.payload_len as u64),
            );
        }
        h.push_str("</tbody></table></div></form>");
    }
    let page = html::page::<OutboxSite>("/", "Failed rows", &(&caller).into(), 5, &h);
    Html(page).into_response()
}

async fn form_act(
    app: &App,
    headers: &HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
    action: Action,
) -> Response {
    let picked = match action_form::<OutboxSite>(&app.gate, headers, form, "seq", "row") {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let mut seqs = Vec::with_capacity(picked.len());
    for p in &picked {
        match p.parse::<u64>() {
            Ok(s) => seqs.push(s),
            Err(_) => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "{:?} is not a row sequence number",
                        p.chars().take(40).collect::<String>()
                    ),
                )
            }
        }
    }
    match apply(app, action, &seqs).await {
        Ok(out) => action_done("/", action, out.done.len(), "skipped", out.not_failed.len()),
        Err((s, m)) => error_page(s, &m),
    }
}

pub(crate) async fn requeue_form(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    form_act(&app, &headers, form, Action::Requeue).await
}

pub(crate) async fn purge_form(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    form_act(&app, &headers, form, Action::Purge).await
}
