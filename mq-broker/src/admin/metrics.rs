//! `/metrics` in the Prometheus text format (version 0.0.4): every
//! counter of [`BrokerStats`](crate::BrokerStats), connections by role,
//! and per-topic and per-group gauges.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};

use super::App;
use crate::Broker;

/// Escapes a label value: backslash, double quote and newline.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP mq_broker_{name} {help}");
    let _ = writeln!(out, "# TYPE mq_broker_{name} {kind}");
    for (labels, v) in samples {
        let _ = writeln!(out, "mq_broker_{name}{labels} {v}");
    }
}

/// The whole exposition.
pub(crate) fn render(b: &Broker) -> String {
    let o = b.overview();
    let s = &o.stats;
    let mut out = String::new();
    let one = |v: u64| vec![(String::new(), v)];
    let counters: [(&str, &str, u64); 20] = [
        (
            "connections_accepted_total",
            "Connections that completed the handshake.",
            s.connections_accepted,
        ),
        (
            "connections_refused_total",
            "Connections refused (version, token or limit).",
            s.connections_refused,
        ),
        (
            "protocol_errors_total",
            "Connections closed for a protocol error.",
            s.protocol_errors,
        ),
        (
            "timeouts_total",
            "Connections dropped for a heartbeat or handshake timeout.",
            s.timeouts,
        ),
        (
            "tls_handshakes_total",
            "TLS handshakes completed on the TLS listener.",
            s.tls_handshakes,
        ),
        (
            "tls_handshake_failures_total",
            "TLS handshakes that failed or timed out (each closed its connection).",
            s.tls_handshake_failures,
        ),
        (
            "messages_stored_total",
            "Distinct messages landed.",
            s.messages_stored,
        ),
        (
            "retransmits_received_total",
            "Message frames with attempt > 1.",
            s.retransmits_received,
        ),
        (
            "duplicates_answered_total",
            "Reply Duplicate answers.",
            s.duplicates_answered,
        ),
        ("rejected_total", "Reply Rejected answers.", s.rejected),
        (
            "deliveries_total",
            "Deliver frames, first deliveries and redeliveries.",
            s.deliveries_sent,
        ),
        (
            "redeliveries_total",
            "Deliver frames with delivery_attempt > 1.",
            s.redeliveries_sent,
        ),
        ("acks_total", "Ack frames received.", s.acks_received),
        (
            "acks_ignored_total",
            "Acks of IDs not outstanding.",
            s.acks_ignored,
        ),
        ("nacks_total", "Nack frames received.", s.nacks_received),
        (
            "dead_lettered_total",
            "Messages dead-lettered (per group).",
            s.dead_lettered,
        ),
        (
            "messages_deleted_total",
            "Messages deleted after every group was done.",
            s.messages_deleted,
        ),
        (
            "dedup_evictions_total",
            "IDs the dedup table forgot because of its bounds.",
            s.dedup_evictions,
        ),
        (
            "journal_syncs_total",
            "fdatasync calls of the journal (disk storage).",
            s.journal_syncs,
        ),
        (
            "journal_zero_fills_total",
            "Zero chunks written ahead of the journal's data (disk storage).",
            s.journal_zero_fills,
        ),
    ];
    for (name, help, v) in counters {
        metric(&mut out, name, "counter", help, &one(v));
    }
    let gauges: [(&str, &str, u64); 9] = [
        (
            "uptime_seconds",
            "Seconds since the broker started.",
            o.uptime_secs,
        ),
        ("stored_messages", "Messages stored now.", s.stored_messages),
        (
            "stored_bytes",
            "Payload plus header bytes stored now.",
            s.stored_bytes,
        ),
        ("dead_letters", "Dead letters held.", o.dead_letters as u64),
        (
            "dead_letter_bytes",
            "Bytes of dead-letter bodies kept for requeue.",
            o.dead_letter_bytes as u64,
        ),
        (
            "dedup_producers",
            "Producers remembered by the dedup table.",
            o.producers as u64,
        ),
        (
            "journal_bytes",
            "Journal bytes on disk (disk storage).",
            s.journal_bytes,
        ),
        (
            "journal_segments",
            "Journal segment files (disk storage).",
            s.journal_segments,
        ),
        (
            "journal_write_micros_avg",
            "Mean journal write plus fdatasync, microseconds.",
            s.journal_write_micros_avg,
        ),
    ];
    for (name, help, v) in gauges {
        metric(&mut out, name, "gauge", help, &one(v));
    }
    metric(
        &mut out,
        "connections",
        "gauge",
        "Open connections by role.",
        &[
            ("{role=\"sender\"}".into(), o.senders as u64),
            ("{role=\"receiver\"}".into(), o.receivers as u64),
        ],
    );
    let topic = |t: &str| format!("{{topic=\"{}\"}}", label(t));
    let stored: Vec<_> = o
        .topics
        .iter()
        .map(|t| (topic(&t.name), t.stored as u64))
        .collect();
    metric(
        &mut out,
        "topic_stored_messages",
        "gauge",
        "Messages stored per topic.",
        &stored,
    );
    let mut per_group: [Vec<(String, u64)>; 4] = Default::default();
    for t in &o.topics {
        for g in b.topic(&t.name).map(|v| v.groups).unwrap_or_default() {
            let l = format!(
                "{{topic=\"{}\",group=\"{}\"}}",
                label(&t.name),
                label(&g.name)
            );
            per_group[0].push((l.clone(), g.ready as u64));
            per_group[1].push((l.clone(), g.unacked as u64));
            per_group[2].push((l.clone(), g.redelivering as u64));
            per_group[3].push((l, g.dead_lettered as u64));
        }
    }
    let names = [
        ("group_ready", "Messages waiting for their first delivery."),
        ("group_unacked", "Messages delivered and not acked."),
        (
            "group_redelivering",
            "Messages coming back for another delivery.",
        ),
        ("group_dead_letters", "Dead letters held per group."),
    ];
    for ((name, help), samples) in names.into_iter().zip(per_group.iter()) {
        metric(&mut out, name, "gauge", help, samples);
    }
    out
}

pub(crate) async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err((status, msg)) = app.gate.may_read(&headers) {
        return (status, msg).into_response();
    }
    let Some(b) = app.broker() else {
        return super::api::error(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "the broker has stopped",
        );
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&b),
    )
        .into_response()
}
