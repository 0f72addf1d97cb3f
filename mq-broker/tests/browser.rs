//! The admin pages in a real browser (headless Chromium over WebDriver)
//! against a running broker with traffic: sign in, load the overview, open
//! a topic, requeue a dead letter by clicking and see the counts change.
//! Screenshots of every page, at a desktop's and a phone's width, go to
//! `target/admin-screenshots/`.

#[path = "support/chrome.rs"]
mod chrome;
mod support;

use bytes::Bytes;
use fantoccini::Locator;
use mq_broker::admin::{AdminConfig, AdminServer};
use mq_broker::BrokerConfig;
use mq_protocol::{Frame, Headers, Message, MessageId, Nack, Role};
use support::{Peer, WAIT};

use chrome::BROWSER_WAIT;

const TOKEN: &str = "browser-admin-token";

fn id(seq: u64) -> MessageId {
    MessageId::new(0xB2, seq)
}

/// The page refreshes its figures in place (REFRESH_JS): an element found
/// a moment ago can be replaced before it is read or clicked. That is a
/// "stale element", not a failure: find it again.
fn stale(e: &fantoccini::error::CmdError) -> bool {
    format!("{e:?}").contains("StaleElementReference")
}

async fn text(c: &fantoccini::Client, css: &str) -> String {
    let deadline = std::time::Instant::now() + BROWSER_WAIT;
    loop {
        let el = c
            .wait()
            .at_most(BROWSER_WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"));
        match el.text().await {
            Ok(t) => return t,
            Err(e) if stale(&e) && std::time::Instant::now() < deadline => continue,
            Err(e) => panic!("text of {css}: {e}"),
        }
    }
}

async fn click(c: &fantoccini::Client, css: &str) {
    let deadline = std::time::Instant::now() + BROWSER_WAIT;
    loop {
        let el = c
            .wait()
            .at_most(BROWSER_WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"));
        match el.click().await {
            Ok(()) => return,
            Err(e) if stale(&e) && std::time::Instant::now() < deadline => continue,
            Err(e) => panic!("cannot click {css}: {e}"),
        }
    }
}

#[tokio::test]
async fn requeue_a_dead_letter_by_clicking() {
    let broker = support::broker(BrokerConfig {
        max_deliveries: 1,
        // The raw peers below neither read nor answer `Ping`s while the
        // browser works, and Chromium's start and page loads once took
        // more than the 15 s of silence the broker allows (3 heartbeats)
        // on a loaded 2-core CI machine: the receiver was dropped before
        // the requeued message came. No heartbeats in this test.
        heartbeat: std::time::Duration::ZERO,
        ..BrokerConfig::default()
    })
    .await;
    let admin = AdminServer::start(
        &broker,
        AdminConfig::default()
            .listen(([127, 0, 0, 1], 0).into())
            .token(TOKEN),
    )
    .await
    .expect("admin server starts");
    let mut producer = Peer::connect(broker.addr(), Role::Sender).await;
    let mut billing = Peer::connect(broker.addr(), Role::Receiver).await;
    billing.subscribe(1, 20, "orders", "billing").await;
    let mut shipping = Peer::connect(broker.addr(), Role::Receiver).await;
    shipping.subscribe(1, 0, "orders", "shipping").await;
    for seq in 1..=6 {
        let mut headers = Headers::new();
        headers.insert("content-type", "application/json");
        headers.insert("trace-id", format!("7f3a-{seq:04}"));
        let body = format!(
            r#"{{"order":{seq},"customer":"c-{}","total_cents":{}}}"#,
            100 + seq,
            seq * 1250
        );
        let m = Message {
            id: id(seq),
            attempt: 1,
            topic: "orders".into(),
            headers,
            payload: Bytes::from(body),
        };
        producer.send(Frame::Message(m)).await;
        assert!(matches!(producer.recv().await, Some(Frame::Reply(_))));
    }
    producer
        .publish(MessageId::new(0xC3, 1), 1, "audit", b"login ok")
        .await;
    for _ in 0..6 {
        let d = billing.deliver().await;
        if d.id.seq <= 3 {
            billing.ack(1, d.id).await;
        } else {
            let nack = Nack {
                sub_id: 1,
                id: d.id,
                delay_ms: 1,
            };
            billing.send(Frame::Nack(nack)).await;
        }
    }
    broker
        .wait_for(WAIT, |s| s.acks_received == 3 && s.dead_lettered == 3)
        .await
        .expect("3 acks and 3 dead letters");

    let Some(chrome) = chrome::start(1280, 900).await else {
        return;
    };
    let c = &chrome.client;
    let base = format!("http://{}", admin.addr());

    // Not signed in: the overview sends the browser to sign in.
    c.goto(&format!("{base}/"))
        .await
        .expect("load the overview");
    c.wait()
        .at_most(BROWSER_WAIT)
        .for_element(Locator::Css("input#token"))
        .await
        .expect("the sign-in form")
        .send_keys(TOKEN)
        .await
        .expect("type the token");
    chrome.shot("broker-login-desktop").await;
    click(c, "form[action='/login'] button[type=submit]").await;
    assert_eq!(text(c, "h1").await, "Overview");
    assert_eq!(text(c, "[data-k=dead_letters] .v").await, "3");
    assert_eq!(
        text(c, "[data-k=stored] .v").await,
        broker.stats().stored_messages.to_string()
    );
    chrome.shot("broker-overview-desktop").await;

    // Open the topic.
    click(c, "a[href='/topics/orders']").await;
    assert_eq!(text(c, "h1").await, "orders");
    assert_eq!(text(c, "tr[data-group=billing] td.dead").await, "3");
    chrome.shot("broker-topic-desktop").await;

    // Its dead letters, then requeue the first by clicking.
    click(c, "tr[data-group=billing] td.dead a").await;
    assert_eq!(text(c, "#count").await, "3 dead letters");
    chrome.shot("broker-dead-letters-desktop").await;
    let first = format!("{}/0", id(4));
    click(c, &format!("tr[data-key='{first}'] button.primary")).await;
    assert_eq!(text(c, ".flash").await, "Requeued 1 dead letter.");
    assert_eq!(text(c, "#count").await, "2 dead letters");
    chrome
        .shot("broker-dead-letters-after-requeue-desktop")
        .await;

    // The broker delivered it again, once, as new.
    let d = billing.deliver().await;
    assert_eq!((d.id, d.delivery_attempt), (id(4), 1));
    billing.ack(1, d.id).await;
    broker
        .wait_for(WAIT, |s| s.acks_received == 4)
        .await
        .expect("the requeued message acked");

    // The topic and overview show the new counts.
    c.goto(&format!("{base}/topics/orders"))
        .await
        .expect("topic");
    assert_eq!(text(c, "tr[data-group=billing] td.dead").await, "2");
    c.goto(&format!("{base}/")).await.expect("overview");
    assert_eq!(text(c, "[data-k=dead_letters] .v").await, "2");

    c.goto(&format!("{base}/producers"))
        .await
        .expect("producers");
    assert_eq!(text(c, "h1").await, "Producers");
    chrome.shot("broker-producers-desktop").await;

    // A phone's width: every page again.
    chrome.size(390, 844).await;
    for (path, name) in [
        ("/", "overview"),
        ("/topics/orders", "topic"),
        ("/dead-letters", "dead-letters"),
        ("/producers", "producers"),
    ] {
        c.goto(&format!("{base}{path}")).await.expect("load");
        text(c, "h1").await;
        chrome.shot(&format!("broker-{name}-phone")).await;
    }
    // The page fits the phone's width: no sideways scrolling of the page.
    let wide = c
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1",
            vec![],
        )
        .await
        .expect("measure");
    assert_eq!(wide, serde_json::Value::Bool(true));

    // Select both remaining dead letters and purge them.
    chrome.size(1280, 900).await;
    c.goto(&format!("{base}/dead-letters"))
        .await
        .expect("dead letters");
    click(c, "thead input[type=checkbox]").await;
    click(
        c,
        "button.danger[formaction='/dead-letters/purge']:not([name])",
    )
    .await;
    assert_eq!(text(c, ".flash").await, "Purged 2 dead letters.");
    assert!(broker.dead_letters().is_empty());

    chrome.close().await;
    admin.shutdown().await;
    drop((producer, billing, shipping));
    broker.shutdown().await;
}
