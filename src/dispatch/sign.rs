//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>`,
//! one `v1,` signature per secret (several while a secret is being rotated). Pure: no I/O.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of Standard Webhooks secrets.
pub const SECRET_PREFIX: &str = "whsec_";

/// A signing secret: the bytes behind `whsec_<base64>`.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Vec<u8>);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(…)")
    }
}

impl SigningSecret {
    /// Parses `whsec_<base64>`; the error says what is wrong without echoing the secret.
    pub fn parse(text: &str) -> Result<SigningSecret, String> {
        let Some(encoded) = text.strip_prefix(SECRET_PREFIX) else {
            return Err(format!("a webhook secret starts with `{SECRET_PREFIX}`"));
        };
        let bytes = STANDARD.decode(encoded).map_err(|_| "the part after `whsec_` is not base64".to_string())?;
        if bytes.len() < 16 {
            return Err("a webhook secret needs at least 16 bytes (24 base64 characters)".into());
        }
        Ok(SigningSecret(bytes))
    }

    /// A new random secret, as `whsec_<base64 of 32 bytes>`.
    pub fn generate() -> String {
        let bytes: [u8; 32] = rand::random();
        format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
    }

    /// `v1,<base64 signature>` of one message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The `webhook-signature` header value: every secret's signature, space-separated.
pub fn signature_header(secrets: &[SigningSecret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets.iter().map(|secret| secret.sign(id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

/// Why a received webhook is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A `webhook-*` header is missing or unreadable.
    #[error("missing or unreadable header {0}")]
    Header(&'static str),
    /// The timestamp is further than the tolerance from now (a replay, or a bad clock).
    #[error("timestamp {0} is outside the tolerance")]
    Stale(i64),
    /// No `v1` signature matches.
    #[error("no signature matches")]
    Signature,
}

/// Checks a received message as a receiver should: the timestamp within `tolerance_seconds` of
/// `now_unix`, and one of the `v1,` signatures equal (in constant time) to this secret's.
pub fn verify(
    secret: &SigningSecret,
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now_unix: i64,
    tolerance_seconds: i64,
) -> Result<(), VerifyError> {
    let id = id.ok_or(VerifyError::Header("webhook-id"))?;
    let timestamp: i64 = timestamp.and_then(|t| t.parse().ok()).ok_or(VerifyError::Header("webhook-timestamp"))?;
    let signatures = signatures.ok_or(VerifyError::Header("webhook-signature"))?;
    if (now_unix - timestamp).abs() > tolerance_seconds {
        return Err(VerifyError::Stale(timestamp));
    }
    let expected = secret.sign(id, timestamp, body);
    let matches = signatures.split(' ').any(|candidate| {
        candidate.len() == expected.len()
            && candidate.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    });
    if matches { Ok(()) } else { Err(VerifyError::Signature) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_example_signs_as_published() {
        // The example of the Standard Webhooks specification.
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn rotation_gives_one_signature_per_secret() {
        let old = SigningSecret::parse(&SigningSecret::generate()).unwrap();
        let new = SigningSecret::parse(&SigningSecret::generate()).unwrap();
        let header = signature_header(&[new.clone(), old.clone()], "msg_1", 1, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts, [new.sign("msg_1", 1, b"{}"), old.sign("msg_1", 1, b"{}")]);
    }

    #[test]
    fn verification_accepts_the_spec_example_and_refuses_changes() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let id = Some("msg_p5jXN8AQM9LWM0D4loKWxJek");
        let signature = Some("v1,bm9ldHRoaXNvbmU= v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let at = 1614265330;
        assert_eq!(verify(&secret, id, Some("1614265330"), signature, body, at + 60, 300), Ok(()));
        assert_eq!(verify(&secret, id, Some("1614265330"), signature, b"{}", at, 300), Err(VerifyError::Signature));
        assert_eq!(
            verify(&secret, id, Some("1614265330"), signature, body, at + 301, 300),
            Err(VerifyError::Stale(at))
        );
        assert_eq!(verify(&secret, None, Some("1"), signature, body, at, 300), Err(VerifyError::Header("webhook-id")));
    }

    #[test]
    fn bad_secrets_are_refused_without_echoing_them() {
        assert!(SigningSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err().contains("whsec_"));
        assert!(SigningSecret::parse("whsec_!!!").unwrap_err().contains("base64"));
        assert!(SigningSecret::parse("whsec_c2hvcnQ=").unwrap_err().contains("16 bytes"));
    }
}
