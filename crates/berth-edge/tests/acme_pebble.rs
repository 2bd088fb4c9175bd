//! The certificate service against a real ACME CA (Pebble) with the real
//! edge listeners answering the challenges: issue by HTTP-01 and by
//! TLS-ALPN-01, serve it, renew it, survive a failed renewal.

#[path = "../../../tests/common/pebble.rs"]
mod pebble;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_edge::acme::{AcmeConfig, AcmeSettingsInput, CertManager};
use berth_edge::tls::{CertResolver, Http01Challenges};
use berth_edge::{Edge, Limits, Listeners};
use berth_store::Store;
use pebble::{Pebble, free_port, https_get, serial_of, served_names};

struct Setup {
    pebble: Pebble,
    manager: Arc<CertManager>,
    https: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _data: tempfile::TempDir,
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn setup(challenge: &str) -> Setup {
    let (http_port, tls_port) = (free_port(), free_port());
    setup_on(Pebble::start(http_port, tls_port).await, challenge).await
}

/// The edge on `pebble`'s validation ports, and the certificate service.
async fn setup_on(pebble: Pebble, challenge: &str) -> Setup {
    setup_with(pebble, challenge, None).await
}

async fn setup_with(pebble: Pebble, challenge: &str, renew_before: Option<Duration>) -> Setup {
    let (http_port, tls_port) = (pebble.http_port, pebble.tls_port);
    let data = tempfile::tempdir().unwrap();
    let store = Store::open(data.path()).await.unwrap();
    let resolver = Arc::new(CertResolver::new());
    let http01 = Arc::new(Http01Challenges::new());
    let edge = Edge::new(resolver.clone(), http01.clone(), Limits::default());
    let http: SocketAddr = format!("127.0.0.1:{http_port}").parse().unwrap();
    let https: SocketAddr = format!("127.0.0.1:{tls_port}").parse().unwrap();
    let listeners = Listeners::bind(http, https, "--http-listen", "--https-listen")
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(berth_edge::serve(edge, listeners, async move {
        let _ = stopped.await;
    }));
    let mut config = AcmeConfig::new(data.path());
    config.ca_bundle = Some(pebble.ca_bundle.clone());
    if let Some(renew_before) = renew_before {
        config.renew_before = renew_before;
    }
    let manager = CertManager::new(store, config, resolver, http01);
    manager
        .save_settings(&AcmeSettingsInput {
            email: "admin@example.com".into(),
            directory: pebble.directory.clone(),
            eab_key_id: String::new(),
            eab_hmac: String::new(),
            clear_eab: false,
            challenge: challenge.into(),
        })
        .await
        .unwrap();
    Setup {
        pebble,
        manager,
        https: https.to_string(),
        stop: Some(stop),
        _data: data,
    }
}

/// Requests a certificate and runs passes of the background work until it is there.
async fn obtain(setup: &Setup, domain: &str) -> berth_core::certificate::Certificate {
    setup.manager.tick(&[domain.to_owned()]).await;
    let cert = setup
        .manager
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.domain == domain)
        .unwrap();
    assert!(
        cert.serial.is_some(),
        "no certificate for {domain}: {:?}",
        cert.last_error
    );
    cert
}

async fn served(setup: &Setup, domain: &str) -> Result<pebble::HttpsResponse, String> {
    let root = setup.pebble.issuing_root().await;
    https_get(&setup.https, domain, "/", &root).await
}

#[tokio::test]
async fn a_certificate_is_issued_over_http_01_and_served_for_its_name() {
    let setup = setup("http-01").await;
    let cert = obtain(&setup, "web.berth.test").await;
    assert_eq!(cert.names, vec!["web.berth.test".to_owned()]);
    assert!(setup.manager.resolver().has_certificate("web.berth.test"));

    let response = served(&setup, "web.berth.test")
        .await
        .expect("TLS with Pebble's root");
    assert_eq!(
        served_names(&response.peer_certificates[0]),
        vec!["web.berth.test"]
    );
    // No route for the host: the edge answers 404, over a trusted connection.
    assert_eq!(response.status, 404);
    // The key is private to berth's user.
    let mode = std::fs::metadata(cert.key_path.unwrap())
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
}

#[tokio::test]
async fn a_certificate_is_issued_over_tls_alpn_01() {
    let setup = setup("tls-alpn-01").await;
    let cert = obtain(&setup, "alpn.berth.test").await;
    assert_eq!(cert.names, vec!["alpn.berth.test".to_owned()]);
    let response = served(&setup, "alpn.berth.test")
        .await
        .expect("TLS with Pebble's root");
    assert_eq!(
        served_names(&response.peer_certificates[0]),
        vec!["alpn.berth.test"]
    );
}

#[tokio::test]
async fn renewing_now_serves_a_new_serial_and_a_failed_renewal_keeps_the_old_one() {
    let setup = setup("http-01").await;
    let first = obtain(&setup, "renew.berth.test").await;
    let served_first = served(&setup, "renew.berth.test").await.unwrap();

    setup.manager.renew_now(first.id).await.unwrap();
    setup.manager.tick(&["renew.berth.test".to_owned()]).await;
    let second = setup.manager.get(first.id).await.unwrap();
    assert_ne!(
        second.serial, first.serial,
        "renewal made a new certificate"
    );
    let served_second = served(&setup, "renew.berth.test").await.unwrap();
    assert_ne!(
        serial_of(&served_second.peer_certificates[0]),
        serial_of(&served_first.peer_certificates[0]),
        "the new certificate is served"
    );
    assert!(
        !std::path::Path::new(first.key_path.as_ref().unwrap()).exists(),
        "old key removed"
    );

    // Validation now fails: the name resolves to an address nothing listens on.
    setup
        .pebble
        .resolve_host_to("renew.berth.test", "127.0.0.2")
        .await;
    setup.manager.renew_now(first.id).await.unwrap();
    setup.manager.tick(&["renew.berth.test".to_owned()]).await;
    let failed = setup.manager.get(first.id).await.unwrap();
    assert_eq!(
        failed.serial, second.serial,
        "the row still describes the served certificate"
    );
    let error = failed.last_error.expect("the CA's error is recorded");
    assert!(error.contains("urn:ietf:params:acme:error:"), "{error}");
    assert_eq!(failed.failures, 1);
    assert!(
        failed.next_attempt_at.unwrap() > berth_store::now() + 60,
        "backs off"
    );
    let still = served(&setup, "renew.berth.test").await.unwrap();
    assert_eq!(
        serial_of(&still.peer_certificates[0]),
        serial_of(&served_second.peer_certificates[0]),
        "the old certificate is still served"
    );
}

#[tokio::test]
async fn an_unreachable_ca_is_recorded_and_nothing_is_served_for_a_new_domain() {
    let mut setup = setup("http-01").await;
    setup.pebble.stop();
    let started = Instant::now();
    setup.manager.tick(&["down.berth.test".to_owned()]).await;
    assert!(started.elapsed() < Duration::from_secs(30));
    let cert = setup.manager.list().await.unwrap().remove(0);
    assert!(cert.serial.is_none());
    let error = cert.last_error.expect("an error is recorded");
    assert!(error.to_lowercase().contains("connect"), "{error}");
    assert!(!setup.manager.resolver().has_certificate("down.berth.test"));
}

#[tokio::test]
async fn a_ca_that_requires_external_account_binding_gets_it_from_the_settings() {
    const KID: &str = "kid-1";
    const HMAC: &str = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let (http_port, tls_port) = (free_port(), free_port());
    let pebble = Pebble::start_with_eab(http_port, tls_port, Some((KID, HMAC))).await;
    let setup = setup_on(pebble, "http-01").await;

    // Without the binding the CA refuses the account, and says so.
    setup.manager.tick(&["eab.berth.test".to_owned()]).await;
    let refused = setup.manager.list().await.unwrap().remove(0);
    let error = refused.last_error.expect("the CA's refusal is recorded");
    assert!(error.contains("externalAccountRequired"), "{error}");

    let settings = |hmac: &str| AcmeSettingsInput {
        email: "admin@example.com".into(),
        directory: setup.pebble.directory.clone(),
        eab_key_id: KID.into(),
        eab_hmac: hmac.into(),
        clear_eab: false,
        challenge: "http-01".into(),
    };
    let bad = setup.manager.save_settings(&settings("not base64!")).await;
    assert!(matches!(
        bad,
        Err(berth_edge::tls::TlsError::Invalid {
            field: "eab_hmac",
            ..
        })
    ));
    setup.manager.save_settings(&settings(HMAC)).await.unwrap();
    let view = setup.manager.settings().await.unwrap();
    assert!(view.eab_hmac_set);
    assert!(
        !format!("{view:?}").contains(HMAC),
        "the HMAC key is never shown"
    );

    let id = refused.id;
    setup.manager.renew_now(id).await.unwrap();
    setup.manager.tick(&["eab.berth.test".to_owned()]).await;
    let cert = setup.manager.get(id).await.unwrap();
    assert!(cert.serial.is_some(), "{:?}", cert.last_error);
}

#[tokio::test]
async fn renewal_is_planned_from_the_threshold_and_a_longer_threshold_makes_it_due_at_once() {
    let setup = setup("http-01").await;
    let cert = obtain(&setup, "plan.berth.test").await;
    // Debian's Pebble offers no renewal information: the 30-day threshold rules.
    assert_eq!(
        cert.next_attempt_at,
        Some(cert.not_after.unwrap() - 30 * 86400)
    );

    let (http_port, tls_port) = (free_port(), free_port());
    let century = Duration::from_secs(100 * 365 * 86400);
    let setup = setup_with(
        Pebble::start(http_port, tls_port).await,
        "http-01",
        Some(century),
    )
    .await;
    let cert = obtain(&setup, "soon.berth.test").await;
    let next = cert.next_attempt_at.unwrap() - berth_store::now();
    assert!(
        (0..=60).contains(&next),
        "due within a minute, not in {next} s"
    );
    assert_eq!(
        setup.manager.state(&cert, berth_store::now()),
        berth_edge::acme::CertState::Expiring
    );
}
