//! Admin accounts, browser sessions and API tokens: what logging in,
//! claiming a fresh install and calling the API need.

use berth_core::{
    ApiToken, ApiTokenId, NewSession, Password, SessionUser, TokenScope, User, Username,
};
use berth_store::{api_tokens, passwords, sessions, users};

use crate::{Accounts, DeployError};

/// How long a browser session lasts at most, in seconds.
pub const SESSION_LIFETIME_SECS: i64 = sessions::LIFETIME_SECS;
/// How long a browser session lasts unused, in seconds.
pub const SESSION_IDLE_SECS: i64 = sessions::IDLE_SECS;

impl Accounts {
    /// Whether an admin exists (until one does, only setup is open).
    pub async fn has_admin(&self) -> Result<bool, DeployError> {
        Ok(users::count(self.store()).await? > 0)
    }

    /// Creates the first admin and a session for them; `None` when an admin
    /// already exists (two setups racing: only one wins).
    pub async fn create_first_admin(
        &self,
        username: &Username,
        password: &Password,
    ) -> Result<Option<(User, NewSession)>, DeployError> {
        let hash = passwords::hash(password).await?;
        let Some(user) = users::create_first(self.store(), username, &hash).await? else {
            return Ok(None);
        };
        tracing::info!(user.name = %user.username, "admin account created through setup");
        let session = sessions::create(self.store(), user.id).await?;
        Ok(Some((user, session)))
    }

    /// Checks a login and opens a session; `None` for a wrong name or
    /// password. An unknown name is checked against a dummy hash, so the
    /// time taken does not tell which it was.
    ///
    /// A login always gets a new session, and the session the browser came
    /// with (`previous`, its cookie) ends: a session id planted before the
    /// login, or one left over from before, is worth nothing after it.
    pub async fn log_in(
        &self,
        username: &str,
        password: &str,
        previous: Option<&str>,
    ) -> Result<Option<(User, NewSession)>, DeployError> {
        let found = users::find_for_login(self.store(), username).await?;
        let hash = found
            .as_ref()
            .map_or(passwords::DUMMY_HASH, |(_, h)| h.as_str());
        let valid = passwords::verify(password, hash).await && found.is_some();
        let Some((user, _)) = found.filter(|_| valid) else {
            return Ok(None);
        };
        if let Some(previous) = previous {
            sessions::delete(self.store(), previous).await?;
        }
        let session = sessions::create(self.store(), user.id).await?;
        tracing::info!(user.name = %user.username, "logged in");
        Ok(Some((user, session)))
    }

    /// The user a session cookie belongs to, while the session lasts and
    /// has not been idle for `SESSION_IDLE_SECS`.
    pub async fn session_user(&self, token: &str) -> Result<Option<SessionUser>, DeployError> {
        Ok(sessions::find_user(self.store(), token).await?)
    }

    pub async fn log_out(&self, session_token: &str) -> Result<(), DeployError> {
        Ok(sessions::delete(self.store(), session_token).await?)
    }

    /// The API token a bearer token stands for, recording its use.
    pub async fn authenticate_token(&self, token: &str) -> Result<Option<ApiToken>, DeployError> {
        Ok(api_tokens::authenticate(self.store(), token).await?)
    }

    /// Makes an API token; the returned string is the token itself, shown once.
    pub async fn create_token(
        &self,
        name: &str,
        scope: TokenScope,
    ) -> Result<(ApiToken, String), DeployError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(DeployError::Invalid {
                field: "name",
                message: "must be 1 to 100 characters".to_owned(),
            });
        }
        let made = api_tokens::create(self.store(), name, scope).await?;
        tracing::info!(token.name = %name, token.read_only = scope.read_only, "API token created");
        Ok(made)
    }

    /// Every API token, by name (never the secret: only its hash is kept).
    pub async fn tokens(&self) -> Result<Vec<ApiToken>, DeployError> {
        Ok(api_tokens::list(self.store()).await?)
    }

    /// Revokes a token: requests with it get 401 from now on.
    pub async fn revoke_token(&self, id: ApiTokenId) -> Result<(), DeployError> {
        api_tokens::revoke_id(self.store(), id).await?;
        tracing::info!(token.id = id.get(), "API token revoked");
        Ok(())
    }
}
