//! What the examples share: the broker they talk to.

use stompkit_testkit::EmbeddedBroker;

/// The broker's URL: `STOMP_URL` when set (a real broker), else an embedded broker started
/// here on loopback (kept alive by the returned handle), so an example runs with nothing
/// installed. `websocket` picks its `ws://` URL instead of `stomp://`.
pub(crate) async fn broker_url(
    websocket: bool,
) -> Result<(String, Option<EmbeddedBroker>), Box<dyn std::error::Error>> {
    if let Ok(url) = std::env::var("STOMP_URL") {
        return Ok((url, None));
    }
    let broker = EmbeddedBroker::builder().start().await?;
    let url = match (websocket, broker.ws_url()) {
        (true, Some(ws)) => ws,
        _ => broker.stomp_url(),
    };
    println!("no STOMP_URL: using an embedded broker at {url}");
    Ok((url, Some(broker)))
}
