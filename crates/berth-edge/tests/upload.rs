//! Uploaded certificates: every check gives a clear error next to the right
//! field, and nothing is saved unless all pass. Certificates made with rcgen.

use std::sync::Arc;

use berth_edge::acme::{AcmeConfig, CertManager};
use berth_edge::certs::validate_upload;
use berth_edge::tls::{CertResolver, Http01Challenges, TlsError};
use berth_store::Store;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use time::{Duration, OffsetDateTime};

struct Pki {
    root: Issuer<'static, KeyPair>,
    intermediate_pem: String,
    intermediate: Issuer<'static, KeyPair>,
}

fn pki() -> Pki {
    let root_key = KeyPair::generate().unwrap();
    let mut root = CertificateParams::new(Vec::<String>::new()).unwrap();
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root.distinguished_name
        .push(DnType::CommonName, "Test Root");
    let root = Issuer::new(root, root_key);

    let int_key = KeyPair::generate().unwrap();
    let mut int = CertificateParams::new(Vec::<String>::new()).unwrap();
    int.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    int.distinguished_name
        .push(DnType::CommonName, "Test Intermediate");
    let int_cert = int.signed_by(&int_key, &root).unwrap();
    Pki {
        root,
        intermediate_pem: int_cert.pem(),
        intermediate: Issuer::new(int, int_key),
    }
}

/// A leaf for `names` under the intermediate, valid from `from` to `until`
/// days from now: (chain PEM leaf-first, key PEM).
fn leaf(pki: &Pki, names: &[&str], from: i64, until: i64) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.not_before = OffsetDateTime::now_utc() + Duration::days(from);
    params.not_after = OffsetDateTime::now_utc() + Duration::days(until);
    let cert = params.signed_by(&key, &pki.intermediate).unwrap();
    (
        format!("{}{}", cert.pem(), pki.intermediate_pem),
        key.serialize_pem(),
    )
}

/// A certificate manager on the store in `data`, serving through its own resolver.
async fn manager_at(data: &std::path::Path) -> (Arc<CertManager>, Arc<CertResolver>) {
    let resolver = Arc::new(CertResolver::new());
    let manager = CertManager::new(
        Store::open(data).await.unwrap(),
        AcmeConfig::new(data),
        resolver.clone(),
        Arc::new(Http01Challenges::new()),
    );
    (manager, resolver)
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn invalid(result: Result<impl std::fmt::Debug, TlsError>) -> (&'static str, String) {
    match result {
        Err(TlsError::Invalid { field, message }) => (field, message),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn a_valid_chain_and_key_pass_and_report_names_issuer_and_expiry() {
    let pki = pki();
    let (chain, key) = leaf(&pki, &["shop.example.com", "www.shop.example.com"], -1, 60);
    let valid = validate_upload("www.shop.example.com", &chain, &key, now()).unwrap();
    assert_eq!(
        valid.facts.names,
        ["shop.example.com", "www.shop.example.com"]
    );
    assert_eq!(valid.facts.issuer, "Test Intermediate");
    assert!(valid.facts.not_after > now() + 59 * 86400);
    // The private key never shows in Debug output.
    let shown = format!("{valid:?} {valid:#?}");
    let key_body = key.lines().nth(1).unwrap();
    assert!(
        !shown.contains("PRIVATE") && !shown.contains(key_body),
        "{shown}"
    );
    assert!(shown.contains("shop.example.com"), "{shown}");
}

#[test]
fn a_key_of_another_certificate_is_refused_next_to_the_key_field() {
    let pki = pki();
    let (chain, _) = leaf(&pki, &["shop.example.com"], -1, 60);
    let (_, other_key) = leaf(&pki, &["shop.example.com"], -1, 60);
    let (field, message) = invalid(validate_upload(
        "shop.example.com",
        &chain,
        &other_key,
        now(),
    ));
    assert_eq!(field, "key");
    assert!(
        message.contains("does not fit the certificate"),
        "{message}"
    );
}

#[test]
fn an_expired_certificate_is_refused_with_its_expiry_date() {
    let pki = pki();
    let (chain, key) = leaf(&pki, &["old.example.com"], -90, -1);
    let (field, message) = invalid(validate_upload("old.example.com", &chain, &key, now()));
    assert_eq!(field, "certificate");
    assert!(message.contains("expired on"), "{message}");
}

#[test]
fn a_certificate_for_other_names_is_refused_listing_the_names_it_has() {
    let pki = pki();
    let (chain, key) = leaf(&pki, &["*.example.com"], -1, 60);
    let (field, message) = invalid(validate_upload("a.b.example.com", &chain, &key, now()));
    assert_eq!(field, "certificate");
    assert!(
        message.contains("does not cover a.b.example.com") && message.contains("*.example.com"),
        "{message}"
    );
    // One label below the wildcard is covered.
    assert!(validate_upload("b.example.com", &chain, &key, now()).is_ok());
}

#[test]
fn a_chain_in_the_wrong_order_is_refused() {
    let pki = pki();
    let (chain, key) = leaf(&pki, &["shop.example.com"], -1, 60);
    // A certificate signed by the root, placed after the leaf, does not sign the leaf.
    let mut stranger = CertificateParams::new(vec!["x.example.com".to_owned()]).unwrap();
    stranger
        .distinguished_name
        .push(DnType::CommonName, "Stranger");
    let stranger_key = KeyPair::generate().unwrap();
    let stranger = stranger.signed_by(&stranger_key, &pki.root).unwrap();
    let leaf_only = &chain[..chain.find("-----END CERTIFICATE-----").unwrap() + 26];
    let broken = format!("{leaf_only}{}", stranger.pem());
    let (field, message) = invalid(validate_upload("shop.example.com", &broken, &key, now()));
    assert_eq!(field, "certificate");
    assert!(message.contains("not signed by"), "{message}");
}

#[test]
fn text_that_is_not_pem_is_refused_with_what_was_expected() {
    let (field, message) = invalid(validate_upload("a.example.com", "hello", "world", now()));
    assert_eq!(field, "certificate");
    assert!(message.contains("BEGIN CERTIFICATE"), "{message}");
}

#[tokio::test]
async fn an_upload_that_fails_saves_nothing_and_one_that_passes_is_served() {
    let data = tempfile::tempdir().unwrap();
    let (manager, resolver) = manager_at(data.path()).await;
    let pki = pki();
    let (chain, key) = leaf(&pki, &["shop.example.com"], -1, 60);
    let (_, wrong_key) = leaf(&pki, &["shop.example.com"], -1, 60);

    assert!(
        manager
            .upload("shop.example.com", &chain, &wrong_key, false)
            .await
            .is_err()
    );
    assert!(manager.list().await.unwrap().is_empty());
    assert!(!data.path().join("certs").exists(), "no file written");
    assert!(!resolver.has_certificate("shop.example.com"));

    let cert = manager
        .upload("shop.example.com", &chain, &key, false)
        .await
        .unwrap();
    assert_eq!(cert.names, ["shop.example.com"]);
    assert!(resolver.has_certificate("shop.example.com"));
    let mode = std::fs::metadata(cert.key_path.as_ref().unwrap()).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );

    // A fresh resolver loads it back from the store and the files (a restart).
    let (again, reloaded) = manager_at(data.path()).await;
    assert_eq!(again.load().await.unwrap(), 1);
    assert!(reloaded.has_certificate("shop.example.com"));

    manager.delete(cert.id).await.unwrap();
    assert!(!resolver.has_certificate("shop.example.com"));
    assert!(!std::path::Path::new(cert.key_path.as_ref().unwrap()).exists());
}

#[tokio::test]
async fn an_upload_that_takes_a_name_from_another_domains_certificate_needs_confirming() {
    let data = tempfile::tempdir().unwrap();
    let (manager, resolver) = manager_at(data.path()).await;
    let pki = pki();
    let (www_chain, www_key) = leaf(&pki, &["www.example.com"], -1, 60);
    let www = manager
        .upload("www.example.com", &www_chain, &www_key, false)
        .await
        .unwrap();
    let serving_www = resolver.lookup("www.example.com").expect("www is served");

    // shop's certificate also names www: it would take www from www's own.
    let (shop_chain, shop_key) = leaf(&pki, &["shop.example.com", "www.example.com"], -1, 60);
    let refused = manager
        .upload("shop.example.com", &shop_chain, &shop_key, false)
        .await;
    let Err(TlsError::Invalid { field, message }) = refused else {
        panic!("an unconfirmed take-over is refused: {refused:?}");
    };
    assert_eq!(field, "replace");
    assert!(
        message.contains("www.example.com (now the certificate of www.example.com)"),
        "{message}"
    );
    assert_eq!(manager.list().await.unwrap().len(), 1, "nothing saved");
    assert!(!resolver.has_certificate("shop.example.com"));
    assert!(
        Arc::ptr_eq(&resolver.lookup("www.example.com").unwrap(), &serving_www),
        "www keeps its own certificate"
    );

    // Confirmed, it is saved and served for both names.
    let shop = manager
        .upload("shop.example.com", &shop_chain, &shop_key, true)
        .await
        .unwrap();
    let serving_shop = resolver.lookup("shop.example.com").unwrap();
    assert!(Arc::ptr_eq(
        &resolver.lookup("www.example.com").unwrap(),
        &serving_shop
    ));
    assert_ne!(www.id, shop.id);

    // A new certificate for a domain's own name needs no confirmation, even
    // where another certificate also names it.
    let (again_chain, again_key) = leaf(&pki, &["www.example.com"], -1, 90);
    manager
        .upload("www.example.com", &again_chain, &again_key, false)
        .await
        .expect("replacing a domain's own certificate is what an upload is for");
    assert!(!Arc::ptr_eq(
        &resolver.lookup("www.example.com").unwrap(),
        &serving_shop
    ));
}
