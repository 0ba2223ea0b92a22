//! The admin bearer token: loaded from an environment variable or a private file, compared in
//! constant time, never printed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use subtle::ConstantTimeEq;

/// The environment variable the engine reads the token from by default.
pub const DEFAULT_TOKEN_ENV: &str = "ALGO_ADMIN_TOKEN";

/// A bearer token. `Debug` and `Display` are redacted so it cannot reach a log by accident.
#[derive(Clone)]
pub struct AdminToken(Arc<str>);

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// Why a token could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Neither the variable nor the file gave a token.
    #[error("no admin token: set {0} or configure a token file")]
    Missing(String),
    /// The token is empty or whitespace.
    #[error("the admin token is empty")]
    Empty,
    /// The file is readable by group or others.
    #[error("token file {path} has mode {mode:o}; it must not be accessible by group or others (chmod 600)")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file could not be read.
    #[error("token file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl AdminToken {
    /// A token from a string (surrounding whitespace, e.g. a trailing newline, is dropped).
    pub fn new(token: &str) -> Result<Self, TokenError> {
        let t = token.trim();
        if t.is_empty() {
            return Err(TokenError::Empty);
        }
        Ok(AdminToken(Arc::from(t)))
    }

    /// The token in environment variable `var`, if set.
    pub fn from_env(var: &str) -> Result<Option<Self>, TokenError> {
        match std::env::var(var) {
            Ok(v) => AdminToken::new(&v).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// The token in `path`, which must not be accessible by group or others (mode `0600` or
    /// stricter): a world-readable token is a leaked token.
    pub fn from_file(path: &Path) -> Result<Self, TokenError> {
        let io = |source| TokenError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(TokenError::Permissions {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
        #[cfg(not(unix))]
        let _ = meta;
        let text = std::fs::read_to_string(path).map_err(io)?;
        AdminToken::new(&text)
    }

    /// The token from `env_var` if set, else from `file` if given; [`TokenError::Missing`]
    /// otherwise.
    pub fn load(env_var: &str, file: Option<&Path>) -> Result<Self, TokenError> {
        if let Some(t) = AdminToken::from_env(env_var)? {
            return Ok(t);
        }
        match file {
            Some(p) => AdminToken::from_file(p),
            None => Err(TokenError::Missing(env_var.to_string())),
        }
    }

    /// True for an empty token (never produced by the constructors).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time comparison with a presented token: the time depends only on the length of
    /// the configured token, not on where a guess first differs or on the guess's length.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let want = self.0.as_bytes();
        let len_ok = (want.len() as u64).ct_eq(&(presented.len() as u64));
        let mut same = subtle::Choice::from(1u8);
        for (i, w) in want.iter().enumerate() {
            let p = if presented.is_empty() {
                0
            } else {
                presented[i % presented.len()]
            };
            same &= w.ct_eq(&p);
        }
        bool::from(len_ok & same)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_exactly_and_redacts() {
        let t = AdminToken::new("s3cret\n").unwrap();
        assert!(t.matches(b"s3cret"));
        assert!(!t.matches(b"s3cre"));
        assert!(!t.matches(b"s3cretX"));
        assert!(!t.matches(b""));
        assert!(!t.matches(b"S3cret"));
        assert!(!format!("{t:?}").contains("s3cret"));
        assert!(AdminToken::new("  ").is_err());
    }
}
