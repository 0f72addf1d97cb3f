//! Shared test helpers: seeds, databases (SQLite files, Postgres schemas).
#![allow(dead_code)]

pub mod procs;

use rand::Rng;
use sqlx::PgPool;

/// The test seed: `MQ_TEST_SEED` or a fresh one, printed so a failure can be replayed.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("MQ_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    println!("{test}: seed = {seed} (replay with MQ_TEST_SEED={seed})");
    seed
}

/// `MQ_TEST_DATABASE_URL`, or `None` (skip) outside CI. In CI (`CI` set)
/// a missing URL fails the test instead of skipping it.
pub fn postgres_url(test: &str) -> Option<String> {
    match std::env::var("MQ_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").map_or(true, |v| v.is_empty() || v == "false"),
                "{test}: CI is set but MQ_TEST_DATABASE_URL is not; .ci/run must start PostgreSQL"
            );
            println!(
                "{test}: skipped; set MQ_TEST_DATABASE_URL (eval \"$(bash .ci/postgres.sh)\")"
            );
            None
        }
    }
}

/// Creates a fresh schema and returns a URL whose connections use it.
pub async fn fresh_schema(url: &str, schema: &str) -> String {
    let admin = PgPool::connect(url).await.expect("connect to postgres");
    sqlx::raw_sql(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    ))
    .execute(&admin)
    .await
    .expect("create schema");
    admin.close().await;
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options[search_path]={schema}")
}

pub async fn drop_schema(url: &str, schema: &str) {
    if let Ok(admin) = PgPool::connect(url).await {
        let _ = sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&admin)
            .await;
        admin.close().await;
    }
}

/// A temporary directory for SQLite files, removed by the caller.
pub fn temp_dir(name: &str, seed: u64) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mq-inbox-{name}-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
