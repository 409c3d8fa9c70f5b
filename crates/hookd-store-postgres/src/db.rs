//! Conversions between PostgreSQL values and the store's types: errors, times,
//! statement parameters and keyset pagination.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use hookd_store::{ListQuery, Page, StoreError, StoreResult};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};

/// The TLS connector for every connection. Whether TLS is used follows the URL's
/// `sslmode` (`disable`, `prefer` — the default — or `require`). As with libpq, the
/// server's certificate is checked only when a CA is given (`ca_file`, PEM): then it
/// must chain to it and name the host; without one the link is encrypted but the
/// server not authenticated (libpq's `require`).
pub(crate) fn tls_connector(
    ca_file: Option<&std::path::Path>,
) -> StoreResult<tokio_postgres_rustls::MakeRustlsConnect> {
    use std::sync::Arc;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Unavailable(format!("TLS setup: {e}")))?;
    let config = match ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                StoreError::Unavailable(format!("cannot read the CA file {}: {e}", path.display()))
            })?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in
                <rustls_pki_types::CertificateDer<'_> as rustls_pki_types::pem::PemObject>::pem_slice_iter(
                    &pem,
                )
            {
                let cert = cert.map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
            }
            if roots.is_empty() {
                return Err(StoreError::Unavailable(format!(
                    "{} holds no PEM certificate",
                    path.display()
                )));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth(),
    };
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// libpq's `sslmode=require` without a root certificate: the handshake's signatures
/// are checked, the certificate's issuer is not.
#[derive(Debug)]
struct EncryptOnly(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A database error: whatever a retry may cure — the connection, the server starting,
/// stopping, out of space or connections, read-only, a conflict between transactions,
/// a timeout — is `Unavailable` (503 with `Retry-After`); the caller's data PostgreSQL
/// cannot store is `Rejected`; the rest internal.
pub(crate) fn err(e: tokio_postgres::Error) -> StoreError {
    use tokio_postgres::error::SqlState;
    if e.is_closed() {
        return StoreError::Unavailable(format!("the PostgreSQL connection closed: {e}"));
    }
    match e.code() {
        Some(c) if transient_state(c.code()) => StoreError::Unavailable(chain(&e)),
        // Text or JSON holding the NUL character, which PostgreSQL cannot store (SQLite
        // can): the caller's data, refused as such, never a server error.
        Some(c)
            if *c == SqlState::CHARACTER_NOT_IN_REPERTOIRE || *c == SqlState::UNTRANSLATABLE_CHARACTER =>
        {
            StoreError::Rejected {
                field: String::new(),
                message: "text holds the NUL character (\\u0000), which the PostgreSQL backend cannot store"
                    .into(),
            }
        }
        Some(_) => StoreError::internal(e),
        // No server code: the connection failed, broke or timed out (an I/O error, a
        // TLS failure, a connect timeout).
        None => StoreError::Unavailable(format!("PostgreSQL could not be reached: {}", chain(&e))),
    }
}

/// An error and its causes, `: `-separated ("error connecting to server: Connection
/// refused (os error 111)").
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text
}

/// SQLSTATEs a retry may cure (PostgreSQL's appendix A): connection exceptions (08),
/// transaction rollbacks — serialization failures, deadlocks — (40), insufficient
/// resources — disk full, out of memory, too many connections — (53), operator
/// intervention — shutting down, starting, a cancelled statement — (57), system errors
/// — I/O — (58), a read-only transaction (25006, a standby after a failover), a lock
/// not available (55P03), and a snapshot too old (72000).
fn transient_state(code: &str) -> bool {
    matches!(code.get(..2), Some("08" | "40" | "53" | "57" | "58"))
        || matches!(code, "25006" | "55P03" | "72000")
}
/// Maps a unique-constraint failure to a conflict with `message`.
pub(crate) fn conflict_or(e: tokio_postgres::Error, message: &str) -> StoreError {
    if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
        StoreError::Conflict(message.to_owned())
    } else {
        err(e)
    }
}

pub(crate) fn pool(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => err(e),
        other => StoreError::Unavailable(format!("no database connection: {other}")),
    }
}

/// A column of `row`, or an internal error naming it.
pub(crate) fn get<'a, T: FromSql<'a>>(row: &'a Row, idx: usize) -> StoreResult<T> {
    row.try_get(idx).map_err(|e| damaged(row, idx, e))
}

/// A column of `row` that does not decode, named with the row's key (its first
/// column, when that is text).
pub(crate) fn damaged(row: &Row, idx: usize, cause: impl std::fmt::Display) -> StoreError {
    let columns = row.columns();
    let name = |i: usize| columns.get(i).map_or("?", |c| c.name());
    let place = match row.try_get::<_, String>(0) {
        Ok(key) if idx != 0 => format!("the {} of the row whose {} is {key}", name(idx), name(0)),
        _ => format!("the {} of a row", name(idx)),
    };
    StoreError::damaged(place, cause)
}

/// A JSON column decoded into `T`.
pub(crate) fn json<T: serde::de::DeserializeOwned>(row: &Row, idx: usize) -> StoreResult<T> {
    let v: serde_json::Value = get(row, idx)?;
    serde_json::from_value(v).map_err(|e| damaged(row, idx, e))
}

pub(crate) fn json_opt<T: serde::de::DeserializeOwned>(row: &Row, idx: usize) -> StoreResult<Option<T>> {
    let v: Option<serde_json::Value> = get(row, idx)?;
    v.map(|v| serde_json::from_value(v).map_err(|e| damaged(row, idx, e)))
        .transpose()
}

/// A value as a JSON column.
pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    // Serialising maps, sets and strings cannot fail.
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// A value stored validated that no longer parses (should never happen).
pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::damaged(format!("a stored {what}"), e)
}

/// `t` at the millisecond precision both backends keep.
pub(crate) fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// Now, at millisecond precision.
pub(crate) fn now() -> DateTime<Utc> {
    ms(Utc::now())
}

/// Positional parameters of a statement built piece by piece.
#[derive(Default)]
pub(crate) struct Args(Vec<Box<dyn ToSql + Sync + Send>>);

impl Args {
    /// Adds a value and returns its placeholder (`$n`).
    pub(crate) fn push(&mut self, v: impl ToSql + Sync + Send + 'static) -> String {
        self.0.push(Box::new(v));
        format!("${}", self.0.len())
    }

    pub(crate) fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0.iter().map(|b| b.as_ref() as &(dyn ToSql + Sync)).collect()
    }
}

/// Runs `select` (ending in its WHERE conditions over `args`) as one keyset page
/// ordered by `key`.
pub(crate) async fn select_page<C: GenericClient, T>(
    c: &C,
    select: &str,
    key: &str,
    mut args: Args,
    query: &ListQuery,
    from_row: impl Fn(&Row) -> StoreResult<T>,
) -> StoreResult<Page<T>> {
    let (cmp, dir) = if query.scan_descending() {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    let after = match &query.cursor {
        Some(cursor) => format!(" AND {key} {cmp} {}", args.push(cursor.key.clone())),
        None => String::new(),
    };
    let sql = format!("{select}{after} ORDER BY {key} {dir} LIMIT {}", query.limit + 1);
    let stmt = c.prepare_cached(&sql).await.map_err(err)?;
    let rows = c.query(&stmt, &args.refs()).await.map_err(err)?;
    let items = rows.iter().map(from_row).collect::<StoreResult<Vec<_>>>()?;
    Ok(query.into_page(items))
}

/// Runs one statement (prepared once per connection) and returns its rows.
pub(crate) async fn query<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Vec<Row>> {
    let stmt = c.prepare_cached(sql).await.map_err(err)?;
    c.query(&stmt, params).await.map_err(err)
}

pub(crate) async fn query_opt<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Option<Row>> {
    let stmt = c.prepare_cached(sql).await.map_err(err)?;
    c.query_opt(&stmt, params).await.map_err(err)
}

pub(crate) async fn execute<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<u64> {
    let stmt = c.prepare_cached(sql).await.map_err(err)?;
    c.execute(&stmt, params).await.map_err(err)
}

/// [`execute`], with a unique-constraint failure answered as a conflict.
pub(crate) async fn execute_unique<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    conflict: &str,
) -> StoreResult<u64> {
    let stmt = c.prepare_cached(sql).await.map_err(err)?;
    c.execute(&stmt, params)
        .await
        .map_err(|e| conflict_or(e, conflict))
}

#[cfg(test)]
mod tests {
    use super::transient_state;

    #[test]
    fn what_a_retry_may_cure_is_transient() {
        // admin_shutdown, cannot_connect_now, connection_failure, disk_full,
        // too_many_connections, serialization_failure, deadlock, io_error, read-only.
        for code in [
            "57P01", "57P03", "08006", "08001", "53100", "53300", "40001", "40P01", "58030", "25006",
        ] {
            assert!(transient_state(code), "{code}");
        }
        // unique_violation, syntax_error, undefined_table, not_null_violation.
        for code in ["23505", "42601", "42P01", "23502", "22P02"] {
            assert!(!transient_state(code), "{code}");
        }
    }
}
