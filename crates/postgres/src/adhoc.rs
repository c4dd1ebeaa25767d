//! SQL a user gives (`patronictl query`), run on a client the caller connected: the statements' rows as text, with
//! the column types when the SQL is one statement, so the caller can print values typed as psycopg would.

use tokio_postgres::types::Type;
use tokio_postgres::{Client, SimpleQueryMessage};

/// The result set a simple query returned last.
#[derive(Debug, Default)]
pub struct TextRows {
    /// Column names of the last result set; `None` when no statement returned rows.
    pub columns: Option<Vec<String>>,
    /// Column types, by position; empty when they are unknown (several statements, or not preparable).
    pub types: Vec<Type>,
    /// Values as PostgreSQL's text output, `None` for NULL.
    pub rows: Vec<Vec<Option<String>>>,
}

/// Runs `sql` (one or more statements) through the simple query protocol. Errors are tokio-postgres's own, so the
/// caller can report the SQLSTATE as it likes.
pub async fn simple_query_text(client: &Client, sql: &str) -> Result<TextRows, tokio_postgres::Error> {
    let msgs = client.simple_query(sql).await?;
    let types = match client.prepare(sql).await {
        Ok(st) => st.columns().iter().map(|c| c.type_().clone()).collect(),
        Err(_) => vec![],
    };
    let mut out = TextRows { columns: None, types, rows: Vec::new() };
    for m in msgs {
        match m {
            SimpleQueryMessage::RowDescription(cols) => {
                out.columns = Some(cols.iter().map(|c| c.name().to_string()).collect());
                out.rows.clear();
            }
            SimpleQueryMessage::Row(r) => {
                if out.columns.is_none() {
                    out.columns = Some(r.columns().iter().map(|c| c.name().to_string()).collect());
                }
                out.rows.push((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect());
            }
            _ => {}
        }
    }
    Ok(out)
}

/// `pg_is_in_recovery()` of the server `client` is connected to (`true` when it does not say).
pub async fn is_in_recovery(client: &Client) -> Result<bool, tokio_postgres::Error> {
    let msgs = client.simple_query("SELECT pg_catalog.pg_is_in_recovery()").await?;
    Ok(msgs
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(|v| v == "t"),
            _ => None,
        })
        .unwrap_or(true))
}
