//! The admin server over real HTTP against a running broker with traffic:
//! every endpoint, counts checked against the broker's own state, requeue
//! and purge, tokens, sessions and CSRF, bad input.

#[path = "support/http.rs"]
mod http;
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use mq_broker::admin::{AdminConfig, AdminServer};
use mq_broker::{Broker, BrokerConfig};
use mq_protocol::{Frame, Headers, Message, MessageId, Nack, Role};
use support::{Peer, WAIT};

const TOKEN: &str = "test-admin-token";
const AUTH: (&str, &str) = ("Authorization", "Bearer test-admin-token");

/// A broker with traffic: `orders` has 5 messages, group `billing` acked
/// 3 and dead-lettered 2 (p-4 and p-5), group `shipping` (no credit)
/// holds all 5 ready; `audit` has 2 messages and no group. The producer
/// and consumer connections stay open.
struct Scene {
    broker: Broker,
    admin: AdminServer,
    producer: Peer,
    billing: Peer,
    _shipping: Peer,
}

fn id(seq: u64) -> MessageId {
    MessageId::new(0xA1, seq)
}

async fn scene(open_reads: bool) -> Scene {
    let broker = support::broker(BrokerConfig {
        max_deliveries: 1,
        ..BrokerConfig::default()
    })
    .await;
    let admin = AdminServer::start(
        &broker,
        AdminConfig::default()
            .listen(([127, 0, 0, 1], 0).into())
            .token(TOKEN)
            .open_reads(open_reads),
    )
    .await
    .expect("admin server starts");
    let mut producer = Peer::connect(broker.addr(), Role::Sender).await;
    let mut billing = Peer::connect(broker.addr(), Role::Receiver).await;
    billing.subscribe(1, 10, "orders", "billing").await;
    let mut shipping = Peer::connect(broker.addr(), Role::Receiver).await;
    shipping.subscribe(1, 0, "orders", "shipping").await;
    for seq in 1..=5 {
        let mut headers = Headers::new();
        headers.insert("trace", format!("t-{seq}"));
        let m = Message {
            id: id(seq),
            attempt: 1,
            topic: "orders".into(),
            headers,
            payload: Bytes::from(format!("{{\"order\":{seq},\"note\":\"<b>hi</b>\"}}")),
        };
        producer.send(Frame::Message(m)).await;
        match producer.recv().await {
            Some(Frame::Reply(_)) => {}
            other => panic!("expected Reply, got {other:?}"),
        }
    }
    for seq in 6..=7 {
        producer.publish(id(seq), 1, "audit", b"audit entry").await;
    }
    for _ in 0..5 {
        let d = billing.deliver().await;
        if d.id.seq <= 3 {
            billing.ack(1, d.id).await;
        } else {
            billing
                .send(Frame::Nack(Nack {
                    sub_id: 1,
                    id: d.id,
                    delay_ms: 1,
                }))
                .await;
        }
    }
    broker
        .wait_for(WAIT, |s| s.acks_received == 3 && s.dead_lettered == 2)
        .await
        .expect("3 acks and 2 dead letters");
    Scene {
        broker,
        admin,
        producer,
        billing,
        _shipping: shipping,
    }
}

fn a(s: &Scene) -> SocketAddr {
    s.admin.addr()
}

#[tokio::test]
async fn json_reads_agree_with_the_broker() {
    let s = scene(false).await;
    let stats = s.broker.stats();

    let o = http::get(a(&s), "/api/overview", &[AUTH]).await;
    assert_eq!(o.status, 200, "{}", o.body);
    let o = o.json();
    assert_eq!(o["senders"], 1);
    assert_eq!(o["receivers"], 2);
    assert_eq!(o["stats"]["messages_stored"], stats.messages_stored);
    assert_eq!(o["stats"]["stored_messages"], stats.stored_messages);
    assert_eq!(o["stats"]["stored_bytes"], stats.stored_bytes);
    assert_eq!(o["dead_letters"], 2);
    assert!(o["rates"]["publish_per_sec"].is_number());
    let topics: Vec<&str> = o["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(topics, ["audit", "orders"]);
    assert_eq!(o["topics"][0]["stored"], 2);
    assert_eq!(o["topics"][0]["groups"], 0);

    let t = http::get(a(&s), "/api/topics/orders", &[AUTH]).await;
    assert_eq!(t.status, 200, "{}", t.body);
    let t = t.json();
    let snap = s.broker.inspect();
    assert_eq!(t["summary"]["stored"], 5);
    let billing = &t["groups"][0];
    assert_eq!(billing["name"], "billing");
    assert_eq!(billing["dead_lettered"], 2);
    assert_eq!(billing["ready"], 0);
    assert_eq!(billing["unacked"], 0);
    assert_eq!(billing["acked_total"], 3);
    assert_eq!(billing["members"][0]["credit"], 5);
    let shipping = &t["groups"][1];
    assert_eq!(shipping["name"], "shipping");
    let g = snap.group("orders", "shipping").unwrap();
    assert_eq!(shipping["ready"], g.ready as u64);
    assert_eq!(shipping["ready"], 5);
    assert_eq!(shipping["members"][0]["credit"], 0);
    assert!(shipping["oldest_age_ms"].is_u64());

    let missing = http::get(a(&s), "/api/topics/no-such-topic", &[AUTH]).await;
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"]
        .as_str()
        .unwrap()
        .contains("no-such-topic"));

    let d = http::get(a(&s), "/api/dead-letters", &[AUTH]).await;
    assert_eq!(d.status, 200);
    let d = d.json();
    let d = d.as_array().unwrap();
    assert_eq!(d.len(), snap.dead_letters.len());
    assert_eq!(d[0]["id"], id(4).to_string());
    assert_eq!(d[0]["group"], "billing");
    assert_eq!(d[0]["body_kept"], true);
    assert_eq!(d[0]["headers"][0], serde_json::json!(["trace", "t-4"]));
    assert!(d[0]["payload_preview"]
        .as_str()
        .unwrap()
        .contains("\"order\":4"));

    let p = http::get(a(&s), "/api/producers", &[AUTH]).await;
    assert_eq!(p.status, 200);
    let p = p.json();
    assert_eq!(p.as_array().unwrap().len(), snap.dedup_producers);
    assert_eq!(p[0]["producer"], format!("{:016x}", 0xA1));
    assert_eq!(p[0]["highest_seq"], 7);
    assert_eq!(p[0]["sequences"], 7);

    let m = http::get(a(&s), "/metrics", &[AUTH]).await;
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    let line = format!("mq_broker_messages_stored_total {}", stats.messages_stored);
    assert!(m.body.contains(&line), "{}", m.body);
    assert!(m
        .body
        .contains("mq_broker_connections{role=\"receiver\"} 2"));
    assert!(m
        .body
        .contains("mq_broker_group_ready{topic=\"orders\",group=\"shipping\"} 5"));
    assert!(m
        .body
        .contains("mq_broker_group_dead_letters{topic=\"orders\",group=\"billing\"} 2"));
    assert!(m
        .body
        .contains("mq_broker_topic_stored_messages{topic=\"audit\"} 2"));
}

#[tokio::test]
async fn pages_render_with_the_same_numbers() {
    let s = scene(true).await;
    let o = http::get(a(&s), "/", &[]).await;
    assert_eq!(o.status, 200);
    assert!(o.header("content-type").unwrap().starts_with("text/html"));
    assert!(o.body.contains("<h1>Overview</h1>"));
    assert!(o.body.contains(r#"href="/topics/orders""#));
    assert!(
        o.body.contains("data-refresh"),
        "the overview refreshes itself"
    );

    let t = http::get(a(&s), "/topics/orders", &[]).await;
    assert_eq!(t.status, 200);
    assert!(t
        .body
        .contains(r#"<tr data-group="shipping"><td>shipping</td><td class="n">5</td>"#));
    assert!(t
        .body
        .contains("/dead-letters?topic=orders&amp;group=billing"));

    let d = http::get(a(&s), "/dead-letters", &[]).await;
    assert_eq!(d.status, 200);
    assert!(d.body.contains(&id(4).to_string()));
    // Payloads are escaped, never markup.
    assert!(d.body.contains("&lt;b&gt;hi&lt;/b&gt;"));
    assert!(!d.body.contains("<b>hi</b>"));
    // Not signed in: the action buttons are disabled.
    assert!(d.body.contains("Sign in with the admin token"));

    let p = http::get(a(&s), "/producers", &[]).await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains(&format!("{:016x}", 0xA1)));

    let missing = http::get(a(&s), "/topics/nope%3Cscript%3E", &[]).await;
    assert_eq!(missing.status, 404);
    assert!(!missing.body.contains("<script>alert"));
    assert!(missing.body.contains("nope&lt;script&gt;"));
    let nowhere = http::get(a(&s), "/no/such/page", &[]).await;
    assert_eq!(nowhere.status, 404);
}

#[tokio::test]
async fn requeue_from_the_api_delivers_once_and_purge_removes() {
    let mut s = scene(false).await;
    let dead = http::get(a(&s), "/api/dead-letters", &[AUTH]).await.json();
    let key4 = dead[0]["key"].as_str().unwrap().to_owned();
    let key5 = dead[1]["key"].as_str().unwrap().to_owned();

    let r = http::post_json(
        a(&s),
        "/api/dead-letters/requeue",
        &[AUTH],
        &format!(r#"{{"keys":["{key4}"]}}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["done"][0], key4.as_str());

    // Delivered again, once, as a first delivery, with its body.
    let d = s.billing.deliver().await;
    assert_eq!(d.id, id(4));
    assert_eq!(d.delivery_attempt, 1);
    assert_eq!(d.headers.get("trace").map(|v| &v[..]), Some(&b"t-4"[..]));
    assert!(String::from_utf8_lossy(&d.payload).contains("\"order\":4"));
    s.billing.ack(1, d.id).await;
    s.broker
        .wait_for(WAIT, |st| st.acks_received == 4)
        .await
        .expect("the requeued message acked");
    let snap = s.broker.inspect();
    let g = snap.group("orders", "billing").unwrap();
    assert_eq!((g.ready, g.unacked, g.waiting), (0, 0, 0));
    assert_eq!(
        s.broker.stats().deliveries_sent,
        6,
        "5 first deliveries and 1 requeue"
    );
    assert_eq!(snap.dead_letters.len(), 1);
    // Still stored for `shipping`, which has not taken it yet.
    assert!(snap.is_stored(id(4)));

    // Requeued already: gone from the list.
    let again = http::post_json(
        a(&s),
        "/api/dead-letters/requeue",
        &[AUTH],
        &format!(r#"{{"keys":["{key4}"]}}"#),
    )
    .await;
    assert_eq!(again.status, 404, "{}", again.body);

    let p = http::post_json(
        a(&s),
        "/api/dead-letters/purge",
        &[AUTH],
        &format!(r#"{{"keys":["{key5}"]}}"#),
    )
    .await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(s.broker.dead_letters().is_empty());
    assert!(s.broker.inspect().dead_letters.is_empty());
    let gone = http::post_json(
        a(&s),
        "/api/dead-letters/purge",
        &[AUTH],
        &format!(r#"{{"keys":["{key5}"]}}"#),
    )
    .await;
    assert_eq!(gone.status, 404);
    let o = http::get(a(&s), "/api/overview", &[AUTH]).await.json();
    assert_eq!(o["dead_letters"], 0);
    drop(s.producer);
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_refused() {
    let s = scene(false).await;
    let key = s.broker.dead_letters()[0].key.clone();
    let body = format!(r#"{{"keys":["{key}"]}}"#);
    for (path, method) in [
        ("/api/overview", "GET"),
        ("/api/topics/orders", "GET"),
        ("/api/dead-letters", "GET"),
        ("/api/producers", "GET"),
        ("/metrics", "GET"),
        ("/api/dead-letters/requeue", "POST"),
        ("/api/dead-letters/purge", "POST"),
    ] {
        for headers in [&[][..], &[("Authorization", "Bearer wrong-token-xx")][..]] {
            let r = if method == "GET" {
                http::get(a(&s), path, headers).await
            } else {
                http::post_json(a(&s), path, headers, &body).await
            };
            assert_eq!(
                r.status, 401,
                "{method} {path} with {headers:?}: {}",
                r.body
            );
            assert!(!r.body.contains(TOKEN), "the token is never echoed");
        }
    }
    // A page without a session sends the browser to sign in.
    let r = http::get(a(&s), "/dead-letters", &[]).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/login?next=%2Fdead-letters"));
    assert_eq!(s.broker.dead_letters().len(), 2, "nothing was done");
}

#[tokio::test]
async fn open_reads_still_guard_actions() {
    let s = scene(true).await;
    assert_eq!(http::get(a(&s), "/api/overview", &[]).await.status, 200);
    assert_eq!(http::get(a(&s), "/metrics", &[]).await.status, 200);
    let key = s.broker.dead_letters()[0].key.clone();
    let r = http::post_json(
        a(&s),
        "/api/dead-letters/requeue",
        &[],
        &format!(r#"{{"keys":["{key}"]}}"#),
    )
    .await;
    assert_eq!(r.status, 401);
    let r = http::post_form(a(&s), "/dead-letters/requeue", &[], &format!("key={key}")).await;
    assert_eq!(r.status, 401);
    assert_eq!(s.broker.dead_letters().len(), 2);
}

#[tokio::test]
async fn bad_input_gets_a_4xx_with_a_message() {
    let s = scene(false).await;
    let cases = [
        (r#"{"keys":["not-a-key"]}"#, 400),
        (r#"{"keys":["00000000000000a1-4/x"]}"#, 400),
        (r#"{"keys":["00000000000000a1-99/0"]}"#, 404),
        (r#"{"keys":"#, 400),
        (r#"{"nope":[]}"#, 422),
        (r#"[1,2]"#, 422),
    ];
    for (body, want) in cases {
        let r = http::post_json(a(&s), "/api/dead-letters/requeue", &[AUTH], body).await;
        assert_eq!(r.status, want, "{body}: {}", r.body);
        assert!(!r.body.is_empty());
    }
    let r = http::request(
        a(&s),
        "POST",
        "/api/dead-letters/purge",
        &[AUTH],
        Some(("text/plain", "keys")),
    )
    .await;
    assert_eq!(r.status, 415, "{}", r.body);
    assert_eq!(s.broker.dead_letters().len(), 2, "nothing was done");
}

/// `name="csrf" value="..."` from a page.
fn csrf_of(page: &str) -> String {
    let at = page.find(r#"name="csrf" value=""#).expect("a csrf field") + 19;
    page[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn browser_sessions_need_the_csrf_token() {
    let mut s = scene(false).await;
    let wrong = http::post_form(a(&s), "/login", &[], "token=not-the-token&next=%2F").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());

    let ok = http::post_form(
        a(&s),
        "/login",
        &[],
        &format!("token={TOKEN}&next=%2Fdead-letters"),
    )
    .await;
    assert_eq!(ok.status, 303);
    assert_eq!(ok.header("location"), Some("/dead-letters"));
    let cookie = ok.header("set-cookie").unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(
        !cookie.contains(TOKEN),
        "the cookie is a session id, not the token"
    );
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let with = [("Cookie", cookie.as_str())];

    let page = http::get(a(&s), "/dead-letters", &with).await;
    assert_eq!(page.status, 200);
    let csrf = csrf_of(&page.body);
    let key = s.broker.dead_letters()[0].key.clone();

    let none = http::post_form(a(&s), "/dead-letters/requeue", &with, &format!("key={key}")).await;
    assert_eq!(none.status, 403);
    let bad = http::post_form(
        a(&s),
        "/dead-letters/requeue",
        &with,
        &format!("csrf=0000&key={key}"),
    )
    .await;
    assert_eq!(bad.status, 403);
    // A session cookie alone does not let the JSON API act either.
    let api = http::post_json(
        a(&s),
        "/api/dead-letters/requeue",
        &with,
        &format!(r#"{{"keys":["{key}"]}}"#),
    )
    .await;
    assert_eq!(api.status, 403);
    assert_eq!(s.broker.dead_letters().len(), 2);

    let good = http::post_form(
        a(&s),
        "/dead-letters/requeue",
        &with,
        &format!("csrf={csrf}&one={key}"),
    )
    .await;
    assert_eq!(good.status, 303, "{}", good.body);
    assert_eq!(
        good.header("location"),
        Some("/dead-letters?did=requeued&n=1&failed=0")
    );
    assert_eq!(s.billing.deliver().await.id, id(4));
    assert_eq!(s.broker.dead_letters().len(), 1);

    // Purge the rest, selected by checkbox.
    let key5 = s.broker.dead_letters()[0].key.clone();
    let purged = http::post_form(
        a(&s),
        "/dead-letters/purge",
        &with,
        &format!("csrf={csrf}&key={key5}"),
    )
    .await;
    assert_eq!(purged.status, 303);
    assert!(s.broker.dead_letters().is_empty());

    let out = http::post_form(a(&s), "/logout", &with, &format!("csrf={csrf}")).await;
    assert_eq!(out.status, 303);
    let after = http::get(a(&s), "/dead-letters", &with).await;
    assert_eq!(after.status, 303, "the session ended");
}

#[tokio::test]
async fn config_rules_are_enforced() {
    let broker = Broker::start(BrokerConfig::default()).await.unwrap();
    let public = AdminConfig::default().listen(([0, 0, 0, 0], 0).into());
    assert!(AdminServer::start(&broker, public.clone().open_reads(true))
        .await
        .is_err());
    assert!(AdminServer::start(&broker, public.clone().token("short"))
        .await
        .is_err());
    let local = AdminConfig::default().listen(([127, 0, 0, 1], 0).into());
    assert!(AdminServer::start(&broker, local.clone()).await.is_err());
    // Open reads without a token: reading works, acting is disabled.
    let admin = AdminServer::start(&broker, local.open_reads(true))
        .await
        .unwrap();
    assert_eq!(http::get(admin.addr(), "/", &[]).await.status, 200);
    let r = http::post_json(
        admin.addr(),
        "/api/dead-letters/purge",
        &[],
        r#"{"keys":[]}"#,
    )
    .await;
    assert_eq!(r.status, 403);
    admin.shutdown().await;
    broker.shutdown().await;
    let _ = Duration::ZERO;
}

/// Dead-letter bodies and the operator's actions are journaled: they come
/// back after a restart of a disk broker, through a checkpoint (bodies
/// whose message was deleted) and through the live records.
#[tokio::test]
async fn dead_letter_bodies_and_actions_survive_restarts_on_disk() {
    let dir = std::env::temp_dir().join(format!("mq-admin-journal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = || BrokerConfig {
        max_deliveries: 1,
        seed: Some(3),
        storage: mq_broker::Storage::Disk(mq_broker::DiskStorage::new(&dir)),
        ..BrokerConfig::default()
    };
    let broker = Broker::start(config()).await.unwrap();
    let mut producer = Peer::connect(broker.addr(), Role::Sender).await;
    let mut consumer = Peer::connect(broker.addr(), Role::Receiver).await;
    consumer.subscribe(1, 10, "jobs", "workers").await;
    for seq in 1..=3 {
        producer.publish(id(seq), 1, "jobs", b"job body").await;
        let d = consumer.deliver().await;
        let nack = Nack {
            sub_id: 1,
            id: d.id,
            delay_ms: 1,
        };
        consumer.send(Frame::Nack(nack)).await;
    }
    broker
        .wait_for(WAIT, |s| s.dead_lettered == 3 && s.stored_messages == 0)
        .await
        .expect("three dead letters, nothing stored");
    drop((producer, consumer));
    broker.shutdown().await; // writes a checkpoint: bodies as DeadBody

    let broker = Broker::start(config()).await.unwrap();
    let dead = broker.dead_letters();
    assert_eq!(dead.len(), 3);
    assert!(dead
        .iter()
        .all(|d| d.body_kept && d.payload_preview == "job body"));
    broker.requeue_dead(&dead[0].key).unwrap();
    broker.purge_dead(&dead[1].key).unwrap();
    broker.shutdown().await;

    let broker = Broker::start(config()).await.unwrap();
    let left = broker.dead_letters();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].id, id(3).to_string());
    assert!(
        broker.inspect().is_stored(id(1)),
        "the requeued message is stored again"
    );
    let mut consumer = Peer::connect(broker.addr(), Role::Receiver).await;
    consumer.subscribe(1, 10, "jobs", "workers").await;
    let d = consumer.deliver().await;
    assert_eq!((d.id, d.delivery_attempt), (id(1), 1));
    assert_eq!(&d.payload[..], b"job body");
    consumer.ack(1, d.id).await;
    broker
        .wait_for(WAIT, |s| s.acks_received == 1 && s.stored_messages == 0)
        .await
        .expect("acked and deleted");
    drop(consumer);
    broker.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
