//! The testkit's proxy and embedded broker with the real client: what neither crate can test
//! alone without a dependency cycle (the session's tests use the testkit, and the client
//! depends on the session).

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use stompkit_testkit::{EmbeddedBroker, Proxy};
use stompkit_tokio::{AckMode, Client, Message, Subscribe};

/// A stompkit-tokio client, through a proxy that cuts every connection again and again,
/// still gets every message across.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_rides_through_cuts() {
    let broker = EmbeddedBroker::builder()
        .ws_addr(None)
        .start()
        .await
        .unwrap();
    let proxy = Proxy::builder(broker.stomp_url()).start().await.unwrap();
    let client = Client::builder(&proxy.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut deliveries = client
        .subscribe(Subscribe::new("/queue/ride").ack(AckMode::ClientIndividual))
        .await
        .unwrap();
    let total = 30;
    let mut seen = BTreeSet::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        for i in 0..total {
            if i % 10 == 5 {
                proxy.cut_all();
            }
            client
                .send_confirmed(Message::new("/queue/ride", format!("m{i}")))
                .await
                .expect("confirmed after reconnecting");
        }
        while seen.len() < total {
            let delivery = deliveries.next().await.expect("the subscription goes on");
            seen.insert(String::from_utf8_lossy(delivery.body()).into_owned());
            // An ack lost to a cut only means a redelivery, which the set absorbs.
            let _ = delivery.ack().await;
        }
    })
    .await
    .expect("every message within a minute");
    assert_eq!(seen, (0..total).map(|i| format!("m{i}")).collect());
    assert!(proxy.stats().cut >= 3, "{:?}", proxy.stats());
    let _ = client.disconnect().await;
}
