//! The JSON API (documented in `mq-broker/ADMIN.md`) and the dead-letter
//! actions the pages share.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use mq_admin_web::pages::Action;
use mq_admin_web::Refusal;

use super::rates::RateView;
use super::App;
use crate::{Broker, DeadLetterError, Overview};

/// Most keys one action request may name.
pub(crate) const MAX_KEYS: usize = 10_000;

pub(crate) use mq_admin_web::pages::json_error as error;

fn refused((status, msg): Refusal) -> Response {
    error(status, msg)
}

fn gone() -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, "the broker has stopped")
}

/// The overview plus rates.
#[derive(Serialize)]
pub(crate) struct OverviewBody {
    #[serde(flatten)]
    pub(crate) overview: Overview,
    pub(crate) rates: RateView,
}

impl App {
    /// The overview with its rates.
    pub(crate) fn overview_body(&self, broker: &Broker) -> OverviewBody {
        let overview = broker.overview();
        let rates = self
            .rates
            .lock()
            .map(|r| r.view(Instant::now(), &overview.stats))
            .unwrap_or_default();
        OverviewBody { overview, rates }
    }
}

/// Runs `f` with the broker if the caller may read.
fn read<T: Serialize>(app: &App, headers: &HeaderMap, f: impl FnOnce(&Broker) -> T) -> Response {
    if let Err(r) = app.gate.may_read(headers) {
        return refused(r);
    }
    match app.broker() {
        Some(b) => Json(f(&b)).into_response(),
        None => gone(),
    }
}

pub(crate) async fn overview(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    read(&app, &headers, |b| app.overview_body(b))
}

pub(crate) async fn topic(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    if let Err(r) = app.gate.may_read(&headers) {
        return refused(r);
    }
    let Some(b) = app.broker() else {
        return gone();
    };
    match b.topic(&name) {
        Some(t) => Json(t).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no topic {name:?}: it has no stored messages and no groups"),
        ),
    }
}

pub(crate) async fn dead_letters(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    read(&app, &headers, |b| b.dead_letters())
}

pub(crate) async fn producers(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    read(&app, &headers, |b| b.producers())
}

pub(crate) async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such page or endpoint")
}

/// What an action did, key by key.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Outcome {
    pub(crate) done: Vec<String>,
    pub(crate) failed: Vec<Failure>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Failure {
    pub(crate) key: String,
    pub(crate) error: String,
    #[serde(skip)]
    status: StatusCode,
}

impl Outcome {
    /// 200 if anything was done (or nothing was asked), else the first
    /// failure's status.
    pub(crate) fn status(&self) -> StatusCode {
        match (self.done.is_empty(), self.failed.first()) {
            (true, Some(f)) => f.status,
            _ => StatusCode::OK,
        }
    }
}

/// Checks every key, then applies `action` to each.
pub(crate) fn apply(broker: &Broker, action: Action, keys: &[String]) -> Result<Outcome, Refusal> {
    if keys.len() > MAX_KEYS {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("at most {MAX_KEYS} keys per request"),
        ));
    }
    for k in keys {
        crate::views::parse_key(k).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    }
    let mut out = Outcome::default();
    for k in keys {
        let r = match action {
            Action::Requeue => broker.requeue_dead(k),
            Action::Purge => broker.purge_dead(k),
        };
        match r {
            Ok(()) => out.done.push(k.clone()),
            Err(e) => {
                let status = match e {
                    DeadLetterError::BadKey(_) => StatusCode::BAD_REQUEST,
                    DeadLetterError::NotFound(_) => StatusCode::NOT_FOUND,
                    DeadLetterError::StoreFull { .. } => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::CONFLICT,
                };
                out.failed.push(Failure {
                    key: k.clone(),
                    error: e.to_string(),
                    status,
                });
            }
        }
    }
    let what = action.done();
    tracing::info!(
        done = out.done.len(),
        failed = out.failed.len(),
        "admin: dead letters {what}"
    );
    Ok(out)
}

/// The body of the action endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Keys {
    keys: Vec<String>,
}

async fn act(
    app: &App,
    headers: &HeaderMap,
    body: Result<Json<Keys>, JsonRejection>,
    action: Action,
) -> Response {
    if let Err(r) = app.gate.may_act(headers, None) {
        return refused(r);
    }
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return error(e.status(), e.body_text()),
    };
    let Some(b) = app.broker() else {
        return gone();
    };
    match apply(&b, action, &body.keys) {
        Ok(out) => (out.status(), Json(out)).into_response(),
        Err(r) => refused(r),
    }
}

pub(crate) async fn requeue(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Json<Keys>, JsonRejection>,
) -> Response {
    act(&app, &headers, body, Action::Requeue).await
}

pub(crate) async fn purge(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Json<Keys>, JsonRejection>,
) -> Response {
    act(&app, &headers, body, Action::Purge).await
}
