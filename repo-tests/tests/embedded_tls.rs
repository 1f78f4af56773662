//! The embedded broker's TLS with the real client: the client verifies the broker against
//! the CA generated at the broker's start (the testkit cannot depend on the client).

use std::time::Duration;

use futures::StreamExt;
use stompkit_testkit::EmbeddedBroker;
use stompkit_tokio::{AckMode, Client, Message, Subscribe, TlsConfig, TransportConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trusting_the_generated_ca_sends_and_receives_over_tls() {
    let broker = EmbeddedBroker::builder()
        .ws_addr(None)
        .tls(true)
        .start()
        .await
        .unwrap();
    let url = broker.tls_url().expect("a TLS listener");
    assert!(url.starts_with("stomp+ssl://127.0.0.1:"), "{url}");
    let ca = broker.ca_pem().expect("the generated CA").to_owned();
    let transport = TransportConfig::default().with_tls(TlsConfig::with_ca_pem(ca));
    let client = tokio::time::timeout(
        Duration::from_secs(30),
        Client::builder(&url)
            .unwrap()
            .transport(transport)
            .connect(),
    )
    .await
    .expect("connected within the bound")
    .expect("the TLS handshake verifies against the broker's CA");

    let mut deliveries = client
        .subscribe(Subscribe::new("/queue/tls").ack(AckMode::ClientIndividual))
        .await
        .unwrap();
    let bodies: Vec<String> = tokio::time::timeout(Duration::from_secs(30), async {
        for i in 0..3 {
            client
                .send_confirmed(Message::new("/queue/tls", format!("secret {i}")))
                .await
                .expect("a receipt over TLS");
        }
        let mut bodies = Vec::new();
        while bodies.len() < 3 {
            let delivery = deliveries.next().await.expect("the subscription goes on");
            bodies.push(String::from_utf8_lossy(delivery.body()).into_owned());
            delivery.ack_confirmed().await.expect("acknowledged");
        }
        bodies
    })
    .await
    .expect("every message within the bound");
    assert_eq!(bodies, ["secret 0", "secret 1", "secret 2"]);
    // Nothing is left behind: every acknowledgement got its receipt over TLS.
    assert!(broker.held("/queue/tls").await.unwrap().is_empty());
    client.disconnect().await.expect("a graceful DISCONNECT");
    broker.shutdown().await;
}
