//! What the session puts in `CONNECT` to authenticate.

use std::fmt;

/// Login, passcode and extra `CONNECT` headers (e.g. `Authorization: Bearer <jwt>`).
///
/// The driver passes fresh credentials to
/// [`Session::transport_connected`](crate::Session::transport_connected) on every attempt,
/// so an expired token is never replayed by a reconnect. `Debug` never shows the passcode or
/// any header value.
///
/// ```
/// use stompkit_session::Credentials;
///
/// let creds = Credentials::login("station-7", "s3cret").header("Authorization", "Bearer eyJ...");
/// let shown = format!("{creds:?}");
/// assert!(shown.contains("station-7"));
/// assert!(!shown.contains("s3cret") && !shown.contains("eyJ"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub(crate) login: Option<String>,
    pub(crate) passcode: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
}

impl Credentials {
    /// No login and no passcode (brokers that authenticate by other means, or not at all).
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// A `login` and `passcode`.
    pub fn login(login: impl Into<String>, passcode: impl Into<String>) -> Self {
        Self {
            login: Some(login.into()),
            passcode: Some(passcode.into()),
            headers: Vec::new(),
        }
    }

    /// Only an `Authorization: Bearer <token>` header.
    pub fn bearer(token: impl AsRef<str>) -> Self {
        Self::anonymous().header("Authorization", format!("Bearer {}", token.as_ref()))
    }

    /// Adds a header to `CONNECT` (kept in order; written after the standard headers).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The login, if any.
    pub fn login_name(&self) -> Option<&str> {
        self.login.as_deref()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Credentials")
            .field("login", &self.login)
            .field("passcode", &self.passcode.as_ref().map(|_| "<redacted>"))
            .field("headers (values redacted)", &names)
            .finish()
    }
}
