//! Deploy webhooks: a secret URL per app, and push events from GitHub,
//! Gitea/Forgejo and GitLab with their signatures checked. Nothing is
//! deployed unless the secret or signature matches (compared in constant time).

use berth_core::{AppName, Deployment, ProjectName, deployment::Source};
use berth_store::deployments;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::{DeployError, Webhooks};

/// What a webhook call led to.
#[derive(Debug)]
pub enum WebhookOutcome {
    Queued(Box<Deployment>),
    /// Authenticated, but not a push to the deployed branch (a ping, a tag, another branch).
    Ignored(String),
}

impl Webhooks {
    /// The app's webhook secret (made on first use).
    pub async fn webhook_secret(
        &self,
        project: &ProjectName,
        name: &AppName,
    ) -> Result<String, DeployError> {
        let app = self.app(project, name).await?;
        Ok(deployments::webhook_secret(self.store(), app.id).await?)
    }

    /// A new secret: the old webhook URL and signatures stop working.
    pub async fn regenerate_webhook_secret(
        &self,
        project: &ProjectName,
        name: &AppName,
    ) -> Result<String, DeployError> {
        let app = self.app(project, name).await?;
        tracing::info!(project.name = %project, app.name = %name, "webhook secret regenerated");
        Ok(deployments::regenerate_webhook_secret(self.store(), app.id).await?)
    }

    /// Handles a webhook call: `url_secret` from the secret URL, or the
    /// provider's signature header over `body`. `headers` are (lowercase name, value).
    pub async fn webhook_deploy(
        &self,
        project: &ProjectName,
        name: &AppName,
        url_secret: Option<&str>,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<WebhookOutcome, DeployError> {
        let app = self.app(project, name).await?;
        let secret = deployments::webhook_secret(self.store(), app.id).await?;
        let header = |n: &str| -> Option<String> {
            headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
        };
        let provider = verify(&secret, url_secret, &header, body)?;
        // A signed request captured once must not deploy again when replayed.
        let delivery = header("x-github-delivery")
            .or(header("x-gitea-delivery"))
            .or(header("x-forgejo-delivery"))
            .or(header("x-gitlab-event-uuid"));
        if let Some(delivery) = delivery
            && !deployments::record_webhook_delivery(self.store(), app.id, &delivery).await?
        {
            return Ok(WebhookOutcome::Ignored(format!(
                "delivery {delivery} was already handled"
            )));
        }
        let event = header("x-github-event")
            .or(header("x-gitea-event"))
            .or(header("x-gitlab-event"))
            .unwrap_or_else(|| "push".to_owned());
        if provider != "url" && !matches!(event.as_str(), "push" | "Push Hook") {
            return Ok(WebhookOutcome::Ignored(format!(
                "{event} events do not deploy"
            )));
        }
        if let Source::Git(git) = deployments::settings(self.store(), app.id).await?.source
            && !git.branch.is_empty()
            && let Some(pushed) = pushed_ref(body)
            && pushed != format!("refs/heads/{}", git.branch)
        {
            return Ok(WebhookOutcome::Ignored(format!(
                "a push to {pushed}, not to {}",
                git.branch
            )));
        }
        let dep = self
            .enqueue_from_source(&app, &format!("webhook ({provider})"))
            .await?;
        Ok(WebhookOutcome::Queued(Box::new(dep)))
    }
}

/// Which provider's proof matched; `BadSignature` when none did.
fn verify(
    secret: &str,
    url_secret: Option<&str>,
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
) -> Result<&'static str, DeployError> {
    let equal = |a: &[u8], b: &[u8]| bool::from(a.ct_eq(b));
    if let Some(given) = url_secret {
        return if equal(given.as_bytes(), secret.as_bytes()) {
            Ok("url")
        } else {
            Err(DeployError::BadSignature)
        };
    }
    let expected = hmac_hex(secret, body);
    if let Some(sig) = header("x-hub-signature-256") {
        let given = sig.strip_prefix("sha256=").unwrap_or_default().to_owned();
        return if equal(given.as_bytes(), expected.as_bytes()) {
            Ok("github")
        } else {
            Err(DeployError::BadSignature)
        };
    }
    if let Some(sig) = header("x-gitea-signature").or(header("x-forgejo-signature")) {
        return if equal(sig.as_bytes(), expected.as_bytes()) {
            Ok("gitea")
        } else {
            Err(DeployError::BadSignature)
        };
    }
    if let Some(token) = header("x-gitlab-token") {
        return if equal(token.as_bytes(), secret.as_bytes()) {
            Ok("gitlab")
        } else {
            Err(DeployError::BadSignature)
        };
    }
    Err(DeployError::BadSignature)
}

/// HMAC-SHA256 of `body` keyed with `secret`, lowercase hex (what GitHub and Gitea send).
pub fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The `ref` of a push payload (all three providers use it).
fn pushed_ref(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("ref")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |n| {
            pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_signature_matches_githubs_published_example() {
        // docs.github.com, "Validating webhook deliveries": the test values.
        assert_eq!(
            hmac_hex("It's a Secret to Everybody", b"Hello, World!"),
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn each_provider_is_accepted_only_with_the_right_proof() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let good = format!("sha256={}", hmac_hex("s3cret", body));
        assert_eq!(
            verify(
                "s3cret",
                None,
                &headers(&[("x-hub-signature-256", &good)]),
                body
            )
            .unwrap(),
            "github"
        );
        let bad = format!("sha256={}", hmac_hex("other", body));
        assert!(
            verify(
                "s3cret",
                None,
                &headers(&[("x-hub-signature-256", &bad)]),
                body
            )
            .is_err()
        );
        let gitea = hmac_hex("s3cret", body);
        assert_eq!(
            verify(
                "s3cret",
                None,
                &headers(&[("x-gitea-signature", &gitea)]),
                body
            )
            .unwrap(),
            "gitea"
        );
        assert_eq!(
            verify(
                "s3cret",
                None,
                &headers(&[("x-gitlab-token", "s3cret")]),
                body
            )
            .unwrap(),
            "gitlab"
        );
        assert!(
            verify(
                "s3cret",
                None,
                &headers(&[("x-gitlab-token", "nope")]),
                body
            )
            .is_err()
        );
        assert!(verify("s3cret", None, &headers(&[]), body).is_err());
        assert_eq!(
            verify("s3cret", Some("s3cret"), &headers(&[]), b"").unwrap(),
            "url"
        );
        assert!(verify("s3cret", Some("s3cre"), &headers(&[]), b"").is_err());
        assert_eq!(pushed_ref(body).as_deref(), Some("refs/heads/main"));
    }
}
