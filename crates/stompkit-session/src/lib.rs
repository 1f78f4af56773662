//! Sans-IO STOMP client session (work in progress).
