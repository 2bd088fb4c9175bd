use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    #[error("is required")]
    Empty,
    #[error("must be at most 64 characters")]
    TooLong,
    #[error("may only contain letters, digits, '.', '_' and '-'")]
    InvalidChar,
}

/// The name an administrator logs in with.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    pub fn parse(input: &str) -> Result<Self, UsernameError> {
        let name = input.trim();
        if name.is_empty() {
            return Err(UsernameError::Empty);
        }
        if name.chars().count() > 64 {
            return Err(UsernameError::TooLong);
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(UsernameError::InvalidChar);
        }
        Ok(Username(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Username {
    type Error = UsernameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Username> for String {
    fn from(u: Username) -> String {
        u.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("must be at least {min} characters", min = Password::MIN_CHARS)]
    TooShort,
    #[error("must be at most 1024 characters")]
    TooLong,
}

/// A new password as typed. `Debug` never shows it, so it cannot leak into logs.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;

    /// Rules for a password being set. Logging in takes the raw text instead,
    /// so a rule change never locks anyone out.
    pub fn parse_new(input: &str) -> Result<Self, PasswordError> {
        let n = input.chars().count();
        if n < Self::MIN_CHARS {
            Err(PasswordError::TooShort)
        } else if n > 1024 {
            Err(PasswordError::TooLong)
        } else {
            Ok(Password(input.to_owned()))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// An admin account.
#[derive(Debug, Clone)]
pub struct User {
    pub id: crate::UserId,
    pub username: String,
}

/// A browser session just opened. Its `Debug` hides both tokens.
#[derive(Clone)]
pub struct NewSession {
    /// The cookie value: shown to the browser once, never stored.
    pub token: String,
    pub csrf_token: String,
}

impl fmt::Debug for NewSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSession")
            .field("token", &REDACTED)
            .field("csrf_token", &REDACTED)
            .finish()
    }
}

/// Whose session a cookie is, and its CSRF token (hidden by `Debug`).
#[derive(Clone)]
pub struct SessionUser {
    pub user_id: crate::UserId,
    pub username: String,
    pub csrf_token: String,
}

impl fmt::Debug for SessionUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionUser")
            .field("user_id", &self.user_id)
            .field("username", &self.username)
            .field("csrf_token", &REDACTED)
            .finish()
    }
}

/// What `Debug` prints in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// An API token (its secret is never kept, only a hash of it).
#[derive(Debug, Clone)]
pub struct ApiToken {
    pub id: crate::ApiTokenId,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// When it stops working; `None`: never.
    pub expires_at: Option<i64>,
    /// Only reads (GET, HEAD): for a script that watches and must not change anything.
    pub read_only: bool,
}

impl ApiToken {
    /// Whether a request with this HTTP method is within the token's scope.
    pub fn allows(&self, method: &str) -> bool {
        !self.read_only || matches!(method, "GET" | "HEAD")
    }
}

/// What a new API token may do, chosen when it is made.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenScope {
    pub expires_at: Option<i64>,
    pub read_only: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_tokens_never_show_in_debug_output() {
        let session = NewSession {
            token: "cookie-secret-1".to_owned(),
            csrf_token: "csrf-secret-2".to_owned(),
        };
        let user = SessionUser {
            user_id: crate::UserId::new(1),
            username: "admin".to_owned(),
            csrf_token: "csrf-secret-3".to_owned(),
        };
        let shown = format!("{session:?} {user:?} {session:#?}");
        for secret in ["cookie-secret-1", "csrf-secret-2", "csrf-secret-3"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("admin"), "{shown}");
    }

    #[test]
    fn usernames_are_checked() {
        assert_eq!(Username::parse(" admin ").unwrap().as_str(), "admin");
        assert_eq!(Username::parse(""), Err(UsernameError::Empty));
        assert_eq!(Username::parse("a b"), Err(UsernameError::InvalidChar));
        assert_eq!(
            Username::parse(&"a".repeat(65)),
            Err(UsernameError::TooLong)
        );
    }

    #[test]
    fn passwords_have_a_minimum_and_never_print() {
        assert_eq!(
            Password::parse_new("short").unwrap_err(),
            PasswordError::TooShort
        );
        let p = Password::parse_new("correct horse").unwrap();
        assert_eq!(format!("{p:?}"), "Password(***)");
        assert_eq!(p.expose(), "correct horse");
    }
}
