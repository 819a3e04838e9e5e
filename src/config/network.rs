//! `[client_ip]` and `[network]`: who the client is, and what counts as the private network.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Which forwarded header a trusted proxy's chain is read from.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    Forwarded,
}

/// A client listener, by name.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ListenerName {
    /// `listen.public`.
    Public,
    /// `listen.private`.
    Private,
}

/// `[client_ip]`: how the client address is derived.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientIpConfig {
    /// Proxies (CIDRs) whose forwarded headers and PROXY protocol headers are believed. Empty:
    /// the client is always the TCP peer.
    pub trusted_proxies: Vec<IpNet>,
    /// `x-forwarded-for` or `forwarded` (RFC 7239).
    pub header: ForwardedHeader,
    /// Listeners that require a PROXY protocol (v1 or v2) header on every connection, from a
    /// trusted proxy: `["public"]`, `["public", "private"]`.
    pub proxy_protocol: Vec<ListenerName>,
}

/// The private ranges used when `network.private_by_client_address` is on: RFC 1918,
/// 100.64.0.0/10, loopback, link-local and fc00::/7.
pub const DEFAULT_PRIVATE_RANGES: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "::1/128",
    "fe80::/10",
    "fc00::/7",
];

/// `[network]`: what makes a request private (allowedNetwork).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Host names (no port) that mark a request private, e.g.
    /// `private.us-south.kms.cloud.ibm.com`. Compared case-insensitively.
    pub private_hosts: Vec<String>,
    /// Also count a request private when its client address is in `private_ranges`.
    pub private_by_client_address: bool,
    /// The private ranges for `private_by_client_address`.
    pub private_ranges: Vec<IpNet>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            private_hosts: Vec::new(),
            private_by_client_address: false,
            private_ranges: DEFAULT_PRIVATE_RANGES
                .iter()
                .filter_map(|net| net.parse().ok())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ForwardedHeader, ListenerName};

    #[test]
    fn sections_parse_with_defaults() {
        let config = Config::from_toml(&[
            "[client_ip]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1/128\"]\nheader = \"forwarded\"\nproxy_protocol = [\"public\"]\n[network]\nprivate_hosts = [\"private.eu-de.kms.cloud.ibm.com\"]\n",
        ])
        .unwrap();
        assert_eq!(config.client_ip.trusted_proxies.len(), 2);
        assert_eq!(config.client_ip.header, ForwardedHeader::Forwarded);
        assert_eq!(config.client_ip.proxy_protocol, vec![ListenerName::Public]);
        assert!(!config.network.private_by_client_address);
        assert_eq!(config.network.private_ranges.len(), 9);
        assert!(config.policies.instances.is_empty());
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = |toml: &str| Config::from_toml(&[toml]).unwrap_err().to_string();
        assert!(
            err("[client_ip]\nproxy_protocol = [\"public\"]\n")
                .contains("client_ip.proxy_protocol")
        );
        assert!(
            err(
                "[client_ip]\ntrusted_proxies = [\"10.0.0.0/8\"]\nproxy_protocol = [\"private\"]\n"
            )
            .contains("listen.private")
        );
        assert!(
            err("[client_ip]\ntrusted_proxies = [\"10.0.0.300/8\"]\n").contains("trusted_proxies")
        );
        assert!(err("[client_ip]\nheader = \"x-real-ip\"\n").contains("header"));
        assert!(err("[network]\nprivate_host = []\n").contains("private_host"));
        assert!(err("[policies]\ninstance = {}\n").contains("instance"));
    }
}
