//! Plain TCP.

use std::sync::Arc;

use tokio::net::TcpStream;

use crate::{Endpoint, Error};

/// Opens the TCP connection; the name is resolved and each address tried in turn.
pub(crate) async fn connect(endpoint: &Endpoint, nodelay: bool) -> Result<TcpStream, Error> {
    let addr = endpoint.authority();
    let connect_error = |e| Error::Connect {
        addr: addr.clone(),
        source: Arc::new(e),
    };
    let tcp = TcpStream::connect((endpoint.host(), endpoint.port()))
        .await
        .map_err(connect_error)?;
    tcp.set_nodelay(nodelay).map_err(connect_error)?;
    tracing::debug!(
        local = ?tcp.local_addr().ok(),
        peer = ?tcp.peer_addr().ok(),
        "TCP connected"
    );
    Ok(tcp)
}
