//! Certificates from ACME (instant-acme) and their life: obtain, renew ahead
//! of expiry, back off on failure, keep serving the old one meanwhile.
//!
//! [`CertManager`] is the service the dashboard, the API and the background
//! task share. It owns the certificate files under `<data dir>/certs/`
//! (keys 0600), indexes them in the store, and installs them into the
//! [`CertResolver`] the HTTPS listener uses. Challenges are answered by the
//! edge itself: HTTP-01 through [`Http01Challenges`] on the HTTP listener,
//! TLS-ALPN-01 through the resolver on the HTTPS listener.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use base64::Engine as _;
use berth_core::{
    certificate::AcmeSettings, certificate::Certificate, certificate::Issued, certificate::Source,
};
use berth_store::Store;
use berth_store::certificates;
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, ExternalAccountKey, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls::pki_types::CertificateDer;
use tokio::sync::Notify;

use crate::certs;
use crate::tls::{CertResolver, Http01Challenges, TlsError, certified_key_from_pem};

/// Let's Encrypt's production directory: the default.
pub const LETS_ENCRYPT_PRODUCTION: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory: untrusted certificates, generous limits.
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

const RATE_LIMITED: &str = "urn:ietf:params:acme:error:rateLimited";
/// Never attempt the same certificate again sooner than this after a success,
/// whatever the threshold says (a threshold longer than the validity would
/// otherwise renew in a loop and run into the CA's limits).
const MIN_RENEWAL_GAP: i64 = 60;
/// First retry after a failure; doubles per consecutive failure.
const BACKOFF_BASE: i64 = 5 * 60;
const BACKOFF_MAX: i64 = 24 * 3600;
/// How often the CA's renewal window is asked for again.
const ARI_REFRESH: Duration = Duration::from_secs(6 * 3600);

/// Which challenge berth answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Challenge {
    /// HTTP-01 on the HTTP listener (port 80): the default.
    #[default]
    Http01,
    /// TLS-ALPN-01 on the HTTPS listener (port 443), for servers without port 80.
    TlsAlpn01,
}

impl Challenge {
    pub fn as_str(self) -> &'static str {
        match self {
            Challenge::Http01 => "http-01",
            Challenge::TlsAlpn01 => "tls-alpn-01",
        }
    }

    pub fn parse(value: &str) -> Option<Challenge> {
        match value {
            "http-01" => Some(Challenge::Http01),
            "tls-alpn-01" => Some(Challenge::TlsAlpn01),
            _ => None,
        }
    }
}

/// Settings that come from the command line (fixed while berth runs).
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// berth's data dir; files go to `<data_dir>/certs/`.
    pub data_dir: PathBuf,
    /// The ACME directory until the user picks one in the settings
    /// (Let's Encrypt production unless told otherwise).
    pub default_directory: String,
    /// Extra root certificates (PEM) to trust for the ACME directory, for a
    /// private CA (Pebble, step-ca).
    pub ca_bundle: Option<PathBuf>,
    /// Renew this long before expiry at the latest (30 days by default).
    pub renew_before: Duration,
    /// How often the background task looks for due work even when nothing
    /// wakes it.
    pub check_interval: Duration,
}

impl AcmeConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> AcmeConfig {
        AcmeConfig {
            data_dir: data_dir.into(),
            default_directory: LETS_ENCRYPT_PRODUCTION.to_owned(),
            ca_bundle: None,
            renew_before: Duration::from_secs(30 * 24 * 3600),
            // Cheap (a few queries): a domain added in the dashboard gets its
            // certificate within this time without anyone waking the task.
            check_interval: Duration::from_secs(15),
        }
    }
}

/// The ACME settings the user edits (the EAB HMAC key is write-only: the view
/// only tells whether one is set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettingsView {
    pub email: String,
    pub directory_url: String,
    pub eab_key_id: String,
    pub eab_hmac_set: bool,
    pub challenge: Challenge,
}

/// What the user submits to change the ACME settings.
pub struct AcmeSettingsInput {
    pub email: String,
    /// `production`, `staging` or a URL.
    pub directory: String,
    pub eab_key_id: String,
    /// Empty keeps the stored key; `clear_eab` removes it.
    pub eab_hmac: String,
    pub clear_eab: bool,
    pub challenge: String,
}

impl std::fmt::Debug for AcmeSettingsInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeSettingsInput")
            .field("email", &self.email)
            .field("directory", &self.directory)
            .field("eab_key_id", &self.eab_key_id)
            .field("eab_hmac", &berth_core::REDACTED)
            .finish_non_exhaustive()
    }
}

/// How a certificate is doing, for the certificates page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertState {
    /// Being obtained for the first time (or every attempt failed so far).
    Pending,
    Valid,
    /// Within the renewal threshold.
    Expiring,
    Expired,
}

impl CertState {
    pub fn as_str(self) -> &'static str {
        match self {
            CertState::Pending => "pending",
            CertState::Valid => "valid",
            CertState::Expiring => "expiring",
            CertState::Expired => "expired",
        }
    }
}

/// The certificate service: shared by the web handlers and the background task.
pub struct CertManager {
    store: Store,
    config: AcmeConfig,
    resolver: Arc<CertResolver>,
    http01: Arc<Http01Challenges>,
    wake: Notify,
    /// One ACME run at a time: attempts are sequential, so a "renew now"
    /// never races the background task for the same certificate.
    running: tokio::sync::Mutex<()>,
    accounts: tokio::sync::Mutex<HashMap<(String, String), Account>>,
    /// The domains that wanted a certificate at the last pass.
    in_use: RwLock<std::collections::HashSet<String>>,
    ari_checked: Mutex<HashMap<i64, std::time::Instant>>,
}

impl std::fmt::Debug for CertManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertManager")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl CertManager {
    pub fn new(
        store: Store,
        config: AcmeConfig,
        resolver: Arc<CertResolver>,
        http01: Arc<Http01Challenges>,
    ) -> Arc<CertManager> {
        Arc::new(CertManager {
            store,
            config,
            resolver,
            http01,
            wake: Notify::new(),
            running: tokio::sync::Mutex::new(()),
            accounts: tokio::sync::Mutex::new(HashMap::new()),
            in_use: RwLock::new(std::collections::HashSet::new()),
            ari_checked: Mutex::new(HashMap::new()),
        })
    }

    pub fn resolver(&self) -> &Arc<CertResolver> {
        &self.resolver
    }

    pub fn http01(&self) -> &Arc<Http01Challenges> {
        &self.http01
    }

    pub fn config(&self) -> &AcmeConfig {
        &self.config
    }

    fn certs_dir(&self) -> PathBuf {
        self.config.data_dir.join("certs")
    }

    /// Installs every stored certificate into the resolver (at start).
    /// A certificate whose files are missing or broken is skipped with a
    /// warning on its row, so one bad file never keeps berth from starting.
    pub async fn load(&self) -> Result<usize, TlsError> {
        let mut loaded = 0;
        for cert in certificates::list(&self.store).await.map_err(store_err)? {
            let (Some(cert_path), Some(key_path)) = (&cert.cert_path, &cert.key_path) else {
                continue;
            };
            match read_pair(Path::new(cert_path), Path::new(key_path)) {
                Ok((chain, key)) => match certified_key_from_pem(&chain, &key) {
                    Ok((_, certified)) => {
                        self.resolver.install(&cert.names, Arc::new(certified));
                        loaded += 1;
                    }
                    Err(e) => {
                        tracing::warn!(cert.domain = %cert.domain, error = %e, "stored certificate unusable")
                    }
                },
                Err(e) => {
                    tracing::warn!(cert.domain = %cert.domain, error = %e, "stored certificate files unreadable")
                }
            }
        }
        Ok(loaded)
    }

    /// Every certificate, by domain.
    pub async fn list(&self) -> Result<Vec<Certificate>, TlsError> {
        certificates::list(&self.store).await.map_err(store_err)
    }

    pub async fn get(&self, id: i64) -> Result<Certificate, TlsError> {
        certificates::find(&self.store, id).await.map_err(store_err)
    }

    /// How `cert` is doing at `now`.
    pub fn state(&self, cert: &Certificate, now: i64) -> CertState {
        match cert.not_after {
            None => CertState::Pending,
            Some(end) if end <= now => CertState::Expired,
            Some(end) if end - now <= self.config.renew_before.as_secs() as i64 => {
                CertState::Expiring
            }
            Some(_) => CertState::Valid,
        }
    }

    /// Validates and installs an uploaded certificate for `domain`. Nothing
    /// is written unless every check passes.
    ///
    /// The certificate is served for every name it holds. When a name other
    /// than `domain` itself is one another domain's certificate holds, the
    /// upload would take it over there: it is refused (field `replace`,
    /// naming them) unless `replace_others` says the admin confirmed it.
    pub async fn upload(
        &self,
        domain: &str,
        chain_pem: &str,
        key_pem: &str,
        replace_others: bool,
    ) -> Result<Certificate, TlsError> {
        let domain = normalize_domain(domain)?;
        let valid = certs::validate_upload(&domain, chain_pem, key_pem, berth_store::now())?;
        if !replace_others {
            let taken: Vec<String> = self
                .list()
                .await?
                .iter()
                .filter(|other| other.domain != domain)
                .flat_map(|other| {
                    other
                        .names
                        .iter()
                        .filter(|name| **name != domain && valid.facts.names.contains(name))
                        .map(|name| format!("{name} (now the certificate of {})", other.domain))
                })
                .collect();
            if !taken.is_empty() {
                return Err(TlsError::invalid(
                    "replace",
                    format!(
                        "this certificate would replace another domain's certificate for {}; \
                         confirm to serve it there instead",
                        taken.join(", ")
                    ),
                ));
            }
        }
        let (cert_path, key_path) = self.write_pair(
            &domain,
            &valid.facts.serial,
            &valid.chain_pem,
            &valid.key_pem,
        )?;
        let issued = Issued {
            names: valid.facts.names.clone(),
            issuer: valid.facts.issuer.clone(),
            serial: valid.facts.serial.clone(),
            not_before: valid.facts.not_before,
            not_after: valid.facts.not_after,
            cert_path: path_str(&cert_path),
            key_path: path_str(&key_path),
            account_id: None,
            next_attempt_at: None,
        };
        let (cert, stale) =
            certificates::record_issued(&self.store, &domain, Source::Uploaded, &issued)
                .await
                .map_err(store_err)?;
        self.resolver.install(&cert.names, Arc::new(valid.key));
        remove_files(&stale);
        tracing::info!(cert.domain = %domain, cert.serial = %cert.serial.as_deref().unwrap_or(""), "certificate uploaded");
        Ok(cert)
    }

    /// "Renew now": makes the certificate due and wakes the background task.
    /// Uploaded certificates cannot be renewed by berth.
    pub async fn renew_now(&self, id: i64) -> Result<Certificate, TlsError> {
        let cert = self.get(id).await?;
        if cert.source != Source::Acme {
            return Err(TlsError::invalid(
                "certificate",
                "an uploaded certificate cannot be renewed by berth: upload a new one",
            ));
        }
        if !self.in_use(&cert.domain) {
            return Err(TlsError::invalid(
                "certificate",
                "no domain uses this certificate any more, so berth does not renew it: delete it",
            ));
        }
        certificates::make_due(&self.store, id)
            .await
            .map_err(store_err)?;
        self.wake.notify_one();
        self.get(id).await
    }

    /// Deletes a certificate: it stops being served and its files are removed.
    pub async fn delete(&self, id: i64) -> Result<Certificate, TlsError> {
        let cert = certificates::delete(&self.store, id)
            .await
            .map_err(store_err)?;
        self.resolver.remove(&cert.names, None);
        remove_files(
            &[cert.cert_path.clone(), cert.key_path.clone()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>(),
        );
        tracing::info!(cert.domain = %cert.domain, "certificate deleted");
        Ok(cert)
    }

    /// Wakes the background task now rather than at its next pass (e.g.
    /// right after a domain with ACME was added).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub async fn settings(&self) -> Result<AcmeSettingsView, TlsError> {
        let stored = certificates::acme_settings(&self.store)
            .await
            .map_err(store_err)?;
        Ok(AcmeSettingsView {
            email: stored.email.unwrap_or_default(),
            directory_url: stored
                .directory_url
                .unwrap_or_else(|| self.config.default_directory.clone()),
            eab_key_id: stored.eab_key_id.unwrap_or_default(),
            eab_hmac_set: self.eab_hmac_path().exists(),
            challenge: stored
                .challenge
                .as_deref()
                .and_then(Challenge::parse)
                .unwrap_or_default(),
        })
    }

    /// Validates and saves the ACME settings; nothing is saved on error.
    pub async fn save_settings(&self, input: &AcmeSettingsInput) -> Result<(), TlsError> {
        let directory = directory_url(&input.directory).ok_or_else(|| {
            TlsError::invalid(
                "directory",
                "the directory must be production, staging or an https:// URL",
            )
        })?;
        let email = input.email.trim();
        if !email.is_empty() && !is_plausible_email(email) {
            return Err(TlsError::invalid(
                "email",
                "enter an e-mail address like you@example.com, or leave it empty",
            ));
        }
        let challenge = Challenge::parse(input.challenge.trim())
            .ok_or_else(|| TlsError::invalid("challenge", "choose http-01 or tls-alpn-01"))?;
        let kid = input.eab_key_id.trim();
        let hmac = input.eab_hmac.trim();
        if !hmac.is_empty() {
            decode_hmac(hmac)?;
        }
        if kid.is_empty() && !hmac.is_empty() {
            return Err(TlsError::invalid(
                "eab_key_id",
                "an EAB HMAC key needs its key id",
            ));
        }
        if !kid.is_empty() && hmac.is_empty() && (input.clear_eab || !self.eab_hmac_path().exists())
        {
            return Err(TlsError::invalid(
                "eab_hmac",
                "an EAB key id needs its HMAC key",
            ));
        }
        if !hmac.is_empty() {
            write_secret(&self.eab_hmac_path(), hmac.as_bytes())?;
        } else if input.clear_eab || kid.is_empty() {
            let _ = std::fs::remove_file(self.eab_hmac_path());
        }
        let settings = AcmeSettings {
            email: (!email.is_empty()).then(|| email.to_owned()),
            directory_url: Some(directory),
            eab_key_id: (!kid.is_empty()).then(|| kid.to_owned()),
            challenge: Some(challenge.as_str().to_owned()),
        };
        certificates::save_acme_settings(&self.store, &settings)
            .await
            .map_err(store_err)?;
        self.wake.notify_one();
        Ok(())
    }

    fn eab_hmac_path(&self) -> PathBuf {
        self.certs_dir().join("eab-hmac.key")
    }

    /// The background task: obtains missing certificates for `domains()`
    /// and renews due ones, until `stop` completes. `domains` is asked again
    /// on every pass, so new domains are picked up without a restart.
    pub async fn run<D, F>(self: Arc<Self>, domains: D, stop: impl Future<Output = ()>)
    where
        D: Fn() -> F,
        F: Future<Output = Vec<String>>,
    {
        tokio::pin!(stop);
        loop {
            let wanted = domains().await;
            // Shutdown does not wait for a CA that takes its time.
            let wait = tokio::select! {
                _ = &mut stop => return,
                wait = self.tick(&wanted) => wait,
            };
            tokio::select! {
                _ = &mut stop => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Whether a domain wanted this certificate at the last pass (an ACME
    /// certificate nobody uses any more is not renewed).
    pub fn in_use(&self, domain: &str) -> bool {
        self.in_use
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(domain)
    }

    /// One pass: makes sure every wanted domain has a row, attempts every
    /// due ACME certificate of a wanted domain, and returns how long to sleep.
    pub async fn tick(&self, wanted: &[String]) -> Duration {
        let _running = self.running.lock().await;
        let mut in_use = std::collections::HashSet::new();
        for domain in wanted {
            let Ok(domain) = normalize_domain(domain) else {
                continue;
            };
            if let Err(e) = certificates::ensure_acme(&self.store, &domain).await {
                tracing::warn!(cert.domain = %domain, error = %e, "cannot record the wanted certificate");
            }
            in_use.insert(domain);
        }
        *self.in_use.write().unwrap_or_else(|e| e.into_inner()) = in_use.clone();
        let certs = match certificates::list(&self.store).await {
            Ok(certs) => certs,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list certificates");
                return self.config.check_interval;
            }
        };
        let now = berth_store::now();
        for cert in certs
            .iter()
            .filter(|c| c.source == Source::Acme && in_use.contains(&c.domain))
        {
            let due = cert.next_attempt_at.is_none_or(|at| at <= now);
            if due {
                self.attempt(cert).await;
            } else if cert.not_after.is_some() {
                self.refresh_renewal_window(cert).await;
            }
        }
        // Sleep until the next due attempt, but at most the check interval.
        let next = certificates::list(&self.store)
            .await
            .unwrap_or_default()
            .iter()
            .filter(|c| c.source == Source::Acme && in_use.contains(&c.domain))
            .filter_map(|c| c.next_attempt_at)
            .min();
        let now = berth_store::now();
        let until_next = next
            .map(|at| Duration::from_secs(at.saturating_sub(now).max(1) as u64))
            .unwrap_or(self.config.check_interval);
        until_next.min(self.config.check_interval)
    }

    /// Obtains (or renews) one certificate and records the outcome. On
    /// failure the certificate being served stays as it is.
    async fn attempt(&self, cert: &Certificate) {
        tracing::info!(cert.domain = %cert.domain, renewal = cert.not_after.is_some(), "requesting a certificate");
        match self.obtain(&cert.domain).await {
            Ok(issued) => {
                tracing::info!(cert.domain = %cert.domain, cert.serial = %issued.serial, "certificate obtained");
            }
            Err(err) => {
                let (message, rate_limited) = describe(&err);
                let failures = cert.failures.min(20) as u32;
                let backoff = BACKOFF_BASE
                    .saturating_mul(1i64 << failures.min(16))
                    .min(BACKOFF_MAX);
                let next = berth_store::now() + backoff;
                tracing::warn!(cert.domain = %cert.domain, error = %message, rate_limited, retry_in_s = backoff, "certificate request failed");
                if let Err(e) =
                    certificates::record_failure(&self.store, cert.id, &message, rate_limited, next)
                        .await
                {
                    tracing::warn!(error = %e, "cannot record the failed attempt");
                }
            }
        }
    }

    /// The whole ACME dance for one domain; on success the certificate is
    /// stored, indexed and served.
    async fn obtain(&self, domain: &str) -> Result<Issued, TlsError> {
        let settings = self.settings().await?;
        let (account, account_id) = self.account(&settings).await?;
        let identifiers = [Identifier::Dns(domain.to_owned())];
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(acme_err)?;

        let mut tokens = Vec::new();
        let mut alpn_domains = Vec::new();
        let result = async {
            let mut authorizations = order.authorizations();
            while let Some(authz) = authorizations.next().await {
                let mut authz = authz.map_err(acme_err)?;
                match authz.status {
                    AuthorizationStatus::Pending => {}
                    AuthorizationStatus::Valid => continue,
                    other => {
                        return Err(TlsError::Acme(format!(
                            "the authorization for {domain} is {other:?}"
                        )));
                    }
                }
                let kind = match settings.challenge {
                    Challenge::Http01 => ChallengeType::Http01,
                    Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
                };
                let mut challenge = authz.challenge(kind).ok_or_else(|| {
                    TlsError::Acme(format!(
                        "the CA offers no {} challenge for {domain}",
                        settings.challenge.as_str()
                    ))
                })?;
                let key_authorization = challenge.key_authorization();
                match settings.challenge {
                    Challenge::Http01 => {
                        self.http01
                            .insert(challenge.token.clone(), key_authorization.as_str());
                        tokens.push(challenge.token.clone());
                    }
                    Challenge::TlsAlpn01 => {
                        let name = challenge.identifier().to_string();
                        self.resolver
                            .set_alpn_challenge(&name, key_authorization.digest().as_ref())?;
                        alpn_domains.push(name);
                    }
                }
                challenge.set_ready().await.map_err(acme_err)?;
            }
            let status = order
                .poll_ready(&RetryPolicy::new().timeout(Duration::from_secs(90)))
                .await
                .map_err(acme_err)?;
            if status != OrderStatus::Ready {
                return Err(self.validation_error(&mut order, status).await);
            }
            let key_pem = order.finalize().await.map_err(acme_err)?;
            let chain_pem = order
                .poll_certificate(&RetryPolicy::new().timeout(Duration::from_secs(90)))
                .await
                .map_err(acme_err)?;
            Ok((chain_pem, key_pem))
        }
        .await;
        for token in &tokens {
            self.http01.remove(token);
        }
        for name in &alpn_domains {
            self.resolver.clear_alpn_challenge(name);
        }
        let (chain_pem, key_pem) = result?;

        let (names, certified) = certified_key_from_pem(&chain_pem, &key_pem)?;
        let facts = certs::facts_from_pem(&chain_pem)?;
        let (cert_path, key_path) = self.write_pair(domain, &facts.serial, &chain_pem, &key_pem)?;
        let issued = Issued {
            names,
            issuer: facts.issuer,
            serial: facts.serial,
            not_before: facts.not_before,
            not_after: facts.not_after,
            cert_path: path_str(&cert_path),
            key_path: path_str(&key_path),
            account_id: Some(account_id),
            next_attempt_at: Some(renewal_time(
                facts.not_before,
                facts.not_after,
                self.config.renew_before,
                None,
                berth_store::now(),
            )),
        };
        let (cert, stale) = certificates::record_issued(&self.store, domain, Source::Acme, &issued)
            .await
            .map_err(store_err)?;
        self.resolver.install(&cert.names, Arc::new(certified));
        remove_files(&stale);
        self.ari_checked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&cert.id);
        self.refresh_renewal_window(&cert).await;
        Ok(issued)
    }

    /// The CA's reason an order did not become ready: the error of the
    /// failed challenge (e.g. "connection refused"), or the order's own.
    async fn validation_error(
        &self,
        order: &mut instant_acme::Order,
        status: OrderStatus,
    ) -> TlsError {
        if let Some(problem) = order.state().error.clone() {
            return acme_err(instant_acme::Error::Api(problem));
        }
        let mut authorizations = order.authorizations();
        while let Some(Ok(mut authz)) = authorizations.next().await {
            let Ok(state) = authz.refresh().await else {
                continue;
            };
            if let Some(problem) = state.challenges.iter().find_map(|c| c.error.clone()) {
                return acme_err(instant_acme::Error::Api(problem));
            }
        }
        TlsError::Acme(format!(
            "the order ended {status:?} without a reason from the CA"
        ))
    }

    /// Asks the CA for its suggested renewal window (ARI) and moves the next
    /// attempt into it when that is earlier than the threshold. CAs without
    /// ARI keep the threshold.
    async fn refresh_renewal_window(&self, cert: &Certificate) {
        {
            let mut checked = self.ari_checked.lock().unwrap_or_else(|e| e.into_inner());
            if checked
                .get(&cert.id)
                .is_some_and(|at| at.elapsed() < ARI_REFRESH)
            {
                return;
            }
            checked.insert(cert.id, std::time::Instant::now());
        }
        let (Some(cert_path), Some(not_before), Some(not_after)) =
            (&cert.cert_path, cert.not_before, cert.not_after)
        else {
            return;
        };
        let Ok(settings) = self.settings().await else {
            return;
        };
        let Ok((account, _)) = self.account(&settings).await else {
            return;
        };
        let Ok(pem) = std::fs::read_to_string(cert_path) else {
            return;
        };
        let Ok(chain) = certs::parse_chain(&pem) else {
            return;
        };
        let leaf: &CertificateDer<'_> = &chain[0];
        let Ok(id) = instant_acme::CertificateIdentifier::try_from(leaf) else {
            return;
        };
        match account.renewal_info(&id).await {
            Ok((info, _)) => {
                let start = info.suggested_window.start.unix_timestamp();
                let end = info.suggested_window.end.unix_timestamp();
                let next = renewal_time(
                    not_before,
                    not_after,
                    self.config.renew_before,
                    Some((start, end)),
                    berth_store::now(),
                );
                // Keep an earlier pending retry (after a failure) as it is.
                let next = cert.next_attempt_at.map_or(next, |at| at.min(next));
                if let Err(e) =
                    certificates::set_renewal_window(&self.store, cert.id, start, end, next).await
                {
                    tracing::warn!(error = %e, "cannot record the renewal window");
                }
            }
            Err(instant_acme::Error::Unsupported(_)) => {}
            Err(e) => {
                tracing::debug!(cert.domain = %cert.domain, error = %e, "no renewal information")
            }
        }
    }

    /// The ACME account for the current settings: loaded from its credentials
    /// file, or created (with EAB when configured) and saved.
    async fn account(&self, settings: &AcmeSettingsView) -> Result<(Account, i64), TlsError> {
        let key = (settings.directory_url.clone(), settings.email.clone());
        let stored =
            certificates::find_account(&self.store, &settings.directory_url, &settings.email)
                .await
                .map_err(store_err)?;
        let mut cache = self.accounts.lock().await;
        if let (Some(account), Some(row)) = (cache.get(&key), &stored) {
            return Ok((account.clone(), row.id));
        }
        if let Some(row) = stored {
            let json =
                std::fs::read_to_string(&row.credentials_path).map_err(|source| TlsError::Io {
                    context: format!("cannot read the ACME account key {}", row.credentials_path),
                    source,
                })?;
            let credentials = serde_json::from_str(&json).map_err(|e| {
                TlsError::Acme(format!("the stored ACME account is unreadable: {e}"))
            })?;
            let account = Account::builder_with_http(self.http_client()?)
                .from_credentials(credentials)
                .await
                .map_err(acme_err)?;
            cache.insert(key, account.clone());
            return Ok((account, row.id));
        }

        let contact = (!settings.email.is_empty()).then(|| format!("mailto:{}", settings.email));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let eab = if settings.eab_key_id.is_empty() {
            None
        } else {
            let hmac =
                std::fs::read_to_string(self.eab_hmac_path()).map_err(|source| TlsError::Io {
                    context: "cannot read the EAB HMAC key".into(),
                    source,
                })?;
            Some(ExternalAccountKey::new(
                settings.eab_key_id.clone(),
                &decode_hmac(hmac.trim())?,
            ))
        };
        let (account, credentials) = Account::builder_with_http(self.http_client()?)
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                settings.directory_url.clone(),
                eab.as_ref(),
            )
            .await
            .map_err(acme_err)?;
        let json = serde_json::to_string(&credentials)
            .map_err(|e| TlsError::Crypto(format!("cannot serialize the account: {e}")))?;
        let dir = self.certs_dir().join("accounts");
        make_private_dir(&dir)?;
        let path = dir.join(format!("{}.json", berth_store_token()));
        write_secret(&path, json.as_bytes())?;
        let row = certificates::insert_account(
            &self.store,
            &settings.directory_url,
            &settings.email,
            account.id(),
            &path_str(&path),
        )
        .await
        .map_err(store_err)?;
        tracing::info!(acme.directory = %settings.directory_url, acme.account = %account.id(), "ACME account created");
        cache.insert(key, account.clone());
        Ok((account, row.id))
    }

    /// The HTTP client for the ACME directory: the system's roots plus the
    /// extra bundle, ring as the crypto provider.
    fn http_client(&self) -> Result<Box<dyn instant_acme::HttpClient>, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            let _ = roots.add(cert);
        }
        if let Some(bundle) = &self.config.ca_bundle {
            let pem = std::fs::read_to_string(bundle).map_err(|source| TlsError::Io {
                context: format!("cannot read the ACME CA bundle {}", bundle.display()),
                source,
            })?;
            for cert in certs::parse_chain(&pem)? {
                roots
                    .add(cert)
                    .map_err(|e| TlsError::Crypto(format!("bad root in the CA bundle: {e}")))?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(crate::tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Crypto(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .enable_http2()
            .build();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector);
        Ok(Box::new(client))
    }

    /// Writes a certificate chain and its key (0600) under
    /// `certs/<domain>/`, new files each time so the old pair stays intact
    /// until the store points at the new one.
    fn write_pair(
        &self,
        domain: &str,
        serial: &str,
        chain_pem: &str,
        key_pem: &str,
    ) -> Result<(PathBuf, PathBuf), TlsError> {
        let dir = self.certs_dir().join(domain);
        make_private_dir(&dir)?;
        let stem = format!(
            "{}-{}",
            berth_store::now(),
            serial.replace(':', "").chars().take(16).collect::<String>()
        );
        let cert_path = dir.join(format!("{stem}.crt"));
        let key_path = dir.join(format!("{stem}.key"));
        write_secret(&key_path, key_pem.as_bytes())?;
        std::fs::write(&cert_path, chain_pem).map_err(|source| TlsError::Io {
            context: format!("cannot write {}", cert_path.display()),
            source,
        })?;
        Ok((cert_path, key_path))
    }
}

/// When to renew a certificate valid from `not_before` to `not_after`: the
/// threshold (`renew_before` ahead of expiry), or a random point of the CA's
/// window (ARI) when that comes first; never sooner than a minute from `now`.
pub fn renewal_time(
    not_before: i64,
    not_after: i64,
    renew_before: Duration,
    window: Option<(i64, i64)>,
    now: i64,
) -> i64 {
    let threshold = not_after - renew_before.as_secs() as i64;
    let mut at = threshold.max(not_before);
    if let Some((start, end)) = window {
        // RFC 9773: a uniformly random point in the window spreads the load.
        let pick = if end > start {
            start + (rand::random::<u64>() % (end - start) as u64) as i64
        } else {
            start
        };
        at = at.min(pick);
    }
    at.max(now + MIN_RENEWAL_GAP)
}

/// The message the user sees for a failed attempt, and whether it was the
/// CA's rate limit.
pub fn describe(err: &TlsError) -> (String, bool) {
    match err {
        TlsError::Ca {
            rate_limited: true,
            detail,
            ..
        } => (format!("rate limited by the CA: {detail}"), true),
        other => (other.to_string(), false),
    }
}

fn acme_err(err: instant_acme::Error) -> TlsError {
    match err {
        instant_acme::Error::Api(problem) => {
            let mut detail = problem.detail.clone().unwrap_or_default();
            for sub in &problem.subproblems {
                if let Some(d) = &sub.detail {
                    detail.push_str("; ");
                    detail.push_str(d);
                }
            }
            if let Some(kind) = &problem.r#type {
                detail.push_str(&format!(" ({kind})"));
            }
            let rate_limited = problem.r#type.as_deref() == Some(RATE_LIMITED);
            TlsError::Ca {
                kind: problem.r#type,
                detail,
                rate_limited,
            }
        }
        other => {
            // Name the cause chain: "... tcp connect error: connection refused".
            let reach = matches!(
                other,
                instant_acme::Error::Other(_) | instant_acme::Error::Hyper(_)
            );
            let mut message = if reach {
                format!("cannot reach the CA: {other}")
            } else {
                other.to_string()
            };
            let mut source = std::error::Error::source(&other);
            while let Some(s) = source {
                message.push_str(": ");
                message.push_str(&s.to_string());
                source = s.source();
            }
            TlsError::Acme(message)
        }
    }
}

fn store_err(err: berth_store::StoreError) -> TlsError {
    match err {
        berth_store::StoreError::NotFound { what } => TlsError::NotFound(what),
        other => TlsError::Store(other.to_string()),
    }
}

fn normalize_domain(domain: &str) -> Result<String, TlsError> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if valid {
        Ok(domain)
    } else {
        Err(TlsError::invalid(
            "domain",
            "enter a domain name like app.example.com",
        ))
    }
}

/// `production`, `staging` (or empty: production) or an https URL.
pub fn directory_url(value: &str) -> Option<String> {
    match value.trim() {
        "" | "production" => Some(LETS_ENCRYPT_PRODUCTION.to_owned()),
        "staging" => Some(LETS_ENCRYPT_STAGING.to_owned()),
        url if url.starts_with("https://")
            && url.len() > "https://".len()
            && !url.contains(char::is_whitespace) =>
        {
            Some(url.to_owned())
        }
        _ => None,
    }
}

fn is_plausible_email(email: &str) -> bool {
    email.split_once('@').is_some_and(|(user, host)| {
        !user.is_empty() && host.contains('.') && !email.contains(char::is_whitespace)
    })
}

fn decode_hmac(hmac: &str) -> Result<Vec<u8>, TlsError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(hmac.trim_end_matches('='))
        .ok()
        .filter(|key| !key.is_empty())
        .ok_or_else(|| {
            TlsError::invalid(
                "eab_hmac",
                "the EAB HMAC key must be base64url, as your CA shows it",
            )
        })
}

fn berth_store_token() -> String {
    hex_random(8)
}

fn hex_random(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn make_private_dir(dir: &Path) -> Result<(), TlsError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| TlsError::Io {
            context: format!("cannot create {}", dir.display()),
            source,
        })
}

/// Writes a file readable by berth's user only (0600).
fn write_secret(path: &Path, content: &[u8]) -> Result<(), TlsError> {
    if let Some(parent) = path.parent() {
        make_private_dir(parent)?;
    }
    let io = |source| TlsError::Io {
        context: format!("cannot write {}", path.display()),
        source,
    };
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(content).map_err(io)?;
    file.sync_all().map_err(io)
}

fn read_pair(cert: &Path, key: &Path) -> std::io::Result<(String, String)> {
    Ok((
        std::fs::read_to_string(cert)?,
        std::fs::read_to_string(key)?,
    ))
}

fn remove_files(paths: &[String]) {
    for path in paths {
        if let Err(e) = std::fs::remove_file(path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path, error = %e, "cannot remove an old certificate file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 3600;

    #[test]
    fn the_eab_hmac_never_shows_in_debug_output() {
        let input = AcmeSettingsInput {
            email: "ops@example.com".to_owned(),
            directory: "production".to_owned(),
            eab_key_id: "kid-1".to_owned(),
            eab_hmac: "hmac-s3cr3t-value".to_owned(),
            clear_eab: false,
            challenge: "http-01".to_owned(),
        };
        let shown = format!("{input:?} {input:#?}");
        assert!(!shown.contains("hmac-s3cr3t-value"), "{shown}");
        assert!(
            shown.contains("kid-1") && shown.contains(berth_core::REDACTED),
            "{shown}"
        );
    }

    #[test]
    fn renewal_is_due_thirty_days_before_expiry_without_a_window() {
        let now = 1_000 * DAY;
        let at = renewal_time(
            now,
            now + 90 * DAY,
            Duration::from_secs(30 * DAY as u64),
            None,
            now,
        );
        assert_eq!(at, now + 60 * DAY);
    }

    #[test]
    fn an_earlier_ca_window_moves_renewal_into_it() {
        let now = 1_000 * DAY;
        let window = (now + 40 * DAY, now + 42 * DAY);
        let at = renewal_time(
            now,
            now + 90 * DAY,
            Duration::from_secs(30 * DAY as u64),
            Some(window),
            now,
        );
        assert!(at >= window.0 && at <= window.1, "{at} in {window:?}");
    }

    #[test]
    fn renewal_never_loops_faster_than_a_minute() {
        let now = 1_000 * DAY;
        let at = renewal_time(
            now,
            now + DAY,
            Duration::from_secs(30 * DAY as u64),
            None,
            now,
        );
        assert_eq!(at, now + MIN_RENEWAL_GAP);
    }

    #[test]
    fn a_rate_limit_answer_is_reported_as_such() {
        let err = TlsError::Ca {
            kind: Some(RATE_LIMITED.into()),
            detail: "too many certificates already issued".into(),
            rate_limited: true,
        };
        let (message, limited) = describe(&err);
        assert!(limited);
        assert!(message.starts_with("rate limited by the CA"), "{message}");
    }

    #[test]
    fn a_rate_limit_problem_from_the_ca_is_recognised() {
        let problem: instant_acme::Problem = serde_json::from_str(
            r#"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many certificates (5) already issued for this exact set of identifiers in the last 168h0m0s","status":429}"#,
        )
        .unwrap();
        let err = acme_err(instant_acme::Error::Api(problem));
        let (message, limited) = describe(&err);
        assert!(limited);
        assert!(
            message.starts_with("rate limited by the CA: too many certificates"),
            "{message}"
        );
        assert!(message.contains("rateLimited"), "{message}");
    }

    #[test]
    fn domains_are_normalized_and_checked() {
        assert_eq!(
            normalize_domain(" App.Example.COM. ").unwrap(),
            "app.example.com"
        );
        assert!(normalize_domain("bad domain").is_err());
        assert!(normalize_domain("-x.example.com").is_err());
    }
}
