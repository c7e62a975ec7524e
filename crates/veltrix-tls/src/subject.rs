//! The subject of a client certificate, as RFC 2253 writes it, for principal
//! mapping rules (veltrix-core's `PrincipalMapping`).

use x509_parser::prelude::{FromDer, X509Certificate};

/// A client certificate that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("the client certificate does not parse: {0}")]
pub struct BadCertificate(String);

/// The subject of a DER certificate as RFC 2253 writes it.
pub fn subject_name(der: &[u8]) -> Result<String, BadCertificate> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| BadCertificate(e.to_string()))?;
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter() {
        let mut parts = Vec::new();
        for attr in rdn.iter() {
            let oid = attr.attr_type().to_id_string();
            let key = short_name(&oid).map_or(oid.clone(), str::to_owned);
            let value = match attr.as_str() {
                Ok(s) => escape(s),
                // Not a string type: RFC 2253's `#` and the value's hex.
                Err(_) => format!("#{}", hex(attr.attr_value().data)),
            };
            parts.push(format!("{key}={value}"));
        }
        rdns.push(parts.join("+"));
    }
    // Most specific (last in the certificate) first.
    rdns.reverse();
    Ok(rdns.join(","))
}

/// The keywords RFC 2253 and Java's `X500Principal` print.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// RFC 2253 section 2.4: special characters behind a backslash.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_of_a_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "US");
        dn.push(rcgen::DnType::OrganizationName, "Example, Inc");
        dn.push(rcgen::DnType::CommonName, "alice");
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(subject_name(cert.der()).unwrap(), r"CN=alice,O=Example\, Inc,C=US");
        assert!(subject_name(b"junk").is_err());
    }

    #[test]
    fn escapes_as_rfc_2253() {
        assert_eq!(escape("#a b "), r"\#a b\ ");
        assert_eq!(escape("a+b;c"), r"a\+b\;c");
    }
}
