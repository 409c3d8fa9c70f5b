//! SMS through Twilio's Messages API: `POST {base}/2010-04-01/Accounts/{sid}/Messages.json`,
//! HTTP Basic auth with the account SID and auth token, form fields `To`, `From` or
//! `MessagingServiceSid`, and `Body` — the request Twilio's own libraries make (the
//! tests compare hookd's with the `twilio` Python library's at one capture server).
//!
//! The HTTP client is the caller's, so the server's network guard and timeouts apply;
//! the base URL is a setting (`https://api.twilio.com` by default) for a regional edge
//! or a test server.

use std::fmt;

use crate::{ConfigError, SendError};

/// Twilio's API, as Twilio's libraries reach it.
pub const TWILIO_BASE_URL: &str = "https://api.twilio.com";

/// An account's credentials (from the organisation's secret store).
#[derive(Clone, PartialEq, Eq)]
pub struct TwilioAccount {
    pub account_sid: String,
    pub auth_token: String,
}

impl fmt::Debug for TwilioAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioAccount")
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<redacted>")
            .finish()
    }
}

/// Who the message is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// A Twilio number (E.164) or an alphanumeric sender id.
    From(String),
    /// A messaging service (`MG...`), which picks the number.
    MessagingService(String),
}

/// One SMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    pub to: String,
    pub sender: Sender,
    pub body: String,
}

/// Longest body Twilio takes, in characters.
pub const MAX_BODY_CHARS: usize = 1_600;

/// What Twilio answered for an accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The message's SID (`SM...`).
    pub sid: String,
    /// Twilio's status (`queued`, `accepted`...).
    pub status: String,
}

/// Sends SMS through one Twilio base URL.
#[derive(Debug, Clone)]
pub struct Twilio {
    base: url::Url,
}

impl Twilio {
    pub fn new(base_url: &str) -> Result<Self, ConfigError> {
        let base = url::Url::parse(base_url)
            .map_err(|e| ConfigError(format!("the Twilio base URL is not a URL ({e})")))?;
        if !matches!(base.scheme(), "https" | "http") || base.host_str().is_none() {
            return Err(ConfigError("the Twilio base URL must be http(s)://host".into()));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(ConfigError("the Twilio base URL may not hold credentials".into()));
        }
        Ok(Self { base })
    }

    /// The Messages URL of an account.
    pub fn messages_url(&self, account_sid: &str) -> Result<url::Url, SendError> {
        if !account_sid.starts_with("AC") || !account_sid.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(SendError::Invalid(
                "a Twilio account SID is AC followed by letters and digits".into(),
            ));
        }
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| SendError::Invalid("the Twilio base URL cannot take a path".into()))?
            .pop_if_empty()
            .extend(["2010-04-01", "Accounts", account_sid, "Messages.json"]);
        Ok(url)
    }

    /// Sends `sms` with `client` (which carries the network guard and timeouts).
    pub async fn send(
        &self,
        client: &reqwest::Client,
        account: &TwilioAccount,
        sms: &Sms,
    ) -> Result<Sent, SendError> {
        if sms.to.trim().is_empty() {
            return Err(SendError::Invalid("an SMS needs a recipient".into()));
        }
        let chars = sms.body.chars().count();
        if chars == 0 || chars > MAX_BODY_CHARS {
            return Err(SendError::Invalid(format!(
                "an SMS body has 1 to {MAX_BODY_CHARS} characters"
            )));
        }
        let url = self.messages_url(&account.account_sid)?;
        let mut form = vec![("To", sms.to.as_str())];
        match &sms.sender {
            Sender::From(from) => form.push(("From", from)),
            Sender::MessagingService(sid) => form.push(("MessagingServiceSid", sid)),
        }
        form.push(("Body", &sms.body));
        let response = client
            .post(url)
            .basic_auth(&account.account_sid, Some(&account.auth_token))
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            // reqwest's errors name the URL, never the credentials.
            .map_err(|e| SendError::Transient(format!("could not reach Twilio: {e}")))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let message = || {
            let code = body
                .get("code")
                .map(|c| format!(" (code {c})"))
                .unwrap_or_default();
            let text = body
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("no message");
            format!("Twilio answered {status}: {text}{code}")
        };
        if status.is_success() {
            let field = |name: &str| {
                body.get(name)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            return Ok(Sent {
                sid: field("sid"),
                status: field("status"),
            });
        }
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(SendError::Transient(message()));
        }
        Err(SendError::Refused(message()))
    }
}
