//! The JSON Lines shape shared by `decode` (which writes it) and `encode` (which reads it).
//!
//! One JSON object per line, either a frame:
//!
//! ```text
//! {"command":"MESSAGE","headers":[["destination","/queue/a"],["x","a:b"]],"body":"hello"}
//! ```
//!
//! or a heart-beat, `{"heartbeat":true}`.
//!
//! - `command` is the command as written on the wire (upper case).
//! - `headers` lists the headers in wire order, repeats included, decoded (unescaped). A header
//!   is a `[name, value]` pair of strings. When its name or value is not valid UTF-8, it is an
//!   object instead, holding the text part as is and the other as standard base64:
//!   `{"name":"x","value_base64":"/w=="}` (keys `name` or `name_base64`, and `value` or
//!   `value_base64`).
//! - The body is `"body"` (a string) when it is valid UTF-8, otherwise `"body_base64"`
//!   (standard base64 with padding). `decode` always writes one of them; `encode` accepts at
//!   most one, and an absent body is an empty one.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use stompkit_codec::{Command, Frame, Item};

// ---------------------------------------------------------------------------------------------
// Output (decode).

/// One output line, borrowing from the decoded frame.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum OutLine<'a> {
    Frame(OutFrame<'a>),
    Heartbeat { heartbeat: bool },
}

#[derive(Debug, Serialize)]
pub(crate) struct OutFrame<'a> {
    command: &'static str,
    headers: Vec<OutHeader<'a>>,
    #[serde(flatten)]
    body: OutBody<'a>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum OutHeader<'a> {
    Text(&'a str, &'a str),
    Binary {
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        name_base64: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        value: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        value_base64: Option<String>,
    },
}

#[derive(Debug, Serialize)]
enum OutBody<'a> {
    #[serde(rename = "body")]
    Text(&'a str),
    #[serde(rename = "body_base64")]
    Base64(String),
}

impl<'a> OutLine<'a> {
    /// The line for a decoded item.
    pub(crate) fn from_item(item: &'a Item) -> Self {
        match item {
            Item::Frame(frame) => Self::Frame(OutFrame::new(frame)),
            Item::Heartbeat => Self::Heartbeat { heartbeat: true },
        }
    }

    /// The line for a frame (a received `MESSAGE`).
    pub(crate) fn from_frame(frame: &'a Frame) -> Self {
        Self::Frame(OutFrame::new(frame))
    }
}

impl<'a> OutFrame<'a> {
    fn new(frame: &'a Frame) -> Self {
        let headers = frame
            .headers()
            .map(
                |(name, value)| match (std::str::from_utf8(name), std::str::from_utf8(value)) {
                    (Ok(name), Ok(value)) => OutHeader::Text(name, value),
                    (name_text, value_text) => OutHeader::Binary {
                        name: name_text.ok(),
                        name_base64: name_text.is_err().then(|| STANDARD.encode(name)),
                        value: value_text.ok(),
                        value_base64: value_text.is_err().then(|| STANDARD.encode(value)),
                    },
                },
            )
            .collect();
        let body = match std::str::from_utf8(frame.body()) {
            Ok(text) => OutBody::Text(text),
            Err(_) => OutBody::Base64(STANDARD.encode(frame.body())),
        };
        Self {
            command: frame.command().as_str(),
            headers,
            body,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Input (encode).

/// One input line as written; [`InLine::into_item`] checks it and builds the frame.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InLine {
    command: Option<String>,
    headers: Option<Vec<InHeader>>,
    body: Option<String>,
    body_base64: Option<String>,
    heartbeat: Option<bool>,
}

impl InLine {
    /// The frame or heart-beat this line describes.
    pub(crate) fn into_item(self) -> Result<Item, String> {
        if let Some(heartbeat) = self.heartbeat {
            if !heartbeat {
                return Err("\"heartbeat\" must be true".to_owned());
            }
            if self.command.is_some()
                || self.headers.is_some()
                || self.body.is_some()
                || self.body_base64.is_some()
            {
                return Err("a heart-beat line must hold nothing but \"heartbeat\":true".to_owned());
            }
            return Ok(Item::Heartbeat);
        }
        let Some(command) = self.command else {
            return Err("missing field `command` (or `\"heartbeat\":true`)".to_owned());
        };
        let command = Command::from_bytes(command.as_bytes()).ok_or_else(|| {
            format!("unknown command {command:?} (STOMP commands are upper case, e.g. SEND)")
        })?;
        let mut builder = Frame::builder(command);
        for header in self.headers.unwrap_or_default() {
            builder.push_header(&header.name, &header.value);
        }
        let body = match (self.body, self.body_base64) {
            (Some(_), Some(_)) => {
                return Err("give either \"body\" or \"body_base64\", not both".to_owned());
            }
            (Some(text), None) => Bytes::from(text),
            (None, Some(encoded)) => Bytes::from(
                STANDARD
                    .decode(encoded)
                    .map_err(|e| format!("invalid body_base64: {e}"))?,
            ),
            (None, None) => Bytes::new(),
        };
        Ok(Item::Frame(builder.body(body).build()))
    }
}

/// A header read from JSON: `[name, value]` or the object form.
#[derive(Debug, PartialEq, Eq)]
struct InHeader {
    name: Vec<u8>,
    value: Vec<u8>,
}

impl<'de> Deserialize<'de> for InHeader {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(HeaderVisitor)
    }
}

struct HeaderVisitor;

const HEADER_SHAPE: &str = "a header: [\"name\", \"value\"] or an object with \
     \"name\" or \"name_base64\" and \"value\" or \"value_base64\"";

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = InHeader;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(HEADER_SHAPE)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<InHeader, A::Error> {
        let name: String = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let value: String = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        if seq.next_element::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(3, &self));
        }
        Ok(InHeader {
            name: name.into_bytes(),
            value: value.into_bytes(),
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<InHeader, A::Error> {
        let mut name = None;
        let mut value = None;
        while let Some(key) = map.next_key::<String>()? {
            let (slot, base64, field) = match key.as_str() {
                "name" => (&mut name, false, "name"),
                "name_base64" => (&mut name, true, "name"),
                "value" => (&mut value, false, "value"),
                "value_base64" => (&mut value, true, "value"),
                _ => {
                    return Err(de::Error::unknown_field(
                        &key,
                        &["name", "name_base64", "value", "value_base64"],
                    ));
                }
            };
            if slot.is_some() {
                return Err(de::Error::custom(format_args!(
                    "header has its {field} twice (give \"{field}\" or \"{field}_base64\", once)"
                )));
            }
            let text: String = map.next_value()?;
            *slot = Some(if base64 {
                STANDARD
                    .decode(text)
                    .map_err(|e| de::Error::custom(format_args!("invalid {key}: {e}")))?
            } else {
                text.into_bytes()
            });
        }
        match (name, value) {
            (Some(name), Some(value)) => Ok(InHeader { name, value }),
            (None, _) => Err(de::Error::custom(
                "header object has no \"name\" or \"name_base64\"",
            )),
            (_, None) => Err(de::Error::custom(
                "header object has no \"value\" or \"value_base64\"",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(json: &str) -> Result<InHeader, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn header_forms_parse() {
        let expected = InHeader {
            name: b"x".to_vec(),
            value: vec![0xff],
        };
        assert_eq!(header(r#"["x","a"]"#).unwrap().value, b"a");
        assert_eq!(
            header(r#"{"name":"x","value_base64":"/w=="}"#).unwrap(),
            expected
        );
        assert_eq!(
            header(r#"{"value_base64":"/w==","name_base64":"eA=="}"#).unwrap(),
            expected
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        for bad in [
            r#"["x"]"#,
            r#"["x","y","z"]"#,
            r#"["x",1]"#,
            r#"{"name":"x"}"#,
            r#"{"value":"x"}"#,
            r#"{"name":"x","name_base64":"eA==","value":"v"}"#,
            r#"{"name":"x","value_base64":"not base64!"}"#,
            r#"{"name":"x","value":"v","extra":1}"#,
            r#""x:y""#,
        ] {
            assert!(header(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn non_utf8_header_parts_are_base64_alone() {
        let frame = Frame::builder(Command::Message)
            .header(b"ok", [0xff, b'a'])
            .header([0xfe], b"fine")
            .body(vec![0u8, 0xff])
            .build();
        let item = Item::Frame(frame);
        let json = serde_json::to_string(&OutLine::from_item(&item)).unwrap();
        assert_eq!(
            json,
            r#"{"command":"MESSAGE","headers":[{"name":"ok","value_base64":"/2E="},{"name_base64":"/g==","value":"fine"}],"body_base64":"AP8="}"#
        );
        let back: InLine = serde_json::from_str(&json).unwrap();
        assert_eq!(back.into_item().unwrap(), item);
    }

    #[test]
    fn heartbeat_lines() {
        let json = serde_json::to_string(&OutLine::from_item(&Item::Heartbeat)).unwrap();
        assert_eq!(json, r#"{"heartbeat":true}"#);
        let back: InLine = serde_json::from_str(&json).unwrap();
        assert_eq!(back.into_item().unwrap(), Item::Heartbeat);
        let mixed: InLine = serde_json::from_str(r#"{"heartbeat":true,"command":"SEND"}"#).unwrap();
        assert!(mixed.into_item().is_err());
    }
}
