//! Where the key that seals secrets at rest comes from (`hookd_store::sealing`;
//! docs/security.md#secrets-at-rest):
//!
//! 1. `secret_key` (base64 of 32 bytes), the same on every node;
//! 2. else the key file `secret_key_file`, or, for the embedded database, the file
//!    beside it (`hookd.db.key`), made on first start with mode 0600 when missing.
//!
//! `secret_key_previous` (and further lines of a key file) name older keys that still
//! open what they sealed, while `hookd secrets rotate-key` re-seals under the current
//! one. PostgreSQL needs `secret_key` or `secret_key_file`: nodes must share the key,
//! so one node making its own would break the others.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use hookd_core::sealed::SealingKey;
use hookd_store::sealing::Keyring;

use crate::config::{Config, ConfigError, DatabaseKind, parse_key as parse, parse_key_list as parse_list};

/// Why there is no keyring.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A setting is wrong (or missing, on PostgreSQL).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The key file could not be read or made.
    #[error("{0}")]
    File(String),
}

/// The keyring for `database` (which may be another than the configured one:
/// `hookd migrate-data` opens two).
pub fn keyring_for(config: &Config, database: &DatabaseKind) -> Result<Keyring, KeyError> {
    let mut previous = parse_list(&config.secret_key_previous, "secret_key_previous")?;
    if !config.secret_key.trim().is_empty() {
        let current = parse(&config.secret_key, "secret_key")?;
        return Ok(Keyring::new(current, previous));
    }
    let path = match (config.secret_key_file.trim(), database) {
        ("", DatabaseKind::Sqlite(db)) => beside(db),
        ("", DatabaseKind::Postgres(_)) => {
            return Err(KeyError::Config(ConfigError(
                "a PostgreSQL database needs secret_key (or secret_key_file): the key that seals \
                 secrets at rest, the same on every node. `hookd secrets new-key` prints one; \
                 see docs/security.md#secrets-at-rest"
                    .into(),
            )));
        }
        (file, _) => PathBuf::from(file),
    };
    let may_create = matches!(database, DatabaseKind::Sqlite(_));
    let mut keys = read_or_create(&path, may_create)?;
    let current = keys.remove(0);
    keys.append(&mut previous);
    Ok(Keyring::new(current, keys))
}

/// The key file of an embedded database: `hookd.db` → `hookd.db.key`.
pub fn beside(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

/// The keys of a key file: its first key line is the current key, the others previous
/// ones; blank lines and `#` comments are skipped.
fn read_or_create(path: &Path, may_create: bool) -> Result<Vec<SealingKey>, KeyError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && may_create => create(path)?,
        Err(e) => {
            return Err(KeyError::File(format!(
                "cannot read the secret key file {}: {e}",
                path.display()
            )));
        }
    };
    warn_if_readable_by_others(path);
    let setting = format!("the key file {}", path.display());
    let keys: Vec<SealingKey> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| parse(l, &setting))
        .collect::<Result<_, _>>()?;
    if keys.is_empty() {
        return Err(KeyError::Config(ConfigError(format!("{setting} holds no key"))));
    }
    Ok(keys)
}

/// Makes a new key file (only its owner may read it) and answers its text. Another
/// process making it at the same moment wins: its key is read instead.
fn create(path: &Path) -> Result<String, KeyError> {
    let failed = |e: std::io::Error| {
        KeyError::File(format!(
            "cannot create the secret key file {}: {e}",
            path.display()
        ))
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            KeyError::File(format!("cannot create the data directory {}: {e}", dir.display()))
        })?;
    }
    let text = format!(
        "# hookd's secret key: it seals the secrets kept in the database beside it.\n\
         # Back it up apart from the database; without it those secrets are lost.\n{}\n",
        SealingKey::generate().to_base64()
    );
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(failed)?;
            tracing::warn!(
                path = %path.display(),
                "made a new secret key file; back it up apart from the database (docs/security.md#secrets-at-rest)"
            );
            Ok(text)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::read_to_string(path).map_err(failed)
        }
        Err(e) => Err(failed(e)),
    }
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt as _;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                "the secret key file can be read by other users; `chmod 600` it"
            );
        }
    }
}

/// `hookd secrets rotate-key`: re-seals every secret under the current key, batch by
/// batch (each its own transaction; servers keep running), until a pass finds nothing
/// left under an older key; then seals the key check under the current key. Prints
/// progress to stderr and answers how many values it re-sealed.
pub async fn rotate(store: &dyn hookd_store::Store, batch: usize) -> Result<usize, hookd_store::StoreError> {
    use hookd_store::sealing::ResealCursor;
    let mut total = 0usize;
    for pass in 1..=3 {
        let (mut cursor, mut rows, mut resealed) = (ResealCursor::default(), 0usize, 0usize);
        loop {
            let done = store.reseal_secrets(&cursor, batch).await?;
            rows += done.rows;
            resealed += done.resealed;
            match done.next {
                Some(next) => cursor = next,
                None => break,
            }
            eprint!("\rpass {pass}: {rows} rows looked at, {resealed} values re-sealed");
        }
        eprintln!("\rpass {pass}: {rows} rows looked at, {resealed} values re-sealed");
        total += resealed;
        if resealed == 0 {
            store.seal_key_check().await?;
            return Ok(total);
        }
    }
    Err(hookd_store::StoreError::Precondition(
        "values sealed under an older key kept appearing: a node still seals with it. Give every \
         node the new secret_key (the old one in secret_key_previous) and run rotate-key again"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn an_embedded_database_gets_a_private_key_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("data").join("hookd.db");
        let first = read_or_create(&beside(&db), true).unwrap();
        let again = read_or_create(&beside(&db), true).unwrap();
        assert_eq!(first[0].to_base64(), again[0].to_base64());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(beside(&db)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Not made where it may not be (PostgreSQL's shared key).
        let err = read_or_create(&dir.path().join("missing.key"), false).unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
    }

    #[test]
    fn a_key_file_lists_the_current_key_then_older_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (SealingKey::generate(), SealingKey::generate());
        let path = dir.path().join("k");
        std::fs::write(
            &path,
            format!("# comment\n{}\n\n{}\n", a.to_base64(), b.to_base64()),
        )
        .unwrap();
        let keys = read_or_create(&path, false).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].to_base64(), a.to_base64());
        std::fs::write(&path, "not a key\n").unwrap();
        assert!(
            read_or_create(&path, false)
                .unwrap_err()
                .to_string()
                .contains("base64")
        );
        std::fs::write(&path, "# nothing\n").unwrap();
        assert!(
            read_or_create(&path, false)
                .unwrap_err()
                .to_string()
                .contains("no key")
        );
    }
}
