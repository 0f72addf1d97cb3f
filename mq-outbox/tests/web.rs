//! `mq-outbox serve`'s page and API over real HTTP and in a real browser
//! (headless Chromium over WebDriver): failed rows, requeue and purge,
//! tokens and CSRF. Screenshots go to `target/admin-screenshots/`.

#[path = "../../mq-broker/tests/support/chrome.rs"]
mod chrome;
mod common;
#[path = "../../mq-broker/tests/support/http.rs"]
mod http;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{fast_config, seed, FakeDispatch};
use fantoccini::Locator;
use mq_outbox::web::{WebConfig, WebServer};
use mq_outbox::Outbox;

const WAIT: Duration = Duration::from_secs(10);
const TOKEN: &str = "outbox-admin-token";
const AUTH: (&str, &str) = ("Authorization", "Bearer outbox-admin-token");

/// An outbox whose broker was down: 4 failed rows, then 2 pending ones
/// (no dispatcher running any more).
async fn failed_outbox(name: &str) -> (Outbox, FakeDispatch) {
    let seed = seed(name);
    let outbox = Outbox::open("sqlite::memory:", fast_config(seed))
        .await
        .unwrap();
    let fake = FakeDispatch::new(seed);
    fake.down.store(true, Ordering::SeqCst);
    let h = outbox.dispatcher(fake.clone()).spawn();
    for i in 0..4 {
        let payload = format!(r#"{{"invoice":{i},"amount_cents":{}}}"#, 999 + i);
        enqueue(&outbox, "invoices", payload).await;
    }
    outbox.wait_for(WAIT, |s| s.failed == 4).await.unwrap();
    h.shutdown().await;
    for i in 0..2 {
        enqueue(&outbox, "emails", format!("welcome {i}")).await;
    }
    (outbox, fake)
}

async fn enqueue(outbox: &Outbox, topic: &str, payload: String) {
    let pool = outbox.sqlite_pool().unwrap();
    let mut tx = pool.begin().await.unwrap();
    outbox
        .enqueue(&mut tx, topic, bytes::Bytes::from(payload))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    outbox.notify();
}

async fn serve(outbox: &Outbox, open_reads: bool) -> WebServer {
    let config = WebConfig::default()
        .listen(([127, 0, 0, 1], 0).into())
        .token(TOKEN)
        .open_reads(open_reads);
    WebServer::start(outbox.clone(), config).await.unwrap()
}

#[tokio::test]
async fn api_lists_requeues_and_purges_failed_rows() {
    let (outbox, _fake) = failed_outbox("api_lists_requeues_and_purges_failed_rows").await;
    let web = serve(&outbox, false).await;
    let a = web.addr();

    for (m, p) in [
        ("GET", "/api/stats"),
        ("GET", "/api/failed"),
        ("POST", "/api/failed/requeue"),
        ("POST", "/api/failed/purge"),
    ] {
        for h in [&[][..], &[("Authorization", "Bearer wrong-token-xx")][..]] {
            let r = http::request(
                a,
                m,
                p,
                h,
                (m == "POST").then_some(("application/json", r#"{"seqs":[1]}"#)),
            )
            .await;
            assert_eq!(r.status, 401, "{m} {p}: {}", r.body);
        }
    }
    assert_eq!(http::get(a, "/", &[]).await.status, 303, "sign in first");

    let s = http::get(a, "/api/stats", &[AUTH]).await.json();
    let real = outbox.stats().await.unwrap();
    assert_eq!(s["failed"], real.failed);
    assert_eq!(s["pending"], real.pending);
    assert_eq!(
        (s["failed"].as_u64(), s["pending"].as_u64()),
        (Some(4), Some(2))
    );
    assert!(s["oldest_pending_ms"].is_u64());

    let f = http::get(a, "/api/failed", &[AUTH]).await.json();
    let rows = f.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["attempts"], 3);
    assert!(rows[0]["last_error"]
        .as_str()
        .unwrap()
        .contains("unreachable"));
    assert!(rows[0]["payload_preview"]
        .as_str()
        .unwrap()
        .contains("invoice"));
    let seq0 = rows[0]["seq"].as_u64().unwrap();
    let seq1 = rows[1]["seq"].as_u64().unwrap();

    let r = http::post_json(
        a,
        "/api/failed/requeue",
        &[AUTH],
        &format!(r#"{{"seqs":[{seq0}]}}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["done"][0], seq0);
    let again = http::post_json(
        a,
        "/api/failed/requeue",
        &[AUTH],
        &format!(r#"{{"seqs":[{seq0}]}}"#),
    )
    .await;
    assert_eq!(again.status, 404);
    let p = http::post_json(
        a,
        "/api/failed/purge",
        &[AUTH],
        &format!(r#"{{"seqs":[{seq1}]}}"#),
    )
    .await;
    assert_eq!(p.status, 200);
    let s = outbox.stats().await.unwrap();
    assert_eq!((s.failed, s.pending), (2, 3));
    assert_eq!(outbox.list_failed().await.unwrap().len(), 2);

    for (body, want) in [
        (r#"{"seqs":["x"]}"#, 422),
        (r#"{"seqs":"#, 400),
        (r#"{"seqs":[-1]}"#, 422),
    ] {
        let r = http::post_json(a, "/api/failed/purge", &[AUTH], body).await;
        assert_eq!(r.status, want, "{body}: {}", r.body);
    }
    web.shutdown().await;
}

#[tokio::test]
async fn requeue_a_failed_row_by_clicking() {
    let (outbox, _fake) = failed_outbox("requeue_a_failed_row_by_clicking").await;
    let web = serve(&outbox, false).await;
    let base = format!("http://{}", web.addr());
    let Some(chrome) = chrome::start(1280, 900).await else {
        return;
    };
    let c = &chrome.client;
    let find = |css: &'static str| async move {
        c.wait()
            .at_most(chrome::BROWSER_WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
    };
    c.goto(&format!("{base}/")).await.unwrap();
    find("input#token").await.send_keys(TOKEN).await.unwrap();
    find("form[action='/login'] button")
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(find("[data-k=failed] .v").await.text().await.unwrap(), "4");
    assert_eq!(find("[data-k=pending] .v").await.text().await.unwrap(), "2");
    chrome.shot("outbox-desktop").await;

    let first = outbox.list_failed().await.unwrap()[0].seq;
    let css = format!("tr[data-seq='{first}'] button.primary");
    c.find(Locator::Css(&css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(
        find(".flash").await.text().await.unwrap(),
        "Requeued 1 row."
    );
    assert_eq!(find("[data-k=failed] .v").await.text().await.unwrap(), "3");
    assert_eq!(find("[data-k=pending] .v").await.text().await.unwrap(), "3");
    assert_eq!(outbox.stats().await.unwrap().failed, 3);
    chrome.shot("outbox-after-requeue-desktop").await;

    chrome.size(390, 844).await;
    c.goto(&format!("{base}/")).await.unwrap();
    find("h1").await;
    chrome.shot("outbox-phone").await;
    let fits = c
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(fits, serde_json::Value::Bool(true));
    chrome.close().await;
    web.shutdown().await;
}
