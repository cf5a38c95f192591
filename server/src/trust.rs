//! Which callers may assert a subject (its id, roles, tags and identity facts) without a
//! token: by default loopback callers (a sidecar or app on the same host); with mutual TLS,
//! callers whose client certificate carries a trusted subject alternative name (a SPIFFE ID
//! or DNS name). Everyone else is anonymous.

use std::net::SocketAddr;

use tonic::transport::CertificateDer;

/// The trust policy.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    /// Trust loopback callers.
    pub loopback: bool,
    /// Trusted client certificate SANs: exact, or a prefix ending in `*`
    /// (`spiffe://example.org/sidecar/*`).
    pub sans: Vec<String>,
    /// Who may call `AuthorizationService` at all: client certificate SANs (as above);
    /// empty: anyone who can connect. Loopback callers may when `loopback` is set.
    pub check_callers: Vec<String>,
}

impl Default for TrustPolicy {
    fn default() -> Self {
        TrustPolicy {
            loopback: true,
            sans: Vec::new(),
            check_callers: Vec::new(),
        }
    }
}

impl TrustPolicy {
    /// Whether a caller may assert subjects.
    pub fn trusts(
        &self,
        peer: Option<SocketAddr>,
        certs: Option<&[CertificateDer<'static>]>,
    ) -> bool {
        if self.loopback && peer.is_some_and(|a| a.ip().is_loopback()) {
            return true;
        }
        let (Some(leaf), false) = (certs.and_then(<[_]>::first), self.sans.is_empty()) else {
            return false;
        };
        sans_of(leaf)
            .iter()
            .any(|san| self.sans.iter().any(|p| san_matches(p, san)))
    }
}

impl TrustPolicy {
    /// Whether a caller may call `AuthorizationService`.
    pub fn may_check(
        &self,
        peer: Option<SocketAddr>,
        certs: Option<&[CertificateDer<'static>]>,
    ) -> bool {
        if self.check_callers.is_empty()
            || (self.loopback && peer.is_some_and(|a| a.ip().is_loopback()))
        {
            return true;
        }
        certs.and_then(<[_]>::first).is_some_and(|leaf| {
            sans_of(leaf)
                .iter()
                .any(|san| self.check_callers.iter().any(|p| san_matches(p, san)))
        })
    }
}

fn san_matches(pattern: &str, san: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => san.starts_with(prefix),
        None => pattern == san,
    }
}

/// URI and DNS subject alternative names of a DER certificate.
pub fn sans_of(der: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    ext.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some((*u).to_owned()),
            GeneralName::DNSName(d) => Some((*d).to_owned()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn san_patterns_match_exactly_or_by_prefix() {
        assert!(san_matches("spiffe://a/sidecar", "spiffe://a/sidecar"));
        assert!(!san_matches("spiffe://a/sidecar", "spiffe://a/sidecar2"));
        assert!(san_matches("spiffe://a/*", "spiffe://a/anything"));
        assert!(!san_matches("spiffe://a/*", "spiffe://b/x"));
    }

    #[test]
    fn loopback_trust_can_be_turned_off() {
        let local: SocketAddr = "127.0.0.1:9".parse().unwrap_or_else(|_| unreachable!());
        let remote: SocketAddr = "10.0.0.1:9".parse().unwrap_or_else(|_| unreachable!());
        assert!(TrustPolicy::default().trusts(Some(local), None));
        assert!(!TrustPolicy::default().trusts(Some(remote), None));
        let strict = TrustPolicy {
            loopback: false,
            sans: vec![],
            check_callers: vec![],
        };
        assert!(!strict.trusts(Some(local), None));
    }
}
