//! The embedded broker over real loopback sockets.
