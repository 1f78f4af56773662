//! The frame encoder.

use bytes::{BufMut, BytesMut};

use crate::error::{Forbidden, excerpt};
use crate::escape::escape_into;
use crate::scan::has_special;
use crate::{Command, Error, Frame, Version, line};

/// Writes [`Frame`]s as STOMP bytes, escaping headers for the version in use.
///
/// - Headers of `CONNECT`, `STOMP` and `CONNECTED` frames, and all headers in 1.0, are never
///   escaped. What they cannot carry (a line feed anywhere, a colon in a name, a carriage
///   return in 1.2) is refused with [`Error::Unrepresentable`] instead of being written in a
///   way that would change the frame's meaning or inject a header.
/// - A body holding a NUL gets a `content-length` header (otherwise the NUL would end the
///   frame early). A `content-length` header set by the caller must match the body.
/// - Output is appended to the caller's [`BytesMut`]; nothing is allocated per frame beyond
///   growing that buffer. On error, nothing is appended.
///
/// ```
/// use bytes::BytesMut;
/// use stompkit_codec::{Command, Encoder, Frame, Version};
///
/// let frame = Frame::builder(Command::Send)
///     .header("destination", "/queue/a")
///     .header("x", "a:b")
///     .body("hi")
///     .build();
/// let mut out = BytesMut::new();
/// Encoder::new(Version::V1_2).encode(&frame, &mut out)?;
/// assert_eq!(&out[..], b"SEND\ndestination:/queue/a\nx:a\\cb\n\nhi\0");
/// # Ok::<(), stompkit_codec::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoder {
    version: Version,
    always_content_length: bool,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new(Version::default())
    }
}

impl Encoder {
    /// An encoder for `version` that adds `content-length` only when the body needs it.
    pub fn new(version: Version) -> Self {
        Self {
            version,
            always_content_length: false,
        }
    }

    /// Also adds `content-length` to every frame with a non-empty body (when the frame does
    /// not set one). Some brokers use its presence to tell binary from text messages.
    pub fn with_content_length(mut self, always: bool) -> Self {
        self.always_content_length = always;
        self
    }

    /// The version whose rules apply.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Switches to another version, e.g. after negotiation.
    pub fn set_version(&mut self, version: Version) {
        self.version = version;
    }

    /// Appends `frame` (head, body and closing NUL) to `dst`.
    pub fn encode(&self, frame: &Frame, dst: &mut BytesMut) -> Result<(), Error> {
        append_frame(dst, frame.body(), |dst| self.write_head(frame, dst))
    }

    /// Appends only the head of `frame`: command, headers and the blank line.
    ///
    /// For vectored writes: send the head, then `frame.body()` and a NUL byte, without
    /// copying the body.
    pub fn encode_head(&self, frame: &Frame, dst: &mut BytesMut) -> Result<(), Error> {
        all_or_nothing(dst, |dst| self.write_head(frame, dst))
    }

    /// Appends a frame given as parts, without building a [`Frame`]: the same rules and
    /// checks as [`encode`](Self::encode), for senders that hold their headers elsewhere.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use stompkit_codec::{Command, Encoder, Version};
    ///
    /// let mut out = BytesMut::new();
    /// let headers: [(&[u8], &[u8]); 2] = [(b"destination", b"/queue/a"), (b"x", b"a:b")];
    /// Encoder::new(Version::V1_2).encode_parts(Command::Send, headers, b"hi", &mut out)?;
    /// assert_eq!(&out[..], b"SEND\ndestination:/queue/a\nx:a\\cb\n\nhi\0");
    /// # Ok::<(), stompkit_codec::Error>(())
    /// ```
    pub fn encode_parts<'h, I>(
        &self,
        command: Command,
        headers: I,
        body: &[u8],
        dst: &mut BytesMut,
    ) -> Result<(), Error>
    where
        I: IntoIterator<Item = (&'h [u8], &'h [u8])>,
    {
        append_frame(dst, body, |dst| {
            self.write_parts(command, headers, body, dst)
        })
    }

    /// Appends a heart-beat (one LF).
    pub fn encode_heartbeat(&self, dst: &mut BytesMut) {
        dst.put_u8(b'\n');
    }

    fn write_head(&self, frame: &Frame, dst: &mut BytesMut) -> Result<(), Error> {
        match frame.plain_lines() {
            // Nothing to escape or refuse: the lines are already in wire form.
            Some(lines) => {
                let command = frame.command();
                let body = frame.body();
                check_body(command, body)?;
                put_command(command, dst);
                dst.put_slice(lines);
                self.finish_head(frame.header(b"content-length"), body, dst)
            }
            None => self.write_parts(frame.command(), frame.headers(), frame.body(), dst),
        }
    }

    /// Writes a head from its parts (all but the body and NUL).
    fn write_parts<'h, I>(
        &self,
        command: Command,
        headers: I,
        body: &[u8],
        dst: &mut BytesMut,
    ) -> Result<(), Error>
    where
        I: IntoIterator<Item = (&'h [u8], &'h [u8])>,
    {
        check_body(command, body)?;
        put_command(command, dst);
        let declared_length = self.write_headers(command, headers, dst)?;
        self.finish_head(declared_length, body, dst)
    }

    /// Checks or adds `content-length`, then ends the head with its blank line.
    fn finish_head(
        &self,
        declared_length: Option<&[u8]>,
        body: &[u8],
        dst: &mut BytesMut,
    ) -> Result<(), Error> {
        match declared_length {
            Some(declared) => {
                if line::content_length(declared) != Some(body.len() as u64) {
                    return Err(Error::ContentLengthMismatch {
                        declared: excerpt(declared),
                        actual: body.len(),
                    });
                }
            }
            None => {
                let needed = !body.is_empty()
                    && (self.always_content_length || memchr::memchr(0, body).is_some());
                if needed {
                    dst.put_slice(b"content-length:");
                    put_decimal(body.len() as u64, dst);
                    dst.put_u8(b'\n');
                }
            }
        }
        dst.put_u8(b'\n');
        Ok(())
    }

    /// Writes the header lines one by one, escaping or checking each; returns the first
    /// `content-length` value.
    fn write_headers<'h, I>(
        &self,
        command: Command,
        headers: I,
        dst: &mut BytesMut,
    ) -> Result<Option<&'h [u8]>, Error>
    where
        I: IntoIterator<Item = (&'h [u8], &'h [u8])>,
    {
        let escaping = self.version.escapes_headers() && command.escapes_headers();
        let with_cr = self.version == Version::V1_2;
        let mut declared_length = None;
        for (name, value) in headers {
            if name.is_empty() {
                return Err(self.unrepresentable(command, name, Forbidden::EmptyName));
            }
            if escaping {
                put_escaped(name, with_cr, dst);
                dst.put_u8(b':');
                put_escaped(value, with_cr, dst);
            } else {
                self.check_raw(command, name, name, true)?;
                self.check_raw(command, name, value, false)?;
                dst.put_slice(name);
                dst.put_u8(b':');
                dst.put_slice(value);
            }
            dst.put_u8(b'\n');
            if declared_length.is_none() && name == b"content-length" {
                declared_length = Some(value);
            }
        }
        Ok(declared_length)
    }

    /// Checks a name or value that is written without escaping.
    fn check_raw(
        &self,
        command: Command,
        name: &[u8],
        text: &[u8],
        is_name: bool,
    ) -> Result<(), Error> {
        if !has_special(text) {
            return Ok(());
        }
        let forbidden = if memchr::memchr(b'\n', text).is_some() {
            Some(Forbidden::LineFeed)
        } else if self.version.allows_crlf() && memchr::memchr(b'\r', text).is_some() {
            Some(Forbidden::CarriageReturn)
        } else if is_name && memchr::memchr(b':', text).is_some() {
            Some(Forbidden::Colon)
        } else {
            None
        };
        match forbidden {
            Some(forbidden) => Err(self.unrepresentable(command, name, forbidden)),
            None => Ok(()),
        }
    }

    fn unrepresentable(&self, command: Command, name: &[u8], forbidden: Forbidden) -> Error {
        Error::Unrepresentable {
            command,
            version: self.version,
            name: excerpt(name),
            forbidden,
        }
    }
}

/// Writes a head with `write_head`, then the body and the closing NUL; on error nothing is
/// appended.
#[inline]
fn append_frame(
    dst: &mut BytesMut,
    body: &[u8],
    write_head: impl FnOnce(&mut BytesMut) -> Result<(), Error>,
) -> Result<(), Error> {
    dst.reserve(body.len() + 1);
    all_or_nothing(dst, write_head)?;
    dst.put_slice(body);
    dst.put_u8(0);
    Ok(())
}

/// Runs `write`, taking back whatever it appended if it fails.
#[inline]
fn all_or_nothing(
    dst: &mut BytesMut,
    write: impl FnOnce(&mut BytesMut) -> Result<(), Error>,
) -> Result<(), Error> {
    let start = dst.len();
    let result = write(dst);
    if result.is_err() {
        dst.truncate(start);
    }
    result
}

fn check_body(command: Command, body: &[u8]) -> Result<(), Error> {
    if body.is_empty() || command.allows_body() {
        Ok(())
    } else {
        Err(Error::BodyNotAllowed { command })
    }
}

#[inline]
fn put_command(command: Command, dst: &mut BytesMut) {
    dst.put_slice(command.as_str().as_bytes());
    dst.put_u8(b'\n');
}

#[inline]
fn put_escaped(text: &[u8], with_cr: bool, dst: &mut BytesMut) {
    if has_special(text) {
        escape_into(text, with_cr, dst);
    } else {
        dst.put_slice(text);
    }
}

/// Writes `n` in decimal without going through `fmt`.
fn put_decimal(mut n: u64, dst: &mut BytesMut) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    dst.put_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_digits() {
        for n in [0u64, 7, 10, 99, 100, 123_456, u64::MAX] {
            let mut dst = BytesMut::new();
            put_decimal(n, &mut dst);
            assert_eq!(&dst[..], n.to_string().as_bytes());
        }
    }
}
