//! The requesting user's bearer token: taken from `Authorization: Bearer …` (which the
//! platform's auth proxy forwards), used for that one request's API calls, and never
//! printed: its `Debug` and `Display` are redacted, and nothing stores it.

use std::fmt;

/// A user's bearer token.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The token, for the API client only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(redacted)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why a request carries no usable token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No `Authorization` header.
    #[error("no credentials: open the console through the platform's sign-in")]
    Missing,
    /// Not `Bearer <token>`, or not a plausible token.
    #[error("the Authorization header is not a bearer token")]
    Malformed,
}

/// The bearer token of an `Authorization` header value.
pub fn from_header(value: Option<&str>) -> Result<Token, TokenError> {
    let value = value.ok_or(TokenError::Missing)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(TokenError::Malformed)?;
    let token = token.trim();
    let plausible = !token.is_empty() && token.len() <= 16 * 1024 && token.bytes().all(|b| b.is_ascii_graphic());
    if scheme.eq_ignore_ascii_case("bearer") && plausible {
        Ok(Token(token.to_owned()))
    } else {
        Err(TokenError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_taken_and_nothing_else() {
        assert_eq!(
            from_header(Some("Bearer abc.def")).map(|t| t.expose().to_owned()),
            Ok("abc.def".into())
        );
        assert_eq!(
            from_header(Some("bearer  xyz ")).map(|t| t.expose().to_owned()),
            Ok("xyz".into())
        );
        assert_eq!(from_header(None), Err(TokenError::Missing));
        for bad in [
            "",
            "Bearer",
            "Bearer ",
            "Basic dXNlcjpwdw==",
            "Bearer a b",
            "Bearer caf\u{e9}",
        ] {
            assert_eq!(from_header(Some(bad)), Err(TokenError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn a_token_never_prints() {
        let token = from_header(Some("Bearer s3cr3t-token")).expect("token");
        assert!(!format!("{token:?} {token}").contains("s3cr3t"));
    }
}
