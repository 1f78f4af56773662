//! The client's metrics (feature `metrics`) exported for Prometheus: a client publishes and
//! consumes, and `http://127.0.0.1:9898/metrics` serves the figures in Prometheus' text
//! format (a minimal HTTP responder, loopback only).
//!
//! ```sh
//! cargo run -p stompkit-tokio --features metrics --example prometheus
//! curl -s http://127.0.0.1:9898/metrics | grep stompkit_
//! # Once: publish, print the figures and exit (what CI runs)
//! cargo run -p stompkit-tokio --features metrics --example prometheus -- --once
//! ```

#![allow(clippy::print_stdout)] // an example prints what it does

mod common;

use std::time::Duration;

use futures::StreamExt;
use metrics_exporter_prometheus::PrometheusBuilder;
use stompkit_tokio::{AckMode, Client, Message, Subscribe};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let once = std::env::args().any(|a| a == "--once");
    let recorder = PrometheusBuilder::new().install_recorder()?;
    let (url, _embedded) = common::broker_url(false).await?;
    let client = Client::builder(&url)?.name("example").connect().await?;

    // Some traffic: ten confirmed messages through a queue of our own.
    let queue = format!("/queue/prometheus-example-{}", std::process::id());
    let mut deliveries = client
        .subscribe(
            Subscribe::new(&queue)
                .ack(AckMode::ClientIndividual)
                .header("auto-delete", "true"),
        )
        .await?;
    for n in 0..10 {
        client
            .send_confirmed(Message::new(&queue, format!("message {n}")))
            .await?;
    }
    for _ in 0..10 {
        let delivery = tokio::time::timeout(Duration::from_secs(10), deliveries.next())
            .await?
            .ok_or("the subscription ended")?;
        delivery.ack().await?;
    }

    if once {
        let text = recorder.render();
        for line in text.lines().filter(|l| l.starts_with("stompkit_")) {
            println!("{line}");
        }
        let sent = text
            .lines()
            .any(|l| l.starts_with("stompkit_messages_sent_total") && l.ends_with(" 10"));
        client.disconnect().await?;
        return if sent {
            Ok(())
        } else {
            Err("stompkit_messages_sent_total is not 10".into())
        };
    }

    let listener = TcpListener::bind("127.0.0.1:9898").await?;
    println!("serving http://127.0.0.1:9898/metrics (Ctrl-C to stop)");
    loop {
        let (mut stream, _) = listener.accept().await?;
        let body = recorder.render();
        tokio::spawn(async move {
            // Read (and ignore) the request head; every path answers with the metrics.
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request).await;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}
