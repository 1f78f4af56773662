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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize)]
    struct Offer {
        job_id: u64,
    }

    #[test]
    fn a_json_message_has_the_body_and_the_content_type() {
        let message = Message::json("/queue/offers", &Offer { job_id: 7 }).unwrap();
        assert_eq!(&message.body()[..], br#"{"job_id":7}"#);
        assert!(
            message
                .headers()
                .any(|h| h == ("content-type", "application/json"))
        );
    }

    #[test]
    fn a_value_json_cannot_hold_is_an_error_naming_the_destination() {
        // A map with non-string keys has no JSON form.
        let value: std::collections::BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
        let error = Message::json("/queue/offers", &value).unwrap_err();
        assert!(
            matches!(&error, Error::Json { destination, .. } if destination == "/queue/offers")
        );
        assert!(error.to_string().contains("/queue/offers"), "{error}");
    }
}
