//! The Kafka listeners of `veltrix serve`: `[listeners] kafka` (PLAINTEXT)
//! and each `[[listener]]`, bound, with their TLS loaded; any that does not
//! bind or load stops the start with an error naming it.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use veltrix_config::{DeclaredListener, VeltrixConfig};
use veltrix_kafka::KafkaListener;
use veltrix_kafka::security::{
    AuthLimits, ClientAuth, ListenerSpec, PrincipalMapping, SaslMechanism, SecurityProtocol, TlsFiles, TlsServer,
};

/// Binds every Kafka listener. The first is `[listeners] kafka`; its bound
/// address is returned too (what the HTTP API's settings show).
pub async fn bind(config: &VeltrixConfig) -> anyhow::Result<(Vec<KafkaListener>, SocketAddr)> {
    let tcp = tokio::net::TcpListener::bind(config.kafka_listener)
        .await
        .with_context(|| format!("binding the Kafka listener to {}", config.kafka_listener))?;
    let advertised = tcp.local_addr()?;
    let mut listeners = vec![KafkaListener {
        tcp,
        spec: ListenerSpec {
            unauthenticated_principal: config.kafka_principal.clone(),
            ..ListenerSpec::plaintext("kafka", advertised)
        },
    }];
    for declared in &config.listeners {
        let tcp = tokio::net::TcpListener::bind(declared.address)
            .await
            .with_context(|| format!("binding listener `{}` to {}", declared.name, declared.address))?;
        let bound = tcp.local_addr()?;
        let spec = spec(declared, bound).with_context(|| format!("listener `{}`", declared.name))?;
        listeners.push(KafkaListener { tcp, spec });
    }
    Ok((listeners, advertised))
}

/// A declared listener's specification, its TLS files loaded.
fn spec(l: &DeclaredListener, bound: SocketAddr) -> anyhow::Result<ListenerSpec> {
    let protocol = SecurityProtocol::parse(&l.protocol).context("unknown security protocol")?;
    let sasl_mechanisms = l
        .sasl_mechanisms
        .iter()
        .map(|m| SaslMechanism::parse(m).with_context(|| format!("unknown SASL mechanism `{m}`")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let tls = if protocol.tls() {
        let files = TlsFiles {
            cert: l.tls_cert_file.clone().context("no tls_cert_file")?,
            key: l.tls_key_file.clone().context("no tls_key_file")?,
            client_ca: l.tls_client_ca_file.clone(),
            client_auth: ClientAuth::parse(&l.tls_client_auth).context("unknown tls_client_auth")?,
        };
        Some(Arc::new(TlsServer::load(files)?))
    } else {
        None
    };
    Ok(ListenerSpec {
        name: l.name.clone(),
        protocol,
        advertised_host: l.advertised_host.clone().unwrap_or_else(|| bound.ip().to_string()),
        advertised_port: l.advertised_port.unwrap_or(bound.port()),
        sasl_mechanisms,
        tls,
        principal_mapping: PrincipalMapping::parse(&l.principal_mapping_rules)?,
        unauthenticated_principal: veltrix_kafka::security::ANONYMOUS.to_owned(),
    })
}

/// The HTTP listener's TLS (its files loaded: an error stops the start) and
/// authentication.
pub fn http_security(
    config: &VeltrixConfig,
    metrics: &veltrix_core::Metrics,
) -> anyhow::Result<veltrix_http::HttpSecurity> {
    let tls = match &config.http_tls {
        Some(files) => {
            let files = TlsFiles {
                cert: files.cert.clone(),
                key: files.key.clone(),
                client_ca: None,
                client_auth: ClientAuth::None,
            };
            Some(Arc::new(
                TlsServer::load(files).context("the HTTP listener's TLS files")?,
            ))
        }
        None => None,
    };
    Ok(veltrix_http::HttpSecurity::new(
        config.http_security.clone(),
        tls,
        metrics,
    ))
}

/// `[security]`'s limits for the Kafka adapter.
pub fn auth_limits(config: &VeltrixConfig) -> AuthLimits {
    let veltrix_config::Security {
        authorization: _,
        super_users: _,
        authentication_ms_max,
        unauthenticated_request_bytes_max,
        reauthentication_ms_max,
        authentication_failure_delay_ms,
    } = config.security;
    AuthLimits {
        authentication_ms_max,
        unauthenticated_request_bytes_max,
        reauthentication_ms_max,
        authentication_failure_delay_ms,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn security_defaults_agree_with_the_adapters() {
        let config = veltrix_config::VeltrixConfig::default();
        assert_eq!(
            super::auth_limits(&config),
            veltrix_kafka::security::AuthLimits::default()
        );
    }
}
