//! [`open_target!`](crate::open_target): the `OpenTarget` and `Db` enums
//! each crate has, written once as a macro.
//!
//! A macro and not a type of this crate: their variants exist per
//! database feature, and that must be the feature of the crate that
//! matches on them. With one shared enum, a build where another crate
//! turns on `mq-db/postgres` would add a variant that a SQLite-only
//! crate's `match` does not cover. The `#[cfg(feature = ...)]`s a macro
//! writes are read in the crate it expands in.

/// Defines, in the calling crate, `pub enum OpenTarget` (a URL or an
/// existing pool; `From` a `&str`, `String`, `&String` or pool) with the
/// doc comment given, and `pub(crate) enum Db` (the open pool) with
/// `Db::kind()` and `Db::connect(target, max_connections, busy_timeout,
/// one_memory_connection)`, which opens a URL with
/// `connect_sqlite` or
/// `connect_postgres`. The variants follow the
/// calling crate's own `sqlite` and `postgres` features, which must turn
/// on this crate's.
///
/// # Examples
///
/// ```
/// // In a crate with features `sqlite = ["sqlx/sqlite", "mq-db/sqlite"]`
/// // and `postgres = [...]`:
/// mq_db::open_target! {
///     /// Where the store finds its database.
/// }
/// ```
#[macro_export]
macro_rules! open_target {
    ($(#[$doc:meta])*) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        #[non_exhaustive]
        pub enum OpenTarget {
            /// `sqlite:path/to/file.db`, `sqlite::memory:` or
            /// `postgres://user:pw@host/db`. SQLite files are created if
            /// missing and opened with WAL, `synchronous=FULL` and the
            /// configured busy timeout.
            Url(String),
            /// An existing SQLite pool. Its connections must use WAL and
            /// `synchronous` FULL or EXTRA (checked on one connection).
            /// Feature `sqlite`.
            #[cfg(feature = "sqlite")]
            Sqlite(::sqlx::SqlitePool),
            /// An existing Postgres pool. Feature `postgres`.
            #[cfg(feature = "postgres")]
            Postgres(::sqlx::PgPool),
        }

        impl ::core::convert::From<&str> for OpenTarget {
            fn from(url: &str) -> Self {
                OpenTarget::Url(url.to_owned())
            }
        }
        impl ::core::convert::From<String> for OpenTarget {
            fn from(url: String) -> Self {
                OpenTarget::Url(url)
            }
        }
        impl ::core::convert::From<&String> for OpenTarget {
            fn from(url: &String) -> Self {
                OpenTarget::Url(url.clone())
            }
        }
        #[cfg(feature = "sqlite")]
        impl ::core::convert::From<::sqlx::SqlitePool> for OpenTarget {
            fn from(pool: ::sqlx::SqlitePool) -> Self {
                OpenTarget::Sqlite(pool)
            }
        }
        #[cfg(feature = "postgres")]
        impl ::core::convert::From<::sqlx::PgPool> for OpenTarget {
            fn from(pool: ::sqlx::PgPool) -> Self {
                OpenTarget::Postgres(pool)
            }
        }

        /// The open database, one of the two supported kinds.
        #[derive(Debug, Clone)]
        pub(crate) enum Db {
            #[cfg(feature = "sqlite")]
            Sqlite(::sqlx::SqlitePool),
            #[cfg(feature = "postgres")]
            Postgres(::sqlx::PgPool),
        }

        impl Db {
            /// `"SQLite"` or `"Postgres"`.
            pub(crate) fn kind(&self) -> &'static str {
                match self {
                    #[cfg(feature = "sqlite")]
                    Db::Sqlite(_) => "SQLite",
                    #[cfg(feature = "postgres")]
                    Db::Postgres(_) => "Postgres",
                }
            }

            /// Opens `target`: a URL with the settings given (a kind this
            /// crate was built without is
            /// `mq_db::Error::UnsupportedUrl`), or a pool as it is.
            pub(crate) async fn connect(
                target: OpenTarget,
                max_connections: u32,
                busy_timeout: ::std::time::Duration,
                one_memory_connection: bool,
            ) -> ::core::result::Result<Db, $crate::Error> {
                let url = match target {
                    OpenTarget::Url(url) => url,
                    #[cfg(feature = "sqlite")]
                    OpenTarget::Sqlite(pool) => return Ok(Db::Sqlite(pool)),
                    #[cfg(feature = "postgres")]
                    OpenTarget::Postgres(pool) => return Ok(Db::Postgres(pool)),
                };
                #[cfg(feature = "sqlite")]
                if $crate::is_sqlite_url(&url) {
                    let pool = $crate::connect_sqlite(
                        &url,
                        max_connections,
                        busy_timeout,
                        one_memory_connection,
                    )
                    .await?;
                    return Ok(Db::Sqlite(pool));
                }
                #[cfg(feature = "postgres")]
                if $crate::is_postgres_url(&url) {
                    let pool = $crate::connect_postgres(&url, max_connections).await?;
                    return Ok(Db::Postgres(pool));
                }
                let _ = (max_connections, busy_timeout, one_memory_connection);
                Err($crate::Error::UnsupportedUrl($crate::redact(&url)))
            }
        }
    };
}
