//! The embedded broker's TLS with the real client: the client verifies the broker against
//! the CA generated at the broker's start (the testkit cannot depend on the client).

use std::time::Duration;

use futures::StreamExt;
use stompkit_testkit::EmbeddedBroker;
use stompkit_tokio::{AckMode, Client, Message, Subscribe, TlsConfig, TransportConfig};

/// Bound on each exchange (a hang fails the test instead of stalling it).
const BOUND: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trusting_the_generated_ca_sends_and_receives_over_tls_and_wss() {
    let broker = EmbeddedBroker::builder()
        .ws_addr(None)
        .tls(true)
        .wss_addr(Some("127.0.0.1:0".parse().unwrap()))
        .start()
        .await
        .unwrap();
    let tls = broker.tls_url().expect("a TLS listener");
    assert!(tls.starts_with("stomp+ssl://127.0.0.1:"), "{tls}");
    let wss = broker.wss_url().expect("a wss listener");
    assert!(wss.starts_with("wss://127.0.0.1:"), "{wss}");
    let ca = broker.ca_pem().expect("the generated CA").to_owned();

    for (url, queue) in [(tls, "/queue/tls"), (wss, "/queue/wss")] {
        let transport = TransportConfig::default().with_tls(TlsConfig::with_ca_pem(ca.clone()));
        let client = tokio::time::timeout(
            BOUND,
            Client::builder(&url)
                .unwrap()
                .transport(transport)
                .connect(),
        )
        .await
        .expect("connected within the bound")
        .unwrap_or_else(|e| panic!("{url}: the handshake verifies against the CA: {e}"));

        let mut deliveries = client
            .subscribe(Subscribe::new(queue).ack(AckMode::ClientIndividual))
            .await
            .unwrap();
        let bodies: Vec<String> = tokio::time::timeout(BOUND, async {
            for i in 0..3 {
                client
                    .send_confirmed(Message::new(queue, format!("secret {i}")))
                    .await
                    .expect("a receipt");
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
        assert_eq!(bodies, ["secret 0", "secret 1", "secret 2"], "{url}");
        // Nothing is left behind: every acknowledgement got its receipt.
        assert!(broker.held(queue).await.unwrap().is_empty(), "{url}");
        client.disconnect().await.expect("a graceful DISCONNECT");
    }
    broker.shutdown().await;
}
