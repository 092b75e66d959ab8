//! Authentication without I/O: plans (keyless, API key, JWT with static keys, OAuth2 with a JWKS
//! or RFC 7662 introspection), token validation, the per-worker validated-token cache, the
//! challenges and discovery documents of MCP authorization (RFC 6750, 8414, 8707, 9728), and the
//! binding of session ids to subjects. The engine does the fetching and calls in here; time is
//! always an argument (seconds since the Unix epoch). See docs/auth.md.

pub mod apikey;
pub mod cache;
pub mod challenge;
pub mod config;
pub mod error;
pub mod introspection;
pub mod jwks;
pub mod jwt;
pub mod keys;
pub mod metadata;
pub mod plan;
pub mod principal;
pub mod request;
pub mod session;

pub use config::{AuthConfigError, AuthConfigUser, CompileContext, FileSource, NoFiles};
pub use error::{AuthError, ChallengeError, TokenProblem};
pub use jwks::{KeySet, RefetchPolicy};
pub use jwt::{validate_jwt, verify_jwt, JwtRules};
pub use keys::{Algorithm, AlgorithmSet, VerifyingKey};
pub use metadata::{AuthorizationServerMetadata, ProtectedResourceMetadata, PublicUrl};
pub use plan::{ApiAuth, AuthRequest, AuthStep, Plan, Refusal, WorkerAuthState};
pub use principal::{PlanKind, Principal};
pub use session::SessionBinder;
