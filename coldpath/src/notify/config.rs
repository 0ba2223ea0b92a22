//! The `[notify]` configuration: channels, routing by severity, windows and limits.
//!
//! The section is plain TOML parsed with serde ([`NotifyConfig::from_toml`] takes a whole file
//! and reads its `[notify]` table). Secrets never appear in the file: a channel names the
//! environment variables that hold its webhook URL, bot token, API key or SMTP password
//! (`url_env`, `token_env`, `password_env`), and [`NotifyConfig::resolve`] reads them once at
//! start-up into [`Secret`]s, whose `Debug`/`Display` print `***`, so a secret cannot reach a log
//! line or an error message. Base URLs of the HTTP services (`base_url`) are configurable so that
//! tests, proxies or regional endpoints (SendGrid EU) can be targeted.
//!
//! See `tuning/notify.example.toml` for a documented example.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::alert::Severity;

/// A secret value (token, webhook URL, password). Printing it shows `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for building a request. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The `[notify]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Warnings are collected for this long and sent as one batch per channel; 0 sends each
    /// warning at once.
    #[serde(default = "default_warning_batch_secs")]
    pub warning_batch_secs: u64,
    /// Info events are collected for this long and sent as one digest per channel; 0 sends
    /// each at once.
    #[serde(default = "default_info_digest_secs")]
    pub info_digest_secs: u64,
    /// Alerts with the same de-duplication key within this many seconds (by journal record
    /// time) become one alert with a count; 0 disables de-duplication.
    #[serde(default = "default_dedup_window_secs")]
    pub dedup_window_secs: u64,
    /// How long the notifier sleeps when there is nothing to read or send.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Where the state (outbox, de-duplication table, journal positions) is kept when
    /// `algo-engine run` does not pass a directory.
    #[serde(default)]
    pub state_dir: Option<String>,
    /// Which channels receive each severity.
    #[serde(default)]
    pub routing: Routing,
    /// The delivery channels.
    #[serde(default, rename = "channel")]
    pub channels: Vec<ChannelConfig>,
}

fn default_warning_batch_secs() -> u64 {
    60
}
fn default_info_digest_secs() -> u64 {
    3600
}
fn default_dedup_window_secs() -> u64 {
    300
}
fn default_poll_interval_ms() -> u64 {
    200
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            warning_batch_secs: default_warning_batch_secs(),
            info_digest_secs: default_info_digest_secs(),
            dedup_window_secs: default_dedup_window_secs(),
            poll_interval_ms: default_poll_interval_ms(),
            state_dir: None,
            routing: Routing::default(),
            channels: Vec::new(),
        }
    }
}

/// Channel names per severity (`[notify.routing]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routing {
    /// Channels for critical alerts (sent immediately).
    #[serde(default)]
    pub critical: Vec<String>,
    /// Channels for warnings (batched).
    #[serde(default)]
    pub warning: Vec<String>,
    /// Channels for info events (digest).
    #[serde(default)]
    pub info: Vec<String>,
}

impl Routing {
    /// The channels of `severity`.
    pub fn targets(&self, severity: Severity) -> &[String] {
        match severity {
            Severity::Critical => &self.critical,
            Severity::Warning => &self.warning,
            Severity::Info => &self.info,
        }
    }
}

/// One `[[notify.channel]]` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct ChannelConfig {
    /// Unique name, used by `routing` and `fallback`.
    pub name: String,
    /// The service and its settings.
    #[serde(flatten)]
    pub kind: ChannelKind,
    /// Channel that takes this channel's messages once it has failed for
    /// `escalate_after_secs`.
    #[serde(default)]
    pub fallback: Option<String>,
    /// Sustained rate limit in messages per minute (token bucket); 0 = unlimited.
    #[serde(default = "default_rate")]
    pub rate_per_minute: u32,
    /// Token bucket size: messages that may go out back to back.
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// After this many seconds of continuous failure the queue moves to `fallback`.
    #[serde(default = "default_escalate")]
    pub escalate_after_secs: u64,
    /// First retry delay; doubles per failed attempt (with jitter) up to `retry_max_ms`.
    #[serde(default = "default_retry_base")]
    pub retry_base_ms: u64,
    /// Longest retry delay.
    #[serde(default = "default_retry_max")]
    pub retry_max_ms: u64,
    /// Whole-request timeout.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

fn default_rate() -> u32 {
    30
}
fn default_burst() -> u32 {
    5
}
fn default_escalate() -> u64 {
    120
}
fn default_retry_base() -> u64 {
    500
}
fn default_retry_max() -> u64 {
    60_000
}
fn default_timeout() -> u64 {
    10_000
}

/// The service a channel delivers to (`kind = "..."`).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ChannelKind {
    /// Generic JSON webhook (format documented in [`super::channel`]).
    Webhook {
        /// Endpoint URL (if it is not secret).
        #[serde(default)]
        url: Option<String>,
        /// Environment variable holding the URL.
        #[serde(default)]
        url_env: Option<String>,
        /// Environment variable holding a bearer token sent as `Authorization: Bearer`.
        #[serde(default)]
        token_env: Option<String>,
    },
    /// Slack incoming webhook.
    Slack {
        /// Webhook URL (normally secret: prefer `url_env`).
        #[serde(default)]
        url: Option<String>,
        /// Environment variable holding the webhook URL.
        #[serde(default)]
        url_env: Option<String>,
    },
    /// Discord webhook.
    Discord {
        /// Webhook URL (normally secret: prefer `url_env`).
        #[serde(default)]
        url: Option<String>,
        /// Environment variable holding the webhook URL.
        #[serde(default)]
        url_env: Option<String>,
    },
    /// Telegram Bot API `sendMessage`.
    Telegram {
        /// API base (default `https://api.telegram.org`).
        #[serde(default = "default_telegram_base")]
        base_url: String,
        /// Environment variable holding the bot token.
        token_env: String,
        /// Target chat id (number or `@channel`).
        chat_id: String,
    },
    /// SendGrid v3 `mail/send`.
    Sendgrid {
        /// API base (default `https://api.sendgrid.com`).
        #[serde(default = "default_sendgrid_base")]
        base_url: String,
        /// Environment variable holding the API key.
        token_env: String,
        /// Sender address (verified in SendGrid).
        from: String,
        /// Recipients.
        to: Vec<String>,
    },
    /// SMTP through `lettre`.
    Smtp {
        /// Server host.
        host: String,
        /// Server port.
        #[serde(default = "default_smtp_port")]
        port: u16,
        /// User name for AUTH (optional).
        #[serde(default)]
        username: Option<String>,
        /// Environment variable holding the password (with `username`).
        #[serde(default)]
        password_env: Option<String>,
        /// Sender address.
        from: String,
        /// Recipients.
        to: Vec<String>,
    },
}

fn default_telegram_base() -> String {
    "https://api.telegram.org".into()
}
fn default_sendgrid_base() -> String {
    "https://api.sendgrid.com".into()
}
fn default_smtp_port() -> u16 {
    25
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML does not parse or has unknown/missing fields.
    #[error("notify config: {0}")]
    Parse(String),
    /// A semantic problem (unknown channel in routing, missing secret, ...).
    #[error("notify config: {0}")]
    Invalid(String),
}

/// A file with a `[notify]` table (other tables are ignored).
#[derive(Deserialize)]
struct File {
    #[serde(default)]
    notify: Option<NotifyConfig>,
}

impl NotifyConfig {
    /// Parses the `[notify]` table of a TOML document (the engine's config file or a file of
    /// its own). A document without one yields the defaults with no channels.
    pub fn from_toml(text: &str) -> Result<NotifyConfig, ConfigError> {
        let f: File = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        Ok(f.notify.unwrap_or_default())
    }

    /// Checks names and references and reads every secret from the environment through
    /// `env` (normally `|k| std::env::var(k).ok()`). Errors name the variable, never its
    /// value.
    pub fn resolve(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<ResolvedChannel>, ConfigError> {
        let mut names = BTreeMap::new();
        for (i, c) in self.channels.iter().enumerate() {
            if c.name.is_empty() {
                return Err(ConfigError::Invalid(format!("channel #{i} has no name")));
            }
            if names.insert(c.name.clone(), i).is_some() {
                return Err(ConfigError::Invalid(format!(
                    "channel {:?} defined twice",
                    c.name
                )));
            }
        }
        for sev in Severity::ALL {
            for t in self.routing.targets(sev) {
                if !names.contains_key(t) {
                    return Err(ConfigError::Invalid(format!(
                        "routing.{sev} names unknown channel {t:?}"
                    )));
                }
            }
        }
        let mut out = Vec::with_capacity(self.channels.len());
        for c in &self.channels {
            if let Some(fb) = &c.fallback {
                if !names.contains_key(fb) || fb == &c.name {
                    return Err(ConfigError::Invalid(format!(
                        "channel {:?}: fallback {fb:?} is not another configured channel",
                        c.name
                    )));
                }
            }
            let need = |var: &str| -> Result<Secret, ConfigError> {
                env(var)
                    .filter(|v| !v.is_empty())
                    .map(Secret)
                    .ok_or_else(|| {
                        ConfigError::Invalid(format!(
                            "channel {:?}: environment variable {var} is not set",
                            c.name
                        ))
                    })
            };
            let url = |url: &Option<String>, url_env: &Option<String>| match (url, url_env) {
                (_, Some(var)) => need(var),
                (Some(u), None) => Ok(Secret(u.clone())),
                (None, None) => Err(ConfigError::Invalid(format!(
                    "channel {:?}: set url or url_env",
                    c.name
                ))),
            };
            let endpoint = match &c.kind {
                ChannelKind::Webhook {
                    url: u,
                    url_env,
                    token_env,
                } => Endpoint::Webhook {
                    url: url(u, url_env)?,
                    token: token_env.as_deref().map(need).transpose()?,
                },
                ChannelKind::Slack { url: u, url_env } => Endpoint::Slack {
                    url: url(u, url_env)?,
                },
                ChannelKind::Discord { url: u, url_env } => Endpoint::Discord {
                    url: url(u, url_env)?,
                },
                ChannelKind::Telegram {
                    base_url,
                    token_env,
                    chat_id,
                } => Endpoint::Telegram {
                    base_url: base_url.trim_end_matches('/').to_string(),
                    token: need(token_env)?,
                    chat_id: chat_id.clone(),
                },
                ChannelKind::Sendgrid {
                    base_url,
                    token_env,
                    from,
                    to,
                } => {
                    if to.is_empty() {
                        return Err(ConfigError::Invalid(format!(
                            "channel {:?}: no recipients",
                            c.name
                        )));
                    }
                    Endpoint::Sendgrid {
                        base_url: base_url.trim_end_matches('/').to_string(),
                        token: need(token_env)?,
                        from: from.clone(),
                        to: to.clone(),
                    }
                }
                ChannelKind::Smtp {
                    host,
                    port,
                    username,
                    password_env,
                    from,
                    to,
                } => {
                    if to.is_empty() {
                        return Err(ConfigError::Invalid(format!(
                            "channel {:?}: no recipients",
                            c.name
                        )));
                    }
                    let credentials = match (username, password_env) {
                        (Some(u), Some(p)) => Some((u.clone(), need(p)?)),
                        (None, None) => None,
                        _ => {
                            return Err(ConfigError::Invalid(format!(
                                "channel {:?}: username and password_env go together",
                                c.name
                            )))
                        }
                    };
                    Endpoint::Smtp {
                        host: host.clone(),
                        port: *port,
                        credentials,
                        from: from.clone(),
                        to: to.clone(),
                    }
                }
            };
            out.push(ResolvedChannel {
                name: c.name.clone(),
                endpoint,
                fallback: c.fallback.clone(),
                rate_per_minute: c.rate_per_minute,
                burst: c.burst.max(1),
                escalate_after: Duration::from_secs(c.escalate_after_secs),
                retry_base: Duration::from_millis(c.retry_base_ms.max(1)),
                retry_max: Duration::from_millis(c.retry_max_ms.max(c.retry_base_ms.max(1))),
                timeout: Duration::from_millis(c.timeout_ms.max(1)),
            });
        }
        Ok(out)
    }
}

/// A channel with its secrets read from the environment.
#[derive(Debug, Clone)]
pub struct ResolvedChannel {
    /// Name.
    pub name: String,
    /// Where and how to deliver.
    pub endpoint: Endpoint,
    /// Escalation target.
    pub fallback: Option<String>,
    /// Messages per minute (0 = unlimited).
    pub rate_per_minute: u32,
    /// Token bucket size.
    pub burst: u32,
    /// Failure duration before escalation.
    pub escalate_after: Duration,
    /// First retry delay.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Request timeout.
    pub timeout: Duration,
}

/// A channel's service with everything needed to send.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// Generic JSON webhook.
    Webhook {
        /// URL.
        url: Secret,
        /// Optional bearer token.
        token: Option<Secret>,
    },
    /// Slack incoming webhook.
    Slack {
        /// Webhook URL.
        url: Secret,
    },
    /// Discord webhook.
    Discord {
        /// Webhook URL.
        url: Secret,
    },
    /// Telegram `sendMessage`.
    Telegram {
        /// API base without a trailing slash.
        base_url: String,
        /// Bot token.
        token: Secret,
        /// Chat id.
        chat_id: String,
    },
    /// SendGrid `mail/send`.
    Sendgrid {
        /// API base without a trailing slash.
        base_url: String,
        /// API key.
        token: Secret,
        /// Sender.
        from: String,
        /// Recipients.
        to: Vec<String>,
    },
    /// SMTP.
    Smtp {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// User and password.
        credentials: Option<(String, Secret)>,
        /// Sender.
        from: String,
        /// Recipients.
        to: Vec<String>,
    },
}
