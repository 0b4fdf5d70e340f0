//! Throwaway PostgreSQL databases for tests: each test creates its own on the server at
//! `DIALS_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/postgres`) and drops it
//! afterwards. A server that does not answer fails the test: CI starts one. The binary's tests
//! include this file by path.

use sqlx::Connection;

/// The server the tests use: a URL to a database that may create others.
pub fn server_url() -> String {
    std::env::var("DIALS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database made for one test, dropped (with any connection still open to it) when this is.
pub struct ThrowawayDb {
    name: String,
    url: String,
}

impl ThrowawayDb {
    /// Creates `dials_test_<random>` on the test server.
    pub async fn create() -> Self {
        let server = server_url();
        let mut admin = sqlx::PgConnection::connect(&server)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "the PostgreSQL tests need a server at {server} (set DIALS_TEST_POSTGRES): {e}"
                )
            });
        let name = format!("dials_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let _ = admin.close().await;
        let url = database_url(&server, &name);
        Self { name, url }
    }

    /// The URL of the database.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// `server` with its database path replaced by `name`.
fn database_url(server: &str, name: &str) -> String {
    let mut url = url_base(server);
    url.push('/');
    url.push_str(name);
    url
}

/// The URL up to (not including) its database path.
fn url_base(server: &str) -> String {
    let (scheme, rest) = server.split_once("://").expect("a postgres:// URL");
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    format!("{scheme}://{authority}")
}

impl Drop for ThrowawayDb {
    fn drop(&mut self) {
        let (server, name) = (server_url(), self.name.clone());
        // Drop runs outside async code: a thread of its own with its own runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&server).await.ok()?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await
                .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}
