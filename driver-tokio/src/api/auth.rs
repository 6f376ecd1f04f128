//! Tokens (COMPAT §b): the `GetToken` challenge flow, JWTs in go-threads' format signed by the
//! host key, and the `authorization: bearer <token>` metadata of every other call.
//!
//! A token is `base64url(header) . base64url(claims) . base64url(signature)` (no padding), the
//! header exactly `{"alg":"Ed25519","typ":"JWT"}`, the claims `iat` (Unix seconds), `iss` (the
//! host identity string) and `sub` (the caller's identity string), the signature Ed25519 by
//! the host key over the first two parts. Only tokens signed by this host verify.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use threads_protocol::identity::{PrivateKey, PublicKey};
use tonic::Status;
use tonic::metadata::MetadataMap;

/// The header of every token, base64url-encoded (`{"alg":"Ed25519","typ":"JWT"}`).
pub const HEADER_B64: &str = "eyJhbGciOiJFZDI1NTE5IiwidHlwIjoiSldUIn0";

/// How long the server waits for the signed challenge.
pub const CHALLENGE_DEADLINE: Duration = Duration::from_secs(60);

/// Length of a challenge, in bytes.
pub const CHALLENGE_LEN: usize = 32;

/// Token claims, serialized in go-threads' order.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Issuer: the host identity string.
    pub iss: String,
    /// Subject: the caller's identity string.
    pub sub: String,
    /// Optional expiry (Unix seconds); go-threads never sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Issues a token for `subject`, signed by `host`, issued at `iat`, expiring `ttl` later
/// (never without one, as go-threads' tokens).
pub fn issue_at(
    host: &PrivateKey,
    subject: &PublicKey,
    iat: i64,
    ttl: Option<std::time::Duration>,
) -> String {
    let claims = Claims {
        iat,
        iss: host.public().to_string(),
        sub: subject.to_string(),
        exp: ttl.map(|t| iat.saturating_add(i64::try_from(t.as_secs()).unwrap_or(i64::MAX))),
    };
    let claims = serde_json::to_vec(&claims).expect("claims serialize");
    let signing_input = format!("{HEADER_B64}.{}", B64.encode(claims));
    let sig = host.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", B64.encode(sig))
}

/// Issues a token for `subject`, signed by `host`, issued now, expiring `ttl` later (never
/// without one).
pub fn issue(host: &PrivateKey, subject: &PublicKey, ttl: Option<std::time::Duration>) -> String {
    issue_at(host, subject, now_secs(), ttl)
}

/// Checks a token against the host's key and returns its subject. "thread token not found"
/// when it is not a JWT at all, "invalid thread token" when the signature or the claims fail
/// (both with status `Unknown`, as go-threads answers).
pub fn validate(host: &PublicKey, token: &str) -> Result<PublicKey, Status> {
    let not_found = || Status::unknown("thread token not found");
    let invalid = || Status::unknown("invalid thread token");
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(not_found());
    };
    let header = B64.decode(h).map_err(|_| not_found())?;
    let claims = B64.decode(c).map_err(|_| not_found())?;
    let sig = B64.decode(s).map_err(|_| not_found())?;
    let header: serde_json::Value = serde_json::from_slice(&header).map_err(|_| not_found())?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("Ed25519") {
        return Err(invalid());
    }
    let signing_input = &token[..h.len() + 1 + c.len()];
    host.verify(signing_input.as_bytes(), &sig)
        .map_err(|_| invalid())?;
    let claims: Claims = serde_json::from_slice(&claims).map_err(|_| invalid())?;
    let now = now_secs();
    if claims.iat > now || claims.exp.is_some_and(|exp| exp <= now) {
        return Err(invalid());
    }
    PublicKey::from_str(&claims.sub).map_err(|_| invalid())
}

/// The caller's identity from the `authorization` metadata: `None` without the header, the
/// token's subject with a valid bearer token, an error otherwise.
pub fn caller(host: &PublicKey, metadata: &MetadataMap) -> Result<Option<PublicKey>, Status> {
    let Some(value) = metadata.get("authorization") else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| Status::unauthenticated("Bad authorization string"))?;
    let Some((scheme, token)) = value.split_once(' ') else {
        return Err(Status::unauthenticated("Bad authorization string"));
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Status::unauthenticated(
            "Request unauthenticated with bearer",
        ));
    }
    validate(host, token.trim()).map(Some)
}

/// Fresh random challenge bytes.
pub fn challenge() -> Result<[u8; CHALLENGE_LEN], Status> {
    let mut c = [0u8; CHALLENGE_LEN];
    getrandom::fill(&mut c).map_err(|e| Status::internal(format!("no randomness: {e}")))?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_from_seed(first: u8) -> PrivateKey {
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate() {
            *b = first.wrapping_add(i as u8);
        }
        PrivateKey::from_seed(seed)
    }

    #[test]
    fn derived_vector_of_compat() {
        // COMPAT §b: host = fixed-seed key (00..1f), subject = the go-threads JWT test key.
        let host = key_from_seed(0);
        let subject =
            PublicKey::from_str("bbaareih5i3zodbnfp6rhn2vaexzixn2j6dz32dbd3sor3qva6yamrl4u3m")
                .unwrap();
        let token = issue_at(&host, &subject, 1_600_000_000, None);
        assert_eq!(
            token,
            "eyJhbGciOiJFZDI1NTE5IiwidHlwIjoiSldUIn0.eyJpYXQiOjE2MDAwMDAwMDAsImlzcyI6ImJiYWFyZWlhZHVlZDM3NDZvY2M3YjI0ZzVkZHR1eHFlem03c25tbWUzdXVndjZobzRxenNiZXZqcnhhIiwic3ViIjoiYmJhYXJlaWg1aTN6b2RibmZwNnJobjJ2YWV4eml4bjJqNmR6MzJkYmQzc29yM3F2YTZ5YW1ybDR1M20ifQ.rpxnFBd0Rtz0QNb6zB-DVHKwRv44zkJ7WETxFg2NkcgcwxJqO11mOrGfAlSpi00w1yRN8MQZz3bAwyDkYSL8Dg"
        );
        assert_eq!(validate(&host.public(), &token).unwrap(), subject);
    }

    #[test]
    fn foreign_tampered_and_malformed_tokens_are_refused() {
        let host = key_from_seed(0);
        let other = key_from_seed(100);
        let user = key_from_seed(50).public();
        let foreign = issue(&other, &user, None);
        assert_eq!(
            validate(&host.public(), &foreign).unwrap_err().message(),
            "invalid thread token"
        );
        let good = issue(&host, &user, None);
        // Change one signature character well inside (the last one carries padding bits).
        let mut tampered = good.clone().into_bytes();
        let at = tampered.len() - 10;
        tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(
            validate(&host.public(), &tampered).unwrap_err().message(),
            "invalid thread token"
        );
        for junk in ["", "abc", "a.b", "a.b.c.d", "!!.??.**"] {
            let e = validate(&host.public(), junk).unwrap_err();
            assert_eq!(e.message(), "thread token not found", "{junk}");
            assert_eq!(e.code(), tonic::Code::Unknown);
        }
        let future = issue_at(&host, &user, now_secs() + 3600, None);
        assert!(validate(&host.public(), &future).is_err());
    }

    #[test]
    fn tokens_with_a_lifetime_expire() {
        let host = key_from_seed(0);
        let user = key_from_seed(9).public();
        let ttl = Some(std::time::Duration::from_secs(60));
        let fresh = issue(&host, &user, ttl);
        assert_eq!(validate(&host.public(), &fresh).unwrap(), user);
        let claims = claims_of(&fresh);
        assert_eq!(claims.exp, Some(claims.iat + 60));
        let old = issue_at(&host, &user, now_secs() - 61, ttl);
        assert_eq!(
            validate(&host.public(), &old).unwrap_err().message(),
            "invalid thread token"
        );
        // Without a lifetime the claims carry no `exp` (go-threads' form) and stay valid.
        let forever = issue_at(&host, &user, now_secs() - 100 * 365 * 86_400, None);
        assert_eq!(claims_of(&forever).exp, None);
        assert!(!forever.split('.').nth(1).unwrap().is_empty());
        assert_eq!(validate(&host.public(), &forever).unwrap(), user);
    }

    fn claims_of(token: &str) -> Claims {
        let c = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&B64.decode(c).unwrap()).unwrap()
    }

    #[test]
    fn authorization_metadata() {
        let host = key_from_seed(0);
        let user = key_from_seed(9).public();
        let token = issue(&host, &user, None);
        let mut md = MetadataMap::new();
        assert_eq!(caller(&host.public(), &md).unwrap(), None);
        md.insert("authorization", format!("Bearer {token}").parse().unwrap());
        assert_eq!(caller(&host.public(), &md).unwrap(), Some(user));
        md.insert("authorization", "bearer".parse().unwrap());
        let e = caller(&host.public(), &md).unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (tonic::Code::Unauthenticated, "Bad authorization string")
        );
        md.insert("authorization", format!("basic {token}").parse().unwrap());
        let e = caller(&host.public(), &md).unwrap_err();
        assert_eq!(e.message(), "Request unauthenticated with bearer");
    }
}
