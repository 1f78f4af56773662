//! Where the client's credentials come from: fixed, or asked before every attempt.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use stompkit_session::{Attempt, Credentials};

use crate::Endpoint;

/// The future a [`CredentialsProvider`] returns.
pub type CredentialsFuture = Pin<Box<dyn Future<Output = Result<Credentials, String>> + Send>>;

/// Asked for credentials before every connection attempt, so a token that expired while the
/// connection was down is never replayed (a fresh JWT after each reconnect).
///
/// An `Err` fails the attempt like a network error (it is retried under the backoff); its
/// text must not hold a secret.
pub trait CredentialsProvider: Send + Sync + 'static {
    /// Credentials for `attempt` to `endpoint`.
    fn credentials(&self, endpoint: &Endpoint, attempt: Attempt) -> CredentialsFuture;
}

impl<F, Fut> CredentialsProvider for F
where
    F: Fn(&Endpoint, Attempt) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Credentials, String>> + Send + 'static,
{
    fn credentials(&self, endpoint: &Endpoint, attempt: Attempt) -> CredentialsFuture {
        Box::pin(self(endpoint, attempt))
    }
}

/// How the client gets credentials: from each endpoint's URL (`stomp://login:passcode@...`,
/// the default), the same ones for every endpoint, or a provider.
#[derive(Clone, Default)]
pub enum CredentialsSource {
    /// `login` and `passcode` from the endpoint's URL; none when it has no user part.
    #[default]
    FromUrl,
    /// These, for every endpoint and attempt.
    Fixed(Credentials),
    /// Asked before every attempt.
    Provider(Arc<dyn CredentialsProvider>),
}

impl CredentialsSource {
    pub(crate) async fn get(
        &self,
        endpoint: &Endpoint,
        attempt: Attempt,
    ) -> Result<Credentials, String> {
        match self {
            Self::FromUrl => Ok(match (endpoint.login(), endpoint.passcode()) {
                (Some(login), passcode) => Credentials::login(login, passcode.unwrap_or("")),
                (None, _) => Credentials::anonymous(),
            }),
            Self::Fixed(credentials) => Ok(credentials.clone()),
            Self::Provider(provider) => provider.credentials(endpoint, attempt).await,
        }
    }
}

impl fmt::Debug for CredentialsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FromUrl => f.write_str("FromUrl"),
            // Credentials' Debug hides the passcode and header values.
            Self::Fixed(c) => f.debug_tuple("Fixed").field(c).finish(),
            Self::Provider(_) => f.write_str("Provider(..)"),
        }
    }
}
