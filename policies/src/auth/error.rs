//! Why a request was refused by a plan, and how that refusal goes on the wire: the HTTP status, the
//! OAuth error code of the `WWW-Authenticate` challenge (RFC 6750 §3.1) and a JSON-RPC code for
//! bodies. Descriptions stay generic on purpose: they are logged, not sent, so a client learns
//! nothing about which check failed beyond the RFC 6750 class.

/// A refusal. Every variant maps to exactly one status and challenge class.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential any plan of the API recognises: 401, challenge without `error`.
    #[error("no credentials")]
    MissingCredentials,
    /// A malformed authorization request (token in the query string, two `Authorization`
    /// headers, a bearer header that is not `Bearer <token>`): 400 `invalid_request`.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// The token is not acceptable (signature, alg, kid, iss, aud, exp, nbf, iat, shape): 401
    /// `invalid_token`.
    #[error("invalid token: {0}")]
    InvalidToken(TokenProblem),
    /// The token is valid but lacks scopes the API requires: 403 `insufficient_scope`.
    #[error("insufficient scope")]
    InsufficientScope,
    /// An API key that matches no configured key: 401.
    #[error("invalid API key")]
    InvalidApiKey,
    /// A session id presented by a subject other than the one that created it: 404, as if the
    /// session did not exist (which, for that subject, it does not).
    #[error("session not found")]
    SessionNotFound,
}

/// The precise reason an `invalid_token` was refused; for logs and tests, never for clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenProblem {
    #[error("token longer than the configured maximum")]
    TooLong,
    #[error("not a compact JWS")]
    Malformed,
    #[error("algorithm refused")]
    AlgorithmRefused,
    #[error("no key with this kid")]
    UnknownKid,
    #[error("no key usable for this algorithm")]
    NoUsableKey,
    #[error("signature does not verify")]
    BadSignature,
    #[error("claims are not a JSON object")]
    BadClaims,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("wrong audience")]
    WrongAudience,
    #[error("expired")]
    Expired,
    #[error("not yet valid")]
    NotYetValid,
    #[error("issued in the future")]
    IssuedInFuture,
    #[error("missing exp")]
    MissingExpiry,
    #[error("introspection says inactive")]
    Inactive,
    #[error("introspection response unusable")]
    BadIntrospection,
    /// The introspection endpoint answered with a 4xx status (e.g. 400 `unsupported_token_type`):
    /// reached, and it did not vouch for the token.
    #[error("introspection request refused by the authorization server")]
    IntrospectionRefused,
}

/// The `error` parameter of a Bearer challenge (RFC 6750 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeError {
    /// No `error` parameter: the request carried no credentials at all (RFC 6750 §3.1).
    None,
    InvalidRequest,
    InvalidToken,
    InsufficientScope,
}

impl ChallengeError {
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            ChallengeError::None => None,
            ChallengeError::InvalidRequest => Some("invalid_request"),
            ChallengeError::InvalidToken => Some("invalid_token"),
            ChallengeError::InsufficientScope => Some("insufficient_scope"),
        }
    }
}

impl AuthError {
    pub fn http_status(&self) -> u16 {
        match self {
            AuthError::MissingCredentials
            | AuthError::InvalidToken(_)
            | AuthError::InvalidApiKey => 401,
            AuthError::InvalidRequest(_) => 400,
            AuthError::InsufficientScope => 403,
            AuthError::SessionNotFound => 404,
        }
    }

    /// JSON-RPC code for a body the gateway writes itself. -32001 "Session not found" is the
    /// code the official SDKs use with their 404; the others sit in the implementation range.
    pub fn jsonrpc_code(&self) -> i32 {
        match self {
            AuthError::InvalidRequest(_) => -32600,
            AuthError::SessionNotFound => -32001,
            AuthError::MissingCredentials
            | AuthError::InvalidToken(_)
            | AuthError::InvalidApiKey => -32010,
            AuthError::InsufficientScope => -32011,
        }
    }

    pub fn challenge_error(&self) -> ChallengeError {
        match self {
            AuthError::MissingCredentials
            | AuthError::InvalidApiKey
            | AuthError::SessionNotFound => ChallengeError::None,
            AuthError::InvalidRequest(_) => ChallengeError::InvalidRequest,
            AuthError::InvalidToken(_) => ChallengeError::InvalidToken,
            AuthError::InsufficientScope => ChallengeError::InsufficientScope,
        }
    }

    /// Whether a `WWW-Authenticate` header belongs on the answer (a 404 carries none).
    pub fn wants_challenge(&self) -> bool {
        !matches!(self, AuthError::SessionNotFound)
    }

    /// When several plans refuse, the answer reports the most informative refusal: a valid token
    /// lacking scope beats an invalid one, which beats a malformed request, which beats nothing.
    pub(crate) fn precedence(&self) -> u8 {
        match self {
            AuthError::InsufficientScope => 5,
            AuthError::InvalidToken(_) => 4,
            AuthError::InvalidApiKey => 3,
            AuthError::InvalidRequest(_) => 2,
            AuthError::SessionNotFound => 1,
            AuthError::MissingCredentials => 0,
        }
    }
}

impl From<TokenProblem> for AuthError {
    fn from(problem: TokenProblem) -> Self {
        AuthError::InvalidToken(problem)
    }
}
