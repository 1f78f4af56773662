//! Endpoint URLs: which broker, over which transport, with which credentials.
//!
//! ```text
//! stomp://[login[:passcode]@]host[:port]           TCP, default port 61613
//! stomp+ssl://...  (also ssl://, stomp+tls://)     TLS over TCP, default port 61614
//! ws://[login[:passcode]@]host[:port][/path]       WebSocket, default port 80, path "/"
//! wss://...                                         WebSocket over TLS, default port 443
//! ```
//!
//! Login and passcode are percent-decoded (`%40` for `@`, `%3A` for `:`, `%2C` for `,` in a
//! list). IPv6 addresses go in brackets: `stomp://[::1]:61613`. The passcode never appears in
//! [`Display`](std::fmt::Display), [`Debug`] or an error.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use crate::Error;

/// The transport an [`Endpoint`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `stomp://`: plain TCP.
    Tcp,
    /// `stomp+ssl://` (also `ssl://`, `stomp+tls://`): TLS over TCP.
    Tls,
    /// `ws://`: WebSocket over plain TCP.
    Ws,
    /// `wss://`: WebSocket over TLS.
    Wss,
}

impl Scheme {
    /// The port used when the URL gives none: 61613, 61614, 80, 443.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Tcp => 61613,
            Self::Tls => 61614,
            Self::Ws => 80,
            Self::Wss => 443,
        }
    }

    /// Whether the connection is encrypted (TLS or WSS).
    pub fn is_tls(self) -> bool {
        matches!(self, Self::Tls | Self::Wss)
    }

    /// Whether STOMP is carried in WebSocket messages.
    pub fn is_websocket(self) -> bool {
        matches!(self, Self::Ws | Self::Wss)
    }

    /// The canonical URL scheme: `stomp`, `stomp+ssl`, `ws` or `wss`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "stomp",
            Self::Tls => "stomp+ssl",
            Self::Ws => "ws",
            Self::Wss => "wss",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        const NAMES: [(&str, Scheme); 6] = [
            ("stomp", Scheme::Tcp),
            ("stomp+ssl", Scheme::Tls),
            ("stomp+tls", Scheme::Tls),
            ("ssl", Scheme::Tls),
            ("ws", Scheme::Ws),
            ("wss", Scheme::Wss),
        ];
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, s)| s)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One broker address: scheme, host, port, WebSocket path and optional credentials.
///
/// Parse one with [`str::parse`] or a comma-separated failover list with
/// [`Endpoint::parse_list`]. `Display` gives a URL without the passcode; `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    scheme: Scheme,
    host: String,
    port: u16,
    path: Option<String>,
    login: Option<String>,
    passcode: Option<String>,
}

impl Endpoint {
    /// An endpoint without credentials. `path` is used for WebSocket schemes only ("/" when
    /// `None`, a leading `/` added when missing) and ignored otherwise. `host` is a name or
    /// an IP address, IPv6 without brackets. Unlike parsing, nothing is checked here: a bad
    /// host or path fails at connect.
    pub fn new(scheme: Scheme, host: impl Into<String>, port: u16, path: Option<&str>) -> Self {
        let path = scheme.is_websocket().then(|| match path.unwrap_or("/") {
            p if p.starts_with('/') => p.to_owned(),
            p => format!("/{p}"),
        });
        Self {
            scheme,
            host: host.into(),
            port,
            path,
            login: None,
            passcode: None,
        }
    }

    /// The same endpoint with these credentials (replacing those from the URL).
    pub fn with_credentials(mut self, login: Option<String>, passcode: Option<String>) -> Self {
        self.login = login;
        self.passcode = passcode;
        self
    }

    /// Parses a comma-separated list of endpoint URLs, in failover order. Blanks around each
    /// URL are ignored; an empty item is an error. A `,` inside a passcode must be written
    /// `%2C`.
    pub fn parse_list(s: &str) -> Result<Vec<Self>, Error> {
        if s.trim().is_empty() {
            return Err(invalid(s, "no endpoint given"));
        }
        s.split(',')
            .enumerate()
            .map(|(i, item)| {
                if item.trim().is_empty() {
                    Err(invalid(
                        s,
                        &format!("endpoint {} of the list is empty", i + 1),
                    ))
                } else {
                    item.parse()
                }
            })
            .collect()
    }

    /// The transport.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host name or IP address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (the scheme's default when the URL gave none).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The WebSocket request path with its query (`/` by default); `None` for TCP and TLS.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// The login from the URL's user information, percent-decoded.
    pub fn login(&self) -> Option<&str> {
        self.login.as_deref()
    }

    /// The passcode from the URL's user information, percent-decoded.
    pub fn passcode(&self) -> Option<&str> {
        self.passcode.as_deref()
    }

    /// `host:port`, IPv6 in brackets: the address shown in errors and logs.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The URL of the WebSocket upgrade request, without credentials.
    pub(crate) fn ws_url(&self) -> String {
        let scheme = if self.scheme.is_tls() { "wss" } else { "ws" };
        format!(
            "{scheme}://{}{}",
            self.authority(),
            self.path.as_deref().unwrap_or("/")
        )
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme)?;
        if let Some(login) = &self.login {
            write!(f, "{}@", PercentEncoded(login))?;
        }
        f.write_str(&self.authority())?;
        if let Some(path) = &self.path {
            f.write_str(path)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("scheme", &self.scheme)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("path", &self.path)
            .field("login", &self.login)
            .field("passcode", &self.passcode.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl FromStr for Endpoint {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        parse(input.trim()).map_err(|e| match e {
            ParseError::Invalid(reason) => invalid(input, &reason),
            ParseError::Scheme(scheme) => Error::UnknownScheme { scheme },
        })
    }
}

enum ParseError {
    Invalid(String),
    Scheme(String),
}

fn bad(reason: &str) -> ParseError {
    ParseError::Invalid(reason.to_owned())
}

fn invalid(url: &str, reason: &str) -> Error {
    Error::InvalidUrl {
        url: redact(url),
        reason: reason.to_owned(),
    }
}

fn parse(s: &str) -> Result<Endpoint, ParseError> {
    let Some((scheme_name, rest)) = s.split_once("://") else {
        return Err(bad(
            "expected scheme://host[:port], e.g. stomp://127.0.0.1:61613",
        ));
    };
    if !is_scheme_name(scheme_name) {
        return Err(bad(
            "missing or malformed scheme before `://`, e.g. stomp://127.0.0.1:61613",
        ));
    }
    let scheme =
        Scheme::from_name(scheme_name).ok_or_else(|| ParseError::Scheme(scheme_name.to_owned()))?;

    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    if tail.contains('#') {
        return Err(bad("a fragment (`#...`) is not allowed"));
    }

    let (userinfo, hostport) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let (login, passcode) = match userinfo {
        None => (None, None),
        Some("") => return Err(bad("empty user information before `@`")),
        Some(ui) => {
            let (l, p) = match ui.split_once(':') {
                Some((l, p)) => (l, Some(p)),
                None => (ui, None),
            };
            let login = percent_decode(l).map_err(|why| bad(&format!("the login {why}")))?;
            let passcode = p
                .map(percent_decode)
                .transpose()
                .map_err(|why| bad(&format!("the passcode {why}")))?;
            (Some(login), passcode)
        }
    };

    let (host, port) = parse_host_port(hostport)?;
    let port = port.unwrap_or_else(|| scheme.default_port());

    let path = if scheme.is_websocket() {
        if tail.bytes().any(|b| b <= b' ' || b >= 0x7f) {
            return Err(bad(
                "the path must be ASCII without blanks (percent-encode other characters)",
            ));
        }
        Some(match tail {
            "" => "/".to_owned(),
            t if t.starts_with('?') => format!("/{t}"),
            t => t.to_owned(),
        })
    } else {
        if !tail.is_empty() && tail != "/" {
            return Err(bad(&format!(
                "a {scheme}:// URL takes no path or query (paths are for ws:// and wss://)"
            )));
        }
        None
    };

    Ok(Endpoint {
        scheme,
        host,
        port,
        path,
        login,
        passcode,
    })
}

fn is_scheme_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

fn parse_host_port(hostport: &str) -> Result<(String, Option<u16>), ParseError> {
    let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
        let Some((addr, after)) = inner.split_once(']') else {
            return Err(bad("missing `]` after the IPv6 address"));
        };
        if addr.parse::<Ipv6Addr>().is_err() {
            return Err(bad("invalid IPv6 address in brackets"));
        }
        let port = match after {
            "" => None,
            a => Some(
                a.strip_prefix(':')
                    .ok_or_else(|| bad("expected `:port` after the bracketed IPv6 address"))?,
            ),
        };
        (addr, port)
    } else {
        let (host, port) = match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        };
        if port.is_some_and(|p| p.contains(':')) {
            return Err(bad(
                "IPv6 addresses go in brackets, e.g. stomp://[::1]:61613",
            ));
        }
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        {
            return Err(bad(
                "the host may hold only letters, digits, `-`, `.` and `_`",
            ));
        }
        (host, port)
    };
    let port = match port {
        None => None,
        Some("") => return Err(bad("empty port after `:`")),
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => return Err(bad("the port must be a number from 1 to 65535")),
        },
    };
    Ok((host.to_owned(), port))
}

/// Decodes `%XX` escapes; the error says what is wrong without showing the text.
fn percent_decode(s: &str) -> Result<String, &'static str> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .ok_or("has a truncated `%` escape")?;
            let hi = hex_value(hex[0]).ok_or("has an invalid `%` escape")?;
            let lo = hex_value(hex[1]).ok_or("has an invalid `%` escape")?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "is not UTF-8 once percent-decoded")
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Writes everything but unreserved characters as `%XX`, so that `Display` parses back.
struct PercentEncoded<'a>(&'a str);

impl fmt::Display for PercentEncoded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0.as_bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "%{b:02X}")?;
            }
        }
        Ok(())
    }
}

/// The URL with whatever follows the first `:` of the user information replaced by `***`.
/// Errs on the side of hiding too much when the URL is malformed.
pub(crate) fn redact(url: &str) -> String {
    let (prefix, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    match rest.rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!("{prefix}{}***{}", &rest[..=colon], &rest[at..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_the_passcode() {
        assert_eq!(
            redact("stomp://guest:secret@host:1"),
            "stomp://guest:***@host:1"
        );
        assert_eq!(redact("stomp://guest@host"), "stomp://guest@host");
        assert_eq!(redact("stomp://host"), "stomp://host");
        assert_eq!(redact("u:p@ss@h"), "u:***@h");
        assert_eq!(redact("ws://a:b#c@h/x"), "ws://a:***@h/x");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%40b%3a%2C").unwrap(), "a@b:,");
        assert_eq!(percent_decode("%C3%A9").unwrap(), "é");
        assert!(percent_decode("%4").is_err());
        assert!(percent_decode("%zz").is_err());
        assert!(percent_decode("%FF").is_err());
    }

    #[test]
    fn percent_encoding_round_trips() {
        let login = "a b@c:d/é";
        let s = format!("stomp://{}@h", PercentEncoded(login));
        let e: Endpoint = s.parse().unwrap();
        assert_eq!(e.login(), Some(login));
    }
}
