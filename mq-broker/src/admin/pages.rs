//! The HTML pages: overview, a topic, dead letters (with requeue and
//! purge), producers, and signing in.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use mq_admin_web::html::{self, bytes, card, esc, opt_age, pct, rate};
use mq_admin_web::pages::{action_done, action_flash, action_form, read_page, Action};
use mq_admin_web::Caller;

use super::api::apply;
use super::{App, BrokerSite};
use crate::Broker;

fn error_page(status: StatusCode, msg: &str) -> Response {
    mq_admin_web::pages::error_page::<BrokerSite>(status, msg)
}

/// The caller and broker for a page, or the response that replaces it: a
/// redirect to sign in, an error page, or "stopped".
fn enter(app: &App, headers: &HeaderMap, here: &str) -> Result<(Caller, Broker), Box<Response>> {
    let caller = read_page::<BrokerSite>(&app.gate, headers, here)?;
    let broker = app.broker().ok_or_else(|| {
        Box::new(error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "the broker has stopped",
        ))
    })?;
    Ok((caller, broker))
}

pub(crate) async fn overview(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let (caller, b) = match enter(&app, &headers, "/") {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let body = app.overview_body(&b);
    let (o, r) = (&body.overview, &body.rates);
    let s = &o.stats;
    let mut h = String::from("<h1>Overview</h1><div class=\"cards\">");
    card(
        &mut h,
        "Uptime",
        &html::age_ms(o.uptime_secs * 1000),
        "uptime",
        false,
    );
    card(
        &mut h,
        "Producers",
        &o.senders.to_string(),
        "senders",
        false,
    );
    card(
        &mut h,
        "Consumers",
        &o.receivers.to_string(),
        "receivers",
        false,
    );
    card(
        &mut h,
        "Topics",
        &o.topics.len().to_string(),
        "topics",
        false,
    );
    card(
        &mut h,
        "Stored",
        &s.stored_messages.to_string(),
        "stored",
        false,
    );
    card(
        &mut h,
        "Stored bytes",
        &bytes(s.stored_bytes),
        "stored_bytes",
        false,
    );
    card(
        &mut h,
        "Publish",
        &rate(r.publish_per_sec),
        "publish_rate",
        false,
    );
    card(
        &mut h,
        "Deliver",
        &rate(r.deliver_per_sec),
        "deliver_rate",
        false,
    );
    card(&mut h, "Ack", &rate(r.ack_per_sec), "ack_rate", false);
    card(
        &mut h,
        "Dead letters",
        &o.dead_letters.to_string(),
        "dead_letters",
        o.dead_letters > 0,
    );
    h.push_str("</div><h2>Storage</h2><div class=\"cards\">");
    card(
        &mut h,
        "Backend",
        if o.storage == "memory" {
            "memory"
        } else {
            "disk journal"
        },
        "storage",
        false,
    );
    if o.storage != "memory" {
        card(
            &mut h,
            "Segments",
            &s.journal_segments.to_string(),
            "segments",
            false,
        );
        card(
            &mut h,
            "Journal",
            &bytes(s.journal_bytes),
            "journal_bytes",
            false,
        );
        card(
            &mut h,
            "Write+fsync avg",
            &format!("{} µs", s.journal_write_micros_avg),
            "fsync",
            false,
        );
        card(
            &mut h,
            "Syncs",
            &s.journal_syncs.to_string(),
            "syncs",
            false,
        );
        card(
            &mut h,
            "Zero fills",
            &s.journal_zero_fills.to_string(),
            "zero chunks ahead of the data",
            false,
        );
        card(
            &mut h,
            "Checkpoints",
            &s.checkpoints.to_string(),
            "checkpoints",
            false,
        );
    }
    card(
        &mut h,
        "Dead-letter bodies",
        &bytes(o.dead_letter_bytes as u64),
        "dead_bytes",
        false,
    );
    h.push_str("</div>");
    if o.storage != "memory" {
        let _ = write!(
            h,
            r#"<p class="mut">Data directory <code>{}</code></p>"#,
            esc(&o.storage)
        );
    }
    h.push_str("<h2>Topics</h2>");
    if o.topics.is_empty() {
        h.push_str(
            r#"<div class="empty">No topics yet: nothing stored and no consumer groups.</div>"#,
        );
    } else {
        h.push_str(r#"<div class="scroll"><table><thead><tr><th>Topic</th><th class="n">Stored</th><th class="n">Bytes</th><th class="n">Groups</th><th class="n">Oldest</th></tr></thead><tbody>"#);
        for t in &o.topics {
            let _ = write!(
                h,
                r#"<tr><td><a href="/topics/{}">{}</a></td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
                pct(&t.name),
                esc(&t.name),
                t.stored,
                bytes(t.stored_bytes as u64),
                t.groups,
                opt_age(t.oldest_age_ms)
            );
        }
        h.push_str("</tbody></table></div>");
    }
    let _ = write!(h, r#"<h2>Counters</h2><div class="cards">"#);
    for (k, v) in [
        ("Messages stored", s.messages_stored),
        ("Duplicates", s.duplicates_answered),
        ("Rejected", s.rejected),
        ("Deliveries", s.deliveries_sent),
        ("Redeliveries", s.redeliveries_sent),
        ("Acks", s.acks_received),
        ("Nacks", s.nacks_received),
        ("Dead-lettered", s.dead_lettered),
        ("Protocol errors", s.protocol_errors),
    ] {
        card(&mut h, k, &v.to_string(), "", false);
    }
    h.push_str("</div>");
    let page = html::page::<BrokerSite>("/", "Overview", &(&caller).into(), 3, &h);
    Html(page).into_response()
}

pub(crate) async fn topic(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let here = format!("/topics/{}", pct(&name));
    let (caller, b) = match enter(&app, &headers, &here) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let Some(t) = b.topic(&name) else {
        return error_page(
            StatusCode::NOT_FOUND,
            &format!("No topic {name:?}: it has no stored messages and no consumer groups."),
        );
    };
    let mut h = format!(
        r#"<p class="mut"><a href="/">Overview</a> › topic</p><h1>{}</h1><div class="cards">"#,
        esc(&name)
    );
    card(
        &mut h,
        "Stored",
        &t.summary.stored.to_string(),
        "stored",
        false,
    );
    card(
        &mut h,
        "Bytes",
        &bytes(t.summary.stored_bytes as u64),
        "bytes",
        false,
    );
    card(
        &mut h,
        "Groups",
        &t.groups.len().to_string(),
        "groups",
        false,
    );
    card(
        &mut h,
        "Oldest",
        &opt_age(t.summary.oldest_age_ms),
        "oldest",
        false,
    );
    h.push_str("</div><h2>Consumer groups</h2>");
    if t.groups.is_empty() {
        h.push_str(r#"<div class="empty">No consumer group yet: messages wait until one subscribes.</div>"#);
    } else {
        h.push_str(r#"<div class="scroll"><table><thead><tr><th>Group</th><th class="n">Ready</th><th class="n">Unacked</th><th class="n">Redelivering</th><th class="n">Dead</th><th class="n">Acked</th><th class="n">Oldest</th><th class="n">Members</th></tr></thead><tbody>"#);
        for g in &t.groups {
            let dead = if g.dead_lettered > 0 {
                format!(
                    r#"<a class="pill bad" href="/dead-letters?topic={}&amp;group={}">{}</a>"#,
                    pct(&name),
                    pct(&g.name),
                    g.dead_lettered
                )
            } else {
                "0".to_owned()
            };
            let _ = write!(
                h,
                r#"<tr data-group="{}"><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n dead">{dead}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
                esc(&g.name),
                esc(&g.name),
                g.ready,
                g.unacked,
                g.redelivering,
                g.acked_total,
                opt_age(g.oldest_age_ms),
                g.members.len()
            );
        }
        h.push_str("</tbody></table></div><h2>Members</h2>");
        let members: usize = t.groups.iter().map(|g| g.members.len()).sum();
        if members == 0 {
            h.push_str(r#"<div class="empty">No consumer is connected to this topic.</div>"#);
        } else {
            h.push_str(r#"<div class="scroll"><table><thead><tr><th>Group</th><th class="n">Connection</th><th class="n">Subscription</th><th class="n">Credit</th><th class="n">Unacked</th></tr></thead><tbody>"#);
            for g in &t.groups {
                for m in &g.members {
                    let _ = write!(
                        h,
                        r#"<tr><td>{}</td><td class="n">#{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
                        esc(&g.name),
                        m.connection,
                        m.sub_id,
                        m.credit,
                        m.unacked
                    );
                }
            }
            h.push_str("</tbody></table></div>");
        }
    }
    let page = html::page::<BrokerSite>("", &name, &(&caller).into(), 3, &h);
    Html(page).into_response()
}

pub(crate) async fn dead_letters(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (caller, b) = match enter(&app, &headers, "/dead-letters") {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let topic = q.get("topic").filter(|s| !s.is_empty());
    let group = q.get("group").filter(|s| !s.is_empty());
    let all = b.dead_letters();
    let shown: Vec<_> = all
        .iter()
        .filter(|d| topic.is_none_or(|t| *t == d.topic) && group.is_none_or(|g| *g == d.group))
        .collect();
    let mut h = String::from("<h1>Dead letters</h1>");
    h.push_str(&action_flash(
        &q,
        "dead letter",
        "failed",
        " could not be (already gone, or no body kept).",
    ));
    if topic.is_some() || group.is_some() {
        let _ = write!(
            h,
            r#"<p class="mut">Showing {} of {} · topic <b>{}</b> · group <b>{}</b> · <a href="/dead-letters">show all</a></p>"#,
            shown.len(),
            all.len(),
            esc(topic.map_or("any", |s| s)),
            esc(group.map_or("any", |s| s))
        );
    }
    if shown.is_empty() {
        h.push_str(r#"<div class="empty">No dead letters. A message lands here when a group did not ack it after the maximum deliveries.</div>"#);
    } else {
        let can_act = caller.can_act();
        if !can_act {
            h.push_str(r#"<p class="mut">Sign in with the admin token to requeue or purge.</p>"#);
        }
        let dis = if can_act { "" } else { " disabled" };
        let _ = write!(
            h,
            r#"<form method="post" action="/dead-letters/requeue" id="dl"><input type="hidden" name="csrf" value="{}"><div class="bar"><button type="submit" class="primary" formaction="/dead-letters/requeue"{dis}>Requeue selected</button><button type="submit" class="danger" formaction="/dead-letters/purge"{dis}>Purge selected</button><span class="mut" id="count">{} dead letter{}</span></div><div class="scroll"><table class="stack"><thead><tr><th><input type="checkbox" aria-label="select all" onclick="for(const c of document.querySelectorAll('input[name=key]'))c.checked=this.checked"></th><th>Message</th><th>Topic / group</th><th class="n">Deliveries</th><th>Headers</th><th>Payload</th><th></th></tr></thead><tbody>"#,
            esc(caller.csrf()),
            shown.len(),
            if shown.len() == 1 { "" } else { "s" }
        );
        for d in &shown {
            let mut hdrs = String::new();
            for (k, v) in &d.headers {
                let _ = write!(hdrs, "<div><code>{}</code>: {}</div>", esc(k), esc(v));
            }
            let payload = if d.body_kept {
                let more = if d.payload_len > d.payload_preview.len() {
                    "…"
                } else {
                    ""
                };
                format!(
                    r#"<div class="preview mono">{}{more}</div><span class="mut">{}</span>"#,
                    esc(&d.payload_preview),
                    bytes(d.payload_len as u64)
                )
            } else {
                r#"<span class="pill">body not kept</span>"#.to_owned()
            };
            let requeue = if d.body_kept {
                format!(
                    r#"<button type="submit" name="one" value="{}" formaction="/dead-letters/requeue" class="primary"{dis}>Requeue</button> "#,
                    esc(&d.key)
                )
            } else {
                String::new()
            };
            let _ = write!(
                h,
                r#"<tr data-key="{k}"><td><input type="checkbox" name="key" value="{k}" aria-label="select {id}"></td><td class="id" data-label="Message"><code>{id}</code></td><td data-label="Topic / group"><a href="/topics/{tp}">{t}</a> <span class="mut">{g}</span></td><td class="n" data-label="Deliveries">{n}</td><td data-label="Headers">{hdrs}</td><td data-label="Payload">{payload}</td><td class="acts">{requeue}<button type="submit" name="one" value="{k}" formaction="/dead-letters/purge" class="danger"{dis}>Purge</button></td></tr>"#,
                k = esc(&d.key),
                id = esc(&d.id),
                tp = pct(&d.topic),
                t = esc(&d.topic),
                g = esc(&d.group),
                n = d.deliveries,
            );
        }
        h.push_str("</tbody></table></div></form>");
    }
    let page = html::page::<BrokerSite>("/dead-letters", "Dead letters", &(&caller).into(), 0, &h);
    Html(page).into_response()
}

pub(crate) async fn producers(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let (caller, b) = match enter(&app, &headers, "/producers") {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let list = b.producers();
    let mut h = String::from("<h1>Producers</h1><p class=\"mut\">What the dedup table remembers per producer: landed sequences as ranges. Many ranges mean gaps (lost or reordered sends); past the per-producer bound the lowest ranges are forgotten.</p>");
    if list.is_empty() {
        h.push_str(r#"<div class="empty">No producer has landed a message yet.</div>"#);
    } else {
        let total: usize = list.iter().map(|p| p.memory_bytes).sum();
        let _ = write!(
            h,
            r#"<p>{} producers · {} of dedup memory</p>"#,
            list.len(),
            bytes(total as u64)
        );
        h.push_str(r#"<div class="scroll"><table><thead><tr><th>Producer</th><th class="n">Ranges</th><th class="n">Sequences</th><th class="n">Highest</th><th class="n">Memory</th></tr></thead><tbody>"#);
        for p in &list {
            let _ = write!(
                h,
                r#"<tr><td><code>{}</code></td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
                esc(&p.producer),
                p.ranges,
                p.sequences,
                p.highest_seq,
                bytes(p.memory_bytes as u64)
            );
        }
        h.push_str("</tbody></table></div>");
    }
    let page = html::page::<BrokerSite>("/producers", "Producers", &(&caller).into(), 5, &h);
    Html(page).into_response()
}

async fn act(
    app: &App,
    headers: &HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
    action: Action,
) -> Response {
    let keys = match action_form::<BrokerSite>(&app.gate, headers, form, "key", "dead letter") {
        Ok(k) => k,
        Err(r) => return *r,
    };
    let Some(b) = app.broker() else {
        return error_page(StatusCode::SERVICE_UNAVAILABLE, "the broker has stopped");
    };
    match apply(&b, action, &keys) {
        Ok(out) => action_done(
            "/dead-letters",
            action,
            out.done.len(),
            "failed",
            out.failed.len(),
        ),
        Err((status, msg)) => error_page(status, &msg),
    }
}

pub(crate) async fn requeue(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    act(&app, &headers, form, Action::Requeue).await
}

pub(crate) async fn purge(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    act(&app, &headers, form, Action::Purge).await
}
