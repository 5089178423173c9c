//! Where a delivery may go. A receiver's URL is the app's, or an upload's `callbackUrl` for an
//! allowed host; either may resolve to an address inside the network the service runs in (a
//! cloud's metadata service, an admin port on loopback). Unless `allow_private_targets`, such
//! addresses are refused: for IP literals before sending, for names by the resolver the
//! client uses, so the address checked is the address connected to (no DNS rebinding).

use std::net::{IpAddr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `ip` is on the public internet: not loopback, private, link-local, unique-local,
/// shared (CGNAT), unspecified, multicast, broadcast or documentation space.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

/// Checks a delivery URL before sending: http(s), and an IP-literal host must be public
/// unless private targets are allowed. Names are checked by [`PublicResolver`].
pub fn check_url(url: &reqwest::Url, allow_private: bool) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{} is not an http(s) URL", url.scheme()));
    }
    let Some(host) = url.host_str() else {
        return Err("the URL has no host".into());
    };
    let literal = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok();
    match literal {
        Some(ip) if !allow_private && !is_public(ip) => Err(format!(
            "{ip} is not a public address (allow_private_targets is off)"
        )),
        _ => Ok(()),
    }
}

/// Resolves names as the system does and keeps only public addresses (all of them when
/// private targets are allowed); a name with none left is an error.
#[derive(Debug, Clone, Copy)]
pub struct PublicResolver {
    pub allow_private: bool,
}

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!(
                    "{host} resolves to no public address (allow_private_targets is off)"
                )
                .into());
            }
            Ok(Box::new(found.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "1.1.1.1",
            "93.184.216.34",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn literal_private_hosts_are_refused_unless_allowed() {
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        assert!(check_url(&url("http://169.254.169.254/latest"), false).is_err());
        assert!(check_url(&url("http://[::1]:8080/"), false).is_err());
        assert!(check_url(&url("http://127.0.0.1:9/"), true).is_ok());
        assert!(check_url(&url("https://hooks.example.com/x"), false).is_ok());
        assert!(check_url(&url("ftp://example.com/"), true).is_err());
    }
}
