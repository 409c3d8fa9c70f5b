//! Configuration: built-in defaults (`config.default.toml`, embedded) → optional TOML
//! file named by `HOOKD_CONFIG` → `HOOKD_*` environment variables, environment last.
//!
//! Its own crate, on `hookd-core` alone: what it reads comes from the operator, so the
//! fuzz target `config` (fuzz/) takes arbitrary files through [`Config::from_toml`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format as _, Toml};
use hookd_core::network::NetworkList;
use hookd_core::retry::RetrySchedule;
use hookd_core::sealed::SealingKey;
use serde::{Deserialize, Serialize};

/// A configured duration as a time span (durations too large for one, saturated).
pub fn span(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// The documented defaults. Being the defaults layer itself, the file cannot drift from
/// what the binary does.
pub const DEFAULT_TOML: &str = include_str!("../../../config.default.toml");

/// Keys that may be set but have no default (they are commented out in the file).
const OPTIONAL_KEYS: &[&str] = &["public_url"];
/// `HOOKD_*` variables that are not settings: the config file, the tests' database,
/// and the remote commands' server, token and profile (hookd-server's `client`).
const NOT_SETTINGS: &[&str] = &["config", "test_database_url", "server", "token", "profile"];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<url::Url>,
    #[serde(with = "as_string_or_list")]
    pub delivery_allow_networks: NetworkList,
    #[serde(with = "as_string")]
    pub retry_schedule: RetrySchedule,
    pub delivery_proxy: String,
    pub api_enabled: bool,
    pub delivery_enabled: bool,
    #[serde(with = "as_duration")]
    pub delivery_timeout: Duration,
    pub delivery_https_only: bool,
    /// Keep each attempt's request and response headers (the UI shows them).
    pub delivery_record_headers: bool,
    pub delivery_concurrency: usize,
    pub delivery_endpoint_concurrency: usize,
    #[serde(with = "as_duration")]
    pub delivery_lease: Duration,
    #[serde(with = "as_duration")]
    pub delivery_poll_interval: Duration,
    pub node_id: String,
    #[serde(with = "as_duration")]
    pub endpoint_auto_disable_after: Duration,
    #[serde(with = "as_duration")]
    pub retention_interval: Duration,
    pub api_max_body_bytes: usize,
    pub ingest_max_body_bytes: usize,
    #[serde(with = "as_duration")]
    pub ingest_token_grace: Duration,
    #[serde(with = "as_duration")]
    pub ingest_retention: Duration,
    #[serde(with = "as_string_or_list")]
    pub ingest_trusted_proxies: NetworkList,
    /// Requests per second a source accepts on each node unless its options set
    /// `rateLimit` (0: no limit).
    pub ingest_source_rate_limit: u32,
    pub data_read_credits: u64,
    pub data_write_credits: u64,
    pub data_daily_credit_quota: u64,
    #[serde(with = "as_duration")]
    pub data_usage_flush_interval: Duration,
    pub data_key_rate_limit: u32,
    pub data_max_body_bytes: usize,
    /// Transformations (hookd_sandbox): threads running scripts (0 = one per core).
    pub transform_workers: usize,
    pub transform_memory_bytes: usize,
    #[serde(with = "as_duration")]
    pub transform_timeout: Duration,
    pub transform_stack_bytes: usize,
    pub transform_max_output_bytes: usize,
    /// Seals secrets at rest (base64 of 32 bytes); empty: the key file
    /// (hookd-server's `secret_key`).
    pub secret_key: String,
    /// Older keys that still open what they sealed (comma-separated), during a
    /// `hookd secrets rotate-key`.
    pub secret_key_previous: String,
    /// A file holding the key (then older keys, a line each); empty: beside an
    /// embedded database (`hookd.db.key`).
    pub secret_key_file: String,
    pub twilio_base_url: String,
    #[serde(with = "as_duration")]
    pub flow_run_retention: Duration,
    /// Flow runs one node carries out at once.
    pub flow_concurrency: usize,
    /// The web UI (`/ui`, `/portal`).
    pub ui_enabled: bool,
    #[serde(with = "as_duration")]
    pub ui_session_lifetime: Duration,
    #[serde(with = "as_duration")]
    pub ui_link_lifetime: Duration,
    /// The consumer portal's CSP `frame-ancestors` source list.
    pub portal_frame_ancestors: String,
    #[serde(with = "as_duration")]
    pub shutdown_timeout: Duration,
    /// The listener's limits (hookd-server's `http::server`, docs/security.md).
    #[serde(with = "as_duration")]
    pub http_header_timeout: Duration,
    #[serde(with = "as_duration")]
    pub http_body_timeout: Duration,
    pub http_max_connections: usize,
    pub http_max_in_flight: usize,
    /// Admission control: writes are refused (503, `Retry-After`) while the database's
    /// writes have waited longer than this (`hookd_store::pressure`); zero: never.
    #[serde(with = "as_duration")]
    pub http_admission_write_wait: Duration,
    pub http_max_headers: usize,
    pub http_max_header_bytes: usize,
    pub sqlite_synchronous: SqliteSynchronous,
    pub sqlite_readers: usize,
    pub postgres_pool_size: usize,
    #[serde(with = "as_duration")]
    pub postgres_connect_timeout: Duration,
    #[serde(with = "as_duration")]
    pub postgres_acquire_timeout: Duration,
    #[serde(with = "as_duration")]
    pub postgres_statement_timeout: Duration,
    pub postgres_ca_file: String,
    pub log: String,
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    Full,
    Normal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The database a URL selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite(PathBuf),
    /// The URL as given.
    Postgres(String),
}

/// A loaded configuration, plus what the loader wants said once logging is up.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Loads from the process environment (and the file it names).
    pub fn load() -> Result<Loaded, ConfigError> {
        Self::load_from(std::env::vars())
    }

    /// Loads from the given environment, for tests.
    pub fn load_from(env: impl IntoIterator<Item = (String, String)>) -> Result<Loaded, ConfigError> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let file = match env.iter().find(|(k, _)| k == "HOOKD_CONFIG") {
            Some((_, path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("cannot read HOOKD_CONFIG file {path}: {e}")))?,
            ),
            None => None,
        };
        Self::layered(file.as_deref(), &env)
    }

    /// The configuration a file's text gives over the defaults, with no environment.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Self::layered(Some(text), &[]).map(|loaded| loaded.config)
    }

    /// Defaults, then the file's text, then the `HOOKD_*` variables of `env`; checked.
    fn layered(file: Option<&str>, env: &[(String, String)]) -> Result<Loaded, ConfigError> {
        let known = known_keys()?;
        let mut warnings = Vec::new();
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(text) = file {
            figment = figment.merge(Toml::string(text));
        }

        let mut settings = Vec::new();
        for (key, value) in env {
            let Some(name) = key.strip_prefix("HOOKD_") else {
                continue;
            };
            let name = name.to_ascii_lowercase();
            if NOT_SETTINGS.contains(&name.as_str()) {
                continue;
            }
            if known.contains(&name) {
                settings.push((name, value.clone()));
            } else {
                warnings.push(format!("ignoring {key}: hookd has no setting `{name}`"));
            }
        }
        // Environment values are taken as strings; the typed fields parse them, so a
        // value like HOOKD_SQLITE_READERS=four fails with the key named.
        for (name, value) in settings {
            figment = figment.merge((name.as_str(), env_value(&value)));
        }

        let config: Config = figment.extract().map_err(|e| ConfigError(describe(e)))?;
        config.check()?;
        Ok(Loaded { config, warnings })
    }

    /// Threads that run transformations: as set, or one per core.
    pub fn transform_threads(&self) -> usize {
        match self.transform_workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        if !self.secret_key.trim().is_empty() {
            parse_key(&self.secret_key, "secret_key")?;
        }
        parse_key_list(&self.secret_key_previous, "secret_key_previous")?;
        if !self.twilio_base_url.starts_with("https://") && !self.twilio_base_url.starts_with("http://") {
            return Err(ConfigError("twilio_base_url must be an http(s) URL".into()));
        }
        if !(1024 * 1024..=1024 * 1024 * 1024).contains(&self.transform_memory_bytes) {
            return Err(ConfigError(
                "transform_memory_bytes must be between 1 MiB and 1 GiB".into(),
            ));
        }
        if self.transform_timeout.is_zero() || self.transform_timeout > Duration::from_secs(10) {
            return Err(ConfigError(
                "transform_timeout must be between 1ms and 10s".into(),
            ));
        }
        if !(64 * 1024..=64 * 1024 * 1024).contains(&self.transform_stack_bytes) {
            return Err(ConfigError(
                "transform_stack_bytes must be between 64 KiB and 64 MiB".into(),
            ));
        }
        if self.transform_max_output_bytes == 0 {
            return Err(ConfigError("transform_max_output_bytes must be positive".into()));
        }
        if self.transform_workers > 256 {
            return Err(ConfigError(
                "transform_workers must be at most 256 (0: one per core)".into(),
            ));
        }
        self.database()?;
        if self.http_header_timeout.is_zero() || self.http_body_timeout.is_zero() {
            return Err(ConfigError(
                "http_header_timeout and http_body_timeout must be positive".into(),
            ));
        }
        if !(1..=1_000_000).contains(&self.http_max_connections) {
            return Err(ConfigError(
                "http_max_connections must be between 1 and 1000000".into(),
            ));
        }
        if !(1..=1_000_000).contains(&self.http_max_in_flight) {
            return Err(ConfigError(
                "http_max_in_flight must be between 1 and 1000000".into(),
            ));
        }
        if !(1..=10_000).contains(&self.http_max_headers) {
            return Err(ConfigError("http_max_headers must be between 1 and 10000".into()));
        }
        // hyper's read buffer cannot be smaller than 8 KiB.
        if !(8192..=16 * 1024 * 1024).contains(&self.http_max_header_bytes) {
            return Err(ConfigError(
                "http_max_header_bytes must be between 8192 and 16777216".into(),
            ));
        }
        if self.api_max_body_bytes == 0 {
            return Err(ConfigError("api_max_body_bytes must be greater than 0".into()));
        }
        if self.ingest_max_body_bytes == 0 {
            return Err(ConfigError("ingest_max_body_bytes must be greater than 0".into()));
        }
        if self.flow_run_retention.is_zero() {
            return Err(ConfigError("flow_run_retention must be greater than 0".into()));
        }
        if !(1..=10_000).contains(&self.flow_concurrency) {
            return Err(ConfigError("flow_concurrency must be between 1 and 10000".into()));
        }
        if self.ingest_retention.is_zero() {
            return Err(ConfigError("ingest_retention must be greater than 0".into()));
        }
        if !(1..=100_000).contains(&self.delivery_concurrency) {
            return Err(ConfigError(
                "delivery_concurrency must be between 1 and 100000".into(),
            ));
        }
        if self.delivery_endpoint_concurrency == 0 {
            return Err(ConfigError(
                "delivery_endpoint_concurrency must be at least 1".into(),
            ));
        }
        if self.delivery_lease < Duration::from_secs(1) || self.delivery_lease <= self.delivery_timeout {
            return Err(ConfigError(
                "delivery_lease must be at least 1s and longer than delivery_timeout".into(),
            ));
        }
        if !self.delivery_proxy.is_empty() {
            let ok =
                url::Url::parse(&self.delivery_proxy).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                return Err(ConfigError(
                    "delivery_proxy must be an http:// or https:// URL".into(),
                ));
            }
        }
        if self.retention_interval < Duration::from_secs(1) {
            return Err(ConfigError("retention_interval must be at least 1s".into()));
        }
        if self.delivery_timeout.is_zero() || self.delivery_poll_interval.is_zero() {
            return Err(ConfigError(
                "delivery_timeout and delivery_poll_interval must be positive".into(),
            ));
        }
        if !(2..=1000).contains(&self.postgres_pool_size) {
            return Err(ConfigError(
                "postgres_pool_size must be between 2 and 1000".into(),
            ));
        }
        if self.postgres_connect_timeout.is_zero() || self.postgres_acquire_timeout.is_zero() {
            return Err(ConfigError(
                "postgres_connect_timeout and postgres_acquire_timeout must be positive".into(),
            ));
        }
        if !self.postgres_ca_file.is_empty() && !std::path::Path::new(&self.postgres_ca_file).is_file() {
            return Err(ConfigError(format!(
                "postgres_ca_file: {} is not a readable file",
                self.postgres_ca_file
            )));
        }
        if !(1..=64).contains(&self.sqlite_readers) {
            return Err(ConfigError("sqlite_readers must be between 1 and 64".into()));
        }
        if let Some(url) = &self.public_url
            && !matches!(url.scheme(), "http" | "https")
        {
            return Err(ConfigError(
                "public_url must be an http:// or https:// URL".into(),
            ));
        }
        if self.ui_session_lifetime.is_zero() || self.ui_link_lifetime.is_zero() {
            return Err(ConfigError(
                "ui_session_lifetime and ui_link_lifetime must be positive".into(),
            ));
        }
        // One CSP directive's source list: nothing that would end it or the header.
        if self.portal_frame_ancestors.trim().is_empty()
            || self
                .portal_frame_ancestors
                .chars()
                .any(|c| matches!(c, ';' | ',') || c.is_control())
        {
            return Err(ConfigError(
                "portal_frame_ancestors must be a space-separated list of CSP sources, e.g. \"'self' https://app.example.com\"".into(),
            ));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log).map_err(|e| ConfigError(format!("log: {e}")))?;
        Ok(())
    }

    pub fn database(&self) -> Result<DatabaseKind, ConfigError> {
        let url = &self.database_url;
        if url.starts_with("sqlite:") {
            sqlite_path(url)
                .map(DatabaseKind::Sqlite)
                .map_err(|e| ConfigError(format!("database_url: {e}")))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // Parsed now, so a bad URL stops start-up with the setting named (the
            // driver reads its parameters when it connects).
            url::Url::parse(url)
                .map_err(|e| ConfigError(format!("database_url: {}: {e}", redact_url(url))))?;
            Ok(DatabaseKind::Postgres(url.clone()))
        } else {
            Err(ConfigError(format!(
                "database_url: unsupported scheme in {}; use sqlite://PATH or postgres://...",
                redact_url(url)
            )))
        }
    }

    /// This node's name for its delivery leases.
    pub fn node_id(&self) -> String {
        if !self.node_id.trim().is_empty() {
            return self.node_id.trim().to_owned();
        }
        std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .map_or_else(
                || format!("hookd:{}", self.listen.port()),
                |h| format!("{h}:{}", self.listen.port()),
            )
    }

    /// The base of public URLs (ingest URLs are built on it).
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(u) => u.as_str().trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }

    /// The effective configuration as TOML, with credentials redacted.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database_url = redact_url(&self.database_url);
        shown.delivery_proxy = redact_url(&self.delivery_proxy);
        for key in [&mut shown.secret_key, &mut shown.secret_key_previous] {
            if !key.is_empty() {
                *key = "<redacted>".into();
            }
        }
        shown.public_url = self
            .public_url
            .as_ref()
            .and_then(|u| redact_url(u.as_str()).parse().ok());
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// The file of a `sqlite://PATH` (or `sqlite:PATH`) URL; a `?query` is ignored.
pub fn sqlite_path(url: &str) -> Result<PathBuf, String> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| format!("{url:?} is not a sqlite:// URL"))?;
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() {
        return Err("the sqlite:// URL has no file path".into());
    }
    Ok(PathBuf::from(path))
}

/// A key that seals secrets at rest (base64 of 32 bytes), `setting` naming where it
/// was given.
pub fn parse_key(text: &str, setting: &str) -> Result<SealingKey, ConfigError> {
    SealingKey::from_base64(text).map_err(|e| ConfigError(format!("{setting}: {}", e.message)))
}

/// Keys separated by commas or white space.
pub fn parse_key_list(text: &str, setting: &str) -> Result<Vec<SealingKey>, ConfigError> {
    text.split([',', ' ', '\n', '\t'])
        .filter(|k| !k.trim().is_empty())
        .map(|k| parse_key(k, setting))
        .collect()
}

/// Every key the defaults file sets, plus the optional ones.
fn known_keys() -> Result<Vec<String>, ConfigError> {
    let table: toml::Table = DEFAULT_TOML
        .parse()
        .map_err(|e| ConfigError(format!("the built-in defaults do not parse: {e}")))?;
    Ok(table
        .keys()
        .cloned()
        .chain(OPTIONAL_KEYS.iter().map(|k| (*k).to_owned()))
        .collect())
}

/// Numbers and `true`/`false` keep their type (for numeric and boolean settings);
/// everything else is a string.
fn env_value(raw: &str) -> figment::value::Value {
    if let Ok(n) = raw.parse::<u64>() {
        return figment::value::Value::from(n);
    }
    match raw {
        "true" => figment::value::Value::from(true),
        "false" => figment::value::Value::from(false),
        _ => figment::value::Value::from(raw.to_owned()),
    }
}

fn describe(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let kind = e.kind.to_string();
            if key.is_empty() {
                kind
            } else {
                format!("{key} (HOOKD_{}): {kind}", key.to_ascii_uppercase())
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Hides the password in `scheme://user:password@host/...`.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("********"));
            u.to_string()
        }
        _ => raw.to_owned(),
    }
}

mod as_string {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<T: Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr<Err = hookd_core::InvalidValue>,
        D: Deserializer<'de>,
    {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

mod as_string_or_list {
    use hookd_core::network::NetworkList;
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }

    pub fn serialize<S: Serializer>(v: &NetworkList, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NetworkList, D::Error> {
        let joined = match OneOrMany::deserialize(d)? {
            OneOrMany::One(s) => s,
            OneOrMany::Many(v) => v.join(","),
        };
        joined.parse().map_err(serde::de::Error::custom)
    }
}

mod as_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("{s:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
        Config::load_from(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
    }

    #[test]
    fn defaults_match_the_operator_contract() {
        let c = load(&[]).unwrap().config;
        assert_eq!(c.listen.to_string(), "127.0.0.1:8071");
        assert_eq!(c.database_url, "sqlite://hookd-data/hookd.db");
        assert_eq!(c.public_url(), "http://127.0.0.1:8071");
        assert!(c.delivery_allow_networks.is_empty());
        assert_eq!(c.retry_schedule.to_string(), "5s,5m,30m,2h,5h,10h,10h");
        assert_eq!(
            c.database().unwrap(),
            DatabaseKind::Sqlite("hookd-data/hookd.db".into())
        );
    }

    #[test]
    fn environment_overrides_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hookd.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:9000\"\nsqlite_readers = 2\nlog = \"debug\"\n",
        )
        .unwrap();
        let c = load(&[
            ("HOOKD_CONFIG", file.to_str().unwrap()),
            ("HOOKD_LISTEN", "127.0.0.1:9999"),
            ("HOOKD_DELIVERY_ALLOW_NETWORKS", "10.0.0.0/8,192.168.1.0/24"),
            ("HOOKD_RETRY_SCHEDULE", "1s,2s"),
            ("HOOKD_PUBLIC_URL", "https://hooks.example.com/"),
        ])
        .unwrap()
        .config;
        assert_eq!(c.listen.to_string(), "127.0.0.1:9999");
        assert_eq!(c.sqlite_readers, 2);
        assert_eq!(c.log, "debug");
        assert_eq!(c.delivery_allow_networks.networks().len(), 2);
        assert_eq!(c.retry_schedule.delays().len(), 2);
        assert_eq!(c.public_url(), "https://hooks.example.com");
    }

    #[test]
    fn invalid_settings_are_named() {
        for (key, value, needle) in [
            ("HOOKD_LISTEN", "not-an-address", "listen"),
            ("HOOKD_SQLITE_READERS", "four", "sqlite_readers"),
            ("HOOKD_RETRY_SCHEDULE", "5s,later", "retry_schedule"),
            (
                "HOOKD_DELIVERY_ALLOW_NETWORKS",
                "10.0.0.0/33",
                "delivery_allow_networks",
            ),
            ("HOOKD_DATABASE_URL", "mysql://x", "database_url"),
            ("HOOKD_SQLITE_SYNCHRONOUS", "sometimes", "sqlite_synchronous"),
            ("HOOKD_SHUTDOWN_TIMEOUT", "soon", "shutdown_timeout"),
            ("HOOKD_SQLITE_READERS", "0", "sqlite_readers"),
            ("HOOKD_DELIVERY_LEASE", "5s", "delivery_lease"),
            ("HOOKD_DELIVERY_ENABLED", "perhaps", "delivery_enabled"),
            ("HOOKD_SECRET_KEY", "not base64!", "secret_key"),
            ("HOOKD_SECRET_KEY", "c2hvcnQ=", "secret_key"),
            ("HOOKD_SECRET_KEY_PREVIOUS", "c2hvcnQ=", "secret_key_previous"),
            ("HOOKD_TWILIO_BASE_URL", "ftp://twilio", "twilio_base_url"),
        ] {
            let err = load(&[(key, value)]).unwrap_err().to_string();
            assert!(err.contains(needle), "{key}={value}: {err}");
        }
    }

    #[test]
    fn unknown_file_keys_fail_and_unknown_env_vars_warn() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hookd.toml");
        std::fs::write(&file, "lisen = \"0.0.0.0:9000\"\n").unwrap();
        let err = load(&[("HOOKD_CONFIG", file.to_str().unwrap())]).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
        let loaded = load(&[("HOOKD_LISTN", "x"), ("HOOKD_TEST_DATABASE_URL", "y")]).unwrap();
        assert_eq!(loaded.warnings.len(), 1);
        assert!(loaded.warnings[0].contains("HOOKD_LISTN"));
    }

    #[test]
    fn printing_redacts_passwords() {
        let mut c = load(&[]).unwrap().config;
        c.database_url = "postgres://hookd:hunter2@db/hookd".into();
        c.secret_key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into();
        c.secret_key_previous = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=".into();
        let shown = c.to_redacted_toml();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("MDEyMzQ1"), "{shown}");
        assert!(!shown.contains("QUJDREVG"), "{shown}");
        assert!(shown.contains("listen"));
    }
}
