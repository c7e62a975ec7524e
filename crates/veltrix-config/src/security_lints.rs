//! `[[listener]]` and `[security]`: resolved, and their rules (V031 to V036,
//! V144, V204's listeners, V218, V219): names and addresses, TLS settings
//! against the protocol, the TLS files read as the broker will read them
//! (through the probe), SASL mechanisms, principal mapping rules, super
//! users, and in production plaintext listeners on the network, PLAIN without
//! TLS and authorization off.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use veltrix_core::principal::PrincipalMapping;

use crate::check::Ctx;
use crate::lints::shown;
use crate::model::{DEFAULT_SASL_MECHANISMS, DeclaredListener, Security, VeltrixConfig};
use crate::probe::Probe;
use crate::raw::{Raw, RawTable};
use crate::rules;
use crate::schema::SASL_MECHANISMS;

/// The principal of connections and requests nothing authenticated.
const ANONYMOUS_PRINCIPAL: &str = "User:ANONYMOUS";

/// A certificate expiring sooner than this is warned about.
pub const CERTIFICATE_EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// A `[[listener]]` entry; `None` when a required key was rejected.
pub(crate) fn resolve(t: &RawTable) -> Option<DeclaredListener> {
    let strings = |key: &str| {
        t.list(key)
            .map(|items| items.iter().map(|(s, _)| s.trim().to_owned()).collect::<Vec<_>>())
    };
    let protocol = t.str("protocol")?.to_owned();
    let sasl = protocol.starts_with("SASL_");
    let sasl_mechanisms = match strings("sasl_mechanisms") {
        Some(m) => m,
        None if sasl => DEFAULT_SASL_MECHANISMS.iter().map(|m| (*m).to_owned()).collect(),
        None => Vec::new(),
    };
    Some(DeclaredListener {
        name: t.str("name")?.to_owned(),
        address: t.str("address")?.parse().ok()?,
        protocol,
        advertised_host: t.str("advertised_host").map(str::to_owned),
        advertised_port: t.int("advertised_port").and_then(|p| u16::try_from(p).ok()),
        sasl_mechanisms,
        tls_cert_file: t.str("tls_cert_file").map(PathBuf::from),
        tls_key_file: t.str("tls_key_file").map(PathBuf::from),
        tls_client_ca_file: t.str("tls_client_ca_file").map(PathBuf::from),
        tls_client_auth: t.str("tls_client_auth").unwrap_or("none").to_owned(),
        principal_mapping_rules: strings("principal_mapping_rules").unwrap_or_default(),
    })
}

/// `[security]`.
pub(crate) fn resolve_security(s: &mut Security, t: &RawTable) {
    if let Some(b) = t.bool("authorization") {
        s.authorization = b;
    }
    if let Some(users) = t.list("super_users") {
        s.super_users = users.iter().map(|(u, _)| u.trim().to_owned()).collect();
    }
    let int = |key: &str| t.int(key).and_then(|n| u64::try_from(n).ok());
    if let Some(n) = int("authentication_ms_max") {
        s.authentication_ms_max = n;
    }
    if let Some(n) = int("unauthenticated_request_bytes_max").and_then(|n| usize::try_from(n).ok()) {
        s.unauthenticated_request_bytes_max = n;
    }
    if let Some(n) = int("reauthentication_ms_max") {
        s.reauthentication_ms_max = n;
    }
    if let Some(n) = int("authentication_failure_delay_ms") {
        s.authentication_failure_delay_ms = n;
    }
}

/// The HTTP listener's TLS and authentication: `[listeners] http_*`,
/// `[security] http_token_ttl_ms_max` and `[limits] http_verified_passwords_max`,
/// `http_password_checks_in_flight_max` and `http_produce_bytes_max`; after `[security]` and
/// `[limits]`, whose failure delay and warning interval it shares.
pub(crate) fn resolve_http(c: &mut VeltrixConfig, raw: &Raw) {
    let l = raw.table("listeners");
    let access = |key: &str| l.str(key).and_then(|w| veltrix_http::Access::parse(w.trim()));
    let h = &mut c.http_security;
    if let Some(a) = access("http_authentication") {
        h.api = a;
    }
    h.metrics = access("http_metrics_authentication").unwrap_or(h.api);
    if let Some(a) = access("http_health_authentication") {
        h.health = a;
    }
    if let Some(p) = l.str("http_principal") {
        h.anonymous_principal = p.trim().to_owned();
    }
    if let Some(b) = l.bool("http_mutations") {
        h.mutations = b;
    }
    let int = |t: &RawTable, key: &str| t.int(key).and_then(|n| u64::try_from(n).ok());
    if let Some(n) = int(raw.table("security"), "http_token_ttl_ms_max") {
        h.token_ttl_ms_max = n;
    }
    let limits = raw.table("limits");
    if let Some(n) = int(limits, "http_verified_passwords_max").and_then(|n| usize::try_from(n).ok()) {
        h.verified_passwords_max = n;
    }
    if let Some(n) = int(limits, "http_password_checks_in_flight_max").and_then(|n| usize::try_from(n).ok()) {
        h.password_checks_in_flight_max = n;
    }
    if let Some(n) = int(limits, "http_produce_bytes_max").and_then(|n| usize::try_from(n).ok()) {
        h.produce_bytes_max = n;
    }
    h.authentication_failure_delay_ms = c.security.authentication_failure_delay_ms;
    h.warning_interval_ms = c.limits.warning_interval_ms;
    c.http_tls = match (l.str("http_tls_cert_file"), l.str("http_tls_key_file")) {
        (Some(cert), Some(key)) => Some(crate::model::HttpTlsFiles {
            cert: PathBuf::from(cert),
            key: PathBuf::from(key),
        }),
        _ => None,
    };
}

/// Every rule of listeners and security.
pub(crate) fn run(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig, probe: &dyn Probe) {
    duplicates(ctx, raw, c);
    for (t, l) in raw.listeners.iter().zip(resolved(raw)) {
        let Some(l) = l else { continue };
        tls_settings(ctx, t, &l);
        tls_files(ctx, t, &l, probe);
        mechanisms(ctx, t, &l);
        mapping_rules(ctx, t);
    }
    super_users(ctx, raw);
    privileged_plaintext(ctx, raw, c);
    http_listener(ctx, raw, c, probe);
    plain_without_tls(ctx, raw);
    authorization_off(ctx, raw, c);
}

/// Each raw entry with what it resolved to.
fn resolved(raw: &Raw) -> Vec<Option<DeclaredListener>> {
    raw.listeners.iter().map(resolve).collect()
}

/// "listener `name`" as diagnostics say it.
fn what(t: &RawTable) -> String {
    match t.str("name") {
        Some(n) => format!("listener `{}`", shown(n)),
        None => "this listener".to_owned(),
    }
}

/// V031: a name or an address used twice.
fn duplicates(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig) {
    let mut names: HashMap<&str, &RawTable> = HashMap::new();
    let mut addresses: HashMap<SocketAddr, (String, Option<crate::raw::Origin>)> = HashMap::new();
    let listeners = raw.table("listeners");
    addresses.insert(c.kafka_listener, ("`[listeners] kafka`".into(), listeners.at("kafka")));
    addresses.insert(c.http_listener, ("`[listeners] http`".into(), listeners.at("http")));
    for t in &raw.listeners {
        if let Some(name) = t.str("name") {
            if let Some(first) = names.get(name) {
                ctx.emit(
                    &rules::DUPLICATE_LISTENER,
                    t.set_at("name").as_ref(),
                    format!("listener `{}` is declared twice", shown(name)),
                )
                .label("named again here")
                .related(first.set_at("name"), "first declared here")
                .help("give each `[[listener]]` a name of its own")
                .note("logs, metrics and `veltrix check` tell listeners apart by their names");
            } else {
                names.insert(name, t);
            }
        }
        let Some(addr) = t.str("address").and_then(|a| a.parse::<SocketAddr>().ok()) else {
            continue;
        };
        if let Some((other, at)) = addresses.get(&addr) {
            ctx.emit(
                &rules::DUPLICATE_LISTENER,
                t.set_at("address").as_ref(),
                format!("{} binds {addr}, as {other} does", what(t)),
            )
            .label("address already taken")
            .related(at.clone(), "bound here first")
            .help("give the listener a port of its own")
            .note("two listeners cannot bind one address; the broker would refuse to start");
        } else {
            addresses.insert(addr, (what(t), t.set_at("address")));
        }
    }
}

/// V032: TLS files against the protocol.
fn tls_settings(ctx: &mut Ctx<'_>, t: &RawTable, l: &DeclaredListener) {
    if l.tls() {
        for key in ["tls_cert_file", "tls_key_file"] {
            if !t.declares(key) {
                ctx.emit(
                    &rules::LISTENER_TLS,
                    t.at("protocol").as_ref(),
                    format!("{} uses {} but has no `{key}`", what(t), l.protocol),
                )
                .label("TLS needs a certificate and its key")
                .help(format!("add `{key} = \"/etc/veltrix/tls/...pem\"` to the entry"))
                .note("a TLS listener serves a certificate and proves it holds the key");
            }
        }
        if l.tls_client_auth != "none" && !t.declares("tls_client_ca_file") {
            ctx.emit(
                &rules::LISTENER_TLS,
                t.at("tls_client_auth").as_ref(),
                format!("{} asks for client certificates but names no CA for them", what(t)),
            )
            .label(format!("tls_client_auth = \"{}\"", l.tls_client_auth))
            .help("add `tls_client_ca_file`, the CA client certificates must chain to")
            .note("client certificates are verified against this CA; without it none could be trusted");
        }
        return;
    }
    for key in ["tls_cert_file", "tls_key_file", "tls_client_ca_file", "tls_client_auth"] {
        if t.declares(key) {
            ctx.emit(
                &rules::LISTENER_TLS,
                t.at(key).as_ref(),
                format!("{} is {}, without TLS, but sets `{key}`", what(t), l.protocol),
            )
            .label("never used on this listener")
            .related(t.set_at("protocol"), "no TLS here")
            .help(format!(
                "for TLS, write `protocol = \"{}\"`; otherwise remove `{key}`",
                if l.sasl() { "SASL_SSL" } else { "SSL" }
            ))
            .note("TLS settings on a listener without TLS are never used: its connections are not encrypted");
        }
    }
}

/// V033 and V144: the files load as the broker will load them.
fn tls_files(ctx: &mut Ctx<'_>, t: &RawTable, l: &DeclaredListener, probe: &dyn Probe) {
    if !l.tls() {
        return;
    }
    let who = what(t);
    if let Some(path) = &l.tls_cert_file {
        certificates(ctx, t, &who, "tls_cert_file", path, probe, true);
    }
    if let Some(path) = &l.tls_client_ca_file {
        certificates(ctx, t, &who, "tls_client_ca_file", path, probe, false);
    }
    if let Some(path) = &l.tls_key_file {
        private_key(ctx, t, &who, "tls_key_file", path, probe);
    }
}

/// A PEM private key: readable and parsed.
fn private_key(ctx: &mut Ctx<'_>, t: &RawTable, who: &str, key: &str, path: &Path, probe: &dyn Probe) {
    let loaded = probe.read_file(path).map_err(|e| e.to_string()).and_then(|bytes| {
        PrivateKeyDer::from_pem_slice(&bytes)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    if let Err(why) = loaded {
        unusable(ctx, t, who, key, path, &why);
    }
}

fn unusable(ctx: &mut Ctx<'_>, t: &RawTable, who: &str, key: &str, path: &Path, why: &str) {
    ctx.emit(
        &rules::TLS_FILE_UNUSABLE,
        t.at(key).as_ref(),
        format!("{who}'s `{key}` {} cannot be used: {why}", path.display()),
    )
    .label("the broker would refuse to start")
    .help("check the path, the file's permissions for the broker's user, and that it holds PEM blocks")
    .note("the broker loads the listener's TLS files at start and refuses to start when they do not load");
}

/// A PEM file of certificates: readable, at least one, none expired; with
/// `leaf`, the first (the server's own) not expiring within 30 days.
fn certificates(ctx: &mut Ctx<'_>, t: &RawTable, who: &str, key: &str, path: &Path, probe: &dyn Probe, leaf: bool) {
    let bytes = match probe.read_file(path) {
        Ok(b) => b,
        Err(e) => return unusable(ctx, t, who, key, path, &e.to_string()),
    };
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&bytes).collect();
    let certs = match certs {
        Ok(c) if !c.is_empty() => c,
        Ok(_) => return unusable(ctx, t, who, key, path, "no PEM certificate in it"),
        Err(e) => return unusable(ctx, t, who, key, path, &e.to_string()),
    };
    let now = probe.now();
    let first = certs.first().and_then(|c| not_after(c));
    for cert in &certs {
        if let Some(end) = not_after(cert)
            && end < now
        {
            return unusable(
                ctx,
                t,
                who,
                key,
                path,
                &format!("a certificate in it expired {}", ago(now, end)),
            );
        }
    }
    if leaf
        && let Some(end) = first
        && end < now + CERTIFICATE_EXPIRY_WARNING
    {
        let days = end.duration_since(now).unwrap_or_default().as_secs() / 86_400;
        ctx.emit(
            &rules::CERTIFICATE_EXPIRING,
            t.at(key).as_ref(),
            format!("{who}'s certificate {} expires in {days} days", path.display()),
        )
        .label("expires soon")
        .help("renew it; the broker loads the new file by itself within 10 seconds")
        .note("once it expires, every client's TLS handshake fails");
    }
}

/// When a DER certificate stops being valid.
fn not_after(cert: &[u8]) -> Option<SystemTime> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, parsed) = X509Certificate::from_der(cert).ok()?;
    let secs = parsed.validity().not_after.timestamp();
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

fn ago(now: SystemTime, then: SystemTime) -> String {
    let days = now.duration_since(then).unwrap_or_default().as_secs() / 86_400;
    format!("{days} days ago")
}

/// V034: mechanisms offered, and only on SASL listeners.
fn mechanisms(ctx: &mut Ctx<'_>, t: &RawTable, l: &DeclaredListener) {
    let Some(items) = t.list("sasl_mechanisms") else {
        return;
    };
    if !l.sasl() {
        ctx.emit(
            &rules::SASL_MECHANISMS,
            t.at("sasl_mechanisms").as_ref(),
            format!("{} is {}, without SASL, but lists SASL mechanisms", what(t), l.protocol),
        )
        .label("never offered here")
        .related(t.set_at("protocol"), "no SASL here")
        .help(format!(
            "for SASL, write `protocol = \"{}\"`; otherwise remove `sasl_mechanisms`",
            if l.tls() { "SASL_SSL" } else { "SASL_PLAINTEXT" }
        ))
        .note("mechanisms are offered only on SASL_PLAINTEXT and SASL_SSL listeners");
        return;
    }
    if items.is_empty() {
        ctx.emit(
            &rules::SASL_MECHANISMS,
            t.at("sasl_mechanisms").as_ref(),
            format!("{} offers no SASL mechanism", what(t)),
        )
        .label("no client could authenticate")
        .help("leave `sasl_mechanisms` out for both SCRAMs")
        .note("a SASL listener that offers no mechanism lets nobody in");
    }
    for (m, span) in items {
        if !SASL_MECHANISMS.contains(&m.trim()) {
            ctx.emit(
                &rules::SASL_MECHANISMS,
                Some(&crate::raw::Origin::File(span.clone())),
                format!("`{}` is not a SASL mechanism the broker serves", shown(m)),
            )
            .label("unknown mechanism")
            .help(format!("use some of {}", SASL_MECHANISMS.join(", ")))
            .note("GSSAPI, OAUTHBEARER and other mechanisms are not served");
        }
    }
}

/// V035: each rule parses.
fn mapping_rules(ctx: &mut Ctx<'_>, t: &RawTable) {
    for (rule, span) in t.list("principal_mapping_rules").unwrap_or_default() {
        if let Err(e) = PrincipalMapping::parse(&[rule]) {
            ctx.emit(
                &rules::PRINCIPAL_MAPPING_RULE,
                Some(&crate::raw::Origin::File(span.clone())),
                format!("principal mapping rule {e}"),
            )
            .label("does not parse")
            .help("write `DEFAULT` or `RULE:pattern/replacement/` with an optional L or U")
        .note("the rules are Kafka's `ssl.principal.mapping.rules`; the broker refuses to start with one that does not parse");
        }
    }
}

/// Whether `p` is `Type:name`.
pub fn is_principal(p: &str) -> bool {
    p.split_once(':')
        .is_some_and(|(kind, name)| !kind.is_empty() && !name.is_empty() && !kind.contains(char::is_whitespace))
}

/// V036: super users are principals. V038: none is the principal of
/// connections nothing authenticated.
fn super_users(ctx: &mut Ctx<'_>, raw: &Raw) {
    let t = raw.table("security");
    for (user, span) in t.list("super_users").unwrap_or_default() {
        if user.trim() == ANONYMOUS_PRINCIPAL {
            let at = if span.is_empty() {
                t.at("super_users")
            } else {
                Some(crate::raw::Origin::File(span.clone()))
            };
            ctx.emit(
                &rules::ANONYMOUS_SUPER_USER,
                at.as_ref(),
                format!("`{ANONYMOUS_PRINCIPAL}` is a super user: every connection nothing authenticated may do everything"),
            )
            .label("no password, no certificate")
            .help("take it out of `super_users`; name a principal of its own for local tools (`[listeners] kafka_principal = \"User:local-admin\"`) and list that")
            .note("the `kafka` listener, plaintext listeners and the HTTP listener without authentication all give their clients this principal");
            continue;
        }
        if !is_principal(user.trim()) {
            let at = if span.is_empty() {
                t.at("super_users")
            } else {
                Some(crate::raw::Origin::File(span.clone()))
            };
            ctx.emit(
                &rules::INVALID_SUPER_USER,
                at.as_ref(),
                format!("super user `{}` is not a principal", shown(user)),
            )
            .label("expected `User:NAME`")
            .help(format!("write `\"User:{}\"`", user.trim()))
            .note("connections are principals such as `User:alice`; a bare name matches none");
        }
    }
}

/// V037: a super user's powers to whoever reaches the plaintext listener.
fn privileged_plaintext(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig) {
    let l = raw.table("listeners");
    if !is_principal(&c.kafka_principal) {
        ctx.emit(
            &rules::INVALID_SUPER_USER,
            l.at("kafka_principal").as_ref(),
            format!("`kafka_principal` `{}` is not a principal", shown(&c.kafka_principal)),
        )
        .label("expected `User:NAME`")
        .help(format!("write `\"User:{}\"`", c.kafka_principal.trim()))
        .note("connections are principals such as `User:alice`; a bare name matches none");
    }
    let privileged = c.security.super_users.contains(&c.kafka_principal);
    if privileged && !c.kafka_listener.ip().is_loopback() {
        ctx.emit(
            &rules::PRIVILEGED_PLAINTEXT_LISTENER,
            l.at("kafka").as_ref(),
            format!(
                "the kafka listener {} gives every connection the super user `{}`",
                c.kafka_listener, c.kafka_principal
            ),
        )
        .label("reachable from the network, without authentication")
        .related(raw.table("security").set_at("super_users"), "a super user")
        .help(format!("listen on `\"127.0.0.1:{}\"`", c.kafka_listener.port()))
        .note("whoever reaches the listener could do everything, whatever the ACLs say");
    }
}

/// The HTTP listener: V032 a certificate without its key (or the reverse),
/// V033 and V144 its files, V036 its principal, V037 a super user's powers
/// to unauthenticated requests from the network, V220 the API open to the
/// network.
fn http_listener(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig, probe: &dyn Probe) {
    let l = raw.table("listeners");
    let who = "the HTTP listener";
    match (l.declares("http_tls_cert_file"), l.declares("http_tls_key_file")) {
        (true, false) | (false, true) => {
            let (set, missing) = if l.declares("http_tls_cert_file") {
                ("http_tls_cert_file", "http_tls_key_file")
            } else {
                ("http_tls_key_file", "http_tls_cert_file")
            };
            ctx.emit(
                &rules::LISTENER_TLS,
                l.at(set).as_ref(),
                format!("the HTTP listener has `{set}` but no `{missing}`"),
            )
            .label("TLS needs a certificate and its key")
            .help(format!("add `{missing}` to `[listeners]`, or remove `{set}`"))
            .note("without both the broker would serve plain HTTP");
        }
        _ => {}
    }
    if let Some(files) = &c.http_tls {
        certificates(ctx, l, who, "http_tls_cert_file", &files.cert, probe, true);
        private_key(ctx, l, who, "http_tls_key_file", &files.key, probe);
    }
    let principal = &c.http_security.anonymous_principal;
    if !is_principal(principal) {
        ctx.emit(
            &rules::INVALID_SUPER_USER,
            l.at("http_principal").as_ref(),
            format!("`http_principal` `{}` is not a principal", shown(principal)),
        )
        .label("expected `User:NAME`")
        .help(format!("write `\"User:{}\"`", principal.trim()))
        .note("requests are principals such as `User:alice`; a bare name matches none");
    }
    let networked = !c.http_listener.ip().is_loopback();
    let open = c.http_security.api == veltrix_http::Access::Open;
    if networked && open && c.security.super_users.contains(principal) {
        ctx.emit(
            &rules::PRIVILEGED_PLAINTEXT_LISTENER,
            l.set_at("http").or_else(|| l.at("http_principal")).as_ref(),
            format!(
                "the HTTP listener {} gives every request without credentials the super user `{principal}`",
                c.http_listener
            ),
        )
        .label("reachable from the network, without authentication")
        .related(raw.table("security").set_at("super_users"), "a super user")
        .help("set `http_authentication = \"required\"`, or listen on loopback")
        .note("whoever reaches the listener could redrive dead letters and read every topic, whatever the ACLs say");
    } else if networked && open {
        ctx.emit(
            &rules::HTTP_AUTHENTICATION_OFF,
            l.set_at("http_authentication").or_else(|| l.at("http")).as_ref(),
            format!(
                "the HTTP API at {} is reachable from the network without authentication",
                c.http_listener
            ),
        )
        .label("anyone reaching it acts as `http_principal`")
        .help("set `[listeners] http_authentication = \"required\"` (the broker's users, as `veltrix user add` makes them)")
        .note("the API reads dead letters, which hold records' keys and values, and starts redrives");
    }
}

/// V218: PLAIN offered where the password would travel unencrypted.
fn plain_without_tls(ctx: &mut Ctx<'_>, raw: &Raw) {
    for t in &raw.listeners {
        let Some(l) = resolve(t) else { continue };
        if l.sasl() && !l.tls() && l.sasl_mechanisms.iter().any(|m| m == "PLAIN") {
            ctx.emit(
                &rules::SASL_PLAIN_WITHOUT_TLS,
                t.at("sasl_mechanisms").as_ref(),
                format!(
                    "{} offers PLAIN without TLS: passwords cross the network in clear",
                    what(t)
                ),
            )
            .label("PLAIN on SASL_PLAINTEXT")
            .help("make the listener SASL_SSL, or offer only SCRAM-SHA-512 and SCRAM-SHA-256")
            .note("SCRAM never sends the password; PLAIN sends it as it is");
        }
    }
}

/// V219: authentication without authorization, and plaintext listeners on
/// the network (V204).
fn authorization_off(ctx: &mut Ctx<'_>, raw: &Raw, c: &VeltrixConfig) {
    for t in &raw.listeners {
        let Some(l) = resolve(t) else { continue };
        if !l.tls() && !l.address.ip().is_loopback() {
            ctx.emit(
                &rules::NON_LOOPBACK_LISTENER,
                t.at("address").as_ref(),
                format!(
                    "{} ({}) is reachable from the network, without TLS",
                    what(t),
                    l.protocol
                ),
            )
            .label("unencrypted on the network")
            .help("use `protocol = \"SASL_SSL\"` (or `\"SSL\"` with client certificates) for network listeners")
            .note("records and credentials on this listener cross the network unencrypted");
        }
    }
    if c.security.authorization {
        return;
    }
    let exposed = raw
        .listeners
        .iter()
        .find(|t| resolve(t).is_some_and(|l| !l.address.ip().is_loopback() || l.sasl() || l.tls_client_auth != "none"));
    if let Some(t) = exposed {
        let s = raw.table("security");
        ctx.emit(
            &rules::AUTHORIZATION_OFF,
            s.at("authorization").or_else(|| t.at("protocol")).as_ref(),
            "authorization is off: every client that connects may do everything",
        )
        .label("no ACL is enforced")
        .related(t.set_at("address"), "a listener clients authenticate on, or reach from the network")
        .help("set `[security] authorization = true`, grant access with `veltrix acl add`, and list administrators in `super_users`")
        .note("authentication tells who did something; only authorization stops them");
    }
}
