//! Kubernetes name and label-value rules, checked before anything is written so that a
//! name the API server would reject becomes a clear refusal instead of a failed write.

/// Longest label value the API server accepts.
pub const MAX_LABEL_VALUE: usize = 63;
/// Longest object name (DNS-1123 subdomain) the API server accepts.
pub const MAX_SUBDOMAIN: usize = 253;

/// Whether `value` is a valid label value: empty, or at most 63 characters of
/// `[A-Za-z0-9_.-]` that start and end alphanumeric.
pub fn is_label_value(value: &str) -> bool {
    if value.is_empty() {
        return true;
    }
    let bytes = value.as_bytes();
    value.len() <= MAX_LABEL_VALUE
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// Whether `name` is a valid DNS-1123 subdomain, the rule for ConfigMap names.
pub fn is_dns1123_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SUBDOMAIN
        && name.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b.first().is_some_and(|c| c.is_ascii_alphanumeric())
                && b.last().is_some_and(|c| c.is_ascii_alphanumeric())
        })
}

/// Whether `name` is a valid DNS-1123 label: at most 63 characters of `[a-z0-9-]` that
/// start and end alphanumeric (the rule for names that become label values or hosts).
pub fn is_dns1123_label(name: &str) -> bool {
    name.len() <= MAX_LABEL_VALUE && !name.contains('.') && is_dns1123_subdomain(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values() {
        assert!(is_label_value(""));
        assert!(is_label_value("web-01"));
        assert!(is_label_value("A.b_c"));
        assert!(is_label_value(&"a".repeat(63)));
        assert!(!is_label_value(&"a".repeat(64)));
        assert!(!is_label_value("-web"));
        assert!(!is_label_value("web-"));
        assert!(!is_label_value("web 01"));
        assert!(!is_label_value("wéb"));
    }

    #[test]
    fn subdomains() {
        assert!(is_dns1123_subdomain("vm-adopted-web-01"));
        assert!(is_dns1123_subdomain("a.b-c.d"));
        assert!(!is_dns1123_subdomain(""));
        assert!(!is_dns1123_subdomain("Web"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(!is_dns1123_subdomain("-a"));
        assert!(!is_dns1123_subdomain(&"a".repeat(254)));
        assert!(is_dns1123_subdomain(&"a".repeat(253)));
    }

    #[test]
    fn dns1123_labels() {
        assert!(is_dns1123_label("web-01"));
        assert!(is_dns1123_label(&"a".repeat(63)));
        for bad in ["", "Web", "web.01", "-web", "web-", "web_01", &"a".repeat(64)] {
            assert!(!is_dns1123_label(bad), "{bad}");
        }
    }
}
