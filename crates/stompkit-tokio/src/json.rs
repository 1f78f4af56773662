//! JSON bodies through serde (the `json` feature).

use std::sync::Arc;

use stompkit_session::Message;

use crate::Error;

/// Builds a [`Message`] with a JSON body: `Message::json("/queue/offers", &offer)?`.
pub trait JsonMessage: Sized {
    /// A message for `destination` whose body is `value` as JSON, with
    /// `content-type:application/json`.
    ///
    /// # Errors
    /// [`Error::Json`] naming the destination, when `value` cannot be serialised.
    fn json<T: serde::Serialize + ?Sized>(
        destination: impl Into<String>,
        value: &T,
    ) -> Result<Self, Error>;
}

impl JsonMessage for Message {
    fn json<T: serde::Serialize + ?Sized>(
        destination: impl Into<String>,
        value: &T,
    ) -> Result<Self, Error> {
        let destination = destination.into();
        match serde_json::to_vec(value) {
            Ok(body) => Ok(Self::new(destination, body).header("content-type", "application/json")),
            Err(source) => Err(Error::Json {
                destination,
                source: Arc::new(source),
            }),
        }
    }
}
