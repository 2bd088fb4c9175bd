//! Targets on this host or its network are refused unless the admin allows
//! them, checked against real servers on 127.0.0.1 that must receive nothing.

mod common;

use berth_notify::{Channel, Message, Notifier, NotifyOptions, SendError};
use common::{Receiver, local_notifier};

fn default_notifier() -> Notifier {
    Notifier::new(NotifyOptions::default())
}

#[tokio::test]
async fn loopback_targets_are_refused_without_allow_private_and_reached_with_it() {
    let receiver = Receiver::start().await;
    for url in [
        format!("json://127.0.0.1:{}/hook", receiver.port()),
        // A name is resolved first and its address checked.
        format!("json://localhost:{}/hook", receiver.port()),
        format!("ntfy://127.0.0.1:{}/alerts", receiver.port()),
        format!("gotify://127.0.0.1:{}/token", receiver.port()),
    ] {
        let channel = Channel::parse(&url).unwrap();
        let err = default_notifier()
            .send(&channel, &Message::test())
            .await
            .expect_err(&url);
        match &err {
            SendError::PrivateAddress { addr, .. } => assert!(addr.is_loopback(), "{url}: {addr}"),
            other => panic!("{url}: expected PrivateAddress, got {other:?}"),
        }
        assert!(
            err.to_string()
                .contains("an admin can allow private targets")
        );
    }
    assert!(
        receiver.requests().is_empty(),
        "a refused send reached the server"
    );

    let channel = Channel::parse(&format!("json://127.0.0.1:{}/hook", receiver.port())).unwrap();
    local_notifier().send_test(&channel).await.unwrap();
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn the_rule_also_holds_for_vendor_channels_and_email() {
    let receiver = Receiver::start().await;
    let notifier = default_notifier().with_vendor_base_for_tests(receiver.base());
    let discord = Channel::parse("discord://123/token").unwrap();
    let err = notifier.send_test(&discord).await.unwrap_err();
    assert!(matches!(err, SendError::PrivateAddress { .. }), "{err:?}");
    assert!(receiver.requests().is_empty());

    // Nothing listens on this port: the refusal must come before any connection.
    let mail =
        Channel::parse("mailto://127.0.0.1:9?to=a@example.com&from=b@example.com&starttls=no")
            .unwrap();
    let err = default_notifier().send_test(&mail).await.unwrap_err();
    assert!(matches!(err, SendError::PrivateAddress { .. }), "{err:?}");
}
